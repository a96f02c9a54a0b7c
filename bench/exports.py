"""The bench table's export definition: what `ETL_EXPORT_MODULES=bench.exports` finds."""
from __future__ import annotations

import os

from sqlalchemy import Select, select

from bq_etl.cadence import Cadence
from bq_etl.manager import ExportShardManager

from . import mariadb, table


class VisitsExport(ExportShardManager):
    """Every visit, column for column: the machinery's cost with no reshaping of its own."""

    table_name = "visits"
    schema_file = "visits.json"
    cadence = Cadence.HOURLY
    visits = table.visits
    shard_key = visits.c.id
    # Read from the environment so RQ worker processes use the size the bench chose.
    shard_size = int(os.environ.get("BENCH_SHARD_SIZE", 1_000_000))

    def query(self) -> Select:
        return select(self.visits)


class VisitsOfflineExport(VisitsExport):
    """The same export whose shards go to case 3's storage stand-in (read, counted, sent
    nowhere) instead of the bucket: the shard phase through RQ workers without the network, and
    without the storage emulator's CPU, which Cloud Storage does not take from the workers'
    machine. Its runs load nothing (their load finds no files)."""

    table_name = "visits_offline"

    def deliver(self, bucket, object_name, lines, gzip_level):
        from .local_storage import local_bucket

        return local_bucket().write(object_name, lines, gzip_level=gzip_level)


class MariaDBVisitsExport(VisitsExport):
    """The same export of the MariaDB copy of the table (`bench.mariadb`)."""

    schema_file = "visits_mariadb.json"
    visits = mariadb.visits
    shard_key = visits.c.id


def python_path(export: type[VisitsExport]) -> type[VisitsExport]:
    """`export` with the database's line building off: every row goes through `to_record` and
    the record encoder. (No `table_name` of its own, so `Tables` does not list it.)"""
    return type(f"{export.__name__}PythonPath", (export,), {"database_lines": False})
