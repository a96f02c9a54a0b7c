"""The sweep: what runs that died without cleaning up left behind is found by age and removed,
and nothing of a run that may still be alive is touched."""
from __future__ import annotations

import os
import socket
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from google.cloud.bigquery import SchemaField, Table
from rq.job import Job

from bq_etl.extension import state
from bq_etl.liveness import abandoned_key
from bq_etl.run import ExportRun, new_run_id, run_started
from bq_etl.sweeper import sweep
from bq_etl.warehouse import staging_table
from api.tests.test_pipeline import FAULTS, add_tracks, run_with_workers

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def leave_files(run: ExportRun, count: int = 2) -> None:
    for index in range(count):
        state().bucket.write(f"{run.prefix}{index:05d}.json", [b'{"id":1}\n'])


def leave_staging(run: ExportRun) -> str:
    warehouse = state().warehouse
    warehouse.ensure_dataset()
    name = staging_table(run.table, run.staging_suffix)
    warehouse.client.create_table(Table(warehouse.table_id(name), schema=[SchemaField("id", "INTEGER")]))
    return name


def test_a_run_id_tells_when_its_run_started():
    assert run_started(new_run_id(NOW)) == NOW


def test_runs_older_than_the_cutoff_lose_their_files_and_staging_tables(app):
    old = ExportRun("members", new_run_id(NOW - 2 * DAY))
    recent = ExportRun("members", new_run_id(NOW - timedelta(hours=2)))
    unknown = ExportRun("not_an_export", new_run_id(NOW - 2 * DAY))
    for run in (old, recent, unknown):
        leave_files(run)
    old_staging, recent_staging = leave_staging(old), leave_staging(recent)
    bucket, warehouse = state().bucket, state().warehouse

    report = sweep(state(), older_than=DAY, now=NOW)

    assert report.runs == [f"members/{old.run_id}"]
    assert (report.objects, report.staging_tables) == (2, [old_staging])
    assert bucket.names(old.prefix) == []
    assert len(bucket.names(recent.prefix)) == 2  # may still be running
    assert len(bucket.names(unknown.prefix)) == 2  # not the exporter's to delete
    assert old_staging not in warehouse.tables() and recent_staging in warehouse.tables()
    assert state().redis.exists(abandoned_key(old.run_id))  # a late shard discards its file


def test_a_stale_run_whose_load_job_is_running_is_left_alone(app):
    run = ExportRun("members", new_run_id(NOW - 2 * DAY))
    leave_files(run)
    load = state().queue.enqueue("builtins.print", job_id=run.load_job_id)
    load.set_status("started")

    report = sweep(state(), older_than=DAY, now=NOW)

    assert (report.runs, report.busy) == ([], [f"members/{run.run_id}"])
    assert len(state().bucket.names(run.prefix)) == 2


@FAULTS
def test_a_run_whose_work_horse_was_killed_is_swept_and_its_load_cancelled(app, workers, redis):
    add_tracks(["a", "b", "c", "d", "e"])  # shards of 2: the horse dies in the second

    start, load = run_with_workers(workers, "killed_tracks")

    run_id = start.return_value()["run_id"]
    run = ExportRun("killed_tracks", run_id)
    killed = Job.fetch(f"bq-etl-killed_tracks-{run_id}-shard-00001", connection=redis)
    assert killed.get_status() == "failed"
    # No failure callback ran: the load waits for good and the other shards' files stay.
    assert load.get_status() == "deferred"
    assert state().bucket.names(run.prefix) == [f"{run.prefix}00000.json", f"{run.prefix}00002.json"]

    report = sweep(state(), older_than=timedelta(seconds=1), now=run_started(run_id) + timedelta(minutes=1))

    assert report.runs == [f"killed_tracks/{run_id}"] and report.objects == 2
    assert state().bucket.names(run.prefix) == []
    assert load.get_status() == "canceled"


def test_the_sweep_command_reports_what_it_removed(app):
    old = ExportRun("members", new_run_id(datetime.now(timezone.utc) - 2 * DAY))
    leave_files(old, count=3)

    result = app.test_cli_runner().invoke(args=["export", "sweep"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"swept members/{old.run_id}", "1 stale runs swept: 3 files, 0 staging tables"]
    assert state().bucket.names(old.prefix) == []


def started_load(run: ExportRun, worker: str) -> Job:
    """A load job of `run` that RQ calls started, taken by the worker named `worker`."""
    # load_run's arguments: table, run id, gzip level, shard job ids, start time.
    load = state().queue.enqueue("builtins.print", run.table, run.run_id, 0, [], 0.0, job_id=run.load_job_id)
    load.worker_name = worker
    load.save()
    load.set_status("started")
    return load


def test_a_young_run_whose_load_worker_stopped_sending_heartbeats_is_swept_at_once(app, redis):
    run = ExportRun("members", new_run_id())  # minutes old, not a day
    leave_files(run)
    staging = leave_staging(run)
    started_load(run, "gone-worker")  # no rq:worker:gone-worker key: its heartbeat expired

    report = sweep(state())

    assert (report.runs, report.busy, report.objects) == ([f"members/{run.run_id}"], [], 2)
    assert report.staging_tables == [staging] and staging not in state().warehouse.tables()
    assert redis.exists(abandoned_key(run.run_id))


def test_a_load_whose_worker_process_is_dead_on_this_host_is_swept_and_the_command_says_so(app, redis):
    gone = subprocess.Popen(["true"])
    gone.wait()
    # The worker's key outlives it by up to its heartbeat TTL; its pid tells at once.
    redis.hset("rq:worker:killed", mapping={"hostname": socket.gethostname(), "pid": gone.pid})
    dead, alive = ExportRun("members", new_run_id()), ExportRun("messages", new_run_id())
    for run, worker in ((dead, "killed"), (alive, "living")):
        leave_files(run)
        started_load(run, worker)
    redis.hset("rq:worker:living", mapping={"hostname": socket.gethostname(), "pid": os.getpid()})

    result = app.test_cli_runner().invoke(args=["export", "sweep", "--older-than", "60"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"swept members/{dead.run_id}",
        f"left messages/{alive.run_id}: it is still running (its jobs wait or run on a live worker, "
        "or its flask export run process lives)",
        "1 stale runs swept: 2 files, 0 staging tables",
    ]
    assert state().bucket.names(dead.prefix) == [] and len(state().bucket.names(alive.prefix)) == 2


def test_a_young_run_the_history_says_ended_or_died_is_swept_at_once_and_a_live_one_is_left(app, redis):
    from bq_etl import history

    gone = subprocess.Popen(["true"])
    gone.wait()
    ended, dead, alive = (ExportRun("members", new_run_id()) for _ in range(3))
    for run in (ended, dead, alive):
        leave_files(run)
        history.started(redis, run, "ad hoc (CLI)", keep=10)  # a foreground run: this process
    history.failed(redis, "members", ended.run_id, RuntimeError("the bucket was down as it deleted its files"))
    redis.hset(history.run_key("members", dead.run_id), "pid", gone.pid)  # its process was killed

    report = sweep(state())  # minutes old, not ETL_SWEEP_AFTER

    assert report.runs == sorted([f"members/{ended.run_id}", f"members/{dead.run_id}"])
    assert (report.busy, report.objects) == ([f"members/{alive.run_id}"], 4)
    assert len(state().bucket.names(alive.prefix)) == 2
    outcomes = {run: history.run(redis, "members", run.run_id).outcome for run in (ended, dead, alive)}
    assert outcomes == {ended: "failed", dead: "abandoned", alive: "running"}
