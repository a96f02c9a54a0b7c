"""Exports used only by the pipeline tests to make shards fail on demand.

`FlakyTracksExport` raises while exporting the row whose key is in the Redis hash
`fault:<queue>:<table>` for as many attempts as the hash says, so a test decides in Redis how many
times a shard fails in a real worker process. `BadTracksExport` writes a number into a
STRING column for one row, to show the schema error a worker reports. `KilledTracksExport`
kills its own work horse with SIGKILL at one row, as the OOM killer would;
`KilledPlanTracksExport` kills the horse of its first `start_run` attempt while it plans.
"""
from __future__ import annotations

import os
import signal
from typing import Any

from sqlalchemy import Row, Select, select

from bq_etl.cadence import Cadence
from bq_etl.extension import state
from bq_etl.manager import ExportShardManager
from api.models import CareTrack


def fault_key(table: str) -> str:
    """The Redis hash of row key -> failures left for `table`, in the current app's queue: every
    test has a queue of its own, so faults one test leaves unused never reach another."""
    return f"fault:{state().config.queue_name}:{table}"


class ShardFault(RuntimeError):
    """The failure a test asked for."""


class TracksExport(ExportShardManager):
    """Care tracks, column for column, in shards of 2. No `table_name` of its own, so `Tables`
    does not list it: the exports below, and other tests, subclass it and name their table."""

    schema_file = "tracks.json"
    cadence = Cadence.MIDNIGHT
    shard_key = CareTrack.id
    shard_size = 2

    def query(self) -> Select:
        return select(CareTrack.id, CareTrack.name)


class FlakyTracksExport(TracksExport):
    """Care tracks, failing on demand (see module docstring)."""

    table_name = "flaky_tracks"

    def to_record(self, row: Row) -> dict[str, Any]:
        if state().redis.hincrby(fault_key(self.table_name), str(row.id), -1) >= 0:
            raise ShardFault(f"injected failure at {self.table_name} row {row.id}")
        return dict(row._mapping)


class BadTracksExport(FlakyTracksExport):
    """Care tracks with one row that breaks the schema."""

    table_name = "bad_tracks"
    bad_id = 3

    def to_record(self, row: Row) -> dict[str, Any]:
        record = dict(row._mapping)
        if row.id == self.bad_id:
            record["name"] = 42
        return record


class KilledTracksExport(FlakyTracksExport):
    """Care tracks whose work horse dies outright (SIGKILL) at one row: no exception, no
    failure callback."""

    table_name = "killed_tracks"
    killed_id = 3

    def to_record(self, row: Row) -> dict[str, Any]:
        if row.id == self.killed_id:
            os.kill(os.getpid(), signal.SIGKILL)
        return dict(row._mapping)


class KilledPlanTracksExport(TracksExport):
    """Care tracks whose first planning kills its work horse outright (SIGKILL): RQ retries
    `start_run`, which plans a run of its own; the first run is left recorded as running."""

    table_name = "killed_plan_tracks"

    def plan(self):
        if state().redis.incr(fault_key(self.table_name)) == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().plan()
