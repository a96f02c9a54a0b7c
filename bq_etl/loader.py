"""The last step of a run: under the table's lock, replace the BigQuery table from the run's files."""
from __future__ import annotations

import logging
import time
from typing import Sequence

from .errors import LoadError
from .extension import ExporterState
from .lock import table_lock
from .logs import event
from .manager import ExportShardManager
from .run import ExportRun, RunSummary, ShardResult


def loaded_run_key(table: str) -> str:
    """The Redis key holding the id of the newest run loaded into `table`."""
    return f"bq-etl:loaded:{table}"


def load(exporter: ExporterState, manager: ExportShardManager, run: ExportRun,
         results: Sequence[ShardResult], started: float) -> RunSummary:
    """Replace `run.table` with the run's files, holding the table's lock; then delete the files.

    `started` is the run's start as a UNIX time (runs span processes).

    A run older than the newest loaded one is not loaded (its files are deleted and the
    summary says "superseded"): a late run must never overwrite newer data. On any failure
    the run's files are deleted too and the live table is as it was.
    """
    summary = RunSummary(table=run.table, run_id=run.run_id, shards=len(results),
                         rows=sum(r.rows for r in results), bytes=sum(r.bytes for r in results))
    config, redis, bucket = exporter.config, exporter.redis, exporter.bucket
    try:
        with table_lock(redis, run.table, timeout=config.lock_timeout, wait=config.lock_wait) as lock:
            newest = redis.get(loaded_run_key(run.table))
            if newest is not None and newest.decode() > run.run_id:
                event(logging.WARNING, "run superseded", table=run.table, run_id=run.run_id,
                      newest_run_id=newest.decode())
                summary.status = "superseded"
            else:
                _check_objects(bucket.names(run.prefix), results, run)
                exporter.warehouse.ensure_dataset()
                exporter.warehouse.replace(
                    run.table, [bucket.uri(r.object_name) for r in results], manager.schema,
                    expected_rows=summary.rows, staging_suffix=run.staging_suffix,
                    options=manager.table_options, schema_path=str(manager.schema_path()),
                )
                if not lock.owned():
                    raise LoadError(f"table {run.table!r}, run {run.run_id}: the table's lock expired during "
                                    "the load, so another load may have overlapped it; run the table again")
                redis.set(loaded_run_key(run.table), run.run_id)
    finally:
        bucket.delete_prefix(run.prefix)
    summary.seconds = round(time.time() - started, 3)
    event(logging.INFO, f"run {summary.status}", table=run.table, run_id=run.run_id, rows=summary.rows,
          shards=summary.shards, seconds=summary.seconds)
    return summary


def _check_objects(found: list[str], results: Sequence[ShardResult], run: ExportRun) -> None:
    expected = sorted(r.object_name for r in results)
    if found != expected:
        raise LoadError(
            f"table {run.table!r}, run {run.run_id}: the bucket holds {found} under {run.prefix} "
            f"but the shards reported {expected}"
        )
