"""The live table is never replaced by older data, nor shrunk unasked (docs/reliability.md).

Real processes: `flask export run` subprocesses paused with SIGSTOP and resumed with SIGCONT by
PID, real Redis servers (one of the test's own where Redis must lose its data), the storage and
BigQuery emulators. Every wait polls with a deadline.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq.job import Job
from sqlalchemy import delete, update

from api.db import db
from api.demo.services import free_port
from api.models import CareTrack
from api.tests.fault_exports import TracksExport
from bq_etl.cli import EXIT_SUPERSEDED
from bq_etl.extension import state
from bq_etl.loader import loaded_run_key
from bq_etl.lock import lock_name
from bq_etl.run import ExportRun, Shard, ShardResult, label_run, new_run_id, run_label
from bq_etl.storage import Bucket

ROOT = Path(__file__).resolve().parents[2]
FENCING = pytest.mark.export_modules("api.tests.test_fencing")
DEADLINE = 180.0


class FencedTracksExport(TracksExport):
    """Care tracks in shards of 500, with the default shrink threshold (0.5)."""

    table_name = "fenced_tracks"
    shard_size = 500


class GatedTracksExport(FencedTracksExport):
    """Care tracks whose last shard waits while the Redis key `gate:gated_tracks` exists, so a
    test can catch a run in the middle of its shards, before it can reach its load. It says it
    waits (`gate:gated_tracks:waiting`), so the test stops it there, outside any request to
    the emulators, and it waits before its query, holding no read lock (SQLite would refuse the
    test's update meanwhile)."""

    table_name = "gated_tracks"
    rows = 2_000

    def export_shard(self, run: ExportRun, shard: Shard, bucket: Bucket | None) -> ShardResult:
        if shard.upper is None:
            redis = state().redis
            redis.set(waiting_key(self.table_name), run.run_id)
            wait_for(lambda: not redis.exists(gate_key(self.table_name)), what="the gate to open")
        return super().export_shard(run, shard, bucket)


class ShrinkingTracksExport(FencedTracksExport):
    """Care tracks that may legitimately shrink, even to nothing."""

    table_name = "shrinking_tracks"
    shrink_threshold = None


class StrictTracksExport(FencedTracksExport):
    """Care tracks with a threshold of 0: any shrink is fine, but never to empty."""

    table_name = "strict_tracks"
    shrink_threshold = 0.0


def gate_key(table: str) -> str:
    return f"gate:{table}"


def waiting_key(table: str) -> str:
    return f"gate:{table}:waiting"


def wait_for(predicate, timeout: float = DEADLINE, what: str = "condition", interval: float = 0.05):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def put_tracks(count: int, version: str) -> None:
    """Make the source hold tracks 1..count named `<version>-<id>`."""
    db.session.execute(delete(CareTrack))
    db.session.add_all([CareTrack(id=i, name=f"{version}-{i}") for i in range(1, count + 1)])
    db.session.commit()


def source_rows() -> list[tuple]:
    return [(t.id, t.name) for t in db.session.query(CareTrack).order_by(CareTrack.id)]


def live_rows(table: str) -> list[tuple]:
    warehouse = state().warehouse
    result = warehouse.client.query(f"SELECT id, name FROM `{warehouse.table_id(table)}` ORDER BY id").result()
    return [(row.id, row.name) for row in result]


def leftovers(table: str) -> tuple[list[str], list[str]]:
    """Files under the table's prefix and staging tables of the table."""
    exporter = state()
    return exporter.bucket.names(f"{table}/"), [t for t in exporter.warehouse.tables()
                                                  if t.startswith(f"{table}__staging_")]


def cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    """`flask export run ...` as a process of its own."""
    return subprocess.Popen([sys.executable, "-m", "flask", "export", "run", *args], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    out, _ = process.communicate(timeout=DEADLINE)
    return process.returncode, out


def run_id_of(output: str) -> str:
    return re.findall(r"\(run (\S+)\)", output)[-1]


def pause_in_load(process: subprocess.Popen, table: str, redis: Redis) -> list[str]:
    """SIGSTOP `process` as soon as its staging table appears (it has loaded its files and
    passed its first checks, and not yet written the live table), then wait until its lock has
    expired; return the staging table's name.

    The staging table lives some 50 ms on the emulator, about ten list requests. The run is
    stopped once only: a run stopped between the headers and the body of a request stalls the
    emulator for every client, and stopping it again and again made that likely. Once, right
    after its load job answered, it is almost always waiting for a response instead.
    """
    def staging_table() -> list[str]:
        assert process.poll() is None, f"the run ended before it was caught: {process.communicate()[0]}"
        return leftovers(table)[1]

    staging = wait_for(staging_table, what="the run's staging table", interval=0.002)
    process.send_signal(signal.SIGSTOP)
    assert redis.exists(lock_name(table)), "the run was paused after it let its lock go"
    wait_for(lambda: not redis.exists(lock_name(table)), what="the paused run's lock to expire")
    return staging


@pytest.fixture
def lock_env(app_env):
    """The app's environment with the shortest lock timeout, so a paused loader loses its lock soon."""
    return {**app_env, "ETL_LOCK_TIMEOUT": "5"}


class OwnRedis:
    """A redis-server of the test's own, without persistence, that the test may restart."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._up, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def _up(self) -> bool:
        try:
            return Redis.from_url(self.url, socket_connect_timeout=1).ping()
        except Exception:
            return False


@pytest.fixture
def own_redis(app_env, monkeypatch, tmp_path):
    """Point the app (and its subprocesses) at a redis-server of the test's own; request it
    before `app`."""
    server = OwnRedis(tmp_path)
    server.start()
    app_env["REDIS_URL"] = server.url
    monkeypatch.setenv("REDIS_URL", server.url)
    yield server
    server.stop()


def test_run_labels_sort_as_the_run_ids_do():
    ids = [new_run_id() for _ in range(50)] + ["99991231T000000000000Z-ffffff", "20000101T000000000000Z-000000"]
    labels = [run_label(i) for i in ids]
    assert sorted(labels) == [run_label(i) for i in sorted(ids)]
    assert all(re.fullmatch(r"[a-z0-9_-]{1,63}", label) for label in labels)
    assert [label_run(label) for label in labels] == ids


@FENCING
def test_a_paused_loader_that_lost_its_lock_does_not_overwrite_a_newer_run(app, lock_env, redis):
    exporter = state()
    put_tracks(20_000, "old")
    first = cli(lock_env, "fenced_tracks")
    try:
        staging = pause_in_load(first, "fenced_tracks", redis)

        put_tracks(19_000, "new")
        # --force: the paused run still holds the table (one run per table); only a forced run,
        # or one after the claim expired, can race it
        code, out = finish(cli(lock_env, "fenced_tracks", "--force"))
        assert code == 0, out
        newer = run_id_of(out)
        assert "fenced_tracks: loaded, 19000 rows" in out

        first.send_signal(signal.SIGCONT)
        code, out = finish(first)
    finally:
        first.send_signal(signal.SIGCONT)
        first.kill()
        first.wait()

    assert code == EXIT_SUPERSEDED, out
    older = run_id_of(out)
    assert staging[0].endswith(older.replace("-", "_"))
    assert f"fenced_tracks: superseded by run {newer}, nothing loaded (run {older})" in out
    assert live_rows("fenced_tracks") == source_rows()
    assert exporter.warehouse.loaded_run("fenced_tracks") == newer
    assert redis.get(loaded_run_key(state().config.dataset, "fenced_tracks")).decode() == newer
    assert leftovers("fenced_tracks") == ([], [])


@FENCING
def test_a_paused_loader_that_lost_its_lock_fails_without_writing_when_no_newer_run_loaded(app, lock_env, redis):
    put_tracks(20_000, "old")
    code, out = finish(cli(lock_env, "fenced_tracks"))
    assert code == 0, out
    before = live_rows("fenced_tracks")
    db.session.execute(update(CareTrack).values(name=CareTrack.name + "-changed"))
    db.session.commit()
    paused = cli(lock_env, "fenced_tracks")
    try:
        pause_in_load(paused, "fenced_tracks", redis)
        paused.send_signal(signal.SIGCONT)
        code, out = finish(paused)
    finally:
        paused.send_signal(signal.SIGCONT)
        paused.kill()
        paused.wait()

    assert code == 1, out
    assert "the table's lock expired before the write" in out and "nothing was written" in out
    assert live_rows("fenced_tracks") == before
    assert leftovers("fenced_tracks") == ([], [])


@FENCING
def test_a_paused_run_is_superseded_through_the_table_label_when_redis_lost_its_data(own_redis, app):
    exporter = state()
    redis = exporter.redis
    put_tracks(GatedTracksExport.rows, "old")
    redis.set(gate_key("gated_tracks"), 1)
    env = {**os.environ, "REDIS_URL": own_redis.url}
    first = cli(env, "gated_tracks")
    try:
        older = wait_for(lambda: redis.get(waiting_key("gated_tracks")), what="the first run to reach the gate")
        assert len(exporter.bucket.names(f"gated_tracks/{older.decode()}/")) == 3  # shards 0-2 written
        first.send_signal(signal.SIGSTOP)
        redis.delete(gate_key("gated_tracks"))

        db.session.execute(update(CareTrack).values(name=CareTrack.name + "-changed"))
        db.session.commit()
        code, out = finish(cli(env, "gated_tracks", "--force"))  # the paused run holds the table
        assert code == 0, out
        newer = run_id_of(out)

        own_redis.stop()
        own_redis.start()
        assert redis.get(loaded_run_key(state().config.dataset, "gated_tracks")) is None, "Redis kept its data"

        first.send_signal(signal.SIGCONT)
        code, out = finish(first)
    finally:
        first.send_signal(signal.SIGCONT)
        first.kill()
        first.wait()

    assert code == EXIT_SUPERSEDED, out
    assert f"gated_tracks: superseded by run {newer}, nothing loaded" in out
    assert live_rows("gated_tracks") == source_rows()
    assert all(name.endswith("-changed") for _, name in live_rows("gated_tracks"))
    assert exporter.warehouse.loaded_run("gated_tracks") == newer
    assert leftovers("gated_tracks") == ([], [])


@FENCING
def test_a_run_that_would_shrink_the_table_is_refused_unless_allowed(app):
    runner = app.test_cli_runner()
    put_tracks(10, "v1")
    assert runner.invoke(args=["export", "run", "fenced_tracks"]).exit_code == 0
    before = live_rows("fenced_tracks")
    db.session.execute(delete(CareTrack).where(CareTrack.id > 4))
    db.session.commit()

    result = runner.invoke(args=["export", "run", "fenced_tracks"])

    assert result.exit_code == 1
    assert ("table 'fenced_tracks': the run would replace 10 live rows with 4; under its shrink_threshold "
            "of 0.5 (5 rows)") in result.output
    assert "flask export run fenced_tracks --allow-shrink" in result.output
    assert live_rows("fenced_tracks") == before
    assert leftovers("fenced_tracks") == ([], [])

    result = runner.invoke(args=["export", "run", "fenced_tracks", "--allow-shrink"])
    assert result.exit_code == 0, result.output
    assert live_rows("fenced_tracks") == source_rows()


@FENCING
def test_allow_shrink_passes_through_enqueue_to_the_load_job(app, workers):
    exporter = state()
    runner = app.test_cli_runner()
    put_tracks(10, "v1")
    assert runner.invoke(args=["export", "run", "fenced_tracks"]).exit_code == 0
    db.session.execute(delete(CareTrack).where(CareTrack.id > 2))
    db.session.commit()

    loads = []
    for args in (["--enqueue"], ["--enqueue", "--allow-shrink"]):
        result = runner.invoke(args=["export", "run", "fenced_tracks", *args])
        assert result.exit_code == 0, result.output
        start = Job.fetch(re.search(r"as job (\S+)", result.output).group(1), connection=exporter.redis)
        workers.start(1)
        workers.wait()
        loads.append(Job.fetch(start.return_value()["load_job_id"], connection=exporter.redis))

    refused, allowed = loads
    assert refused.get_status() == "failed"
    assert "ShrinkError" in refused.latest_result().exc_string
    assert allowed.get_status() == "finished"
    assert allowed.return_value()["status"] == "loaded"
    assert live_rows("fenced_tracks") == source_rows() == [(1, "v1-1"), (2, "v1-2")]
    assert leftovers("fenced_tracks") == ([], [])


@FENCING
def test_an_export_without_a_threshold_may_shrink_even_to_empty(app):
    runner = app.test_cli_runner()
    put_tracks(10, "v1")
    assert runner.invoke(args=["export", "run", "shrinking_tracks"]).exit_code == 0
    db.session.execute(delete(CareTrack))
    db.session.commit()

    result = runner.invoke(args=["export", "run", "shrinking_tracks"])

    assert result.exit_code == 0, result.output
    assert "shrinking_tracks: loaded, 0 rows" in result.output
    assert live_rows("shrinking_tracks") == []


@FENCING
def test_an_empty_source_never_replaces_a_non_empty_table_unasked(app):
    runner = app.test_cli_runner()
    put_tracks(10, "v1")
    assert runner.invoke(args=["export", "run", "strict_tracks"]).exit_code == 0
    db.session.execute(delete(CareTrack).where(CareTrack.id > 1))
    db.session.commit()
    assert runner.invoke(args=["export", "run", "strict_tracks"]).exit_code == 0  # threshold 0: 1 row is fine
    db.session.execute(delete(CareTrack))
    db.session.commit()

    result = runner.invoke(args=["export", "run", "strict_tracks"])

    assert result.exit_code == 1
    assert "would replace 1 live rows with 0; a non-empty table is never replaced by an empty source" in result.output
    assert live_rows("strict_tracks") == [(1, "v1-1")]
    result = runner.invoke(args=["export", "run", "strict_tracks", "--allow-shrink"])
    assert result.exit_code == 0, result.output
    assert live_rows("strict_tracks") == []
    assert leftovers("strict_tracks") == ([], [])


@FENCING
def test_the_shrink_guard_holds_a_run_to_the_last_load_when_the_table_is_gone(app):
    """A replace that makes the table anew (a partitioning change) and dies between its delete and
    its create leaves no table to count: the guard holds the run to the rows the newest loaded run
    recorded (named by the Redis marker, counted in its history)."""
    runner = app.test_cli_runner()
    put_tracks(10, "v1")
    result = runner.invoke(args=["export", "run", "fenced_tracks"])
    assert result.exit_code == 0, result.output
    first = run_id_of(result.output)
    state().warehouse.drop("fenced_tracks")  # what the kill between the delete and the create leaves
    db.session.execute(delete(CareTrack).where(CareTrack.id > 4))
    db.session.commit()

    result = runner.invoke(args=["export", "run", "fenced_tracks"])

    assert result.exit_code == 1
    assert (f"would replace 10 rows (what run {first} loaded; the table is missing, as a replace interrupted "
            "half way leaves it) with 4; under its shrink_threshold of 0.5 (5 rows)") in result.output
    assert state().warehouse.live_rows("fenced_tracks") is None
    result = runner.invoke(args=["export", "run", "fenced_tracks", "--allow-shrink"])
    assert result.exit_code == 0, result.output
    assert live_rows("fenced_tracks") == source_rows()
