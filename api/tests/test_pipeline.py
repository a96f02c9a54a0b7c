"""End to end: runs enqueued on Redis, exported by real RQ worker processes into the storage
emulator, and loaded into the BigQuery emulator under the table's lock."""
from __future__ import annotations

import base64
import threading
import time
from datetime import timezone

import pytest
from rq import Queue
from rq.job import Job

from api.db import db
from api.demo.seed import seed
from bq_etl.cadence import Cadence
from bq_etl.extension import state
from bq_etl.jobs import enqueue_run
from bq_etl.lock import table_lock
from bq_etl.loader import loaded_run_key
from api.models import Appointment, CareTrack, Member, MemberTrack
from api.tests.fault_exports import fault_key

ALL_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql", "mariadb"], indirect=True)
FAULTS = pytest.mark.export_modules("api.tests.fault_exports")


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_with_workers(workers, table: str, count: int = 1) -> tuple[Job, Job]:
    """Enqueue a run of `table`, let `count` burst workers drain the queue; return (start, load) jobs."""
    exporter = state()
    start = enqueue_run(exporter, table)
    workers.start(count)
    output = workers.wait()
    start.refresh()
    assert start.get_status() == "finished", f"start_run {start.get_status()}: {start.latest_result()}\n{output}"
    load = Job.fetch(start.return_value()["load_job_id"], connection=exporter.redis)
    return start, load


def bq_rows(table: str) -> list[dict]:
    warehouse = state().warehouse
    result = warehouse.client.query(f"SELECT * FROM `{warehouse.table_id(table)}` ORDER BY id").result()
    return [dict(row.items()) for row in result]


def add_tracks(names: list[str]) -> None:
    db.session.add_all([CareTrack(id=i, name=name) for i, name in enumerate(names, start=1)])
    db.session.commit()


@ALL_DATABASES
def test_a_run_through_workers_loads_exactly_the_source_rows(app, workers):
    seed(rows=60)
    start, load = run_with_workers(workers, "appointments", count=2)

    assert load.get_status() == "finished", load.latest_result()
    summary = load.return_value()
    assert summary["status"] == "loaded", summary
    source = {a.id: a for a in db.session.scalars(db.select(Appointment))}
    rows = bq_rows("appointments")
    assert [r["id"] for r in rows] == sorted(source)
    assert summary["rows"] == len(source) == 60
    for row in rows:
        appointment = source[row["id"]]
        assert row["price"] == appointment.price
        assert row["scheduled_start"] == appointment.scheduled_start  # DATETIME: wall clock, naive
        created = appointment.created_at
        if created.tzinfo is None:  # SQLite and MariaDB hand back naive UTC
            created = created.replace(tzinfo=timezone.utc)
        assert row["created_at"] == created
        assert row["is_cancelled"] is (appointment.cancelled_at is not None)
        assert row["preferred_time_of_day"] == appointment.preferred_time_of_day
        assert row["notes"] == appointment.notes


def test_nested_and_binary_columns_arrive_in_bigquery(app, workers):
    seed(rows=20)
    _, load = run_with_workers(workers, "members")

    assert load.get_status() == "finished", load.latest_result()
    rows = {r["id"]: r for r in bq_rows("members")}
    member = db.session.get(Member, 1)
    tracks = db.session.scalars(
        db.select(MemberTrack).where(MemberTrack.member_id == 1).order_by(MemberTrack.started_on, MemberTrack.id)
    ).all()
    assert rows[1]["organization"] == {"id": member.organization_id, "name": member.organization.name}
    assert [t["care_track_id"] for t in rows[1]["care_tracks"]] == [t.care_track_id for t in tracks]
    assert rows[1]["preferences"] == member.preferences
    # The emulator keeps BYTES as the base64 text it was given (../shared/BIGQUERY-JSON.md).
    assert base64.b64decode(rows[1]["avatar_thumbnail"]) == member.avatar_thumbnail
    assert rows[2]["organization"] is None and rows[2]["care_tracks"] == []




@FAULTS
def test_rerun_after_source_changes_has_no_duplicates_and_no_deleted_rows(app, workers):
    add_tracks(["a", "b", "c", "d", "e"])
    _, load = run_with_workers(workers, "flaky_tracks")
    assert load.get_status() == "finished", load.latest_result()
    assert [r["name"] for r in bq_rows("flaky_tracks")] == ["a", "b", "c", "d", "e"]

    db.session.execute(db.delete(CareTrack).where(CareTrack.id.in_([2, 4])))
    db.session.execute(db.update(CareTrack).where(CareTrack.id == 5).values(name="e2"))
    db.session.add(CareTrack(id=6, name="f"))
    db.session.commit()
    _, load = run_with_workers(workers, "flaky_tracks")

    assert load.get_status() == "finished", load.latest_result()
    assert bq_rows("flaky_tracks") == [
        {"id": 1, "name": "a"}, {"id": 3, "name": "c"}, {"id": 5, "name": "e2"}, {"id": 6, "name": "f"}]


@FAULTS
def test_the_run_files_are_deleted_after_a_successful_load(app, workers):
    add_tracks(["a", "b", "c"])
    start, load = run_with_workers(workers, "flaky_tracks")

    assert load.get_status() == "finished", load.latest_result()
    run_id = start.return_value()["run_id"]
    assert state().bucket.names(f"flaky_tracks/{run_id}/") == []
    assert load.return_value()["shards"] == 2  # shard_size 2: (None, 2], (2, None)


@FAULTS
def test_a_shard_that_fails_once_is_retried_and_the_run_completes(app, workers, redis):
    add_tracks(["a", "b", "c", "d"])
    redis.hset(fault_key("flaky_tracks"), "3", 1)  # row 3 fails on its first attempt

    start, load = run_with_workers(workers, "flaky_tracks")

    assert load.get_status() == "finished", load.latest_result()
    assert [r["id"] for r in bq_rows("flaky_tracks")] == [1, 2, 3, 4]
    shard = Job.fetch(f"bq-etl-flaky_tracks-{start.return_value()['run_id']}-shard-00001", connection=redis)
    assert shard.retries_left == 2  # one of its three retries was used


@FAULTS
def test_a_shard_that_keeps_failing_leaves_the_live_table_unchanged(app, workers, redis):
    add_tracks(["a", "b", "c", "d"])
    _, load = run_with_workers(workers, "flaky_tracks")
    assert load.get_status() == "finished", load.latest_result()
    db.session.add(CareTrack(id=5, name="e"))
    db.session.commit()
    redis.hset(fault_key("flaky_tracks"), "5", 100)  # more failures than retries

    start, load = run_with_workers(workers, "flaky_tracks")

    assert load.get_status() == "canceled"
    assert [r["id"] for r in bq_rows("flaky_tracks")] == [1, 2, 3, 4]
    assert state().bucket.names(f"flaky_tracks/{start.return_value()['run_id']}/") == []
    failed = Job.fetch(f"bq-etl-flaky_tracks-{start.return_value()['run_id']}-shard-00002", connection=redis)
    assert failed.get_status() == "failed" and "injected failure at flaky_tracks row 5" in failed.latest_result().exc_string


@FAULTS
def test_a_row_that_breaks_the_schema_fails_its_shard_with_a_named_error(app, workers, redis):
    add_tracks(["a", "b", "c", "d"])

    start, load = run_with_workers(workers, "bad_tracks")

    shard = Job.fetch(f"bq-etl-bad_tracks-{start.return_value()['run_id']}-shard-00001", connection=redis)
    assert shard.get_status() == "failed"
    assert ("RecordError: table 'bad_tracks', row key 3, column 'name': got int 42, expected STRING"
            in shard.latest_result().exc_string)
    assert load.get_status() == "canceled"
    assert state().warehouse.live_schema("bad_tracks") is None  # nothing was ever loaded


@FAULTS
def test_two_runs_of_one_table_never_load_at_the_same_time(app, workers, redis):
    add_tracks(["a", "b", "c"])
    exporter = state()
    held = threading.Event()
    release = threading.Event()

    def hold_lock():
        with table_lock(redis, "flaky_tracks", timeout=10, wait=5):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    held.wait(10)
    start = enqueue_run(exporter, "flaky_tracks")
    workers.start(1)
    load_id = wait_for(lambda: (start.refresh(), start.return_value())[1], what="the run to be planned")["load_job_id"]
    load = Job.fetch(load_id, connection=redis)
    wait_for(lambda: load.get_status() == "started", what="the load job to start")
    # The load has started but is blocked on the lock: nothing is loaded while another holds it.
    assert exporter.warehouse.live_schema("flaky_tracks") is None
    assert load.get_status() == "started"
    release.set()
    holder.join()
    workers.wait()

    assert load.get_status() == "finished", load.latest_result()
    assert [r["id"] for r in bq_rows("flaky_tracks")] == [1, 2, 3]


@FAULTS
def test_a_run_older_than_the_last_loaded_one_does_not_overwrite_it(app, workers, redis):
    add_tracks(["a", "b"])
    redis.set(loaded_run_key(state().config.dataset, "flaky_tracks"), "99991231T000000000000Z-ffffff")  # a newer run loaded

    _, load = run_with_workers(workers, "flaky_tracks")

    assert load.get_status() == "finished"
    assert load.return_value()["status"] == "superseded"
    assert load.return_value()["superseded_by"] == "99991231T000000000000Z-ffffff"
    assert state().warehouse.live_schema("flaky_tracks") is None
    assert state().bucket.names("flaky_tracks/") == []


def test_each_cadence_enqueues_exactly_its_tables(app, redis):
    runner = app.test_cli_runner()
    expected = {
        Cadence.HOURLY: ["appointments", "product_events"],
        Cadence.EVERY_THREE_HOURS: ["members"],
        Cadence.EVERY_FIVE_HOURS: ["messages"],
        Cadence.MIDNIGHT: ["practitioners"],
    }
    queue = state().queue
    for cadence, tables in expected.items():
        queue.empty()
        result = runner.invoke(args=["export", "schedule", cadence.value])
        assert result.exit_code == 0, result.output
        assert sorted(job.args[0] for job in queue.get_jobs()) == tables


@FAULTS
def test_a_shard_that_fails_for_good_before_the_load_job_exists_still_cancels_the_load(app, redis):
    # RQ's synchronous mode runs each job as it is enqueued, so the first shard fails, and its
    # failure callback abandons the run, while start_run has not yet enqueued the load job.
    add_tracks(["a", "b", "c", "d"])
    app.config["ETL_SHARD_RETRIES"] = 0
    exporter = state()
    exporter.__dict__.pop("config", None)
    exporter.__dict__["queue"] = Queue(exporter.config.queue_name, connection=exporter.redis, is_async=False)
    redis.hset(fault_key("flaky_tracks"), "1", 100)

    start = enqueue_run(exporter, "flaky_tracks")

    planned = start.return_value()
    load = Job.fetch(planned["load_job_id"], connection=redis)
    failed = Job.fetch(f"bq-etl-flaky_tracks-{planned['run_id']}-shard-00000", connection=redis)
    assert failed.get_status() == "failed"
    assert load.get_status() == "canceled"
    assert exporter.bucket.names(f"flaky_tracks/{planned['run_id']}/") == []  # the second shard's file too
    assert exporter.warehouse.live_schema("flaky_tracks") is None
