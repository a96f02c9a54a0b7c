"""The RQ jobs of a run and how they are chained.

    start_run ──> export_shard × N ──(RQ dependency on all N)──> load_run

`start_run` plans the shards and enqueues the rest, so the crontab's command does no database
work. A shard that fails is retried (RQ `Retry`); once its retries are spent, `on_shard_failure`
cancels the load and deletes the run's files, so a failed run loads nothing.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict
from typing import Any, Callable

from flask import has_app_context
from rq import Callback, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job

from . import history
from .cadence import Cadence
from .extension import ExporterState, state
from .loader import load
from .logs import event
from .run import ExportRun, Shard, ShardResult, new_run_id

#: How long shard results stay in Redis for the load job to read.
RESULT_TTL = 7 * 24 * 3600


def _in_app(job: Callable[..., Any]) -> Callable[..., Any]:
    """Run a job inside a Flask app context, loading the app (FLASK_APP) under a plain `rq worker`."""

    @functools.wraps(job)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            return job(*args, **kwargs)
        from flask.cli import ScriptInfo

        app = ScriptInfo().load_app()
        with app.app_context():
            return job(*args, **kwargs)

    return wrapper


def enqueue_run(exporter: ExporterState, table: str, trigger: str = "ad hoc", allow_shrink: bool = False) -> Job:
    """Put a run of `table` on the queue; workers plan, export and load it. `trigger` says in the
    run history what started it (a cadence's name, "ad hoc ..."); `allow_shrink` lets this one
    run shrink the table past its export's `shrink_threshold`."""
    exporter.tables.get(table)
    return exporter.queue.enqueue(start_run, table, trigger=trigger, allow_shrink=allow_shrink,
                                  job_timeout=exporter.config.shard_timeout,
                                  on_failure=Callback(on_start_failure), description=f"bq-etl start {table}")


def enqueue_cadence(exporter: ExporterState, cadence: Cadence, trigger: str | None = None) -> list[Job]:
    """Enqueue a run of every table on `cadence` (`trigger` default: the cadence's name)."""
    return [enqueue_run(exporter, manager.table_name, trigger or cadence.value)
            for manager in exporter.tables.for_cadence(cadence)]


@_in_app
def schedule_cadence(cadence: str) -> list[str]:
    """Job form of `enqueue_cadence`, for rq-scheduler's cron entries."""
    return [job.id for job in enqueue_cadence(state(), Cadence(cadence), f"{cadence} (rq-scheduler)")]


@_in_app
def start_run(table: str, trigger: str = "ad hoc", allow_shrink: bool = False) -> dict[str, Any]:
    """Plan a run of `table` and enqueue its shard jobs and its load job."""
    exporter = state()
    config = exporter.config
    manager = exporter.tables.get(table)()
    run = ExportRun(table, new_run_id(), gzip_level=config.gzip_level)
    started = time.time()
    history.started(exporter.redis, run, trigger, config.history_runs)
    shards, rows = manager.plan()
    load_id = load_job_id(run)
    history.planned(exporter.redis, run, len(shards), rows, load_id)
    retry = Retry(max=config.shard_retries, interval=list(config.shard_retry_intervals) or 0) \
        if config.shard_retries else None
    shard_jobs = [
        exporter.queue.enqueue(
            export_shard, table, run.run_id, run.gzip_level, shard.index, shard.lower, shard.upper,
            job_id=_job_id(run, f"shard-{shard.index:05d}"), job_timeout=config.shard_timeout,
            result_ttl=RESULT_TTL, retry=retry, on_failure=Callback(on_shard_failure),
            meta={"table": table, "run_id": run.run_id, "load_job_id": load_id},
            description=f"bq-etl shard {table} {run.run_id} #{shard.index}",
        )
        for shard in shards
    ]
    load_job = exporter.queue.enqueue(
        load_run, table, run.run_id, run.gzip_level, [job.id for job in shard_jobs], started,
        allow_shrink=allow_shrink, job_id=load_id, depends_on=shard_jobs, job_timeout=config.load_timeout,
        result_ttl=RESULT_TTL,
        on_failure=Callback(on_load_failure), meta={"table": table, "run_id": run.run_id},
        description=f"bq-etl load {table} {run.run_id}",
    )
    if exporter.redis.exists(_abandoned_key(run.run_id)):
        # A shard failed for good before the load job existed for its callback to cancel.
        abandon_run(table, run.run_id, load_job.id, exporter.redis)
    event(logging.INFO, "run planned", table=table, run_id=run.run_id, shards=len(shards), rows=rows)
    return {"table": table, "run_id": run.run_id, "shards": len(shards), "planned_rows": rows, "load_job_id": load_id}


@_in_app
def export_shard(table: str, run_id: str, gzip_level: int, index: int, lower: Any, upper: Any) -> dict[str, Any]:
    """Export one shard of a run to the bucket."""
    exporter = state()
    manager = exporter.tables.get(table)()
    run = ExportRun(table, run_id, gzip_level=gzip_level)
    result = manager.export_shard(run, Shard(index, lower, upper), exporter.bucket)
    history.shard_exported(exporter.redis, run, result)
    if exporter.redis.exists(_abandoned_key(run_id)):
        # A sibling failed for good while this shard ran: the run will never load, so its
        # files must not outlive it.
        exporter.bucket.delete_prefix(run.prefix)
        event(logging.WARNING, "shard of an abandoned run discarded", table=table, run_id=run_id, shard=index)
    event(logging.INFO, "shard exported", table=table, run_id=run_id, shard=index, rows=result.rows,
          bytes=result.bytes)
    return result.to_dict()


@_in_app
def load_run(table: str, run_id: str, gzip_level: int, shard_job_ids: list[str], started: float,
             allow_shrink: bool = False) -> dict[str, Any]:
    """Load a run whose shards all succeeded (RQ enqueues it only then)."""
    exporter = state()
    manager = exporter.tables.get(table)()
    run = ExportRun(table, run_id, gzip_level=gzip_level)
    jobs = Job.fetch_many(shard_job_ids, connection=exporter.redis)
    results = [ShardResult.from_dict(job.return_value()) for job in jobs]
    return load(exporter, manager, run, results, started, allow_shrink=allow_shrink).to_dict()


@_in_app
def sweep_stale_runs() -> dict[str, Any]:
    """Job form of `flask export sweep`, for rq-scheduler's daily entry."""
    from .sweeper import sweep  # the sweeper gives runs up through this module

    return asdict(sweep(state()))


def on_shard_failure(job: Job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback of a shard: once retries are spent, give the whole run up."""
    if job.retries_left:
        return  # RQ will run it again
    event(logging.ERROR, "shard failed for good; abandoning run", table=job.meta.get("table"),
          run_id=job.meta.get("run_id"), job=job.id, error=repr(exc_value))
    history.failed(connection, job.meta["table"], job.meta["run_id"], exc_value)
    abandon_run(job.meta["table"], job.meta["run_id"], job.meta["load_job_id"], connection)


def on_start_failure(job: Job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback of a run's start job: planning failed, so record the run failed."""
    if job.meta.get("run_id"):  # set once the run was recorded as started
        history.failed(connection, job.args[0], job.meta["run_id"], exc_value)


def on_load_failure(job: Job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback of a load: the loader has already cleaned up; record why, loudly."""
    event(logging.ERROR, "load failed", table=job.meta.get("table"), run_id=job.meta.get("run_id"),
          error=repr(exc_value))


@_in_app
def abandon_run(table: str, run_id: str, load_id: str, connection) -> int:
    """Give a run up: mark it abandoned (late shards then discard their files), cancel its
    waiting shard jobs and its load job, delete its files; return how many files there were."""
    connection.set(_abandoned_key(run_id), 1, ex=RESULT_TTL)
    history.abandoned(connection, table, run_id)  # no-op when the run already has an outcome
    try:
        load_job = Job.fetch(load_id, connection=connection)
    except NoSuchJobError:
        load_job = None  # start_run has not enqueued it yet; it checks the abandoned key after
    if load_job is not None:
        for job in [*Job.fetch_many(load_job.args[3], connection=connection), load_job]:
            if job is not None and job.get_status() in _WAITING:
                job.cancel()
    return state().bucket.delete_prefix(ExportRun(table, run_id).prefix)


_WAITING = ("queued", "scheduled", "deferred")


def _abandoned_key(run_id: str) -> str:
    return f"bq-etl:abandoned:{run_id}"


def load_job_id(run: ExportRun) -> str:
    """The id of a run's load job, known before it is enqueued."""
    return _job_id(run, "load")


def _job_id(run: ExportRun, part: str) -> str:
    return f"bq-etl-{run.table}-{run.run_id}-{part}"
