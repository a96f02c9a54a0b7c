"""The last step of a run: under the table's lock, replace the BigQuery table from the run's files."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Sequence

from redis import Redis
from redis.lock import Lock

from . import history
from .errors import LoadError, LockLost, ShrinkError, WriteRace
from .extension import ExporterState
from .lock import table_lock
from .logs import event
from .manager import ExportShardManager
from .run import ExportRun, RunSummary, ShardResult

if TYPE_CHECKING:  # the warehouse imports the BigQuery client; only a load needs it
    from .warehouse import Warehouse


def loaded_run_key(dataset: str, table: str) -> str:
    """The Redis key holding the id of the newest run loaded into `dataset.table` (the table's
    `bq_etl_run` label holds it too, and outlives Redis). Keyed by dataset as the table's claim
    is: apps exporting to different datasets may share one Redis."""
    return f"bq-etl:loaded:{dataset}.{table}"


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

    def mark(self) -> None:
        """Record this run as the newest loaded, on the table (label) and in Redis; raise
        WriteRace if the label already names a newer run: that run loaded inside the window
        between this run's check and its write, and may have been overwritten."""
        holder = self.run.run_id  # what Redis records should the label update fail
        try:
            holder = self.warehouse.mark_loaded(self.run.table, self.run.run_id)
        finally:
            key = loaded_run_key(self.warehouse.dataset, self.run.table)
            marker = self.redis.get(key)
            if marker is None or marker.decode() < holder:
                self.redis.set(key, holder)
        if holder != self.run.run_id:
            raise WriteRace(
                f"table {self.run.table!r}: run {holder} loaded between run {self.run.run_id}'s last check "
                f"and its write, so the live table may hold the older run's rows; run the table again"
            )


def load(exporter: ExporterState, manager: ExportShardManager, run: ExportRun,
         results: Sequence[ShardResult], started: float, allow_shrink: bool = False) -> RunSummary:
    """Replace `run.table` with the run's files, holding the table's lock; then delete the files.

    `started` is the run's start as a UNIX time (runs span processes).

    A run older than the newest loaded one is not loaded (the summary says "superseded"): a
    late run must never overwrite newer data. This is checked on arrival and again right before
    the write (`Fence.check`), where a lost lock also stops the run (LockLost). A run that would
    shrink the live table below its export's `shrink_threshold` is refused (ShrinkError) unless
    `allow_shrink`. Whatever the outcome the run's files are deleted, and on any failure the
    live table is as it was.
    """
    summary = RunSummary(table=run.table, run_id=run.run_id, shards=len(results),
                         rows=sum(r.rows for r in results), bytes=sum(r.bytes for r in results))
    config, redis, bucket, warehouse = exporter.config, exporter.redis, exporter.bucket, exporter.warehouse
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
                    _check_shrink(run.table, warehouse.live_rows(run.table), summary.rows, manager.shrink_threshold)
                warehouse.replace(
                    run.table, [bucket.uri(r.object_name) for r in results], manager.schema,
                    expected_rows=summary.rows, staging_suffix=run.staging_suffix, before_write=fence.check,
                    options=manager.table_options, schema_path=str(manager.schema_path()),
                )
            except Superseded as superseded:
                event(logging.WARNING, "run superseded", table=run.table, run_id=run.run_id,
                      newest_run_id=superseded.newer_run_id)
                summary.status, summary.superseded_by = "superseded", superseded.newer_run_id
            else:
                fence.mark()
    except BaseException as error:
        history.failed(redis, run.table, run.run_id, error, summary.job_ids)
        raise
    finally:
        bucket.delete_prefix(run.prefix)
    summary.seconds = round(time.time() - started, 3)
    history.finished(redis, summary)
    event(logging.INFO, f"run {summary.status}", table=run.table, run_id=run.run_id, rows=summary.rows,
          shards=summary.shards, seconds=summary.seconds)
    return summary


def _check_shrink(table: str, live_rows: int | None, new_rows: int, threshold: float | None) -> None:
    """Refuse a run that would replace `live_rows` with far fewer `new_rows` (see ShrinkError)."""
    if threshold is None or not live_rows:
        return
    if new_rows == 0 or new_rows < threshold * live_rows:
        raise ShrinkError(table, live_rows, new_rows, threshold)


def _check_objects(found: list[str], results: Sequence[ShardResult], run: ExportRun) -> None:
    expected = sorted(r.object_name for r in results)
    if found != expected:
        raise LoadError(
            f"table {run.table!r}, run {run.run_id}: the bucket holds {found} under {run.prefix} "
            f"but the shards reported {expected}"
        )
