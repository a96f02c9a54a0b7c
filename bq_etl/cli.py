"""`flask export ...`: list the tables, run one, enqueue a cadence, start a worker, sweep."""
from __future__ import annotations

import functools
import time
from typing import Any, Callable

import click
from flask.cli import AppGroup

from .cadence import Cadence
from .config import mask_secrets
from .errors import ExportError
from .extension import ExporterState, state
from .logs import configure, describe
from .run import ExportRun, new_run_id

export_cli = AppGroup("export", help="Export the app's tables to BigQuery.")


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
        except (OperationalError, RedisDown) as error:
            raise click.ClickException(describe(getattr(error, "orig", None) or error)) from error

    return wrapper


def _warn_without_workers(exporter: ExporterState) -> None:
    if not exporter.workers_listening():
        click.echo(f"Warning: no worker listens on queue {exporter.queue.name!r}: the run waits until one "
                   "starts (flask export worker)", err=True)


@export_cli.command("list")
@_clear_errors
def list_tables() -> None:
    """Show every exported table, its cadence and its schema file."""
    exporter = state()
    exporter.check()
    rows = [(m.table_name, Cadence(m.cadence).value, str(m.schema_path())) for m in exporter.tables]
    width = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("table", "cadence", "schema"))]
    click.echo(f"{'table':<{width[0]}}  {'cadence':<{width[1]}}  schema")
    for table, cadence, schema in rows:
        click.echo(f"{table:<{width[0]}}  {cadence:<{width[1]}}  {schema}")


@export_cli.command("run")
@click.argument("table")
@click.option("--enqueue", is_flag=True, help="Hand the run to the RQ workers instead of running it here.")
@click.option("--force", is_flag=True, help="Start even though a run of the table is queued or running.")
@_clear_errors
def run_table(table: str, enqueue: bool, force: bool) -> None:
    """Export TABLE now: plan, export every shard, load, check the row count."""
    from . import claim
    from .jobs import claim_key, claim_table, discard_files, enqueue_run
    from .loader import load

    exporter = state()
    exporter.check()
    manager = exporter.tables.get(table)()
    if enqueue:
        job = enqueue_run(exporter, table, force)
        click.echo(f"enqueued {table} as job {job.id} on queue {exporter.queue.name!r}")
        _warn_without_workers(exporter)
        return
    started = time.time()
    run = ExportRun(table, new_run_id(), gzip_level=exporter.config.gzip_level)
    claim_table(exporter, table, claim.Holder.this_process(run.run_id), force)
    try:
        shards, planned = manager.plan()
        results = []
        try:
            with click.progressbar(length=max(planned, 1), label=f"{table} ({len(shards)} shards)") as bar:
                for shard in shards:
                    result = manager.export_shard(run, shard, exporter.bucket)
                    results.append(result)
                    bar.update(result.rows)
        except BaseException:
            discard_files(exporter, run)
            raise
        summary = load(exporter, manager, run, results, started)
    finally:
        claim.release(exporter.redis, claim_key(exporter, table), run_id=run.run_id)
    click.echo(
        f"{summary.table}: {summary.status}, {summary.rows} rows, {summary.shards} shards, "
        f"{summary.bytes / 1e6:.2f} MB, {summary.seconds:.1f} s (run {summary.run_id})"
    )


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
    click.echo(f"{cadence}: {len(done.jobs)} tables enqueued, {len(done.skipped)} skipped")
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
        click.echo(f"left {run}: its jobs are still queued or running on a live worker")
    click.echo(f"{len(report.runs)} stale runs swept: {report.objects} files, "
               f"{len(report.staging_tables)} staging tables")


@export_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@_clear_errors
def worker(burst: bool) -> None:
    """Start an RQ worker for the export queue, inside this app's context."""
    from rq import Worker

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
