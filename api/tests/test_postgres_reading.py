"""How `postgres_lines` reads its line query's rows: a plain cursor's stream, in chunks where
psycopg and libpq offer it (psycopg 3.2 with libpq 17), else row by row (psycopg 3.1, or an
older system libpq). CI's psycopg streams in chunks, so each test here runs both ways;
`make test-install` runs the second on psycopg 3.1 itself.
"""
from __future__ import annotations

import orjson
import psycopg
import pytest
import sqlalchemy as sa
from google.cloud.bigquery import SchemaField
from sqlalchemy.dialects.postgresql import JSONB

from api.db import db
from api.tests.fast_paths import WHOLE_TABLE, assert_same_records, created, export_of, metadata, python_records  # noqa: F401
from api.tests.test_postgres_lines import EDGE_FIELDS, EDGE_ROWS, EDGE_SQL_ROWS, edge_table, fast_records
from bq_etl import postgres_lines as module
from bq_etl.errors import RecordError
from bq_etl.postgres_lines import CHUNK_ROWS, postgres_lines

on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

#: 2.5 chunks of rows.
ROWS = 5 * CHUNK_ROWS // 2
#: Rows whose JSON is a bare number (suspect, left to the Python path, yet accepted), in chunks 1 and 2.
SUSPECT = [1999, 3998]
#: The one row whose `w` is longer than 8 characters, in chunk 2.
TOO_LONG = 3000


@pytest.fixture(params=[True, False], ids=["in-chunks", "row-by-row"])
def chunked(request, monkeypatch) -> bool:
    """Which way `postgres_lines` reads (the chunked stream only where this psycopg has it)."""
    if request.param and not module._has_chunked_stream():
        pytest.skip("this psycopg or libpq has no chunked stream")
    monkeypatch.setattr(module, "_CHUNKED_STREAM", request.param)
    return request.param


def test_the_stream_is_chunked_exactly_where_psycopg_and_libpq_offer_it():
    major_minor = tuple(int(part) for part in psycopg.__version__.split(".")[:2])

    assert module._CHUNKED_STREAM == (major_minor >= (3, 2) and psycopg.pq.version() >= 170000)


@on_postgresql
def test_each_way_gets_the_python_paths_records_at_every_edge(metadata, chunked):
    table = edge_table(metadata)
    created(table, EDGE_ROWS, EDGE_SQL_ROWS)
    manager = export_of(table, EDGE_FIELDS)

    assert_same_records(fast_records(manager), python_records(manager))


def long_table(metadata: sa.MetaData) -> sa.Table:
    table = sa.Table("long_table", metadata, sa.Column("id", sa.BigInteger, primary_key=True),
                     sa.Column("v", sa.Text), sa.Column("j", JSONB), sa.Column("w", sa.Text))
    created(table, sql_rows=[
        f"SELECT g, 'v' || g, "
        f"""CASE WHEN mod(g, 1999) = 0 THEN '12' ELSE '{{"n": 1}}' END::jsonb, """
        f"CASE WHEN g = {TOO_LONG} THEN repeat('w', 9) ELSE 'w' END FROM generate_series(1, {ROWS}) g"
    ])
    return table


@on_postgresql
def test_each_way_yields_chunks_of_chunk_rows_lines_with_suspect_rows_written_in_place(metadata, chunked):
    manager = export_of(long_table(metadata), [
        SchemaField("v", "STRING", "REQUIRED"), SchemaField("j", "JSON"), SchemaField("w", "STRING")])
    reread = []
    lookup = manager.lookup
    manager.lookup = lambda statement: [reread.append(row.id) or row for row in lookup(statement)]

    chunks = list(postgres_lines(manager, WHOLE_TABLE))
    db.session.rollback()

    assert [chunk.count(b"\n") for chunk in chunks] == [CHUNK_ROWS, CHUNK_ROWS, ROWS - 2 * CHUNK_ROWS]
    assert reread == SUSPECT
    assert_same_records([orjson.loads(line) for chunk in chunks for line in chunk.splitlines()],
                        python_records(manager))


@on_postgresql
def test_each_way_stops_on_a_violation_in_a_later_chunk_and_leaves_the_session_usable(metadata, chunked):
    table = long_table(metadata)
    manager = export_of(table, [
        SchemaField("v", "STRING", "REQUIRED"), SchemaField("j", "JSON"), SchemaField("w", "STRING", max_length=8)])

    with pytest.raises(RecordError) as raised:
        list(manager.lines(WHOLE_TABLE))

    assert (raised.value.key, raised.value.column) == (TOO_LONG, "w")
    assert db.session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == ROWS


@on_postgresql
def test_each_way_cancels_its_query_when_the_export_stops_after_the_first_chunk(metadata, chunked):
    table = long_table(metadata)
    fields = [SchemaField("v", "STRING"), SchemaField("j", "JSON"), SchemaField("w", "STRING")]
    built = postgres_lines(export_of(table, fields), WHOLE_TABLE)

    first = next(built)
    built.close()

    assert first.count(b"\n") == CHUNK_ROWS
    assert db.session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == ROWS
