"""`flask export ...` as an operator uses it."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask import current_app
from rq import Queue
from rq_scheduler import Scheduler

from api.demo.seed import seed
from bq_etl.cadence import Cadence
from bq_etl.extension import state
from bq_etl.jobs import schedule_cadence, start_run, sweep_stale_runs
from bq_etl.scheduling import SWEEP_CRON, SWEEP_JOB_ID, scheduler_job_id

CRONTAB = Path(__file__).resolve().parents[1] / "cron" / "crontab"


def test_list_shows_every_table_with_its_cadence_and_schema_file(app):
    result = app.test_cli_runner().invoke(args=["export", "list"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["table", "cadence", "schema"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["appointments"][0] == "hourly"
    assert rows["members"][0] == "every_three_hours"
    assert rows["messages"][0] == "every_five_hours"
    assert rows["practitioners"][0] == "midnight"
    assert rows["product_events"][1].endswith("api/events_join_data/schemas/product_events.json")


@pytest.mark.parametrize("module, hint", [
    ("api.events_join_data", "it is a package: list the submodule that defines them "
                             "(api.events_join_data.export_event_join_tables)"),
    ("api.models", ""),
])
def test_an_export_module_that_defines_no_export_stops_every_command(app, redis, module, hint):
    app.config["ETL_EXPORT_MODULES"] = module
    for cached in ("config", "tables"):
        state().__dict__.pop(cached, None)
    runner = app.test_cli_runner()
    for args in (["list"], ["schedule", "hourly"], ["status", "--check"]):
        result = runner.invoke(args=["export", *args])

        assert result.exit_code == 1, (args, result.output)
        assert result.output == (
            f"Error: ETL_EXPORT_MODULES names {module!r}, which defines no export: it should hold the app's "
            f"ExportShardManager subclasses, each setting table_name{'; ' + hint if hint else ''}\n")
    assert state().queue.count == 0


def test_schedule_counts_the_tables_it_enqueued(app, redis):
    result = app.test_cli_runner().invoke(args=["export", "schedule", "midnight"])

    assert result.exit_code == 0, result.output
    assert "midnight: 1 table enqueued, 0 skipped" in result.output.splitlines()


def test_an_unknown_table_exits_non_zero_and_lists_the_known_ones(app):
    result = app.test_cli_runner().invoke(args=["export", "run", "appointment"])

    assert result.exit_code == 1
    assert ("Error: unknown table 'appointment'; known tables: appointments, members, messages, "
            "practitioners, product_events") in result.output


def test_run_in_the_foreground_loads_the_table_and_prints_a_summary(app):
    seed(rows=100)
    result = app.test_cli_runner().invoke(args=["export", "run", "practitioners"])

    assert result.exit_code == 0, result.output
    assert "practitioners: loaded, 5 rows, 1 shards" in result.output
    assert state().warehouse.row_count("practitioners") == 5


def test_run_with_enqueue_puts_a_start_job_on_the_queue(app, redis):
    result = app.test_cli_runner().invoke(args=["export", "run", "members", "--enqueue"])

    assert result.exit_code == 0, result.output
    jobs = state().queue.get_jobs()
    assert [(job.func, job.args) for job in jobs] == [(start_run, ("members",))]


def test_a_missing_setting_is_a_clear_error_before_any_work(app, app_env, redis):
    app.config["ETL_SYNC_BUCKET"] = None
    state().__dict__.pop("config", None)

    result = app.test_cli_runner().invoke(args=["export", "schedule", "hourly"])

    assert result.exit_code == 1
    assert result.output.strip() == "Error: bq-etl is not configured: ETL_SYNC_BUCKET is not set"
    assert Queue(app_env["ETL_QUEUE"], connection=redis).count == 0


def test_an_unreachable_redis_is_a_clear_error(app):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    for cached in ("config", "redis"):
        state().__dict__.pop(cached, None)

    result = app.test_cli_runner().invoke(args=["export", "run", "members", "--enqueue"])

    assert result.exit_code == 1
    assert "Error: REDIS_URL 'redis://127.0.0.1:1/0' does not answer" in result.output


@pytest.mark.parametrize("command", [["status"], ["history", "members"]])
def test_status_and_history_name_a_stopped_redis_and_ask_about_flask_export_dev(app, monkeypatch, command):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")  # the emulators' Redis stopped with them
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    for cached in ("config", "redis"):
        state().__dict__.pop(cached, None)

    result = app.test_cli_runner().invoke(args=["export", *command])

    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("Error: REDIS_URL 'redis://127.0.0.1:1/0' does not answer: ConnectionError: ")
    assert line.endswith("; is `flask export dev` still running?")


def test_a_bind_whose_database_does_not_answer_is_a_clear_error_before_any_work(app_env, redis):
    from api import create_app
    from api.db import db

    # Nothing listens on port 1.
    binds = {"archive": "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/archive"}
    try:
        with create_app({"TESTING": True, "SQLALCHEMY_BINDS": binds}).app_context():
            state().bucket.ensure_exists()
            result = current_app.test_cli_runner().invoke(args=["export", "run", "members", "--enqueue"])
    finally:
        db.metadatas.pop("archive", None)  # the shared db keeps a bind's metadata: no other app has it

    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("Error: the database of bind 'archive' 'postgresql+psycopg://postgres:***@127.0.0.1:1/archive' "
                           "does not answer: ")
    assert Queue(app_env["ETL_QUEUE"], connection=redis).count == 0


@pytest.mark.parametrize("database_url, scheme, message", [
    ("postgresql", "postgresql+psycopg2", "its database is read through psycopg2, but bq-etl reads postgresql exactly "
     "only through psycopg 3: write the URL as postgresql+psycopg://... and install the postgres extra "
     "(pip install 'bq-etl[postgres]')"),
    ("mariadb", "mysql+mysqldb", "its database is read through mysqldb, but bq-etl reads mysql exactly only "
     "through PyMySQL: write the URL as mysql+pymysql://... and install the mysql extra (pip install 'bq-etl[mysql]')"),
], indirect=["database_url"])
def test_an_app_on_another_driver_than_the_exact_one_is_refused_before_anything_is_exported(
        app_env, database_url, redis, scheme, message):
    from api import create_app
    from api.db import db

    if scheme == "mysql+mysqldb":
        pytest.importorskip("MySQLdb", reason="mysqlclient is not installed (.ci/run installs it)")
    other_driver = scheme + "://" + database_url.partition("://")[2]
    with create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": other_driver}).app_context():
        state().bucket.ensure_exists()
        try:
            result = current_app.test_cli_runner().invoke(args=["export", "run", "members"])
        finally:
            db.engine.dispose()  # no session of that driver left on the scratch database it drops

        assert result.exit_code == 1
        assert result.output.splitlines()[-1] == f"Error: table 'members': {message}"
        assert state().warehouse.live_rows("members") is None


def test_a_stopped_storage_emulator_is_reported_with_a_hint_to_start_it(app, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")  # nothing listens on port 1
    state().__dict__.pop("bucket", None)

    result = app.test_cli_runner().invoke(args=["export", "run", "members"])

    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: Cloud Storage does not answer for bucket {state().config.bucket!r} at "
                           "STORAGE_EMULATOR_HOST 'http://127.0.0.1:1': ConnectionError: ")
    assert "Connection refused" in line and line.endswith("; is `flask export dev` still running?")


@pytest.mark.parametrize("command", [["setup"], ["schema", "diff"], ["schema", "plan", "members"]])
def test_commands_that_need_only_the_cloud_fail_at_once_when_the_emulators_are_stopped(app, monkeypatch, command):
    # Nothing listens on port 1: what a stopped `flask export dev` leaves behind.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
    app.config["ETL_BIGQUERY_API_ENDPOINT"] = "http://127.0.0.1:1"
    for cached in ("config", "bucket", "warehouse"):
        state().__dict__.pop(cached, None)
    started = time.monotonic()

    result = app.test_cli_runner().invoke(args=["export", *command])

    assert time.monotonic() - started < 20  # not the clients' minutes of retries
    assert result.exit_code == 1, result.output
    [line] = result.output.splitlines()
    storage, bigquery = line.split("; is `flask export dev` still running?; ")
    assert storage.startswith(f"Error: Cloud Storage does not answer for bucket {state().config.bucket!r} at "
                              "STORAGE_EMULATOR_HOST 'http://127.0.0.1:1': ConnectionError: ")
    assert bigquery.startswith(f"BigQuery does not answer for dataset {state().config.dataset!r} at "
                               "ETL_BIGQUERY_API_ENDPOINT 'http://127.0.0.1:1': ConnectionError: ")
    assert "Connection refused" in bigquery and line.endswith("; is `flask export dev` still running?")


@pytest.mark.export_modules("api.tests.null_key_exports")
@pytest.mark.parametrize("database_url", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_a_run_whose_shard_key_is_null_in_some_rows_is_refused_and_loads_nothing(app, redis):
    from api.db import db
    from api.models import CareTrack

    db.session.add_all([CareTrack(id=i, name=f"track {i}", description=None if i % 2 else f"d{i:02}")
                        for i in range(1, 11)])
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["export", "run", "track_descriptions"])

    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == (
        "Error: table 'track_descriptions': the shard key 'description' is NULL in 5 of the query's 10 rows, "
        "which no shard's key range holds; make the shard key a column that is never NULL (the primary key, "
        "say), or leave those rows out in query() (WHERE description IS NOT NULL)")
    assert state().warehouse.live_rows("track_descriptions") is None


def test_register_schedules_adds_one_cron_entry_per_cadence_and_one_for_the_sweep(app, redis):
    result = app.test_cli_runner().invoke(args=["export", "register-schedules"])
    again = app.test_cli_runner().invoke(args=["export", "register-schedules"])

    assert result.exit_code == 0 and again.exit_code == 0, result.output + again.output
    scheduler = Scheduler(queue=state().queue, connection=redis)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    # Registering twice does not double.
    assert sorted(jobs) == sorted([scheduler_job_id(c) for c in Cadence] + [SWEEP_JOB_ID])
    hourly = jobs[scheduler_job_id(Cadence.HOURLY)]
    assert hourly.meta["cron_string"] == "0 * * * *"
    assert (hourly.func, hourly.args) == (schedule_cadence, ["hourly"])
    assert (jobs[SWEEP_JOB_ID].meta["cron_string"], jobs[SWEEP_JOB_ID].func) == (SWEEP_CRON, sweep_stale_runs)


def test_the_crontab_runs_each_cadence_and_the_sweep_at_their_times():
    entries = [line for line in CRONTAB.read_text().splitlines() if line.strip() and not line.startswith(("#", "CRON_TZ"))]
    # "<five time fields>  cd /app && <command>  >> <log>"
    schedule = [(" ".join(line.split()[:5]), line.split("&&")[1].split(">>")[0].strip()) for line in entries]

    assert schedule == [
        *((c.cron, f"flask export schedule {c.value}") for c in Cadence), (SWEEP_CRON, "flask export sweep")]


def test_a_due_cron_entry_enqueues_its_cadence_tables(app, redis):
    app.test_cli_runner().invoke(args=["export", "register-schedules"])
    scheduler = Scheduler(queue=state().queue, connection=redis)
    hourly = next(j for j in scheduler.get_jobs() if j.id == scheduler_job_id(Cadence.HOURLY))

    scheduler.enqueue_job(hourly)  # what rq-scheduler's daemon does when the entry is due
    [queued] = state().queue.get_jobs()
    enqueued = queued.perform()  # what a worker then does

    assert len(enqueued) == 2
    assert sorted(job.args[0] for job in state().queue.get_jobs() if job.func is start_run) == [
        "appointments", "product_events"]
    assert hourly.id in scheduler  # re-armed for its next time
