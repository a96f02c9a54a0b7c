"""The last step of a run: under the table's lock, replace the BigQuery table from the run's files."""
from __future__ import annotations

import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Sequence

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.lock import Lock

from . import history
from .errors import ExportError, LoadError, LockLost, ShrinkError, WriteRace
from .extension import ExporterState
from .lock import table_lock
from .logs import describe, event
from .manager import ExportShardManager
from .run import ExportRun, RunSummary, ShardResult

if TYPE_CHECKING:  # the warehouse imports the BigQuery client; only a load needs it
    from .warehouse import Warehouse


def loaded_run_key(dataset: str, table: str) -> str:
    """The Redis key holding the id of the newest run loaded into `dataset.table` (the table's
    `bq_etl_run` label holds it too, and outlives Redis). Keyed by dataset as the table's claim
    is: apps exporting to different datasets may share one Redis."""
    return f"bq-etl:loaded:{dataset}.{table}"


def overwritten_key(dataset: str, table: str) -> str:
    """The Redis key saying that `dataset.table` holds an older run's rows than the newest
    loaded (a WriteRace), until a later run loads (see `overwritten`)."""
    return f"bq-etl:overwritten:{dataset}.{table}"


def copy_job_key(dataset: str, table: str, run_id: str) -> str:
    """The Redis key holding the id of the copy job a run sends to replace `dataset.table`,
    written before the job is: a run killed after its copy can then be told loaded."""
    return f"bq-etl:copy:{dataset}.{table}:{run_id}"


#: What redis-py raises when Redis does not answer (not when it answers with an error).
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)

#: How long a run's copy job id is kept: longer than any run may wait to be given up.
COPY_JOB_TTL = 7 * 24 * 3600


class Superseded(Exception):
    """Raised by the fence to stop a replace: a newer run has loaded. Not an error: the loader
    turns it into a RunSummary with status "superseded"."""

    def __init__(self, newer_run_id: str):
        super().__init__(newer_run_id)
        self.newer_run_id = newer_run_id


class Fence:
    """What keeps a run from replacing its table with older data: the newest loaded run (the
    table's label and the Redis marker) and the run's hold on the table's lock."""

    def __init__(self, warehouse: Warehouse, redis: Redis, lock: Lock, run: ExportRun):
        self.warehouse = warehouse
        self.redis = redis
        self.lock = lock
        self.run = run

    def newer_run(self) -> str | None:
        """The newest loaded run, if it is newer than this one. Run ids sort by start time."""
        label = self.warehouse.loaded_run(self.run.table)  # the slow read first: see `check`
        marker = self.redis.get(loaded_run_key(self.warehouse.dataset, self.run.table))
        newest = max([r for r in (label, marker and marker.decode()) if r], default=None)
        return newest if newest is not None and newest > self.run.run_id else None

    def check(self) -> None:
        """Raise unless this run may write the live table now: Superseded if a newer run has
        loaded, LockLost if the lock expired. The BigQuery read goes first and the Redis reads
        last, so the write follows the lock check as closely as one HTTP request allows."""
        newer = self.newer_run()
        if newer is not None:
            raise Superseded(newer)
        if not self.lock.owned():
            raise LockLost(
                f"table {self.run.table!r}, run {self.run.run_id}: the table's lock expired before the "
                "write (the loader was paused or stalled longer than ETL_LOCK_TIMEOUT) and no newer run "
                "has loaded, so another load may be under way; nothing was written. Run the table again"
            )

    def mark(self, rows: int) -> None:
        """Record this run (and its `rows`) as the newest loaded, on the table (labels) and in
        Redis; raise WriteRace if the label already names a newer run: that run loaded inside
        the window between this run's check and its write, and may have been overwritten. Then
        the table is recorded overwritten (`overwritten`) until a later run marks it."""
        record_loaded(self.warehouse, self.redis, self.run, rows)


def record_loaded(warehouse: Warehouse, redis: Redis, run: ExportRun, rows: int) -> None:
    """`Fence.mark`, for a run whose copy is known to have committed."""
    holder = run.run_id  # what Redis records should the label update fail
    dataset, table = warehouse.dataset, run.table
    try:
        holder = warehouse.mark_loaded(table, run.run_id, rows)
    finally:
        key = loaded_run_key(dataset, table)
        marker = redis.get(key)
        if marker is None or marker.decode() < holder:
            redis.set(key, holder)
    if holder == run.run_id:
        redis.delete(overwritten_key(dataset, table))
        return
    redis.set(overwritten_key(dataset, table), json.dumps({"run_id": run.run_id, "newest_run_id": holder,
                                                           "at": time.time()}))
    raise WriteRace(
        f"table {table!r}: run {holder} loaded between run {run.run_id}'s last check "
        f"and its write, so the live table may hold the older run's rows; run the table again"
    )


def overwritten(redis: Redis, dataset: str, table: str) -> dict[str, Any] | None:
    """If a run's write went over a newer run's load (WriteRace) and no run has loaded since:
    `run_id` (the older run, whose rows the table may hold), `newest_run_id`, `at` (UNIX time)."""
    found = redis.get(overwritten_key(dataset, table))
    return json.loads(found) if found else None


def load(exporter: ExporterState, manager: ExportShardManager, run: ExportRun,
         results: Sequence[ShardResult], started: float, allow_shrink: bool = False) -> RunSummary:
    """Replace `run.table` with the run's files, holding the table's lock; then delete the files.

    `started` is the run's start as a UNIX time (runs span processes).

    A run older than the newest loaded one is not loaded (the summary says "superseded"): a
    late run must never overwrite newer data. This is checked on arrival and again right before
    the write (`Fence.check`), where a lost lock also stops the run (LockLost). A run that would
    shrink the live table below its export's `shrink_threshold` is refused (ShrinkError) unless
    `allow_shrink`. The outcome goes into the history first; then, whatever it is, the run's
    files are deleted (a deletion that fails is a warning: the sweep removes them). On any
    failure before the copy the live table is as it was.
    """
    summary = RunSummary(table=run.table, run_id=run.run_id, shards=len(results),
                         rows=sum(r.rows for r in results), bytes=sum(r.bytes for r in results))
    config, redis, bucket, warehouse = exporter.config, exporter.redis, exporter.bucket, exporter.warehouse
    copy_key = copy_job_key(warehouse.dataset, run.table, run.run_id)
    copy_job_id = f"bq_etl_copy_{uuid.uuid4().hex}"
    try:
        with table_lock(redis, run.table, timeout=config.lock_timeout, wait=config.lock_wait) as lock:
            fence = Fence(warehouse, redis, lock, run)
            try:
                newer = fence.newer_run()
                if newer is not None:
                    raise Superseded(newer)
                _check_objects(bucket.names(run.prefix), results, run)
                warehouse.job_ids = summary.job_ids  # each BigQuery job's id goes into the summary
                warehouse.ensure_dataset()
                if not allow_shrink:
                    _check_shrink(run.table, warehouse.live_rows(run.table), summary.rows, manager.shrink_threshold,
                                  _recorded_load(warehouse, redis, run.table))
                redis.set(copy_key, copy_job_id, ex=COPY_JOB_TTL)
                warehouse.replace(
                    run.table, [bucket.uri(r.object_name) for r in results], manager.schema,
                    expected_rows=summary.rows, staging_suffix=run.staging_suffix, before_write=fence.check,
                    options=manager.table_options, schema_path=str(manager.schema_path()),
                    copy_job_id=copy_job_id,
                )
            except Superseded as superseded:
                event(logging.WARNING, "run superseded", table=run.table, run_id=run.run_id,
                      newest_run_id=superseded.newer_run_id)
                summary.status, summary.superseded_by = "superseded", superseded.newer_run_id
            else:
                fence.mark(summary.rows)
    except BaseException as error:
        if copy_job_id in summary.job_ids and not isinstance(error, ExportError):
            # Interrupted after its copy was sent (Ctrl-C, a BigQuery error dropping the staging
            # table): if the copy committed the rows are live, so the run is recorded as what it
            # did, as it is when killed there. The exporter's own errors after the copy
            # (WriteRace, the tripwires) are recorded as they are.
            settle_copied(exporter, run, "run interrupted after its copy; recorded as loaded")
        record_failure(redis, run, error, summary.job_ids)  # no-op once recorded loaded
        _forget_copy(redis, copy_key)
        discard_files(exporter, run)
        raise
    # The outcome is recorded before the clean-up: the data is live whatever becomes of the files.
    summary.seconds = round(time.time() - started, 3)
    history.finished(redis, summary)
    _forget_copy(redis, copy_key)
    event(logging.INFO, f"run {summary.status}", table=run.table, run_id=run.run_id, rows=summary.rows,
          shards=summary.shards, seconds=summary.seconds)
    discard_files(exporter, run)
    return summary


def discard_files(exporter: ExporterState, run: ExportRun) -> int:
    """Delete a run's files; if the bucket cannot be reached, log it and leave them to the sweep
    (the run's outcome, or the error that ended it, is what to report, not this)."""
    try:
        return exporter.bucket.delete_prefix(run.prefix)
    except Exception as error:
        event(logging.WARNING, "could not delete the run's files; the sweep will", table=run.table,
              run_id=run.run_id, error=describe(error))
        return 0


def record_failure(redis: Redis, run: ExportRun, error: BaseException, job_ids: Sequence[str] = ()) -> None:
    """Record that `run` failed with `error`; if Redis does not answer, log it instead, so the
    clean-up that follows still runs (the run, left `running`, is judged dead and recorded
    abandoned by the next enqueue of its table or the sweep)."""
    try:
        history.failed(redis, run.table, run.run_id, error, job_ids)
    except REDIS_DOWN as lost:
        event(logging.WARNING, "could not record the run's failure; Redis does not answer", table=run.table,
              run_id=run.run_id, error=describe(lost))


def _forget_copy(redis: Redis, key: str) -> None:
    try:
        redis.delete(key)
    except Exception:  # Redis gone: the key expires by itself
        pass


def settle_copied(exporter: ExporterState, run: ExportRun,
                  note: str = "dead run's copy had completed; recorded as loaded") -> bool:
    """For a run being given up without an outcome: if its copy into the live table completed
    (the loader was killed or interrupted between the copy and recording it), record what
    happened: the table labelled and the run `loaded` (or failed with WriteRace, as the loader
    would have), logging `note`. Return whether it did. Anything it cannot reach (BigQuery,
    Redis) leaves the run to be abandoned."""
    warehouse, redis = exporter.warehouse, exporter.redis
    try:
        job_id = redis.get(copy_job_key(warehouse.dataset, run.table, run.run_id))
        if job_id is None or not warehouse.copy_succeeded(job_id.decode()):
            return False
        record = history.run(redis, run.table, run.run_id)
        if record is None or record.outcome != "running":
            return False
        summary = RunSummary(table=run.table, run_id=run.run_id, shards=record.shards_done, rows=record.rows,
                             bytes=record.bytes, seconds=round(time.time() - record.started, 3),
                             job_ids=[job_id.decode()])
        try:
            record_loaded(warehouse, redis, run, summary.rows)
        except WriteRace as race:
            history.failed(redis, run.table, run.run_id, race, summary.job_ids)
        else:
            history.finished(redis, summary)
        redis.delete(copy_job_key(warehouse.dataset, run.table, run.run_id))
    except Exception as error:
        event(logging.WARNING, "could not tell whether a dead run's copy completed", table=run.table,
              run_id=run.run_id, error=describe(error))
        return False
    event(logging.WARNING, note, table=run.table, run_id=run.run_id, rows=summary.rows)
    return True


def _recorded_load(warehouse: Warehouse, redis: Redis, table: str) -> tuple[str, int] | None:
    """The newest loaded run and the rows it loaded, as recorded beside the data: the table's
    labels, else (the table gone, or labelled before the rows were) that run's history."""
    run_id, rows = warehouse.loaded_mark(table)
    if rows is not None:
        return run_id, rows
    marker = redis.get(loaded_run_key(warehouse.dataset, table))
    newest = max([r for r in (run_id, marker and marker.decode()) if r], default=None)
    record = history.run(redis, table, newest) if newest else None
    return (newest, record.rows) if record is not None else None


def _check_shrink(table: str, live_rows: int | None, new_rows: int, threshold: float | None,
                  recorded: tuple[str, int] | None = None) -> None:
    """Refuse a run that would replace the table's rows with far fewer `new_rows` (see
    ShrinkError). The table's rows are the more of `live_rows` (its COUNT(*)) and the rows its
    newest loaded run `recorded`: a replace interrupted half way leaves the table missing or
    empty, and that must not let any run through."""
    if threshold is None:
        return
    reference, note = live_rows or 0, ""
    if recorded is not None and recorded[1] > reference:
        reference = recorded[1]
        now = "is missing" if live_rows is None else f"holds {live_rows}"
        note = (f" (what run {recorded[0]} loaded; the table {now}, as a replace interrupted half way "
                "leaves it)")
    if reference and (new_rows == 0 or new_rows < threshold * reference):
        raise ShrinkError(table, reference, new_rows, threshold, note)


def _check_objects(found: list[str], results: Sequence[ShardResult], run: ExportRun) -> None:
    expected = sorted(r.object_name for r in results)
    if found != expected:
        raise LoadError(
            f"table {run.table!r}, run {run.run_id}: the bucket holds {found} under {run.prefix} "
            f"but the shards reported {expected}"
        )
