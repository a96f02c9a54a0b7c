"""What the tests of both fast paths (`test_postgres_lines`, `test_mysql_lines`) share: exports of
a test's own tables, and the Python path's records to compare the database's lines with."""
from __future__ import annotations

from datetime import timezone
from typing import Any, Callable, Iterator

import orjson
import pytest
import sqlalchemy as sa
from google.cloud.bigquery import SchemaField

from api.db import db
from bq_etl.cadence import Cadence
from bq_etl.manager import ExportShardManager
from bq_etl.run import Shard

WHOLE_TABLE = Shard(0)
ID = SchemaField("id", "INTEGER", "REQUIRED")
UTC = timezone.utc


def built_records(build: Callable[[ExportShardManager, Shard], Iterator[bytes] | None],
                  manager: ExportShardManager, shard: Shard = WHOLE_TABLE) -> list[dict[str, Any]]:
    """The records of the lines a fast path (`build`) makes; fails the test if it does not apply."""
    built = build(manager, shard)
    assert built is not None, "the fast path did not apply"
    try:
        return [orjson.loads(line) for chunk in built for line in chunk.splitlines()]
    finally:
        manager.session.rollback()


def python_records(manager: ExportShardManager, shard: Shard = WHOLE_TABLE) -> list[dict[str, Any]]:
    """The records of the Python path's lines (`to_record`, `records`, `RecordEncoder`)."""
    manager.database_lines = False
    try:
        return [orjson.loads(line) for item in manager.lines(shard) for line in item.splitlines()]
    finally:
        del manager.database_lines


def assert_same_records(fast: list[dict[str, Any]], python: list[dict[str, Any]]) -> None:
    """Equal records, and equal as JSON too: 100 and 100.0, or 0.0 and -0.0, compare equal in
    Python but not once written out (key order aside)."""
    assert fast == python
    assert orjson.dumps(fast, option=orjson.OPT_SORT_KEYS) == orjson.dumps(python, option=orjson.OPT_SORT_KEYS)


def export_of(table: sa.Table, fields: list[SchemaField], zone=UTC, database_lines: bool = True,
              reshaped: bool = False) -> ExportShardManager:
    """An export of every column of `table` (keyed by `id`) with schema `ID + fields`; with
    `reshaped`, through a `to_record` that adds `seen`, the type name of the row's `v`."""

    class TableExport(ExportShardManager):
        table_name = table.name
        cadence = Cadence.HOURLY
        shard_key = table.c.id
        schema = [ID, *fields]  # in place of a schema file
        naive_timestamp_zone = zone

        def query(self) -> sa.Select:
            return sa.select(table)

    TableExport.database_lines = database_lines
    if reshaped:
        TableExport.to_record = lambda self, row: {**row._mapping, "seen": type(row.v).__name__}
        TableExport.schema = [*TableExport.schema, SchemaField("seen", "STRING")]
    return TableExport()


def created(table: sa.Table, rows: list[dict[str, Any]] | None = None, sql_rows: list[str] = ()) -> None:
    """Create `table` and commit `rows` (values) and `sql_rows` (SQL after INSERT INTO table) into
    it: a fast path reads suspect rows again on a connection of its own."""
    with db.engine.begin() as connection:
        table.create(connection)
        for row in rows or ():  # one by one: an executemany would take every row's keys from the first
            connection.execute(table.insert().values(row))
        for values in sql_rows:
            connection.exec_driver_sql(f"INSERT INTO {table.name} {values}")


@pytest.fixture
def metadata(app):
    """A MetaData for the test's own tables, dropped after it."""
    metadata = sa.MetaData()
    yield metadata
    db.session.rollback()
    metadata.drop_all(db.engine)
