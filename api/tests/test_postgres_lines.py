"""Lines built by PostgreSQL (`postgres_lines`): the Python path's records, the Python path's
errors, and the Python path itself wherever the database could not build the same lines.

Every comparison runs both paths on the same rows: the fast path through `postgres_lines`, the
Python path through `ExportShardManager.lines` with `postgres_lines` turned off. Memory is not
timed here: the fast path streams its rows, at most CHUNK_ROWS at a time (the bench measures
the peak; test_postgres_reading covers both ways of streaming).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from google.cloud.bigquery import SchemaField
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DBAPIError

from api.tests.fast_paths import (UTC, WHOLE_TABLE, assert_same_records, built_records, created,  # noqa: F401
                                   export_of, metadata, python_records)
from bq_etl.errors import RecordError
from bq_etl.manager import ExportShardManager
from bq_etl.postgres_lines import postgres_lines
from bq_etl.run import Shard

on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def fast_records(manager: ExportShardManager, shard: Shard = WHOLE_TABLE) -> list[dict[str, Any]]:
    """The records of the lines the database builds (`postgres_lines`)."""
    return built_records(postgres_lines, manager, shard)


# --- every supported type, at its edges ------------------------------------------------------

EDGE_FIELDS = [
    SchemaField("small", "INTEGER"), SchemaField("big", "INTEGER"),
    SchemaField("ratio", "FLOAT"), SchemaField("ratio4", "FLOAT"),
    SchemaField("amount", "NUMERIC"), SchemaField("wide", "BIGNUMERIC"), SchemaField("money", "NUMERIC", precision=10, scale=2),
    SchemaField("flag", "BOOLEAN"),
    SchemaField("label", "STRING"), SchemaField("code", "STRING", max_length=8), SchemaField("status", "STRING"),
    SchemaField("blob", "BYTES"),
    SchemaField("instant", "TIMESTAMP"), SchemaField("naive_instant", "TIMESTAMP"), SchemaField("wall_clock", "DATETIME"),
    SchemaField("day", "DATE"), SchemaField("clock", "TIME"),
    SchemaField("doc", "JSON"), SchemaField("raw_doc", "JSON"),
    SchemaField("tags", "STRING", "REPEATED"), SchemaField("counts", "INTEGER", "REPEATED"),
    SchemaField("flags", "BOOLEAN", "REPEATED"),
]


def edge_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "edge_values", metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("small", sa.Integer), sa.Column("big", sa.BigInteger),
        sa.Column("ratio", sa.Double), sa.Column("ratio4", sa.REAL),
        sa.Column("amount", sa.Numeric), sa.Column("wide", sa.Numeric), sa.Column("money", sa.Numeric(10, 2)),
        sa.Column("flag", sa.Boolean),
        sa.Column("label", sa.Text), sa.Column("code", sa.String(8)),
        sa.Column("status", sa.Enum("new", "done", name="edge_status")),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("instant", sa.DateTime(timezone=True)), sa.Column("naive_instant", sa.DateTime),
        sa.Column("wall_clock", sa.DateTime), sa.Column("day", sa.Date), sa.Column("clock", sa.Time),
        sa.Column("doc", JSONB), sa.Column("raw_doc", sa.JSON(none_as_null=True)),
        sa.Column("tags", ARRAY(sa.Text)), sa.Column("counts", ARRAY(sa.Integer)), sa.Column("flags", ARRAY(sa.Boolean)),
    )


EDGE_ROWS = [
    {"id": 1},  # every other column NULL
    {
        "id": 2, "small": -(2**31), "big": 2**53 - 1, "ratio": -0.0, "ratio4": 1.5,
        "amount": Decimal("-12345678901234567890.123456789"), "wide": Decimal("1E-38"), "money": Decimal("99999999.99"),
        "flag": False, "label": 'é "quoted" \\ back \x01\x1f\t\n\u2028 🙏', "code": "12345678", "status": "new",
        "blob": b"\x00" * 100, "instant": datetime(2024, 1, 1, 23, 59, 59, 999999, tzinfo=UTC),
        "naive_instant": datetime(2024, 3, 10, 2, 30), "wall_clock": datetime(2024, 12, 31, 23, 59, 59, 999999),
        "day": date(1, 1, 1), "clock": time(23, 59, 59, 999999),
        "doc": {"a": [1, None, {"b": "ü"}], "big": 2**53 + 1, "f": 0.1, "deep": [[[]]], "e": {}},
        "raw_doc": {"z": 1, "a": "ツ"}, "tags": ['a"b', "", "é"], "counts": [0, -1, 2**31 - 1], "flags": [True, False],
    },
    {
        "id": 3, "small": 0, "big": 2**53, "ratio": float("nan"), "ratio4": float("inf"),
        "amount": Decimal("0.000000001"), "wide": Decimal("99999999999999999999999999999999999999"),
        "money": Decimal("-0.01"), "flag": True, "label": "", "code": "", "status": "done", "blob": b"",
        "instant": datetime(2000, 2, 29, tzinfo=UTC), "day": date(9999, 12, 31), "clock": time(0, 0),
        "doc": None,  # JSONB's default none_as_null=False: a JSON null, written as null by both paths
        "tags": [], "flags": [],
    },
    {
        "id": 4, "big": -(2**63), "ratio": float("-inf"), "ratio4": -0.0, "amount": Decimal("1E+2"),
        "wide": Decimal("-0.5"), "label": "x" * 5000, "doc": [[[[[[[[[[1]]]]]]]]]], "raw_doc": 1.5,
    },
    {"id": 5, "big": 2**63 - 1, "ratio": 5e-324, "ratio4": 3.0, "doc": [["x"] * 3] * 3, "raw_doc": "text"},
    {"id": 6, "ratio": 1e300, "ratio4": 0.1, "doc": "a string", "raw_doc": False},
    {"id": 7, "ratio": 3.0, "doc": 12},
    {"id": 8, "ratio": 123456789012345.6},
    # Numbers of 17 digits and points a double holds: written by PostgreSQL, FLOAT or JSON.
    {"id": 9, "ratio": 1e15, "doc": [0.30000000000000004, 123456789.12345678, -2.5e-05]},
    # Rows the SQL cannot vouch for, so the Python path writes them: instants within a day of
    # years 1 and 9999, a long digit run inside a string (merely over-flagged), an emoji a json
    # column holds as surrogate escapes (and rows 4 and 7, a JSON column holding just a number,
    # which the number scan takes for a FLOAT's); JSON integers of 20 and 19 digits within
    # uint64/int64 are written by PostgreSQL.
    {
        "id": 10, "instant": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "naive_instant": datetime(1, 1, 1), "wall_clock": datetime(9999, 12, 31, 23, 59, 59, 999999),
    },
    {"id": 11, "doc": {"max": 2**64 - 1, "min": -(2**63)}},
    {"id": 12, "doc": {"s": "id 12345678901234567890123"}},
    {"id": 13, "raw_doc": {"sun": "🌞"}},
]
# json (not jsonb) keeps its text: duplicate keys and whitespace with newlines (jsonb reads
# them as json.loads does), then \u0000 and exponents (read by the Python path), then a scalar
# at the 200th level, which the encoder allows (the depth check over-flags it).
EDGE_SQL_ROWS = [
    f"VALUES ({id}, {', '.join(['NULL'] * 17)}, {doc}, {raw_doc}, NULL, NULL, NULL)" for id, doc, raw_doc in [
        (14, "NULL", """'{"a": 1,\n "a": 2, "t": "\\u00e9", "n": -0.5}'"""),
        (15, "NULL", """'["\\u0000", -0.0, 1E2]'"""),
        (16, "'" + "[" * 200 + "1" + "]" * 200 + "'", "NULL"),
    ]
]


@on_postgresql
def test_every_supported_type_at_its_edges_gets_the_python_paths_records(metadata):
    table = edge_table(metadata)
    created(table, EDGE_ROWS, EDGE_SQL_ROWS)
    manager = export_of(table, EDGE_FIELDS)
    reread = []
    lookup = manager.lookup
    manager.lookup = lambda statement: [reread.append(row.id) or row for row in lookup(statement)]

    records = fast_records(manager)

    assert [record["id"] for record in records] == list(range(1, 17))
    assert reread == [4, 7, 10, 12, 13, 15, 16]  # every other line was built by PostgreSQL
    assert_same_records(records, python_records(manager))


@on_postgresql
def test_arrays_of_json_keep_the_python_path(metadata):
    table = sa.Table("docs", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", ARRAY(JSONB)))
    created(table, sql_rows=["""VALUES (1, ARRAY['[1, 2]', '{"a": 1}']::jsonb[])"""])
    manager = export_of(table, [SchemaField("v", "JSON", "REPEATED")])

    assert postgres_lines(manager, WHOLE_TABLE) is None
    assert python_records(manager) == [{"id": 1, "v": [[1, 2], {"a": 1}]}]


@on_postgresql
def test_a_column_sqlalchemy_converts_keeps_the_python_path(metadata):
    class Lowered(sa.TypeDecorator):
        impl = sa.Text
        cache_ok = True

        def process_result_value(self, value, dialect):
            return value.lower()

    table = sa.Table("converted", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", Lowered))
    created(table, [{"id": 1, "v": "ABC"}])

    assert postgres_lines(export_of(table, [SchemaField("v", "STRING")]), WHOLE_TABLE) is None


@on_postgresql
@pytest.mark.parametrize("zone", [None, ZoneInfo("Europe/Paris")])
def test_naive_timestamps_keep_the_python_path_unless_their_zone_is_a_fixed_offset(metadata, zone):
    table = sa.Table("naive", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.DateTime))
    created(table, [{"id": 1, "v": datetime(2024, 10, 27, 2, 30)}])

    assert postgres_lines(export_of(table, [SchemaField("v", "TIMESTAMP")], zone), WHOLE_TABLE) is None


@on_postgresql
def test_naive_timestamps_in_a_fixed_offset_zone_are_shifted_to_utc(metadata):
    table = sa.Table("naive", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.DateTime))
    created(table, [{"id": 1, "v": datetime(2024, 1, 1, 1, 30)}, {"id": 2, "v": datetime(1, 1, 1, 6, 0)}])
    manager = export_of(table, [SchemaField("v", "TIMESTAMP")], timezone(timedelta(hours=5, minutes=30)))

    records = fast_records(manager)

    assert records == [{"id": 1, "v": "2023-12-31T20:00:00.000000Z"}, {"id": 2, "v": "0001-01-01T00:30:00.000000Z"}]
    assert_same_records(records, python_records(manager))


# --- rows the encoder refuses ----------------------------------------------------------------

def same_error(fast: BaseException, python: BaseException) -> None:
    """Assert both paths raised the same error. SQLAlchemy's wrapper of a driver error quotes
    the statement, which differs (the fast path reads the one row again): compare the driver's."""
    if isinstance(python, DBAPIError):
        assert type(fast) is type(python)
        fast, python = fast.orig, python.orig
    assert type(fast) is type(python)
    assert str(fast) == str(python)


VIOLATIONS = [
    # (id, column type, schema field, bad value as SQL, good value as SQL, naive zone)
    ("null-in-required", sa.Text, SchemaField("v", "STRING", "REQUIRED"), "NULL", "'x'", UTC),
    ("numeric-scale", sa.Numeric, SchemaField("v", "NUMERIC"), "1.0000000001", "1.5", UTC),
    ("numeric-too-large", sa.Numeric, SchemaField("v", "NUMERIC"), "1e29", "-1e28", UTC),
    ("numeric-nan", sa.Numeric, SchemaField("v", "NUMERIC"), "'NaN'", "0", UTC),
    ("numeric-infinity", sa.Numeric, SchemaField("v", "NUMERIC"), "'-Infinity'", "0", UTC),
    ("bignumeric-too-large", sa.Numeric, SchemaField("v", "BIGNUMERIC"), "6e38", "5e38", UTC),
    ("numeric-parameters", sa.Numeric, SchemaField("v", "NUMERIC", precision=5, scale=2), "1234.5", "123.45", UTC),
    ("numeric-narrower-than-column", sa.Numeric(10, 2), SchemaField("v", "NUMERIC", precision=5, scale=2),
     "1234.50", "999.99", UTC),
    ("numeric-nan-in-typed-column", sa.Numeric(10, 2), SchemaField("v", "NUMERIC"), "'NaN'", "1.5", UTC),
    ("string-too-long", sa.Text, SchemaField("v", "STRING", max_length=3), "'abcé'", "'abé'", UTC),
    ("bytes-too-long", sa.LargeBinary, SchemaField("v", "BYTES", max_length=2), "'\\x010203'", "'\\x0102'", UTC),
    ("enum-unknown-label", sa.Enum("a", "b", native_enum=False, create_constraint=False),
     SchemaField("v", "STRING"), "'c'", "'a'", UTC),
    ("timestamp-infinity", sa.DateTime(timezone=True), SchemaField("v", "TIMESTAMP"), "'infinity'",
     "'2024-01-01 00:00+00'", UTC),
    ("timestamp-bc", sa.DateTime(timezone=True), SchemaField("v", "TIMESTAMP"), "'0001-12-31 23:00+00 BC'",
     "'0001-01-01 00:00+00'", UTC),
    ("naive-timestamp-before-year-1-in-utc", sa.DateTime, SchemaField("v", "TIMESTAMP"), "'0001-01-01 01:00'",
     "'0001-01-01 03:00'", timezone(timedelta(hours=2))),
    ("datetime-year-10000", sa.DateTime, SchemaField("v", "DATETIME"), "'10000-01-01'", "'9999-12-31'", UTC),
    ("date-infinity", sa.Date, SchemaField("v", "DATE"), "'-infinity'", "'0001-01-01'", UTC),
    ("time-24", sa.Time, SchemaField("v", "TIME"), "'24:00:00'", "'23:59:59.999999'", UTC),
    ("array-null-element", ARRAY(sa.Text), SchemaField("v", "STRING", "REPEATED"), "ARRAY['a', NULL]",
     "ARRAY['a']", UTC),
    ("array-of-arrays", ARRAY(sa.Integer), SchemaField("v", "INTEGER", "REPEATED"), "'{{1,2},{3,4}}'", "'{1}'", UTC),
    ("json-above-uint64", JSONB, SchemaField("v", "JSON"), """'{"n": [18446744073709551616]}'""",
     """'{"n": [18446744073709551615]}'""", UTC),
    ("json-below-int64", JSONB, SchemaField("v", "JSON"), "'-9223372036854775809'", "'-9223372036854775808'", UTC),
    ("json-float-beyond-double", JSONB, SchemaField("v", "JSON"), "'1.5e400'", "'1.5'", UTC),
    # jsonb keeps each digit: the line would hold a number BigQuery refuses, no double being it.
    ("json-digits-beyond-double", JSONB, SchemaField("v", "JSON"), "'[1.00000000000000001]'",
     "'[1.0000000000000002]'", UTC),
    ("json-below-the-smallest-double", JSONB, SchemaField("v", "JSON"), """'{"a": 2.4e-324}'""",
     """'{"a": 5e-324}'""", UTC),
    ("json-scalar-digits-beyond-double", JSONB, SchemaField("v", "JSON"), "'1.00000000000000001'",
     "'1.0000000000000002'", UTC),
    ("json-text-digits-beyond-double", sa.JSON, SchemaField("v", "JSON"), "'3.141592653589793238462643383279'",
     "'3.141592653589793'", UTC),
    ("json-text-below-the-smallest-double", sa.JSON, SchemaField("v", "JSON"), "'[1e-400]'", "'[1e-300]'", UTC),
    ("json-too-deep", JSONB, SchemaField("v", "JSON"), "'" + "[" * 201 + "]" * 201 + "'",
     "'" + "[" * 200 + "]" * 200 + "'", UTC),
    ("json-null-in-required", JSONB, SchemaField("v", "JSON", "REQUIRED"), "'null'", "'{}'", UTC),
    ("json-text-lone-surrogate", sa.JSON, SchemaField("v", "JSON"), """'"\\ud800"'""", """'"\\u00e9"'""", UTC),
    ("json-text-beyond-numeric", sa.JSON, SchemaField("v", "JSON"), "'[1e200000]'", "'[1e300]'", UTC),
    ("json-text-above-uint64", sa.JSON, SchemaField("v", "JSON"), "'{\"n\": 18446744073709551616}'",
     "'{\"n\": 2e19}'", UTC),
]


@on_postgresql
@pytest.mark.parametrize(
    "column_type, field, bad, good, zone", [case[1:] for case in VIOLATIONS], ids=[case[0] for case in VIOLATIONS],
)
def test_a_row_that_does_not_fit_raises_the_python_paths_error(metadata, column_type, field, bad, good, zone):
    table = sa.Table("violations", metadata, sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("v", column_type))
    created(table, sql_rows=[f"VALUES (1, {good}), (2, {bad}), (3, {good})"])
    manager = export_of(table, [field], zone)

    with pytest.raises(Exception) as fast:
        fast_records(manager)
    with pytest.raises(Exception) as python:
        python_records(manager)

    same_error(fast.value, python.value)
    if isinstance(python.value, RecordError):
        assert (python.value.key, python.value.column.partition("[")[0]) == (2, "v")


@on_postgresql
@pytest.mark.parametrize(
    "column_type, field, good, zone", [(case[1], case[2], case[4], case[5]) for case in VIOLATIONS],
    ids=[case[0] for case in VIOLATIONS],
)
def test_the_good_values_beside_each_violation_get_the_python_paths_records(metadata, column_type, field, good, zone):
    table = sa.Table("violations", metadata, sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("v", column_type))
    created(table, sql_rows=[f"VALUES (1, {good}), (2, {good})"])
    manager = export_of(table, [field], zone)

    assert_same_records(fast_records(manager), python_records(manager))
