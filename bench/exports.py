"""The bench table's export definition: what `ETL_EXPORT_MODULES=bench.exports` finds."""
from __future__ import annotations

import os

from sqlalchemy import Select, select

from bq_etl.cadence import Cadence
from bq_etl.manager import ExportShardManager

from .table import visits


class VisitsExport(ExportShardManager):
    """Every visit, column for column: the machinery's cost with no reshaping of its own."""

    table_name = "visits"
    schema_file = "visits.json"
    cadence = Cadence.HOURLY
    shard_key = visits.c.id
    # Read from the environment so RQ worker processes use the size the bench chose.
    shard_size = int(os.environ.get("BENCH_SHARD_SIZE", 1_000_000))

    def query(self) -> Select:
        return select(visits)


class VisitsPythonPathExport(VisitsExport):
    """The same export with PostgreSQL's line building off: every row goes through `to_record`
    and the record encoder. (No `table_name` of its own, so `Tables` does not list it.)"""

    database_lines = False
