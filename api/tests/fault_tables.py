"""The export the fault suite (test_faults.py) runs: care tracks in shards of 50, whose third shard
can be held mid-stream (its first lines read, the rest still coming from the database), whose
load job can be held before it reads its shards' results, and again after it took the table's
lock and made sure of the dataset, so a test kills or stops something at that point. Any load
can also be held right before its copy into the live table (`copy`: its last check passed, the
job not yet sent), right after it (`copied`: the job done, nothing recorded yet), and half way
through deleting its files (`cleanup`: the first one deleted, the outcome recorded).

Each point holds at most once per hold folder (`BQ_ETL_FAULT_HOLD_DIR`): the process writes its
pid to `<point>.held` and waits until the test creates `<point>.go` (or kills it). Each job's
process also records, on PostgreSQL, which database session it read through (`SESSIONS`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from functools import cached_property
from typing import Any, Iterator

from rq import get_current_job
from sqlalchemy import Row, Select, select

from bq_etl.cadence import Cadence
from bq_etl.storage import CLEANUP_RETRY, Bucket
from bq_etl.warehouse import Warehouse
from api.models import CareTrack
from bq_etl.run import Shard
from api.tests.fault_exports import TracksExport

HOLD_DIR = "BQ_ETL_FAULT_HOLD_DIR"
#: Every hold point, in the order a run reaches them.
POINTS = ("shard", "preload", "load", "copy", "copied", "cleanup")
#: How long a held shard waits for the test at most (the test kills or releases it long before).
HOLD_LIMIT = 300.0
#: The Redis list of "<process pid> <PostgreSQL backend pid>", one per job that read the database.
SESSIONS = "fault:sessions"


class HeldTracksExport(TracksExport):
    """Care tracks; the shard holding row `held_id` holds once after its first lines (see module
    docstring). No `to_record`: on PostgreSQL the shards stream through the database's fast path."""

    table_name = "fault_tracks"
    cadence = Cadence.EVERY_FIVE_HOURS
    shard_size = 50
    held_id = 120

    def __init__(self):
        job = get_current_job()
        if job is not None and job.id.endswith("-load"):
            hold("preload")  # load_run makes its export before it reads the shards' results

    def plan(self):
        record_session(self)
        return super().plan()

    def lines(self, shard: Shard) -> Iterator[bytes]:
        record_session(self)
        holds = (shard.lower is None or shard.lower < self.held_id) and \
            (shard.upper is None or self.held_id <= shard.upper)
        for number, item in enumerate(super().lines(shard)):
            yield item
            if number == 0 and holds:
                hold("shard")

    @cached_property
    def schema(self):
        """The schema; the load job reads it under the lock, just before the staging load."""
        job = get_current_job()
        if job is not None and job.id.endswith("-load"):
            hold("load")
        return TracksExport.schema.func(self)


def record_session(export: TracksExport) -> None:
    """On PostgreSQL, append this process's pid and its database session's backend pid to
    `SESSIONS`: two processes naming one backend share one connection."""
    connection = export.session.connection()
    if connection.dialect.name == "postgresql":
        from bq_etl.extension import state

        backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        state().redis.rpush(SESSIONS, f"{os.getpid()} {backend}")


def hold(point: str) -> None:
    """Hold this process at `point` the first time it is reached (see module docstring)."""
    folder = os.environ.get(HOLD_DIR)
    if not folder:
        return
    held = Path(folder) / f"{point}.held"
    try:
        os.close(os.open(f"{held}.once", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return  # held once already
    Path(f"{held}.tmp").write_text(str(os.getpid()))
    os.rename(f"{held}.tmp", held)  # the test reads a whole pid or nothing
    go = Path(folder) / f"{point}.go"
    deadline = time.monotonic() + HOLD_LIMIT
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


class EvolvingTracksExport(TracksExport):
    """Care tracks in shards of 50; with `BQ_ETL_FAULT_SCHEMA=v2` in the environment (read when the
    module is imported) the schema file adds a NULLABLE column, `note`: a column change, which
    the emulator applies by making the live table anew."""

    table_name = "evolving_tracks"
    shard_size = 50
    v2 = os.environ.get("BQ_ETL_FAULT_SCHEMA") == "v2"
    schema_file = "tracks_v2.json" if v2 else "tracks.json"

    def query(self) -> Select:
        return select(CareTrack.id, CareTrack.name, CareTrack.name.label("note")) if self.v2 else super().query()


def _hold_around_the_copy() -> None:
    """Install the hold points `copy` and `copied` around the warehouse's copy into the live
    table: nothing of the export is called there, so the copy itself is wrapped. `copy` holds
    after the loader's last check (`before_write`), `copied` once the job is done."""
    copy = Warehouse._copy

    def held(self, source, destination, disposition, write, *args, **kwargs):
        if destination not in HELD_TABLES:  # the shipped tables on the same cadence load freely
            return copy(self, source, destination, disposition, write, *args, **kwargs)

        def checked() -> None:
            write()
            hold("copy")

        copy(self, source, destination, disposition, checked, *args, **kwargs)
        hold("copied")

    Warehouse._copy = held


def _hold_in_the_cleanup() -> None:
    """Install the hold point `cleanup` in the deletion of a held table's run files: after the
    first file, before the rest."""
    delete_prefix = Bucket.delete_prefix

    def held(self, prefix: str) -> int:
        if prefix.split("/", 1)[0] not in HELD_TABLES:
            return delete_prefix(self, prefix)
        names = self.names(prefix, retry=CLEANUP_RETRY)  # as the clean-up lists: storage down fails at once
        if not names:
            return 0
        self._bucket.blob(names[0]).delete(retry=CLEANUP_RETRY)
        hold("cleanup")
        return 1 + delete_prefix(self, prefix)

    Bucket.delete_prefix = held


#: The tables whose loads hold at `copy`, `copied` and `cleanup`.
HELD_TABLES = (HeldTracksExport.table_name, EvolvingTracksExport.table_name)
_hold_around_the_copy()
_hold_in_the_cleanup()


class FlakyPlanTracksExport(TracksExport):
    """Care tracks whose planning fails while the Redis counter `fault:flaky_plan_tracks:plan`
    is above zero, as when the database is down for a moment."""

    table_name = "flaky_plan_tracks"

    def plan(self):
        from bq_etl.extension import state

        if state().redis.decr(f"fault:{self.table_name}:plan") >= 0:
            raise ConnectionError("the database is down for a moment")
        return super().plan()


class VanishingBucketTracksExport(TracksExport):
    """Care tracks whose first row deletes the sync bucket, so the shard's upload finds it gone
    after the command's checks passed."""

    table_name = "vanishing_bucket_tracks"

    def to_record(self, row: Row) -> dict[str, Any]:
        if row.id == 1:
            from bq_etl.extension import state

            bucket = state().bucket
            bucket.client.bucket(bucket.name).delete(force=True)
        return dict(row._mapping)
