"""Every value on every database is exact in BigQuery or refused by name (edge_values.py).

Each database's edge tables (`edges`, and `local_edges`, whose naive timestamps mean London time)
are exported as a new user would (`flask export run`) into the
BigQuery emulator, read back with the official client and compared value by value; where the
emulator differs from BigQuery, the written line is checked instead. Each row of a database's
reject table is exported alone, through every path the database has, and must raise a
RecordError naming that row's key and column; a run of the whole table fails before anything
is loaded.
"""
from __future__ import annotations

import base64
import math
import re
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from api.db import db
from api.tests.edge_values import (
    CORPORA, EXPORTS, UNSET, Column, Edge, Reject, edge_rows, reject_rows, with_every_column,
)
from bq_etl.errors import RecordError
from bq_etl.extension import state
from bq_etl.manager import ExportShardManager
from bq_etl.postgres_lines import postgres_lines
from bq_etl.run import Shard

pytestmark = pytest.mark.export_modules("api.tests.edge_values")
ALL_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql", "mariadb"], indirect=True)


@pytest.fixture
def database(app) -> str:
    """The name the corpus uses for the test's database."""
    return {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mariadb"}[db.engine.dialect.name]


def filled(export: type[ExportShardManager], rows: list[tuple[int, Column, Any]]) -> sa.Table:
    """The export's table, created and holding one row per (id, column, value)."""
    table = export.shard_key.table
    table.drop(db.engine, checkfirst=True)
    table.create(db.engine)
    with db.engine.begin() as connection:
        for row_id, column, value in rows:  # one by one: each row sets a different column
            stored = sa.literal_column(value.sql) if isinstance(value, Reject) else value.stored()
            connection.execute(table.insert().values({"id": row_id, column.name: stored}))
    return table


@pytest.fixture
def tables(database):
    """Drops the test's edge tables afterwards."""
    yield
    db.session.rollback()
    for export in EXPORTS[database].values():
        export.shard_key.table.drop(db.engine, checkfirst=True)


def written(manager: ExportShardManager, shard: Shard = Shard(0)) -> list[dict[str, Any]]:
    """The records of the lines the shard's export writes."""
    return [orjson.loads(line) for item in manager.lines(shard) for line in item.splitlines()]


def same(got: Any, expected: Any) -> bool:
    """Equal and of the same type; floats also in sign (-0.0) and NaN."""
    if type(got) is not type(expected):
        return False
    if isinstance(expected, float):
        if math.isnan(expected):
            return math.isnan(got)
        return got == expected and math.copysign(1, got) == math.copysign(1, expected)
    return got == expected


def mismatches(column: Column, edge: Edge, record: dict[str, Any], got: Any) -> list[str]:
    """What differs for one value: in the written line where the emulator differs, else in BigQuery."""
    if edge.line is not UNSET:
        if column.name not in record or not same(record[column.name], edge.line):
            return [f"{column.name}={edge.value!r}: line holds {record.get(column.name, '(absent)')!r}, "
                    f"expected {edge.line!r}"]
        return []
    expected = edge.bigquery()
    if column.field.field_type == "BYTES" and got is not None:
        got = base64.b64decode(got)  # the emulator keeps the base64 text (BIGQUERY-JSON.md)
    problems = []
    if not same(got, expected):
        problems.append(f"{column.name}={edge.value!r}: BigQuery holds {got!r}, expected {expected!r}")
    if expected is None and column.name in record:
        problems.append(f"{column.name}={edge.value!r}: SQL NULL must be left out of the line, got {record}")
    return problems


@ALL_DATABASES
@pytest.mark.parametrize("kind", ["edges", "local_edges"])
def test_every_edge_value_arrives_in_bigquery_exactly(app, database, tables, kind):
    export = EXPORTS[database][kind]
    rows = edge_rows(CORPORA[kind][database])
    filled(export, rows)
    lines = {record["id"]: record for record in written(with_every_column(export))}

    result = app.test_cli_runner().invoke(args=["export", "run", export.table_name])

    assert result.exit_code == 0, result.output
    assert f"{export.table_name}: loaded, {len(rows)} rows" in result.output
    warehouse = state().warehouse
    loaded = {
        row["id"]: row for row in warehouse.client.query(
            f"SELECT * FROM `{warehouse.table_id(export.table_name)}` ORDER BY id").result()
    }
    assert sorted(loaded) == [row_id for row_id, _, _ in rows]
    problems = [
        problem for row_id, column, edge in rows
        for problem in mismatches(column, edge, lines[row_id], loaded[row_id].get(column.name))
    ]
    assert problems == []


@ALL_DATABASES
@pytest.mark.parametrize("kind", ["rejects", "local_rejects"])
def test_every_reject_row_is_refused_naming_its_key_and_column(app, database, tables, kind):
    export = EXPORTS[database][kind]
    rows = reject_rows(CORPORA[kind][database])
    filled(export, rows)
    refused = []

    for database_lines in (True, False):  # PostgreSQL's fast path, then the Python path alone
        manager = with_every_column(export)
        manager.database_lines = database_lines
        for row_id, column, reject in rows:
            with pytest.raises(RecordError) as caught:
                written(manager, Shard(row_id, lower=row_id - 1, upper=row_id))
            error = caught.value
            refused.append((error.table, error.key, error.column.partition("[")[0], reject.reason in str(error) or str(error)))

    assert refused == [(export.table_name, row_id, column.name, True) for row_id, column, _ in rows] * 2


@ALL_DATABASES
@pytest.mark.parametrize("kind", ["rejects", "local_rejects"])
def test_a_run_with_a_refused_row_fails_before_anything_is_loaded(app, database, tables, kind):
    export = EXPORTS[database][kind]
    rows = reject_rows(CORPORA[kind][database])
    filled(export, rows)

    result = app.test_cli_runner().invoke(args=["export", "run", export.table_name])

    assert result.exit_code != 0
    # The first refusal met stops the run: a row the encoder refuses, or one the driver cannot
    # read (the driver reads ahead of the encoder).
    named = re.search(rf"table {export.table_name!r}, row key (\d+), column '(\w+)'", result.output)
    assert named, result.output
    assert (int(named[1]), named[2]) in {(row_id, column.name) for row_id, column, _ in rows}
    assert state().warehouse.live_schema(export.table_name) is None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresqls_fast_path_writes_the_python_paths_line_for_every_edge(app, tables):
    export = EXPORTS["postgresql"]["edges"]
    filled(export, edge_rows(CORPORA["edges"]["postgresql"]))
    fast, python = with_every_column(export), with_every_column(export)
    python.database_lines = False

    assert postgres_lines(fast, Shard(0)) is not None  # the fast path applies to the table
    fast.session.rollback()
    # As JSON, so 1 and 1.0 or 0.0 and -0.0 differ; object keys sorted (jsonb orders a json's keys).
    assert orjson.dumps(written(fast), option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        written(python), option=orjson.OPT_SORT_KEYS)
