"""The run history and what is read from it: every run recorded as it progresses (foreground
and on real RQ workers), its outcome, a killed run reading as dead, the bound per table,
`flask export status` / `history`, and the freshness rules."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest

from api.demo.seed import seed
from bq_etl import history
from bq_etl.cadence import Cadence
from bq_etl.errors import ExportError
from bq_etl.extension import state
from bq_etl.jobs import enqueue_cadence, enqueue_run
from bq_etl.run import ExportRun, new_run_id, run_started
from bq_etl.status import freshness, late_after, table_status
from bq_etl.sweeper import sweep
from api.tests.conftest import ROOT
from api.tests.fault_exports import fault_key
from api.tests.test_pipeline import FAULTS, add_tracks, run_with_workers

SHIPPED = ["appointments", "members", "messages", "practitioners", "product_events"]


def set_config(app, **settings):
    """Change settings of a running app (the exporter reads them once: drop what it read)."""
    app.config.update(settings)
    state().__dict__.pop("config", None)


def cli(app, *args):
    return app.test_cli_runner().invoke(args=["export", *args])


def test_a_foreground_run_is_recorded_with_its_progress_outcome_and_bigquery_jobs(app, redis):
    seed(30)
    result = cli(app, "run", "members")
    assert result.exit_code == 0, result.output

    [run] = history.runs(state().redis, "members")
    assert (run.outcome, run.trigger, run.alive) == ("loaded", "ad hoc (CLI)", None)
    assert run.rows == run.planned_rows == state().warehouse.row_count("members") > 0
    assert run.shards_done == run.shards_total >= 1 and run.bytes > 0
    assert run.started < run.ended and run.seconds > 0
    assert len(run.job_ids) >= 3  # staging load, its count, the copy, the live count
    assert run.pid == os.getpid() and run.error == ""


def test_runs_on_workers_record_their_cadence_and_every_shard(app, workers, redis):
    seed(60)
    exporter = state()
    enqueue_cadence(exporter, Cadence.EVERY_THREE_HOURS)  # members
    workers.start(2)
    workers.wait()

    [run] = history.runs(exporter.redis, "members")
    assert (run.outcome, run.trigger) == ("loaded", "every_three_hours")
    assert run.start_job and run.load_job.endswith("-load")
    assert run.shards_done == run.shards_total and run.rows == exporter.warehouse.row_count("members")
    assert run.job_ids


def test_each_way_of_starting_a_run_names_its_trigger(app, redis):
    from bq_etl.jobs import schedule_cadence

    cli(app, "schedule", "midnight")
    cli(app, "run", "practitioners", "--enqueue", "--force")  # the tick's run is still queued
    redis.delete(*redis.keys("bq-etl:active:*"))  # rq-scheduler's tick has no --force: free the table
    schedule_cadence("midnight")

    assert [job.kwargs["trigger"] for job in state().queue.get_jobs()] == [
        "midnight", "ad hoc (CLI, on workers)", "midnight (rq-scheduler)"]


def test_a_run_whose_planning_fails_is_failed_with_the_error(app, workers, redis):
    from api.db import db
    from api.models import Member

    enqueue_run(state(), "members")
    Member.__table__.drop(db.engine)  # the plan's query fails in the worker

    workers.start(1)
    workers.wait()

    # start_run is retried (ETL_SHARD_RETRIES, 3); each attempt plans a run of its own.
    runs = history.runs(redis, "members")
    assert len(runs) == 4
    for run in runs:
        assert (run.outcome, run.trigger, run.shards_total) == ("failed", "ad hoc", 0)
        assert run.error.startswith("OperationalError: (sqlite3.OperationalError) no such table: members")


@FAULTS
def test_a_run_whose_shard_fails_for_good_is_failed_with_the_error(app, workers, redis):
    add_tracks(["a", "b", "c", "d", "e"])
    redis.hset(fault_key("flaky_tracks"), "5", 100)  # more failures than retries

    start, load = run_with_workers(workers, "flaky_tracks")

    [run] = history.runs(redis, "flaky_tracks")
    assert run.run_id == start.return_value()["run_id"]
    assert run.outcome == "failed" and run.ended is not None
    assert run.error == "ShardFault: injected failure at flaky_tracks row 5"
    assert (run.shards_done, run.shards_total, run.rows) == (2, 3, 4)
    status = table_status(state(), "flaky_tracks")
    assert status.last_run_failed and status.last_failure.run_id == run.run_id and not status.ok
    assert history.totals(redis, "flaky_tracks")["runs:failed"] == 1


@FAULTS
def test_a_run_killed_on_a_worker_reads_as_dead_until_the_sweep_abandons_it(app, workers, redis):
    add_tracks(["a", "b", "c", "d", "e"])  # shards of 2: the horse dies in the second

    start, load = run_with_workers(workers, "killed_tracks")

    run_id = start.return_value()["run_id"]
    run = history.run(redis, "killed_tracks", run_id)
    assert (run.outcome, run.alive, run.label) == ("running", False, "running (dead: no job left)")
    assert (run.shards_done, run.shards_total, run.rows) == (2, 3, 3)  # its last progress

    sweep(state(), older_than=timedelta(seconds=1), now=run_started(run_id) + timedelta(minutes=1))

    run = history.run(redis, "killed_tracks", run_id)
    assert run.outcome == "abandoned" and run.alive is None and run.error.startswith("given up")


@FAULTS
@pytest.mark.parametrize("given_up_by", ["the next enqueue", "the sweep"])
def test_a_start_run_killed_while_planning_reads_as_dead_until_it_is_recorded_abandoned(app, workers, redis,
                                                                                         given_up_by):
    from api.tests.test_faults import running_metric

    add_tracks(["a", "b", "c"])

    start, load = run_with_workers(workers, "killed_plan_tracks")

    # RQ retried start_run, whose second attempt planned a run of its own and loaded it.
    assert load.get_status() == "finished" and start.retries_left == state().config.shard_retries - 1
    loaded, killed = history.runs(redis, "killed_plan_tracks")
    assert (loaded.run_id, loaded.outcome) == (start.return_value()["run_id"], "loaded")
    assert (killed.outcome, killed.alive, killed.shards_total) == ("running", False, 0)
    assert "0/0 shards, 0 rows, DEAD" in cli(app, "status").output
    assert running_metric(state(), "false", "killed_plan_tracks") == 1

    if given_up_by == "the next enqueue":
        enqueue_run(state(), "killed_plan_tracks")
    else:  # it left no file: the sweep finds it in the history
        report = sweep(state())
        assert (report.runs, report.objects) == ([f"killed_plan_tracks/{killed.run_id}"], 0)

    killed = history.run(redis, "killed_plan_tracks", killed.run_id)
    assert (killed.outcome, killed.alive) == ("abandoned", None)
    assert "DEAD" not in cli(app, "status").output
    assert running_metric(state(), "false", "killed_plan_tracks") == 0
    assert history.totals(redis, "killed_plan_tracks")["runs:abandoned"] == 1


@FAULTS
def test_a_start_run_killed_while_planning_keeps_its_table_while_its_retry_waits(app, workers, redis):
    from bq_etl.claim import current
    from bq_etl.errors import RunInProgress
    from bq_etl.jobs import claim_key

    set_config(app, ETL_SHARD_RETRY_INTERVALS="3600")  # RQ schedules the retry an hour ahead
    add_tracks(["a", "b", "c"])
    start = enqueue_run(state(), "killed_plan_tracks")
    workers.start(1)
    workers.wait()

    start.refresh()
    [killed] = history.runs(redis, "killed_plan_tracks")
    assert (start.get_status(), killed.alive) == ("scheduled", False)  # the killed attempt's run is dead
    with pytest.raises(RunInProgress):  # but its start job will plan again: the table stays its own
        enqueue_run(state(), "killed_plan_tracks")
    sweep(state())

    assert history.run(redis, "killed_plan_tracks", killed.run_id).outcome == "abandoned"
    assert current(redis, claim_key(state(), "killed_plan_tracks")).job_id == start.id


@FAULTS
def test_a_foreground_run_killed_half_way_keeps_its_progress_and_reads_as_dead(app, app_env, redis):
    add_tracks(["a", "b", "c", "d"])  # shard 0 (rows 1, 2) exports; the process dies at row 3
    process = subprocess.run([sys.executable, "-m", "flask", "export", "run", "killed_tracks"],
                             cwd=ROOT, env={**os.environ, **app_env}, capture_output=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr

    [run] = history.runs(redis, "killed_tracks")
    assert (run.outcome, run.trigger, run.alive) == ("running", "ad hoc (CLI)", False)
    assert (run.shards_done, run.shards_total, run.rows, run.planned_rows) == (1, 2, 2, 4)
    assert "DEAD" in cli(app, "status").output


def test_the_history_keeps_the_newest_runs_per_table_and_counts_all_of_them(app, redis):
    set_config(app, ETL_HISTORY_RUNS=3)
    for _ in range(4):
        assert cli(app, "run", "practitioners").exit_code == 0

    runs = history.runs(state().redis, "practitioners")
    kept = state().redis.keys(history.run_key("practitioners", "*"))
    assert len(runs) == 3 and len(kept) == 3
    assert [r.run_id for r in runs] == sorted((r.run_id for r in runs), reverse=True)
    assert history.totals(state().redis, "practitioners")["runs:loaded"] == 4


def test_the_first_outcome_of_a_run_stays_and_an_error_may_name_its_own(app, redis):
    class Refused(ExportError):
        outcome = "refused"

    run = ExportRun("members", new_run_id())
    history.started(redis, run, "hourly", keep=10)
    assert history.failed(redis, run.table, run.run_id, Refused("would shrink members\nsecond line"))
    assert not history.abandoned(redis, run.table, run.run_id)  # already ended
    record = history.run(redis, run.table, run.run_id)
    assert (record.outcome, record.error) == ("refused", "Refused: would shrink members")
    assert not history.failed(redis, "members", "no-such-run", RuntimeError("x"))  # nothing invented
    assert history.runs(redis, "members") == [record]


def test_status_and_history_commands_show_each_table_and_check_pages_on_trouble(app, redis):
    for table in SHIPPED:
        assert cli(app, "run", table).exit_code == 0

    result = cli(app, "status", "--check")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["table", "cadence", "freshness", "last"]
    assert [line.split()[:3] for line in lines[1:]] == [
        [t, Cadence(state().tables.get(t).cadence).value, "fresh"] for t in SHIPPED]

    as_json = json.loads(cli(app, "status", "--json").output)
    assert [(s["table"], s["ok"], s["bigquery_rows"]) for s in as_json] == [(t, True, 0) for t in SHIPPED]

    set_config(app, ETL_LATE_MARGIN=0)  # a midnight table is late only after 24 h: pretend 25 h passed
    status = table_status(state(), "practitioners", now=history.runs(state().redis, "practitioners")[0].ended + 25 * 3600)
    assert status.freshness == "late" and not status.ok

    history_out = cli(app, "history", "members", "--limit", "5")
    assert history_out.exit_code == 0 and "loaded" in history_out.output and "ad hoc (CLI)" in history_out.output
    [run] = json.loads(cli(app, "history", "members", "--json").output)
    assert run["outcome"] == "loaded" and run["seconds"] > 0


def test_status_and_history_read_only_redis_so_they_work_with_the_emulators_stopped(app, redis, monkeypatch):
    assert cli(app, "run", "practitioners").exit_code == 0
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")  # nothing listens on port 1
    set_config(app, ETL_BIGQUERY_API_ENDPOINT="http://127.0.0.1:1")
    for cached in ("bucket", "warehouse"):
        state().__dict__.pop(cached, None)

    status = cli(app, "status")
    runs = cli(app, "history", "practitioners")

    assert status.exit_code == 0, status.output
    assert {line.split()[0]: line.split()[2] for line in status.output.splitlines()[1:]}["practitioners"] == "fresh"
    assert runs.exit_code == 0, runs.output
    assert runs.output.splitlines()[1].split()[1:4] == ["ad", "hoc", "(CLI)"] and "loaded" in runs.output
    assert cli(app, "run", "practitioners").exit_code == 1  # a run does need them


def test_status_check_fails_when_a_table_was_never_loaded(app, redis):
    assert cli(app, "run", "members").exit_code == 0
    result = cli(app, "status", "--check")
    assert result.exit_code == 1
    assert "never" in result.output and "not ok: appointments, messages, practitioners, product_events" in result.output


@pytest.mark.parametrize("age, expected", [(None, "never"), (0, "fresh"), (5400, "fresh"), (5401, "late"),
                                           (10800, "late"), (10801, "stale")])
def test_freshness_is_late_past_the_interval_plus_margin_and_stale_at_twice_that(age, expected):
    assert freshness(age, late_after(Cadence.HOURLY, margin=1800)) == expected


def test_each_cadence_has_the_longest_gap_of_its_cron_expression():
    from datetime import datetime, timezone

    from crontab import CronTab  # the cron library rq-scheduler uses

    for cadence in Cadence:
        start = datetime(2026, 1, 1, tzinfo=timezone.utc)
        times, now = [], start
        while now < start + timedelta(days=2):
            now = now + timedelta(seconds=CronTab(cadence.cron).next(now, default_utc=True))
            times.append(now)
        assert max(b - a for a, b in zip(times, times[1:])) == cadence.interval


def test_the_history_settings_are_checked_with_the_others():
    from bq_etl.config import ExportConfig
    from bq_etl.errors import ConfigError
    from api.tests.test_config import GOOD

    config = ExportConfig.from_mapping({**GOOD, "ETL_HISTORY_RUNS": "250", "ETL_LATE_MARGIN": "600"})
    assert (config.history_runs, config.late_margin) == (250, 600)
    assert (ExportConfig.from_mapping(GOOD).history_runs, ExportConfig.from_mapping(GOOD).late_margin) == (100, 1800)
    with pytest.raises(ConfigError, match="ETL_HISTORY_RUNS must be between 1 and 100000, got 0; "
                                          "ETL_LATE_MARGIN must be a whole number, got 'soon'"):
        ExportConfig.from_mapping({**GOOD, "ETL_HISTORY_RUNS": "0", "ETL_LATE_MARGIN": "soon"})


def test_a_superseded_run_is_recorded_as_such_and_counted(app, redis):
    from bq_etl.run import RunSummary, ShardResult

    run = ExportRun("members", new_run_id())
    history.started(redis, run, "hourly", keep=10)
    history.shard_exported(redis, run, ShardResult(0, "x", 7, 70))
    assert history.finished(redis, RunSummary("members", run.run_id, shards=1, rows=7, bytes=70, status="superseded"))

    record = history.run(redis, "members", run.run_id)
    assert (record.outcome, record.rows, record.shards_done, record.error) == ("superseded", 7, 1, "")
    totals = history.totals(redis, "members")
    assert (totals["runs:superseded"], totals["rows"], totals["bytes"]) == (1, 7, 70)
    assert history.newest_loaded(redis, "members") is None  # superseded loads nothing
