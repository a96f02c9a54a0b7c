"""Cases 1 to 3, each meant to run alone in a fresh interpreter (see `bench.child`).

Every case streams the whole result to a file and times only that: imports, app set-up and
shard planning happen before the clock starts.
"""
from __future__ import annotations

import cProfile
import json
import pstats
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson
import sqlalchemy as sa

from bq_etl.manager import ENCODE_ROWS, FETCH_ROWS

from .cpu import CpuSampler, pids_running
from .mariadb import mariadb_url
from .mariadb import visits as mariadb_visits
from .table import DATABASE, database_url, visits


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


# COPY's CSV format with a quote and a delimiter no JSON line holds (row_to_json escapes every
# control character) writes each line's bytes as they are; the text format would escape each
# backslash a second time, so a line with an escaped quote would no longer be JSON.
_ROWS_AS_JSON = "(SELECT row_to_json(t) FROM visits t)"
_AS_THEY_ARE = "WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"


def limit(rows: int, out: str) -> Measurement:
    """Case 1: PostgreSQL builds each row's JSON itself and psql's `\\copy` writes it into a
    file: libpq and C all the way."""
    return _psql_copies(rows, [(_ROWS_AS_JSON, out)])


def limit_halves(rows: int, out: str) -> Measurement:
    """Case 1 in two psql processes at once, one per half of the table's ids: the database's
    own speedup with two processes, beside which the shard phase's is judged."""
    middle = rows // 2
    return _psql_copies(rows, [
        (f"(SELECT row_to_json(t) FROM visits t WHERE id <= {middle})", out + ".0"),
        (f"(SELECT row_to_json(t) FROM visits t WHERE id > {middle})", out + ".1"),
    ])


def _psql_copies(rows: int, copies: list[tuple[str, str]]) -> Measurement:
    """Run a psql `\\copy` per (query, file) at once; time them from the first start to the
    last end."""
    processes: list[subprocess.Popen] = []
    with CpuSampler({"psql": (lambda: [p.pid for p in processes], False),
                     "postgres": (postgres_backends, False)}) as cpu:
        started = perf_counter()
        processes += [
            subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", _libpq_url(rows),
                              "-c", f"\\copy {query} TO '{out}' {_AS_THEY_ARE}"])
            for query, out in copies
        ]
        failed = [process.wait() for process in processes]
        seconds = perf_counter() - started
    if any(failed):
        raise RuntimeError("psql \\copy failed")
    return Measurement(rows=sum(_ndjson_lines(out) for _, out in copies),
                       bytes=sum(Path(out).stat().st_size for _, out in copies), seconds=seconds,
                       extra={"cpu": cpu.seconds()})


def postgres_backends() -> list[int]:
    """The PostgreSQL server processes serving connections to the bench database now."""
    return pids_running("postgres:", f" {DATABASE} ")


def copy_limit(rows: int, out: str) -> Measurement:
    """Case 1 through psycopg: COPY TO STDOUT streamed into a file from Python (case 1 keeps
    the faster of this and psql)."""
    engine = sa.create_engine(database_url(rows))
    connection = engine.raw_connection()
    try:
        cursor = connection.driver_connection.cursor()
        started = perf_counter()
        with open(out, "wb") as f:
            with cursor.copy(f"COPY {_ROWS_AS_JSON} TO STDOUT {_AS_THEY_ARE}") as copy:
                for chunk in copy:
                    f.write(chunk)
        seconds = perf_counter() - started
    finally:
        connection.close()
        engine.dispose()
    return Measurement(rows=_ndjson_lines(out), bytes=Path(out).stat().st_size, seconds=seconds)


def mariadb_limit(rows: int, out: str) -> Measurement:
    """Case 1 on MariaDB: the server builds each row's JSON (JSON_OBJECT) and the `mariadb`
    client writes the lines into a file as they are (`--batch --raw`, unbuffered `--quick`).
    (SELECT ... INTO OUTFILE, the server writing the file itself, measured the same.)"""
    pairs = ", ".join(
        f"'{column.name}', " + (f"JSON_QUERY({column.name}, '$')" if isinstance(column.type, sa.JSON) else column.name)
        for column in mariadb_visits.columns
    )
    url = sa.engine.make_url(mariadb_url(rows))
    started = perf_counter()
    with open(out, "wb") as f:
        subprocess.run(["mariadb", f"-h{url.host}", f"-P{url.port or 3306}", f"-u{url.username}",
                        "--batch", "--raw", "--skip-column-names", "--quick", url.database,
                        "-e", f"SELECT JSON_OBJECT({pairs}) FROM visits"], stdout=f, check=True)
    seconds = perf_counter() - started
    return Measurement(rows=_ndjson_lines(out), bytes=Path(out).stat().st_size, seconds=seconds)


def _libpq_url(rows: int) -> str:
    """The bench database's URL as psql takes it."""
    return sa.engine.make_url(database_url(rows)).set(drivername="postgresql").render_as_string(hide_password=False)


def _ndjson_lines(path: str) -> int:
    """The lines of the file at `path`, after checking each is a JSON object (not timed)."""
    count = 0
    with open(path, "rb") as f:
        for line in f:
            if not isinstance(orjson.loads(line), dict):
                raise ValueError(f"{path}: line {count + 1} is not a JSON object")
            count += 1
    return count


def naive(rows: int, out: str, database: str = "postgresql") -> Measurement:
    """Case 2: what one would write first: SQLAlchemy Core streams rows, `json.dumps` each."""
    return _core_loop(rows, out, database, lambda record: json.dumps(record, default=str).encode() + b"\n")


def unchecked(rows: int, out: str, database: str = "postgresql") -> Measurement:
    """The loop a user would write by hand for speed, with no checks: SQLAlchemy Core streams
    rows, `orjson.dumps` each (`default=str` for what it cannot write). What the Python path
    pays beyond it is the price of its checks and of BigQuery's exact forms."""
    def encode(record: dict[str, Any]) -> bytes:
        return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)

    return _core_loop(rows, out, database, encode)


def _core_loop(rows: int, out: str, database: str, encode: Any) -> Measurement:
    url, table = (database_url(rows), visits) if database == "postgresql" else (mariadb_url(rows), mariadb_visits)
    engine = sa.create_engine(url)
    count = 0
    try:
        with engine.connect() as connection:
            started = perf_counter()
            with open(out, "wb") as f:
                result = connection.execution_options(yield_per=FETCH_ROWS).execute(sa.select(table))
                # Plain str keys: on MariaDB they are SQLAlchemy's quoted_name, which orjson refuses.
                keys = [str(key) for key in result.keys()]
                for row in result:
                    f.write(encode(dict(zip(keys, row))))
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


def shard(gzip_level: int = 0, python_path: bool = False, profile: int = 0, database: str = "postgresql") -> Measurement:
    """Case 3: the exporter's own shard path (query, serialize, validate, `Bucket.write` and its
    spool file), with an upload that reads the file and sends it nowhere (`local_bucket`).

    The app's database (DATABASE_URL) and the shard size (BENCH_SHARD_SIZE) come from the
    environment, as they do for a worker. The middle shard of the plan is exported.
    `python_path` turns the database's line building off (`exports.python_path`);
    `database="mariadb"` exports the MariaDB table (DATABASE_URL must be its URL). With
    `profile`, the export runs under cProfile and that many functions, by cumulative time,
    are printed to stderr.
    """
    from api import create_app
    from bq_etl.run import ExportRun, new_run_id

    from . import exports
    from .local_storage import local_bucket

    app = create_app()
    with app.app_context():
        export = exports.MariaDBVisitsExport if database == "mariadb" else exports.VisitsExport
        manager = (exports.python_path(export) if python_path else export)()
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
