"""Cases 1 to 3, each meant to run alone in a fresh interpreter (see `bench.child`).

Every case streams the whole result to a file and times only that: imports, app set-up and
shard planning happen before the clock starts.
"""
from __future__ import annotations

import cProfile
import json
import pstats
import sys
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import sqlalchemy as sa

from bq_etl.manager import ENCODE_ROWS, FETCH_ROWS

from .table import database_url, visits


@dataclass
class Measurement:
    """What one case did: rows and bytes written, seconds taken, the process's peak RSS."""

    rows: int
    bytes: int
    seconds: float
    peak_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds


def limit(rows: int, out: str) -> Measurement:
    """Case 1: PostgreSQL builds each row's JSON itself and COPY streams it into a file."""
    engine = sa.create_engine(database_url(rows))
    connection = engine.raw_connection()
    try:
        cursor = connection.driver_connection.cursor()
        started = perf_counter()
        with open(out, "wb") as f:
            with cursor.copy("COPY (SELECT row_to_json(t) FROM visits t) TO STDOUT") as copy:
                for chunk in copy:
                    f.write(chunk)
        seconds = perf_counter() - started
        return Measurement(rows=cursor.rowcount, bytes=Path(out).stat().st_size, seconds=seconds)
    finally:
        connection.close()
        engine.dispose()


def naive(rows: int, out: str) -> Measurement:
    """Case 2: what one would write first: SQLAlchemy Core streams rows, `json.dumps` each."""
    engine = sa.create_engine(database_url(rows))
    count = 0
    try:
        with engine.connect() as connection:
            started = perf_counter()
            with open(out, "w", encoding="utf-8") as f:
                result = connection.execution_options(yield_per=FETCH_ROWS).execute(sa.select(visits))
                for row in result:
                    f.write(json.dumps(dict(row._mapping), default=str))
                    f.write("\n")
                    count += 1
            seconds = perf_counter() - started
    finally:
        engine.dispose()
    return Measurement(rows=count, bytes=Path(out).stat().st_size, seconds=seconds)


def reference(rows: int, out: str, encoder: bool = False) -> Measurement:
    """The issue's yardstick for a Python loop: psycopg's server-side cursor and `orjson.dumps`
    per row (`default=str`), with no validation. With `encoder`, each row goes through the
    exporter's `RecordEncoder` instead (jsonb parsed as the Python path parses it): the Python
    path without SQLAlchemy. What the Python path costs beyond these is the price of
    SQLAlchemy's rows, and beyond the first, of refusing bad values."""
    import orjson
    from psycopg.types.json import set_json_loads

    from bq_etl.json_values import loads

    from .exports import VisitsExport

    engine = sa.create_engine(database_url(rows))
    connection = engine.raw_connection()
    count = 0
    if encoder:
        encode = VisitsExport().encoder.encode
        set_json_loads(loads, connection.driver_connection)
    else:
        def encode(record: dict[str, Any]) -> bytes:
            return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)
    try:
        cursor = connection.driver_connection.cursor(name="reference")
        started = perf_counter()
        with open(out, "wb") as f:
            cursor.execute("SELECT * FROM visits")
            keys = [column.name for column in cursor.description]
            while fetched := cursor.fetchmany(FETCH_ROWS):
                # Encoded in slices as the Python path does (ENCODE_ROWS), so the loops compare.
                for start in range(0, len(fetched), ENCODE_ROWS):
                    batch = fetched[start:start + ENCODE_ROWS]
                    f.write(b"".join([encode(dict(zip(keys, row))) for row in batch]))
                count += len(fetched)
        seconds = perf_counter() - started
        cursor.close()
    finally:
        connection.close()
        engine.dispose()
    return Measurement(rows=count, bytes=Path(out).stat().st_size, seconds=seconds)


def shard(gzip_level: int = 0, python_path: bool = False, profile: int = 0) -> Measurement:
    """Case 3: the exporter's own shard path (query, serialize, validate, `Bucket.write` and its
    spool file), with an upload that reads the file and sends it nowhere (`local_bucket`).

    The app's database (DATABASE_URL) and the shard size (BENCH_SHARD_SIZE) come from the
    environment, as they do for a worker. The middle shard of the plan is exported.
    `python_path` turns PostgreSQL's line building off (`VisitsPythonPathExport`). With
    `profile`, the export runs under cProfile and that many functions, by cumulative time,
    are printed to stderr.
    """
    from api import create_app
    from bq_etl.run import ExportRun, new_run_id

    from .exports import VisitsExport, VisitsPythonPathExport
    from .local_storage import local_bucket

    app = create_app()
    with app.app_context():
        manager = VisitsPythonPathExport() if python_path else VisitsExport()
        shards, planned = manager.plan()
        chosen = shards[len(shards) // 2]
        run = ExportRun(manager.table_name, new_run_id(), gzip_level=gzip_level)
        bucket = local_bucket()
        profiler = cProfile.Profile() if profile else None
        started = perf_counter()
        if profiler:
            profiler.enable()
        result = manager.export_shard(run, chosen, bucket)
        if profiler:
            profiler.disable()
        seconds = perf_counter() - started
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(profile)
    return Measurement(rows=result.rows, bytes=result.bytes, seconds=seconds,
                       extra={"shards": len(shards), "shard": chosen.index, "table_rows": planned})
