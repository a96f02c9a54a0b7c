"""The end-to-end demo (`make demo`, `python -m api.demo`): seed a clinic database, export every
table through real RQ workers into a local BigQuery emulator, then count what landed there.

Nothing needs installing by hand and no cloud account is used: the app database is SQLite in
`.demo/` (unless DATABASE_URL is set), Redis is embedded (unless REDIS_URL is set), and Cloud
Storage and BigQuery are the emulators of `local_cloud`. Everything the demo starts, it stops,
on success, error and Ctrl-C alike.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import click
from redis import Redis
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from api import create_app
from api.db import db
from api.demo.seed import seed
from api.demo.services import child_process, local_cloud, local_redis, log_tail
from bq_etl.cadence import Cadence
from bq_etl.extension import ExporterState, state
from bq_etl.jobs import enqueue_cadence
from bq_etl.provision import provision
from bq_etl.status import status_lines, table_statuses

ROOT = Path(__file__).resolve().parents[2]
#: The demo's database, emulator data and logs (BQ_ETL_DEMO_DIR moves them: the test of the demo).
WORK_DIR = Path(os.environ.get("BQ_ETL_DEMO_DIR") or ROOT / ".demo")
POLL_INTERVAL = 0.5

#: Settings the demo uses unless the environment already sets them.
DEMO_SETTINGS = {
    "ETL_SYNC_BUCKET": "bq-etl-demo",
    "ETL_QUEUE": "bq-etl-demo",
    # Short back-offs, so a shard that keeps failing gives up well within the demo's deadline.
    "ETL_SHARD_RETRY_INTERVALS": "1,2,5",
}

_GAVE_UP = (JobStatus.FAILED, JobStatus.CANCELED, JobStatus.STOPPED)


class DemoFailed(Exception):
    """A step of the demo went wrong; the message says what and where to look."""


@dataclass
class TrackedRun:
    """One table's run, followed through its RQ jobs: start_run, then its load job."""

    table: str
    cadence: Cadence
    start_job: Job
    load_job: Job | None = None
    shards: int = 0
    shards_done: int = 0
    summary: dict[str, Any] | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        """True once the run has loaded or given up."""
        return self.summary is not None or self.error is not None


@click.command()
@click.option("--rows", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Appointments to seed; the other tables scale with it (messages 2x, product_events 3x).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="RQ worker processes to run the jobs.")
@click.option("--timeout", type=click.IntRange(min=1), default=600, show_default=True,
              help="Seconds to wait for every run to load before giving up.")
def main(rows: int, workers: int, timeout: int) -> None:
    """Seed a demo clinic database and export every table to a local BigQuery emulator.

    Uses .demo/ in the repository for the SQLite database (DATABASE_URL overrides it; its
    clinic tables are dropped and re-seeded), the emulators' data and logs, and worker logs.
    """
    # SIGTERM (e.g. `timeout make demo`) unwinds like Ctrl-C, so the services still get stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    WORK_DIR.mkdir(exist_ok=True)
    trace = WORK_DIR / "error.log"
    trace.unlink(missing_ok=True)  # so one found there is always this run's
    try:
        ok = run_demo(rows, workers, timeout)
    except KeyboardInterrupt:
        click.echo("\ninterrupted; the services the demo started are stopped", err=True)
        sys.exit(130)
    except DemoFailed as error:
        raise click.ClickException(f"{error}\n{_where_to_look()}") from None
    except Exception as error:
        trace.write_text(traceback.format_exc())
        raise click.ClickException(
            f"{type(error).__name__}: {error}\n{_where_to_look()}\n  traceback: {trace}"
        ) from None
    if not ok:
        sys.exit(1)


def run_demo(rows: int, workers: int, timeout: int) -> bool:
    """Run the whole demo; True if every run loaded and every BigQuery count matches the source."""
    clock = _Clock()
    with contextlib.ExitStack() as stack:
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{WORK_DIR / 'clinic.db'}")
        if not os.environ.get("REDIS_URL"):
            os.environ["REDIS_URL"] = stack.enter_context(local_redis(WORK_DIR))
        cloud = stack.enter_context(local_cloud(WORK_DIR / "cloud"))
        clock.say(f"emulators up: storage {cloud.storage_url}, bigquery {cloud.bigquery_url}")
        # Set before the app is created and the workers started, so all of them read the same.
        os.environ.update(cloud.env(), FLASK_APP="api")
        for key, value in DEMO_SETTINGS.items():
            os.environ.setdefault(key, value)

        stack.enter_context(create_app().app_context())
        exporter = state()
        for line in provision(exporter):  # what `flask export setup` does once per project
            clock.say(line)
        exporter.check()
        counts = seed(rows, drop=True)
        clock.say(f"seeded {sum(counts.values()):,} rows into {os.environ['DATABASE_URL']}")

        processes = [_start_worker(stack, number) for number in range(1, workers + 1)]
        runs = [TrackedRun(job.args[0], cadence, job)
                for cadence in Cadence for job in enqueue_cadence(exporter, cadence).jobs]
        clock.say(f"{workers} workers started; enqueued " +
                  ", ".join(f"{run.table} ({run.cadence.value})" for run in runs))
        _wait(runs, exporter.redis, processes, clock, deadline=time.monotonic() + timeout)
        ok = _report(runs, exporter)
        _show_status(exporter)
        clock.say("done" if ok else "done, with failures")
        return ok


def _start_worker(stack: contextlib.ExitStack, number: int) -> subprocess.Popen:
    # Long-running workers, stopped (warm shutdown) when the demo ends: a --burst worker quits
    # as soon as the queue is momentarily empty, e.g. while a failed shard waits out its retry
    # back-off as a scheduled job, and nothing would then run the retry or the run's load.
    return stack.enter_context(child_process(
        [sys.executable, "-m", "flask", "export", "worker"],
        log=WORK_DIR / f"worker-{number}.log", cwd=ROOT,
    ))


def _wait(runs: list[TrackedRun], connection: Redis, processes: list[subprocess.Popen],
          clock: _Clock, deadline: float) -> None:
    """Follow every run until it has loaded or given up, printing each step; DemoFailed on the deadline."""
    while not all(run.done for run in runs):
        for run in runs:
            if not run.done:
                for line in _advance(run, connection):
                    clock.say(line)
        for number, process in enumerate(processes, start=1):
            if process.poll() is not None:
                log = WORK_DIR / f"worker-{number}.log"
                raise DemoFailed(f"worker {number} exited with code {process.returncode}; "
                                 f"last lines of {log}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            waiting = ", ".join(f"{run.table} ({_stage(run)})" for run in runs if not run.done)
            raise DemoFailed(f"runs not finished before the deadline: {waiting}")
        time.sleep(POLL_INTERVAL)


def _advance(run: TrackedRun, connection: Redis) -> Iterator[str]:
    """Update `run` from its jobs' statuses; yield a progress line for each step it took."""
    if run.load_job is None:
        status = run.start_job.get_status()
        if status in _GAVE_UP:
            run.error = f"planning {status}: {_exception(run.start_job)}"
            yield f"{run.table}: {run.error}"
            return
        if status != JobStatus.FINISHED:
            return
        planned = run.start_job.return_value()
        run.load_job = Job.fetch(planned["load_job_id"], connection=connection)
        run.shards = planned["shards"]
        yield f"{run.table}: planned {planned['shards']} shards, {planned['planned_rows']:,} rows"
    shard_jobs = Job.fetch_many(run.load_job.args[3], connection=connection)
    done = sum(job is not None and job.get_status() == JobStatus.FINISHED for job in shard_jobs)
    if done != run.shards_done:
        run.shards_done = done
        yield f"{run.table}: {done}/{run.shards} shards exported"
    status = run.load_job.get_status()
    if status == JobStatus.FINISHED:
        run.summary = run.load_job.return_value()
        yield f"{run.table}: {run.summary['status']}, {run.summary['rows']:,} rows"
    elif status == JobStatus.CANCELED:
        # A shard failed for good and its failure callback cancelled the load.
        failed = [job for job in shard_jobs if job is not None and job.get_status() == JobStatus.FAILED]
        cause = _exception(failed[0]) if failed else "no failed shard found"
        run.error = f"run abandoned, a shard failed: {cause}"
        yield f"{run.table}: {run.error}"
    elif status in _GAVE_UP:
        run.error = f"load {status}: {_exception(run.load_job)}"
        yield f"{run.table}: {run.error}"


def _report(runs: list[TrackedRun], exporter: ExporterState) -> bool:
    """Print one line per run with the rows BigQuery holds beside the source's; True if all match."""
    header = ("table", "cadence", "shards", "rows", "MB", "seconds", "bigquery", "source", "")
    lines = []
    ok = True
    for run in runs:
        manager = exporter.tables.get(run.table)()
        source = db.session.scalar(select(func.count()).select_from(manager.query().subquery()))
        if run.summary is None:
            ok = False
            lines.append((run.table, run.cadence.value, "", "", "", "", "", f"{source:,}", "FAILED"))
            continue
        loaded = exporter.warehouse.row_count(run.table)
        matches = loaded == source
        ok = ok and matches
        summary = run.summary
        lines.append((run.table, run.cadence.value, str(summary["shards"]), f"{summary['rows']:,}",
                      f"{summary['bytes'] / 1e6:.1f}", f"{summary['seconds']:.1f}", f"{loaded:,}",
                      f"{source:,}", "ok" if matches else "COUNT DIFFERS"))
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
    click.echo()
    for row in (header, *lines):
        click.echo("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    for run in runs:
        if run.error:
            click.echo(f"{run.table}: {run.error}", err=True)
    if not ok:
        click.echo(_where_to_look(), err=True)
    click.echo()
    return ok


def _show_status(exporter: ExporterState) -> None:
    """End with what an operator sees: `flask export status` of the tables just loaded."""
    click.echo("flask export status (the page: see README, 'The status page'):")
    for line in status_lines(table_statuses(exporter)):
        click.echo(f"  {line}")
    click.echo()


def _exception(job: Job) -> str:
    """The last line of a failed job's traceback: the exception and its message."""
    lines = (job.exc_info or "").strip().splitlines()
    return lines[-1] if lines else "no exception recorded"


def _stage(run: TrackedRun) -> str:
    if run.load_job is None:
        return f"start job {run.start_job.get_status()}"
    return f"{run.shards_done}/{run.shards} shards exported, load job {run.load_job.get_status()}"


def _where_to_look() -> str:
    return (f"Logs:\n  workers (job tracebacks): {WORK_DIR}/worker-*.log\n"
            f"  emulators: {WORK_DIR / 'cloud'}/storage-emulator.log, bigquery-emulator.log\n"
            f"  redis: {WORK_DIR}/redis.log (when embedded)")


class _Clock:
    """Prints progress lines stamped with the seconds since the demo started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, line: str) -> None:
        click.echo(f"[{time.monotonic() - self.started:6.1f}s] {line}")
