"""The RQ jobs of a run and how they are chained.

    start_run ──> export_shard × N ──(RQ dependency on all N)──> load_run

`start_run` plans the shards and enqueues the rest, so the crontab's command does no database
work. A shard (or `start_run`) that fails is retried (RQ `Retry`) unless its error cannot change
(`errors.is_retryable`); once it fails for good, `on_shard_failure` cancels the load and deletes
the run's files, so a failed run loads nothing.

One run per table: `enqueue_run` claims the table (`claim`) and refuses while the holder's jobs
can still finish; a holder whose worker died, and any run of the table the history still calls
running though nothing can finish it, is given up and cleaned up after (`liveness` judges).
"""
from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, NoReturn

from flask import has_app_context
from redis.client import Pipeline
from rq import Callback, Retry, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job

from . import claim, history
from .cadence import Cadence
from .errors import LoadError, RunInProgress, is_retryable
from .extension import ExporterState, state
from .liveness import WAITING, abandoned_key, holder_state, record_process
from .loader import discard_files, load, settle_copied
from .logs import describe, event
from .run import ExportRun, RunSummary, Shard, ShardResult, new_run_id
from .warehouse import staging_table

#: How long shard results stay in Redis for the load job to read.
RESULT_TTL = 7 * 24 * 3600


def _in_app(job: Callable[..., Any]) -> Callable[..., Any]:
    """Run a job inside a Flask app context, loading the app (FLASK_APP) under a plain `rq worker`."""

    @functools.wraps(job)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        record_process(get_current_job())  # so a killed worker's job is known dead (liveness)
        if has_app_context():
            return job(*args, **kwargs)
        from flask.cli import ScriptInfo

        app = ScriptInfo().load_app()
        with app.app_context():
            return job(*args, **kwargs)

    return wrapper


def enqueue_run(exporter: ExporterState, table: str, trigger: str = "ad hoc", force: bool = False,
                allow_shrink: bool = False) -> Job:
    """Put a run of `table` on the queue; workers plan, export and load it.

    RunInProgress if the table has a run queued or running (unless `force`); a previous run
    whose worker died is given up first (its files and staging table removed). `trigger` says in
    the run history what started it (a cadence's name, "ad hoc ..."); `allow_shrink` lets this
    one run shrink the table past its export's `shrink_threshold`.
    """
    exporter.tables.get(table)
    job_id = f"bq-etl-{table}-start-{uuid.uuid4().hex[:12]}"
    config, key = exporter.config, claim_key(exporter, table)
    enqueued: list[Job] = []

    def enqueue(pipeline: Pipeline) -> None:
        # In the claim's transaction: whoever sees the claim finds its job.
        enqueued.append(exporter.queue.enqueue(
            start_run, table, trigger=trigger, allow_shrink=allow_shrink, job_id=job_id,
            job_timeout=config.shard_timeout, retry=_retry(config),
            on_failure=Callback(on_start_failure), meta={"table": table, "claim": key},
            description=f"bq-etl start {table}", pipeline=pipeline,
        ))

    claim_table(exporter, table, claim.Holder(job_id=job_id), force, with_claim=enqueue)
    return enqueued[-1]


def claim_key(exporter: ExporterState, table: str) -> str:
    """The Redis key of `table`'s claim in this app's dataset."""
    return claim.claim_key(exporter.config.dataset, table)


def claim_table(exporter: ExporterState, table: str, holder: claim.Holder, force: bool = False,
                with_claim: Callable[[Pipeline], object] | None = None) -> None:
    """Make `holder` the one run of `table`: RunInProgress while another live run holds it
    (unless `force`); a dead holder is given up and its leftovers removed, and so is any run the
    history still records as running though nothing can finish it. `with_claim` writes the
    holder's job in the claim's transaction (`claim.take`)."""
    redis = exporter.redis
    kept, replaced = claim.take(redis, claim_key(exporter, table), holder, ttl=exporter.config.sweep_after,
                                alive=lambda h: holder_state(redis, table, h) == "running", force=force,
                                with_claim=with_claim)
    if replaced is not None and replaced.run_id and holder_state(redis, table, replaced) == "dead":
        give_up(exporter, ExportRun(table, replaced.run_id), why="its worker or process died")
    give_up_dead_runs(exporter, table)
    if kept is not None:
        event(logging.WARNING, "run not started: the table already has one", table=table, holder=kept.describe())
        raise RunInProgress(table, kept.describe())


def give_up_dead_runs(exporter: ExporterState, table: str) -> list[str]:
    """Give up every run of `table` the history records as running that nothing can finish any
    more (`RunRecord.alive` False: a worker killed mid-shard, a `start_run` killed while planning
    and retried as a run of its own), so none reads as running for ever; return their ids."""
    dead = [record.run_id for record in history.runs(exporter.redis, table)
            if record.outcome == "running" and record.alive is False]
    for run_id in dead:
        give_up(exporter, ExportRun(table, run_id), why="its worker or process died")
    return dead


@dataclass
class Enqueued:
    """What enqueueing a cadence did: the start jobs enqueued, the tables skipped because a run
    of theirs is still queued or running."""

    jobs: list[Job] = field(default_factory=list)
    skipped: list[RunInProgress] = field(default_factory=list)


def enqueue_cadence(exporter: ExporterState, cadence: Cadence, force: bool = False,
                    trigger: str | None = None) -> Enqueued:
    """Enqueue a run of every table on `cadence`, skipping tables whose previous run is still
    going (`trigger` default: the cadence's name)."""
    done = Enqueued()
    for manager in exporter.tables.for_cadence(cadence):
        try:
            done.jobs.append(enqueue_run(exporter, manager.table_name, trigger or cadence.value, force))
        except RunInProgress as busy:
            done.skipped.append(busy)
    return done


@_in_app
def schedule_cadence(cadence: str) -> list[str]:
    """Job form of `enqueue_cadence`, for rq-scheduler's cron entries."""
    return [job.id for job in enqueue_cadence(state(), Cadence(cadence), trigger=f"{cadence} (rq-scheduler)").jobs]


@_in_app
def start_run(table: str, trigger: str = "ad hoc", allow_shrink: bool = False) -> dict[str, Any]:
    """Plan a run of `table` and enqueue its shard jobs and its load job."""
    exporter = state()
    config = exporter.config
    manager = exporter.tables.get(table)()
    run = ExportRun(table, new_run_id(), gzip_level=config.gzip_level)
    job = get_current_job()
    if job is not None:
        claim.planned(exporter.redis, claim_key(exporter, table), job.id, run.run_id, ttl=config.sweep_after)
    started = time.time()
    history.started(exporter.redis, run, trigger, config.history_runs)
    shards, rows = manager.plan()
    load_id = run.load_job_id
    history.planned(exporter.redis, run, len(shards), rows, load_id)
    shard_jobs: list[Job] = []
    try:
        for shard in shards:
            shard_jobs.append(exporter.queue.enqueue(
                export_shard, table, run.run_id, run.gzip_level, shard.index, shard.lower, shard.upper,
                job_id=run.job_id(f"shard-{shard.index:05d}"), job_timeout=config.shard_timeout,
                result_ttl=RESULT_TTL, retry=_retry(config), on_failure=Callback(on_shard_failure),
                meta={"table": table, "run_id": run.run_id, "load_job_id": load_id},
                description=f"bq-etl shard {table} {run.run_id} #{shard.index}",
            ))
        load_job = exporter.queue.enqueue(
            load_run, table, run.run_id, run.gzip_level, [job.id for job in shard_jobs], started,
            allow_shrink=allow_shrink, job_id=load_id, depends_on=shard_jobs, job_timeout=config.load_timeout, result_ttl=RESULT_TTL,
            on_failure=Callback(on_load_failure), meta={"table": table, "run_id": run.run_id},
            description=f"bq-etl load {table} {run.run_id}",
        )
    except BaseException:
        if shard_jobs:  # a retry plans a new run: this one's shards must not run or stay
            abandon_run(table, run.run_id, load_id, exporter.redis, [j.id for j in shard_jobs])
        raise
    if exporter.redis.exists(abandoned_key(run.run_id)):
        # A shard failed for good before the load job existed for its callback to cancel.
        abandon_run(table, run.run_id, load_job.id, exporter.redis)
    event(logging.INFO, "run planned", table=table, run_id=run.run_id, shards=len(shards), rows=rows)
    return {"table": table, "run_id": run.run_id, "shards": len(shards), "planned_rows": rows, "load_job_id": load_id}


def _retry(config) -> Retry | None:
    return Retry(max=config.shard_retries, interval=list(config.shard_retry_intervals) or 0) \
        if config.shard_retries else None


@_in_app
def export_shard(table: str, run_id: str, gzip_level: int, index: int, lower: Any, upper: Any) -> dict[str, Any]:
    """Export one shard of a run to the bucket."""
    exporter = state()
    manager = exporter.tables.get(table)()
    run = ExportRun(table, run_id, gzip_level=gzip_level)
    result = manager.export_shard(run, Shard(index, lower, upper), exporter.bucket)
    history.shard_exported(exporter.redis, run, result)
    if exporter.redis.exists(abandoned_key(run_id)):
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
    try:
        if exporter.redis.exists(abandoned_key(run_id)):
            # Given up (its worker judged dead) after RQ had already enqueued this load.
            event(logging.WARNING, "load of an abandoned run skipped", table=table, run_id=run_id)
            return RunSummary(table=table, run_id=run_id, status="abandoned").to_dict()
        manager = exporter.tables.get(table)()
        run = ExportRun(table, run_id, gzip_level=gzip_level)
        jobs = Job.fetch_many(shard_job_ids, connection=exporter.redis)
        returned = [job.return_value() if job is not None else None for job in jobs]
        missing = [job_id for job_id, value in zip(shard_job_ids, returned) if value is None]
        if missing:
            _fail_without_results(exporter, run, missing, len(shard_job_ids))
        results = [ShardResult.from_dict(value) for value in returned]
        return load(exporter, manager, run, results, started, allow_shrink=allow_shrink).to_dict()
    finally:
        claim.release(exporter.redis, claim_key(exporter, table), run_id=run_id)


def _fail_without_results(exporter: ExporterState, run: ExportRun, missing: list[str], shards: int) -> NoReturn:
    """Fail a load whose shards' results Redis no longer holds (it lost its data while the load
    waited): the run cannot know its files, so it loads nothing and deletes them."""
    error = LoadError(
        f"table {run.table!r}, run {run.run_id}: Redis no longer holds the results of {len(missing)} of "
        f"the run's {shards} shard jobs ({missing[0]}{', ...' if len(missing) > 1 else ''}): it lost its "
        "data (restarted without persistence, or flushed) while the load waited. Nothing was loaded and "
        "the run's files were deleted; the next run loads the table")
    history.failed(exporter.redis, run.table, run.run_id, error)
    discard_files(exporter, run)
    raise error


@_in_app
def sweep_stale_runs() -> dict[str, Any]:
    """Job form of `flask export sweep`, for rq-scheduler's daily entry."""
    from .sweeper import sweep  # the sweeper gives runs up through this module

    return asdict(sweep(state()))


def on_shard_failure(job: Job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback of a shard: once retries are spent, or at once when retrying cannot
    help (`is_retryable`), give the whole run up."""
    if not _retrying(job, exc_value):
        event(logging.ERROR, "shard failed for good; abandoning run", table=job.meta.get("table"),
              run_id=job.meta.get("run_id"), job=job.id, error=describe(exc_value))
        history.failed(connection, job.meta["table"], job.meta["run_id"], exc_value)
        abandon_run(job.meta["table"], job.meta["run_id"], job.meta["load_job_id"], connection)


def on_start_failure(job: Job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback of `start_run`: retried like a shard (a database down for a moment);
    once it fails for good the table is free for the next run. Each attempt is a run of its own
    in the history (a retry plans anew), so each failed attempt is recorded failed."""
    if job.meta.get("run_id"):  # set once the attempt was recorded as started
        history.failed(connection, job.meta.get("table") or job.args[0], job.meta["run_id"], exc_value)
    if not _retrying(job, exc_value):
        table = job.meta.get("table") or job.args[0]
        event(logging.ERROR, "run could not start", table=table, job=job.id, error=describe(exc_value))
        claim.release(connection, job.meta["claim"], job_id=job.id)


def _retrying(job: Job, error: BaseException) -> bool:
    """Whether RQ will run `job` again after `error`; stops it (rq 1.15 and 2.x read
    `retries_left` after the failure callback) when retrying cannot help."""
    if job.retries_left and not is_retryable(error):
        job.retries_left = 0
    if job.retries_left:
        event(logging.WARNING, "job failed; RQ will retry it", table=job.meta.get("table"),
              run_id=job.meta.get("run_id"), job=job.id, retries_left=job.retries_left, error=describe(error))
        return True
    return False


def on_load_failure(job: Job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback of a load: the loader has already cleaned up; record why, loudly."""
    event(logging.ERROR, "load failed", table=job.meta.get("table"), run_id=job.meta.get("run_id"),
          error=describe(exc_value))


@_in_app
def abandon_run(table: str, run_id: str, load_id: str, connection, shard_ids: list[str] | None = None) -> int:
    """Give a run up: mark it abandoned (late shards then discard their files, a late load loads
    nothing), free its table unless its start job lives on to plan another run (RQ retries it),
    cancel its waiting shard jobs and its load job, delete its files; return how many files
    there were."""
    connection.set(abandoned_key(run_id), 1, ex=RESULT_TTL)
    settle_copied(state(), ExportRun(table, run_id))  # killed after its copy: recorded as loaded
    history.abandoned(connection, table, run_id)  # no-op when the run already has an outcome
    key = claim_key(state(), table)
    holder = claim.current(connection, key)
    if holder is not None and holder.run_id == run_id and holder_state(connection, table, holder) != "running":
        claim.release(connection, key, run_id=run_id)
    try:
        load_job = Job.fetch(load_id, connection=connection)
    except NoSuchJobError:
        load_job = None  # start_run has not enqueued it yet; it checks the abandoned key after
    waiting = [*Job.fetch_many(shard_ids or (load_job.args[3] if load_job else []), connection=connection), load_job]
    for job in waiting:
        if job is not None and job.get_status() in WAITING:
            job.cancel()
    return discard_files(state(), ExportRun(table, run_id))


def give_up(exporter: ExporterState, run: ExportRun, why: str) -> int:
    """Give up a run that will never finish by itself (its worker died): abandon it (recorded
    `abandoned` unless it had recorded an outcome) and drop its staging table; return how many
    files it left."""
    files = abandon_run(run.table, run.run_id, run.load_job_id, exporter.redis)
    try:
        exporter.warehouse.drop(staging_table(run.table, run.staging_suffix))
    except Exception as error:  # BigQuery down: the sweep drops it later; the new run goes on
        event(logging.WARNING, "could not drop the run's staging table; the sweep will", table=run.table,
              run_id=run.run_id, error=describe(error))
    # The outcome as recorded: a run killed in its clean-up, or after its copy, has loaded.
    recorded = history.run(exporter.redis, run.table, run.run_id)
    event(logging.WARNING, "dead run given up", table=run.table, run_id=run.run_id,
          outcome=recorded.outcome if recorded else "abandoned", reason=why, files=files)
    return files
