"""Lines built by MariaDB (`mysql_lines`): the Python path's records, the Python path's errors,
and the Python path itself wherever the database could not build the same lines.

Every comparison runs both paths on the same rows: the fast path through `mysql_lines`, the
Python path through `ExportShardManager.lines` with the database's line building turned off.
"""
from __future__ import annotations

import math
import random
import struct
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from google.cloud.bigquery import SchemaField
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import DBAPIError

from api.db import db
from api.tests.fast_paths import (UTC, WHOLE_TABLE, assert_same_records, built_records, created,  # noqa: F401
                                   export_of, metadata, python_records)
from bq_etl.errors import RecordError
from bq_etl.manager import ExportShardManager
from bq_etl.mysql_lines import CHUNK_ROWS, mysql_lines
from bq_etl.run import ExportRun, Shard, new_run_id

on_mariadb = pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)


def fast_records(manager: ExportShardManager, shard: Shard = WHOLE_TABLE) -> list[dict[str, Any]]:
    """The records of the lines the database builds (`mysql_lines`)."""
    return built_records(mysql_lines, manager, shard)


def reread_ids(manager: ExportShardManager) -> list[Any]:
    """The ids the fast path reads again for the Python path, as they are read."""
    ids = []
    lookup = manager.lookup
    manager.lookup = lambda statement: [ids.append(row.id) or row for row in lookup(statement)]
    return ids


@on_mariadb
def test_batches_with_a_suspect_row_or_a_json_value_to_check_are_read_row_by_row(metadata):
    """Five batches over sparse keys: the second holds a suspect row (a control character, which
    MariaDB escapes otherwise), the fourth a JSON value orjson writes otherwise; the others come
    joined by MariaDB."""
    table = sa.Table("long_table", metadata, sa.Column("id", sa.BigInteger, primary_key=True),
                     sa.Column("v", sa.String(20)), sa.Column("doc", sa.JSON))
    rows = 5 * CHUNK_ROWS
    escaped_id, json_id = 3 * CHUNK_ROWS, 7 * CHUNK_ROWS
    created(table, sql_rows=[
        f"SELECT 2 * seq, IF(2 * seq = {escaped_id}, CONCAT('x', CHAR(31)), 'x'), "
        f"IF(2 * seq = {json_id}, '{{\"a\": 1E2}}', '{{\"a\": 1}}') FROM seq_1_to_{rows}",
    ])
    manager = export_of(table, [SchemaField("v", "STRING"), SchemaField("doc", "JSON")])
    reread = reread_ids(manager)

    records = fast_records(manager)

    assert len(records) == rows
    assert reread == [escaped_id, json_id]  # each read again alone, its batch row by row
    assert_same_records(records, python_records(manager))


@on_mariadb
def test_the_stream_reads_batch_by_batch(metadata):
    table = sa.Table("long_table", metadata, sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("v", sa.Text))
    rows = 2 * CHUNK_ROWS + 1
    created(table, sql_rows=[f"SELECT seq, 'x' FROM seq_1_to_{rows}"])

    chunks = [chunk.count(b"\n") for chunk in mysql_lines(export_of(table, [SchemaField("v", "STRING")]), WHOLE_TABLE)]

    assert chunks == [CHUNK_ROWS, CHUNK_ROWS, 1]


@on_mariadb
def test_a_delivery_that_fails_mid_stream_leaves_no_query_building_lines(metadata):
    table = sa.Table("long_table", metadata, sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("v", sa.Text))
    created(table, sql_rows=[f"SELECT seq, 'x' FROM seq_1_to_{20 * CHUNK_ROWS}"])
    manager = export_of(table, [SchemaField("v", "STRING")])
    database = db.engine.url.database

    def busy_connections() -> int:
        with db.engine.connect() as connection:
            return connection.exec_driver_sql(
                "SELECT COUNT(*) FROM information_schema.processlist "
                "WHERE db = %s AND command <> 'Sleep' AND id <> CONNECTION_ID()", (database,)).scalar_one()

    assert busy_connections() == 0

    def deliver(bucket, object_name, lines, gzip_level):
        next(iter(lines))
        raise OSError("the upload failed")

    manager.deliver = deliver
    with pytest.raises(OSError) as failed:  # holds the traceback, and so the stream's frames
        manager.export_shard(ExportRun("long_table", new_run_id()), WHOLE_TABLE, None)

    assert failed.value.args == ("the upload failed",)
    assert busy_connections() == 0  # the building connections' queries ended, not left to the collector


# --- every supported type, at its edges ------------------------------------------------------

EDGE_FIELDS = [
    SchemaField("small", "INTEGER"), SchemaField("big", "INTEGER"), SchemaField("ubig", "INTEGER"),
    SchemaField("bits", "INTEGER"),
    SchemaField("ratio", "FLOAT"), SchemaField("ratio4", "FLOAT"),
    SchemaField("amount", "NUMERIC"), SchemaField("wide", "BIGNUMERIC"), SchemaField("money", "NUMERIC", precision=10, scale=2),
    SchemaField("flag", "BOOLEAN"), SchemaField("tiny", "BOOLEAN"), SchemaField("bit", "BOOLEAN"),
    SchemaField("label", "STRING"), SchemaField("code", "STRING", max_length=8), SchemaField("status", "STRING"),
    SchemaField("blob", "BYTES"),
    SchemaField("instant", "TIMESTAMP"), SchemaField("stamp", "TIMESTAMP"), SchemaField("wall_clock", "DATETIME"),
    SchemaField("coarse", "DATETIME"), SchemaField("day", "DATE"), SchemaField("clock", "TIME"),
    SchemaField("doc", "JSON"),
    SchemaField("padded", "INTEGER"), SchemaField("padded_amount", "NUMERIC"), SchemaField("padded_ratio", "FLOAT"),
]


def edge_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "edge_values", metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("small", sa.Integer), sa.Column("big", sa.BigInteger),
        sa.Column("ubig", mysql.BIGINT(unsigned=True)), sa.Column("bits", mysql.BIT(64)),
        sa.Column("ratio", sa.Double), sa.Column("ratio4", mysql.FLOAT),
        sa.Column("amount", mysql.DECIMAL(65, 9)), sa.Column("wide", mysql.DECIMAL(65, 30)),
        sa.Column("money", sa.Numeric(10, 2)),
        sa.Column("flag", sa.Boolean), sa.Column("tiny", mysql.TINYINT(1)), sa.Column("bit", mysql.BIT(1)),
        sa.Column("label", sa.Text), sa.Column("code", sa.String(8)),
        sa.Column("status", sa.Enum("new", "done", name="edge_status")),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("instant", mysql.DATETIME(fsp=6)), sa.Column("stamp", mysql.TIMESTAMP(fsp=6), nullable=True),
        sa.Column("wall_clock", mysql.DATETIME(fsp=6)), sa.Column("coarse", sa.DateTime),
        sa.Column("day", sa.Date), sa.Column("clock", mysql.TIME(fsp=6)),
        sa.Column("doc", sa.JSON(none_as_null=True)),
        # ZEROFILL pads the text of a number with zeros (0000000042), which no JSON number has.
        sa.Column("padded", mysql.BIGINT(zerofill=True, unsigned=True)),
        sa.Column("padded_amount", mysql.DECIMAL(20, 9, zerofill=True)),
        sa.Column("padded_ratio", mysql.DOUBLE(zerofill=True, asdecimal=False)),
        mysql_charset="utf8mb4",
    )


EDGE_ROWS = [
    {"id": 1},  # every other column NULL
    {
        "id": 2, "small": -(2**31), "big": 2**53 - 1, "ubig": 2**53, "bits": 2**53 + 1, "ratio": 0.1, "ratio4": 1.5,
        "amount": Decimal("-12345678901234567890.123456789"), "wide": Decimal("1E-30"), "money": Decimal("99999999.99"),
        "flag": False, "tiny": 1, "bit": 1,
        "label": 'é "quoted" \\ back \t\n\r\b\f\u2028 🙏 𝄞', "code": "12345678", "status": "new",
        "blob": b"\x00" * 100, "instant": datetime(2024, 1, 1, 23, 59, 59, 999999),
        "stamp": datetime(2024, 3, 10, 2, 30, 0, 5), "wall_clock": datetime(2024, 12, 31, 23, 59, 59, 999999),
        "coarse": datetime(2024, 2, 29, 12, 0, 1), "day": date(1, 1, 1), "clock": time(23, 59, 59, 999999),
        "doc": {"a": [1, None, {"b": "u"}], "big": 2**53 + 1, "f": 0.1, "deep": [[[]]], "e": {}},
    },
    {
        "id": 3, "small": 0, "big": -(2**63), "ubig": 2**63 - 1, "bits": 0, "ratio": 123456789012345.6, "ratio4": 0.0,
        "amount": Decimal("0.000000001"), "wide": Decimal("99999999999999999999999999999999999.5"),
        "money": Decimal("-0.01"), "flag": True, "tiny": 0, "bit": 0, "label": "", "code": "", "status": "done",
        "blob": b"", "instant": datetime(2000, 2, 29), "day": date(9999, 12, 31), "clock": time(0, 0),
        "doc": [["x"] * 3] * 3,
    },
    {"id": 4, "padded": 42, "padded_amount": Decimal("12.5"), "padded_ratio": 1.5, "ratio": 3.0, "ratio4": -2.5, "amount": Decimal("100"), "label": "x" * 5000, "doc": "a string", "clock": time(12, 0, 0, 5)},
    {"id": 5, "padded": 2**53 + 1, "padded_amount": Decimal("0"), "padded_ratio": 0.001, "ratio": 0.00001, "ratio4": 1e-4, "doc": 12, "blob": bytes(range(256)) * 3},
    {"id": 6, "ratio": 999999999999999.0, "doc": False, "label": "ツ" * 100},
    {"id": 7, "ratio": -1e14, "doc": 1.5},
    # Rows the SQL or the chunk check cannot vouch for, so the Python path writes them: floats
    # beyond orjson's plain notation, 64-bit integers beyond int64, datetimes within a day of
    # year 9999, controls MariaDB escapes in upper case, an (allowed) TINYINT(1) of 2, times
    # outside a day.
    {"id": 8, "ratio": 1e15, "ratio4": 2.5e-7},
    {"id": 9, "ratio": 5e-324, "ratio4": 3e38},
    {"id": 10, "instant": datetime(9999, 12, 31, 23, 59, 59, 999999), "wall_clock": datetime(9999, 12, 31)},
    {"id": 11, "label": "\x01 unit \x1f separator \x0b"},
    {"id": 13, "doc": {"max": 2**64 - 1, "min": -(2**63)}},  # built by MariaDB: orjson reads them back
]
# JSON as MariaDB keeps its text: raw UTF-8 beyond the BMP (built by MariaDB); then whitespace
# and newlines, duplicate keys (json.loads keeps the
# last), escapes, exponents, a negative zero, trailing zeros, a bare null, and 30 levels deep
# (MariaDB's JSON_VALID refuses 33, so the encoder's limit of 200 cannot be reached).
EDGE_SQL_ROWS = [
    "(id, flag) VALUES (12, 1)",
    "(id, doc) VALUES (18, '{\"b\": \"ü\", \"sun\": \"🌞\"}')",
    "(id, doc) VALUES (14, '{\"a\": 1,\\n \"a\": 2, \"t\": \"\\\\u00e9\", \"n\": -0.5}')",
    "(id, doc) VALUES (15, '[-0, 1E2, 1.50, 1e-7, \"\\\\ud83c\\\\udf1e\"]')",
    "(id, doc) VALUES (16, '{\"k\": \"\\\\u001F\", \"deep\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}')",
    "(id, doc) VALUES (17, 'null')",
]


@on_mariadb
def test_every_supported_type_at_its_edges_gets_the_python_paths_records(metadata):
    table = edge_table(metadata)
    created(table, EDGE_ROWS, EDGE_SQL_ROWS)
    manager = export_of(table, EDGE_FIELDS)
    reread = reread_ids(manager)

    records = fast_records(manager)

    assert [record["id"] for record in records] == list(range(1, 19))
    assert reread == [8, 9, 10, 11, 14, 15, 16, 17]  # every other line was built by MariaDB
    assert_same_records(records, python_records(manager))


@on_mariadb
def test_a_column_sqlalchemy_converts_keeps_the_python_path(metadata):
    class Lowered(sa.TypeDecorator):
        impl = sa.Text
        cache_ok = True

        def process_result_value(self, value, dialect):
            return value.lower()

    table = sa.Table("converted", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", Lowered))
    created(table, [{"id": 1, "v": "ABC"}])

    assert mysql_lines(export_of(table, [SchemaField("v", "STRING")]), WHOLE_TABLE) is None


@on_mariadb
@pytest.mark.parametrize("zone", [None, ZoneInfo("Europe/Paris")])
def test_naive_timestamps_keep_the_python_path_unless_their_zone_is_a_fixed_offset(metadata, zone):
    table = sa.Table("naive", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.DateTime))
    created(table, [{"id": 1, "v": datetime(2024, 10, 27, 2, 30)}])

    assert mysql_lines(export_of(table, [SchemaField("v", "TIMESTAMP")], zone), WHOLE_TABLE) is None


@on_mariadb
def test_naive_timestamps_in_a_fixed_offset_zone_are_shifted_to_utc(metadata):
    table = sa.Table("naive", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", mysql.DATETIME(fsp=6)))
    created(table, [{"id": 1, "v": datetime(2024, 1, 1, 1, 30)}, {"id": 2, "v": datetime(1000, 1, 1, 6, 0, 0, 7)}])
    manager = export_of(table, [SchemaField("v", "TIMESTAMP")], timezone(timedelta(hours=5, minutes=30)))

    records = fast_records(manager)

    assert records == [{"id": 1, "v": "2023-12-31T20:00:00.000000Z"}, {"id": 2, "v": "1000-01-01T00:30:00.000007Z"}]
    assert_same_records(records, python_records(manager))


@on_mariadb
@pytest.mark.parametrize("zone", [UTC, None, ZoneInfo("Europe/London"), timezone(timedelta(hours=5, minutes=30))])
def test_a_timestamp_column_is_its_instant_whatever_the_naive_zone(metadata, zone):
    """A MariaDB TIMESTAMP is an instant, not a naive time: London's repeated and skipped hours
    are instants in UTC like any other, and no declared zone shifts them."""
    table = sa.Table("instants", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("v", mysql.TIMESTAMP(fsp=6), nullable=True))
    created(table, sql_rows=["VALUES (1, CONVERT_TZ('2024-10-27 01:30:00.000001', '+00:00', @@session.time_zone)), "
                             "(2, CONVERT_TZ('2024-03-31 01:30:00', '+00:00', @@session.time_zone))"])
    manager = export_of(table, [SchemaField("v", "TIMESTAMP")], zone)

    records = fast_records(manager)

    assert records == [{"id": 1, "v": "2024-10-27T01:30:00.000001Z"}, {"id": 2, "v": "2024-03-31T01:30:00.000000Z"}]
    assert_same_records(records, python_records(manager))


@on_mariadb
def test_a_decimal_column_finer_than_its_field_keeps_the_python_path(metadata):
    table = sa.Table("fine", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Numeric(12, 4)))
    created(table, [{"id": 1, "v": Decimal("1.5")}])

    assert mysql_lines(export_of(table, [SchemaField("v", "NUMERIC", precision=10, scale=2)]), WHOLE_TABLE) is None


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
    ("integer-beyond-int64", mysql.BIGINT(unsigned=True), SchemaField("v", "INTEGER"), "9223372036854775808",
     "9223372036854775807", UTC),
    ("bit-beyond-int64", mysql.BIT(64), SchemaField("v", "INTEGER"), "b'1000000000000000000000000000000000000000000000000000000000000000'",
     "b'111'", UTC),
    ("numeric-too-large", mysql.DECIMAL(65, 0), SchemaField("v", "NUMERIC"), "1" + "0" * 29, "9" * 29, UTC),
    ("bignumeric-too-large", mysql.DECIMAL(65, 0), SchemaField("v", "BIGNUMERIC"), "6" + "0" * 38, "9" * 38, UTC),
    ("numeric-parameters", sa.Numeric(10, 2), SchemaField("v", "NUMERIC", precision=5, scale=2), "1234.5", "123.45", UTC),
    ("unsigned-numeric-parameters", mysql.DECIMAL(6, 2, unsigned=True), SchemaField("v", "NUMERIC", precision=5, scale=2),
     "1234.5", "999.99", UTC),
    ("boolean-tinyint-2", mysql.TINYINT(1), SchemaField("v", "BOOLEAN"), "2", "1", UTC),
    ("boolean-sqlalchemy-2", sa.Boolean(create_constraint=False), SchemaField("v", "BOOLEAN"), "2", "0", UTC),
    ("boolean-bit-2", mysql.BIT(2), SchemaField("v", "BOOLEAN"), "b'10'", "b'01'", UTC),
    ("string-too-long", sa.Text, SchemaField("v", "STRING", max_length=3), "'abcé'", "'ab🙏'", UTC),
    ("bytes-too-long", sa.LargeBinary, SchemaField("v", "BYTES", max_length=2), "x'010203'", "x'0102'", UTC),
    ("enum-unknown-label", sa.Enum("a", "b", native_enum=False, create_constraint=False),
     SchemaField("v", "STRING"), "'c'", "'a'", UTC),
    ("enum-label-in-another-case", sa.Enum("a", "b", native_enum=False, create_constraint=False),
     SchemaField("v", "STRING"), "'A'", "'b'", UTC),
    ("zero-datetime", sa.DateTime, SchemaField("v", "DATETIME"), "'0000-00-00 00:00:00'", "'1000-01-01'", UTC),
    ("zero-month", sa.DateTime, SchemaField("v", "TIMESTAMP"), "'2024-00-10 00:00:00'", "'2024-01-10'", UTC),
    ("zero-date", sa.Date, SchemaField("v", "DATE"), "'2024-01-00'", "'2024-01-01'", UTC),
    # ALLOW_INVALID_DATES keeps any day from 1 to 31, whatever the month.
    ("day-past-the-month", sa.Date, SchemaField("v", "DATE"), "'2024-02-30'", "'2024-02-29'", UTC),
    ("datetime-day-past-the-month", sa.DateTime, SchemaField("v", "DATETIME"), "'2023-02-29 10:00:00'",
     "'2023-02-28 23:59:59'", UTC),
    ("timestamp-day-past-the-month", mysql.DATETIME(fsp=6), SchemaField("v", "TIMESTAMP"), "'2024-04-31 00:00:00'",
     "'2024-04-30 23:59:59.999999'", UTC),
    ("json-above-uint64", sa.JSON, SchemaField("v", "JSON"), """'{"n": [18446744073709551616]}'""",
     """'{"n": [18446744073709551615]}'""", UTC),
    ("json-below-int64", sa.JSON, SchemaField("v", "JSON"), "'-9223372036854775809'", "'-9223372036854775808'", UTC),
    ("json-float-beyond-double", sa.JSON, SchemaField("v", "JSON"), "'1.5e400'", "'1.5'", UTC),
    ("json-digits-beyond-double", sa.JSON, SchemaField("v", "JSON"), "'[1.00000000000000001]'",
     "'[1.0000000000000002]'", UTC),
    ("json-below-the-smallest-double", sa.JSON, SchemaField("v", "JSON"), """'{"a": 2.4e-324}'""",
     """'{"a": 5e-324}'""", UTC),
    ("json-null-in-required", sa.JSON, SchemaField("v", "JSON", "REQUIRED"), "'null'", "'{}'", UTC),
]


@on_mariadb
@pytest.mark.parametrize(
    "column_type, field, bad, good, zone", [case[1:] for case in VIOLATIONS], ids=[case[0] for case in VIOLATIONS],
)
def test_a_row_that_does_not_fit_raises_the_python_paths_error(metadata, column_type, field, bad, good, zone):
    table = sa.Table("violations", metadata, sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("v", column_type))
    with db.engine.begin() as connection:
        # Lets zero dates and days past the month's end in, as old data has them.
        connection.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        table.create(connection)
        connection.exec_driver_sql(f"INSERT INTO violations VALUES (1, {good}), (2, {bad}), (3, {good})")
    manager = export_of(table, [field], zone)

    with pytest.raises(Exception) as fast:
        fast_records(manager)
    with pytest.raises(Exception) as python:
        python_records(manager)

    same_error(fast.value, python.value)
    if isinstance(python.value, RecordError):
        assert (python.value.key, python.value.column.partition("[")[0]) == (2, "v")
        assert python.value.reason  # says why, and what to do


def outcome(read) -> Any:
    """The records `read()` gives, or the error it raises, in a form two paths compare by."""
    try:
        return read()
    except DBAPIError as e:
        return type(e.orig), str(e.orig)
    except Exception as e:
        return type(e), str(e)


@on_mariadb
@pytest.mark.parametrize("value", ["'-00:00:00.000001'", "'-12:00:00'", "'24:00:00'", "'838:59:59'"])
def test_a_time_outside_one_day_goes_to_the_python_path(metadata, value):
    """Whether the Python path refuses such a TIME or folds it into a day (SQLAlchemy's TIME
    did), the fast path hands it over and ends as it does."""
    table = sa.Table("times", metadata, sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("v", mysql.TIME(fsp=6)))
    created(table, sql_rows=[f"VALUES (1, '23:59:59.999999'), (2, {value}), (3, '00:00:00')"])
    manager = export_of(table, [SchemaField("v", "TIME")])
    reread = reread_ids(manager)

    fast = outcome(lambda: fast_records(manager))

    assert reread == [2]
    assert fast == outcome(lambda: python_records(manager))


@on_mariadb
@pytest.mark.parametrize(
    "column_type, field, good, zone", [(case[1], case[2], case[4], case[5]) for case in VIOLATIONS],
    ids=[case[0] for case in VIOLATIONS],
)
def test_the_good_values_beside_each_violation_get_the_python_paths_records(metadata, column_type, field, good, zone):
    table = sa.Table("violations", metadata, sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("v", column_type))
    created(table, sql_rows=[f"VALUES (1, {good}), (2, {good})"])
    manager = export_of(table, [field], zone)
    reread = reread_ids(manager)

    assert_same_records(fast_records(manager), python_records(manager))
    assert reread == []  # built by MariaDB, not by the Python path


@on_mariadb
def test_floats_across_their_range_get_the_python_paths_records(metadata):
    """MariaDB and orjson write most doubles alike: thousands of them, from bit patterns, short
    decimals and powers of ten, land on the same records either way."""
    generator = random.Random(13)
    values = []
    while len(values) < 3000:
        kind = len(values) % 3
        if kind == 0:
            value = struct.unpack("d", generator.getrandbits(64).to_bytes(8, "little"))[0]
        elif kind == 1:
            value = round(generator.uniform(-1e6, 1e6), generator.randint(0, 8))
        else:
            value = generator.uniform(-1, 1) * 10.0 ** generator.randint(-12, 20)
        if math.isfinite(value):
            values.append(value)
    table = sa.Table("floats", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("d", sa.Double), sa.Column("f", mysql.FLOAT))
    with db.engine.begin() as connection:
        table.create(connection)
        connection.execute(table.insert(), [
            {"id": index, "d": value, "f": value if abs(value) < 3e38 else None} for index, value in enumerate(values, 1)
        ])
    manager = export_of(table, [SchemaField("d", "FLOAT"), SchemaField("f", "FLOAT")])
    reread = reread_ids(manager)

    records = fast_records(manager)

    assert len(records) == len(values)
    assert len(reread) < len(values) / 2  # most lines were built by MariaDB
    assert_same_records(records, python_records(manager))


@on_mariadb
def test_rows_of_megabytes_stream_through(metadata):
    """Rows of a third of max_allowed_packet each, more than one packet's worth in all."""
    table = sa.Table("wide", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text(2**32 - 1)))
    packet = db.session.execute(sa.text("SELECT @@max_allowed_packet")).scalar_one()
    size = packet // 3
    created(table, sql_rows=[f"VALUES ({id}, REPEAT('{letter}', {size}))" for id, letter in [(1, "a"), (2, "b"), (3, "c"), (4, "d")]])
    manager = export_of(table, [SchemaField("v", "STRING")])
    reread = reread_ids(manager)

    records = fast_records(manager)

    assert [len(record["v"]) for record in records] == [size] * 4
    assert reread == []
    assert_same_records(records, python_records(manager))
