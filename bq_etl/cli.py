"""`flask export ...`: list the tables, run one, enqueue a cadence, start a worker, sweep."""
from __future__ import annotations

import functools
import time
from typing import Any, Callable

import click
from flask.cli import AppGroup

from .cadence import Cadence
from .errors import ExportError
from .extension import state
from .logs import configure
from .run import ExportRun, new_run_id
from .schema_cli import schema_cli

export_cli = AppGroup("export", help="Export the app's tables to BigQuery.")
export_cli.add_command(schema_cli)


def _clear_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the exporter's own errors into a one-line message and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ExportError as error:
            raise click.ClickException(str(error)) from error

    return wrapper


@export_cli.command("list")
@_clear_errors
def list_tables() -> None:
    """Show every exported table, its cadence and its schema file."""
    exporter = state()
    exporter.config
    rows = [(m.table_name, Cadence(m.cadence).value, str(m.schema_path())) for m in exporter.tables]
    width = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("table", "cadence", "schema"))]
    click.echo(f"{'table':<{width[0]}}  {'cadence':<{width[1]}}  schema")
    for table, cadence, schema in rows:
        click.echo(f"{table:<{width[0]}}  {cadence:<{width[1]}}  {schema}")


@export_cli.command("run")
@click.argument("table")
@click.option("--enqueue", is_flag=True, help="Hand the run to the RQ workers instead of running it here.")
@_clear_errors
def run_table(table: str, enqueue: bool) -> None:
    """Export TABLE now: plan, export every shard, load, check the row count."""
    from .jobs import enqueue_run
    from .loader import load

    exporter = state()
    exporter.check()
    manager = exporter.tables.get(table)()
    if enqueue:
        job = enqueue_run(exporter, table)
        click.echo(f"enqueued {table} as job {job.id} on queue {exporter.queue.name!r}")
        return
    started = time.time()
    run = ExportRun(table, new_run_id(), gzip_level=exporter.config.gzip_level)
    shards, planned = manager.plan()
    results = []
    try:
        with click.progressbar(length=max(planned, 1), label=f"{table} ({len(shards)} shards)") as bar:
            for shard in shards:
                result = manager.export_shard(run, shard, exporter.bucket)
                results.append(result)
                bar.update(result.rows)
    except BaseException:
        exporter.bucket.delete_prefix(run.prefix)
        raise
    summary = load(exporter, manager, run, results, started)
    click.echo(
        f"{summary.table}: {summary.status}, {summary.rows} rows, {summary.shards} shards, "
        f"{summary.bytes / 1e6:.2f} MB, {summary.seconds:.1f} s (run {summary.run_id})"
    )


@export_cli.command("schedule")
@click.argument("cadence", type=click.Choice([c.value for c in Cadence]))
@_clear_errors
def schedule(cadence: str) -> None:
    """Enqueue a run of every table on CADENCE (what the crontab calls)."""
    from .jobs import enqueue_cadence

    exporter = state()
    exporter.check()
    jobs = enqueue_cadence(exporter, Cadence(cadence))
    for job in jobs:
        click.echo(f"enqueued {job.args[0]} as job {job.id}")
    click.echo(f"{cadence}: {len(jobs)} tables enqueued")


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
        click.echo(f"left {run}: its load job is running")
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
