"""`flask export ...`: list the tables, run one, enqueue a cadence, start a worker, sweep; show
the tables' status and run history; set up the bucket and dataset; run local stand-ins for
development."""
from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Callable

import click
from flask.cli import AppGroup

from . import history
from .cadence import Cadence
from .config import mask_secrets
from .claim import Holder, release
from .errors import ExportError, RedisUnavailable
from .extension import ExporterState, state
from .logs import configure, describe
from .run import ExportRun, new_run_id
from .schema_cli import schema_cli

export_cli = AppGroup("export", help="Export the app's tables to BigQuery.")
export_cli.add_command(schema_cli)

#: `flask export run`'s exit status when a newer run had already loaded (0: loaded, 1: failed or refused).
EXIT_SUPERSEDED = 3


def _clear_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the exporter's own errors, and a database or Redis that stopped answering, into a
    one-line message (no password shown) and a non-zero exit."""
    from redis.exceptions import ConnectionError as RedisDown
    from sqlalchemy.exc import OperationalError

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ExportError as error:
            raise click.ClickException(mask_secrets(str(error))) from error
        except RedisDown as error:
            # Redis down from the start (status, history) or after the start-up check (a
            # restart, a failover under a worker): say which service it was, as the check does.
            raise click.ClickException(state().redis_problem(error)) from error
        except OperationalError as error:
            raise click.ClickException(describe(getattr(error, "orig", None) or error)) from error

    return wrapper


def _warn_without_workers(exporter: ExporterState) -> None:
    if not exporter.workers_listening():
        click.echo(f"Warning: no worker listens on queue {exporter.queue.name!r}: the run waits until one "
                   "starts (flask export worker)", err=True)


@export_cli.command("list")
@_clear_errors
def list_tables() -> None:
    """Show every exported table, its cadence and its schema file (checks the definitions and
    schema files, not the services: it works with nothing running)."""
    exporter = state()
    exporter.check(services=False)
    rows = [(m.table_name, Cadence(m.cadence).value, str(m.schema_path())) for m in exporter.tables]
    width = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("table", "cadence", "schema"))]
    click.echo(f"{'table':<{width[0]}}  {'cadence':<{width[1]}}  schema")
    for table, cadence, schema in rows:
        click.echo(f"{table:<{width[0]}}  {cadence:<{width[1]}}  {schema}")


@export_cli.command("run")
@click.argument("table")
@click.option("--enqueue", is_flag=True, help="Hand the run to the RQ workers instead of running it here.")
@click.option("--allow-shrink", is_flag=True,
              help="Load even if the table shrinks past its export's shrink_threshold (this run only).")
@click.option("--force", is_flag=True, help="Start even though a run of the table is queued or running.")
@_clear_errors
def run_table(table: str, enqueue: bool, allow_shrink: bool, force: bool) -> None:
    """Export TABLE now: plan, export every shard, load, check the row count.

    Exit status: 0 loaded; 1 failed or refused (the message says why); 3 superseded (a newer
    run had already loaded; nothing was written)."""
    from .jobs import claim_table, enqueue_run
    from .loader import REDIS_DOWN, discard_files, load, record_failure

    exporter = state()
    exporter.check()
    manager = exporter.tables.get(table)()
    if enqueue:
        job = enqueue_run(exporter, table, "ad hoc (CLI, on workers)", force=force, allow_shrink=allow_shrink)
        click.echo(f"enqueued {table} as job {job.id} on queue {exporter.queue.name!r}")
        _warn_without_workers(exporter)
        return
    started = time.time()
    run = ExportRun(table, new_run_id(), gzip_level=exporter.config.gzip_level)
    claim_table(exporter, table, Holder.this_process(run.run_id), force)
    try:
        history.started(exporter.redis, run, "ad hoc (CLI)", exporter.config.history_runs)
        results = []
        try:
            shards, planned = manager.plan()
            history.planned(exporter.redis, run, len(shards), planned)
            with click.progressbar(length=max(planned, 1), label=f"{table} ({len(shards)} shards)") as bar:
                for shard in shards:
                    result = manager.export_shard(run, shard, exporter.bucket)
                    results.append(result)
                    history.shard_exported(exporter.redis, run, result)
                    bar.update(result.rows)
        except BaseException as error:
            record_failure(exporter.redis, run, error)
            discard_files(exporter, run)
            raise
        summary = load(exporter, manager, run, results, started, allow_shrink=allow_shrink)
    except REDIS_DOWN as error:
        discard_files(exporter, run)  # again: Redis may have failed after the loader's clean-up
        raise RedisUnavailable(_redis_lost(exporter, run, error)) from error
    finally:
        _release_claim(exporter, run)
    if summary.status == "superseded":
        click.echo(f"{summary.table}: superseded by run {summary.superseded_by}, nothing loaded "
                   f"(run {summary.run_id})")
        raise click.exceptions.Exit(EXIT_SUPERSEDED)
    click.echo(
        f"{summary.table}: {summary.status}, {summary.rows} rows, {summary.shards} shards, "
        f"{summary.bytes / 1e6:.2f} MB, {summary.seconds:.1f} s (run {summary.run_id})"
    )


def _redis_lost(exporter: ExporterState, run: ExportRun, error: BaseException) -> str:
    """What a foreground run that lost Redis half way says: the table, the run, the error, and
    what the live table holds (its label tells whether the run's copy went through)."""
    try:
        loaded = exporter.warehouse.loaded_run(run.table) == run.run_id
    except Exception:  # BigQuery down as well: say only what is known
        loaded = None
    if loaded:
        outcome = ("after its copy: the live table holds its rows (it is labelled with it), and the next run "
                   "or the sweep records it loaded once Redis answers")
    else:
        holds = "was left as it was" if loaded is False else \
            "holds the last load, or this run's rows if its copy went through"
        outcome = (f"(its history says failed, or, if Redis could not record that, abandoned after the next "
                   f"run or the sweep); the live table {holds}. Run the table again once Redis answers")
    return (f"table {run.table!r}, run {run.run_id}: Redis stopped answering during the run "
            f"({describe(error)}), so the run stopped {outcome}. The run's files were deleted (any left, "
            f"`flask export sweep` removes)")


def _release_claim(exporter: ExporterState, run: ExportRun) -> None:
    from .jobs import claim_key
    from .loader import REDIS_DOWN

    try:
        release(exporter.redis, claim_key(exporter, run.table), run_id=run.run_id)
    except REDIS_DOWN:
        pass  # Redis down: the claim names this process, judged dead once it exits


@export_cli.command("schedule")
@click.argument("cadence", type=click.Choice([c.value for c in Cadence]))
@click.option("--force", is_flag=True, help="Enqueue tables whose previous run is still queued or running.")
@_clear_errors
def schedule(cadence: str, force: bool) -> None:
    """Enqueue a run of every table on CADENCE (what the crontab calls)."""
    from .jobs import enqueue_cadence

    exporter = state()
    exporter.check()
    done = enqueue_cadence(exporter, Cadence(cadence), force)
    for job in done.jobs:
        click.echo(f"enqueued {job.args[0]} as job {job.id}")
    for busy in done.skipped:
        click.echo(f"skipped {busy.table}: a run is already queued or running ({busy.holder})")
    click.echo(f"{cadence}: {len(done.jobs)} table{'' if len(done.jobs) == 1 else 's'} enqueued, "
               f"{len(done.skipped)} skipped")
    _warn_without_workers(exporter)


@export_cli.command("sweep")
@click.option("--older-than", type=click.IntRange(min=1), default=None, metavar="SECONDS",
              help="Give up runs started longer ago than this (default ETL_SWEEP_AFTER).")
@_clear_errors
def sweep_runs(older_than: int | None) -> None:
    """Remove the files and staging tables of runs that died without cleaning up."""
    from datetime import timedelta

    from .sweeper import sweep

    exporter = state()
    exporter.check()
    report = sweep(exporter, timedelta(seconds=older_than) if older_than else None)
    for run in report.runs:
        click.echo(f"swept {run}")
    for run in report.busy:
        click.echo(f"left {run}: it is still running (its jobs wait or run on a live worker, "
                   "or its flask export run process lives)")
    click.echo(f"{len(report.runs)} stale runs swept: {report.objects} files, "
               f"{len(report.staging_tables)} staging tables")


@export_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@_clear_errors
def worker(burst: bool) -> None:
    """Start an RQ worker for the export queue, inside this app's context."""
    from .worker import Worker

    exporter = state()
    exporter.check()
    configure()
    # with_scheduler: shard retries with a back-off interval are scheduled jobs.
    Worker([exporter.queue], connection=exporter.redis).work(burst=burst, with_scheduler=True)


@export_cli.command("register-schedules")
@_clear_errors
def register_schedules_command() -> None:
    """Register the four cadences and the daily sweep with rq-scheduler (for deployments
    without system cron)."""
    from .scheduling import register_schedules

    exporter = state()
    exporter.check()
    for name, cron, job_id in register_schedules(exporter):
        click.echo(f"{name}: '{cron}' as scheduler job {job_id}")


@export_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--check", is_flag=True,
              help="Exit 1 when a table is late, stale or never loaded, or its last run failed (for cron or a monitor).")
@_clear_errors
def status_command(as_json: bool, check: bool) -> None:
    """Show each table's freshness, last load, running run and last failure."""
    import json

    from .status import status_lines, table_statuses

    exporter = state()
    exporter.config  # the history is in Redis: neither the bucket nor the database is needed
    statuses = table_statuses(exporter)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in statuses], indent=2))
    else:
        click.echo("\n".join(status_lines(statuses)))
    if check and not all(s.ok for s in statuses):
        bad = [s.table for s in statuses if not s.ok]
        click.echo(f"not ok: {', '.join(bad)}", err=True)
        raise SystemExit(1)


@export_cli.command("history")
@click.argument("table")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@_clear_errors
def history_command(table: str, limit: int, as_json: bool) -> None:
    """Show TABLE's runs, newest first: trigger, outcome, duration, shards, rows, error."""
    import json

    from .status import history_lines

    exporter = state()
    exporter.config  # the history is in Redis: neither the bucket nor the database is needed
    exporter.tables.get(table)
    runs = history.runs(exporter.redis, table, limit)
    if as_json:
        click.echo(json.dumps([run.to_dict() for run in runs], indent=2))
    else:
        click.echo("\n".join(history_lines(runs)) if runs else f"{table}: no runs in the history")


@export_cli.command("setup")
@_clear_errors
def setup_command() -> None:
    """Create the sync bucket and the BigQuery dataset if they are missing (idempotent)."""
    from .provision import provision

    exporter = state()
    exporter.check_cloud()
    for line in provision(exporter):
        click.echo(line)


#: What `flask export dev` names the bucket and project when the app sets none.
DEV_BUCKET = "bq-etl-local"
DEV_PROJECT = "bq-etl-local"


@export_cli.command("dev")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the services keep their data and logs (default ~/.cache/bq-etl/dev).")
@_clear_errors
def dev_command(data_dir: Path | None) -> None:
    """Run local Cloud Storage and BigQuery emulators and a Redis for this app until Ctrl-C.

    Creates the app's bucket and dataset in them and prints the environment lines that point the
    app, its workers and `flask export ...` at them. The emulators run from a venv of their own
    (BQ_ETL_EMULATORS, else one built once under ~/.cache/bq-etl/), never the app's.
    """
    import os
    import shlex
    import signal
    import sys

    from flask import current_app

    from .extension import ExporterState
    from .local import ServiceError, cache_dir, dev_services
    from .provision import provision

    app = current_app._get_current_object()
    project = app.config.get("ETL_BQ_PROJECT") or DEV_PROJECT
    settings = {"ETL_SYNC_BUCKET": app.config.get("ETL_SYNC_BUCKET") or DEV_BUCKET, "ETL_BQ_PROJECT": project}
    data_dir = data_dir or cache_dir() / "dev"
    # SIGTERM unwinds like Ctrl-C, so the services are stopped either way; SIGINT is set
    # explicitly because a process started in the background of a script inherits it ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with dev_services(data_dir, project) as env:
            env = {**env, **settings}
            os.environ.update(env)
            app.config.update(env)
            for line in provision(ExporterState(app)):
                click.echo(line)
            click.echo(f"logs: {data_dir}\nPoint the app, its workers and `flask export` at these services "
                       f"(Ctrl-C here stops them):")
            for key, value in env.items():
                click.echo(f"export {key}={shlex.quote(value)}")
            sys.stdout.flush()
            while True:
                signal.pause()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    except ServiceError as error:
        raise click.ClickException(str(error)) from error
