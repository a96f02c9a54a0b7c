"""ExportShardManager: the unit a table export is defined with, and how one shard is exported."""
from __future__ import annotations

import inspect
import sys
from contextlib import closing
from datetime import timezone, tzinfo
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator, NoReturn, Sequence

from flask import current_app
from sqlalchemy import Connection, Engine, Row, Select, Table
from sqlalchemy.orm import Session

from .cadence import Cadence
from .driver_errors import located_error
from .errors import ConfigError, SchemaError
from .json_values import fast_json
from .raw_values import MYSQL_TIMESTAMP, exact_statement, server_type_codes, single_precision_columns
from .run import ExportRun, Shard, ShardResult
from .schema import TYPE_NAMES, load_schema
from .table_options import TableOptions, load_options, options_path
from .serialize import RecordEncoder
from .session_settings import reading_settings
from .shard import plan_shards, shard_query, unnamed_columns, unnamed_columns_message

if TYPE_CHECKING:
    from google.cloud.bigquery import SchemaField

    from .storage import Bucket

#: The one driver per database whose values the exporter reads exactly (the edge-value tests
#: run on them): (driver, its name, the URL scheme that picks it, the extra that installs it).
#: psycopg2 reads -0.0 as 0.0 and cannot read arrays of JSON; mysqlclient reads a zero date as
#: NULL. SQLite has one driver.
EXACT_DRIVERS = {
    "postgresql": ("psycopg", "psycopg 3", "postgresql+psycopg", "postgres"),
    "mysql": ("pymysql", "PyMySQL", "mysql+pymysql", "mysql"),
    "mariadb": ("pymysql", "PyMySQL", "mariadb+pymysql", "mysql"),
}

#: Rows fetched from the database per round trip while a shard streams, and the batch an
#: overridden `records` gets (one side query per batch).
FETCH_ROWS = 2000
#: Rows the Python path turns into lines at a time otherwise: few enough that the batch's row
#: objects and lines stay in the CPU cache (the bench's Python path ran a third faster with 100
#: than with 2,000).
ENCODE_ROWS = 100


class ExportShardManager:
    """Defines how one BigQuery table is exported; subclass it once per table.

    A subclass sets `table_name`, `schema_file`, `cadence` and `shard_key`, implements
    `query()`, and overrides `to_record()` when a row needs reshaping (nested RECORDs,
    REPEATED fields, computed columns). Everything else (sharding, serializing, validating,
    delivering, loading) is the machinery's.
    """

    #: The BigQuery table's name; also the name `flask export run` takes.
    table_name: ClassVar[str]
    #: The BigQuery JSON schema file, relative to the `schemas/` folder beside the subclass's module.
    schema_file: ClassVar[str]
    #: How often the crontab exports the table.
    cadence: ClassVar[Cadence]
    #: The column shards are cut by: unique in the query's result and indexed (usually the primary key).
    shard_key: ClassVar[Any]
    #: Rows per shard (one RQ job each).
    shard_size: ClassVar[int] = 50_000
    #: The zone naive datetimes in TIMESTAMP columns are in (SQLite and MariaDB return UTC naive).
    naive_timestamp_zone: ClassVar[tzinfo | None] = timezone.utc
    #: Let the database build the lines where it can (see `postgres_lines`, `mysql_lines`);
    #: False keeps Python's.
    database_lines: ClassVar[bool] = True
    #: A run with fewer rows than this fraction of the live table's (or of the rows its last load
    #: recorded, if more) is refused (ShrinkError) unless run with --allow-shrink; None: the table may shrink on any run, even to empty.
    shrink_threshold: ClassVar[float | None] = 0.5
    # The MySQL type code of each of the shard query's columns on MariaDB, once learnt.
    _type_codes: tuple[int, ...] | None = None

    def query(self) -> Select:
        """The SELECT whose rows become the table's records (joins allowed, no ORDER BY)."""
        raise NotImplementedError(f"{type(self).__name__} must define query()")

    def to_record(self, row: Row) -> dict[str, Any]:
        """Turn one result row into a record: a dict of column name to Python value."""
        return dict(row._mapping)

    def records(self, rows: Sequence[Row]) -> Iterable[dict[str, Any]]:
        """Turn a batch of rows into records; override to look related data up once per batch
        (see `lookup`) instead of once per row."""
        return map(self.to_record, rows)

    @classmethod
    def records_are_columns(cls) -> bool:
        """True when a record is just its row's columns (neither `to_record` nor `records` is
        overridden), so the machinery may build records, or whole lines, its own faster way."""
        return cls.to_record is ExportShardManager.to_record and cls.records is ExportShardManager.records

    def lookup(self, statement: Select) -> list[Row]:
        """Run a side query for `records`, on a connection of its own: the shard's main query is
        still streaming on the session's connection (MariaDB cannot interleave the two). It runs
        in the settings the shard is read in (`session_settings`)."""
        with self.source_engine.connect() as connection, reading_settings(connection):
            return list(connection.execute(statement))

    # -- machinery ---------------------------------------------------------------------------

    @classmethod
    def schema_path(cls) -> Path:
        """Where this table's schema file lives: `schemas/` beside the module of the class that
        names the file (so a subclass elsewhere that keeps the file finds it)."""
        owner = next(klass for klass in cls.__mro__ if "schema_file" in vars(klass))
        module_file = Path(sys.modules[owner.__module__].__file__ or ".")
        return module_file.parent / "schemas" / cls.schema_file

    @cached_property
    def schema(self) -> list[SchemaField]:
        """The table's schema, read from its file."""
        path = self.schema_path()
        if not path.exists():
            raise SchemaError(f"table {self.table_name!r}: schema file {path}: not found; write it from the "
                              f"query with `flask export schema generate {self.table_name}`")
        return load_schema(path)

    @cached_property
    def table_options(self) -> TableOptions:
        """The table's declared BigQuery options (`<schema file stem>.options.json` beside the
        schema file, optional); a new table is described by the class's docstring unless the
        file declares a description."""
        doc = inspect.getdoc(type(self))
        default = doc.split("\n\n")[0].replace("\n", " ") if doc and "__doc__" in vars(type(self)) else None
        return load_options(options_path(self.schema_path()), self.schema, default)

    @cached_property
    def encoder(self) -> RecordEncoder:
        """Validates and serializes this table's records."""
        schema_file = self.schema_path() if hasattr(type(self), "schema_file") else None  # None: a schema in code
        return RecordEncoder(self.table_name, self.schema, self.key_column, self.naive_timestamp_zone, schema_file)

    @property
    def key(self) -> Any:
        """The shard key column (read from the class: an ORM attribute is a descriptor)."""
        return type(self).shard_key

    @property
    def key_column(self) -> str:
        """The record column holding the shard key, named in error messages."""
        return getattr(self.key, "key", None) or getattr(self.key, "name")

    @property
    def session(self) -> Session:
        """The app's Flask-SQLAlchemy session."""
        return current_app.extensions["sqlalchemy"].session

    @property
    def source_engine(self) -> Engine:
        """The engine the table's rows are read from: the one the session routes the shard key's
        table to, so a model on a bind of its own (`__bind_key__`) is read there, not from the
        app's default database. A ConfigError for PostgreSQL through any driver but psycopg 3."""
        engine = self.session.get_bind(clause=self._key_table())
        dialect = engine.dialect
        exact = EXACT_DRIVERS.get(dialect.name)
        if exact is not None and dialect.driver != exact[0]:
            raise ConfigError(
                f"table {self.table_name!r}: its database is read through {dialect.driver}, but bq-etl reads "
                f"{dialect.name} exactly only through {exact[1]}: write the URL as {exact[2]}://... and install "
                f"the {exact[3]} extra (pip install 'bq-etl[{exact[3]}]')")
        return engine

    def source_connection(self) -> Connection:
        """The session's connection to `source_engine`, in the session's transaction."""
        self.source_engine  # its driver checked
        return self.session.connection(bind_arguments={"clause": self._key_table()})

    def _key_table(self) -> Table | None:
        table = getattr(getattr(self.key, "expression", self.key), "table", None)
        while table is not None and not isinstance(table, Table):  # an alias: the table it names
            table = getattr(table, "element", None)
        return table

    def plan(self) -> tuple[list[Shard], int]:
        """Cut the table into shards; return them and the row count at planning time."""
        try:
            # In the settings the shards are read in: on MariaDB a TIMESTAMP key's bounds are
            # read, and compared, in the session's time zone.
            query = self.query()
            unnamed = unnamed_columns(query)
            if unnamed:
                raise SchemaError(unnamed_columns_message(self.table_name, unnamed))
            with reading_settings(self.source_connection()):
                return plan_shards(self.session, query, self.key, self.shard_size, self.table_name)
        finally:
            self.session.rollback()

    def lines(self, shard: Shard) -> Iterator[bytes]:
        """The shard's rows as validated NDJSON lines, streamed from the database; an item may
        hold many lines (each ending in a newline)."""
        try:
            connection = self.source_connection()
            with reading_settings(connection):
                yield from self._lines(connection, shard)
        finally:
            self.session.rollback()

    def _lines(self, connection: Connection, shard: Shard) -> Iterator[bytes]:
        built = None
        # Imported here: each driver is installed only where the app runs on its database.
        if connection.dialect.driver == "psycopg":
            from .postgres_lines import postgres_lines

            built = postgres_lines(self, shard)
        elif connection.dialect.driver == "pymysql":
            from .mysql_lines import mysql_lines

            built = mysql_lines(self, shard)
        if built is not None:
            yield from built
            return
        statement = self._exact(shard_query(self.query(), self.key, shard), connection)
        with fast_json(connection):
            # A Core result on the session's connection: rows as `lookup` gives them, without
            # the ORM's result handling.
            try:  # a streamed result reads its first row already
                result = connection.execute(statement.execution_options(yield_per=FETCH_ROWS))
            except Exception as error:
                self._raise_located(statement, error)
            # Closed before the session's settings are put back: MariaDB reads what is left of
            # an unbuffered result before the connection takes another statement.
            with result:
                encode = self.encoder.encode
                keys = tuple(result.keys())
                # A batch's lines go out as one item.
                encode_row = self.encoder.row_encoder(keys) if self.records_are_columns() else None
                if encode_row is not None:
                    # The default records, their values taken from each row in schema order.
                    for batch in self._batches(result, statement, keys, ENCODE_ROWS):
                        yield b"".join([encode_row(row) for row in batch])
                    return
                if self.records_are_columns() and len(set(keys)) == len(keys):
                    # The default records, built without a Row mapping each.
                    for batch in self._batches(result, statement, keys, ENCODE_ROWS):
                        yield b"".join([encode(dict(zip(keys, row))) for row in batch])
                    return
                size = ENCODE_ROWS if type(self).records is ExportShardManager.records else FETCH_ROWS
                for batch in self._batches(result, statement, keys, size):
                    yield b"".join([encode(record) for record in self.records(batch)])

    def lines_by_key(self, statement: Select) -> dict[Any, bytes]:
        """The Python path's line of each row `statement` (the shard query narrowed to a few
        keys) selects, by shard key, read through `lookup`: how a fast path (`postgres_lines`)
        writes the rows it cannot vouch for, so they get exactly this path's lines and errors."""
        statement = self._exact(statement)
        try:
            rows = self.lookup(statement)
        except Exception as error:
            self._raise_located(statement, error)
        encode, key_column = self.encoder.encode, self.key_column
        return {record[key_column]: encode(record) for record in self.records(rows)}

    def _exact(self, statement: Select, connection: Connection | None = None) -> Select:
        """`statement` (the shard query, or one narrowed from it) reading every column exactly
        (see `raw_values`). The MariaDB types of its columns (single-precision FLOAT, TIMESTAMP)
        are learnt once, on `connection` (else on a connection of its own)."""
        bind = self.source_engine
        if self._type_codes is None:
            self._type_codes = server_type_codes(statement, connection or bind)
        codes, columns_are_records = self._type_codes, self.records_are_columns()
        utc_instants = frozenset()
        if columns_are_records and self.naive_timestamp_zone is not timezone.utc:
            # A MariaDB TIMESTAMP is an instant, read as its UTC time: no naive zone applies to
            # it. (A to_record gets the naive UTC time, as before.)
            timestamps = {field.name for field in self.schema if TYPE_NAMES[field.field_type] == "TIMESTAMP"}
            utc_instants = frozenset(
                index for index, (code, name) in enumerate(zip(codes, statement.selected_columns.keys()))
                if code == MYSQL_TIMESTAMP and name in timestamps
            )
        return exact_statement(statement, bind.dialect, json_nulls=columns_are_records,
                               single_precision=single_precision_columns(codes, bind.dialect),
                               utc_instants=utc_instants)

    def _batches(self, result: Any, statement: Select, keys: tuple[str, ...], size: int) -> Iterator[Sequence[Any]]:
        """The result's rows in batches of `size`; a value the driver cannot read raises a
        RecordError naming its row (see `driver_errors`)."""
        at = keys.index(self.key_column) if self.key_column in keys else None
        batches = result.partitions(size)
        last = None
        while True:
            try:
                batch = next(batches, None)
            except Exception as error:
                self._raise_located(statement, error, last)
            if batch is None:
                return
            yield batch
            if at is not None:
                last = batch[-1][at]

    def _raise_located(self, statement: Select, error: Exception, after: Any = None) -> NoReturn:
        located = located_error(self, statement, error, after)
        if located is None:
            raise error
        raise located from error

    def export_shard(self, run: ExportRun, shard: Shard, bucket: Bucket | None) -> ShardResult:
        """Export one shard of `run` into `bucket`: query, serialize, validate and deliver it."""
        object_name = run.object_name(shard)
        # Closed even when the delivery fails: the stream's connections (MariaDB's building ones
        # run queries) end then, not when the failed generator is collected.
        with closing(self.lines(shard)) as lines:
            counter = _Counter(lines)
            size = self.deliver(bucket, object_name, counter, run.gzip_level)
        return ShardResult(index=shard.index, object_name=object_name, rows=counter.count, bytes=size)

    def deliver(self, bucket: Bucket | None, object_name: str, lines: Iterable[bytes], gzip_level: int) -> int:
        """Write a shard's serialized records to the sync bucket; return the bytes written.

        This is the seam tests patch (see `BaseExportShardManagerTest`) to capture records.
        """
        return bucket.write(object_name, lines, gzip_level=gzip_level)


class _Counter:
    """Counts the lines that pass through to the writer (an item may hold many)."""

    def __init__(self, lines: Iterable[bytes]):
        self._lines = lines
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self._lines:
            self.count += line.count(b"\n")
            yield line
