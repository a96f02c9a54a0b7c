"""Edge-value tables, one per database, and the exports that load them: each BigQuery type's
edge values as a new user would store them (see test_edge_values.py), and per database a table
of values that must be refused by name. The `local_` tables are exported with naive timestamps
meaning London time (`naive_timestamp_zone`), and hold what the fast paths leave to the Python
path (such a zone, PostgreSQL's jsonb[], money and bit, MariaDB's SET), so the other tables keep
the fast paths.

A table has one column per kind of value and one row per value: row `id` holds the value in
its column, every other column NULL. `Edge.expected` is what the official BigQuery client reads
back; where the emulator differs from BigQuery (../shared/EMULATORS.md, BIGQUERY-JSON.md), the
test checks the written line instead (`Edge.line`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from google.cloud.bigquery import SchemaField
from sqlalchemy.dialects import mysql, postgresql

from bq_etl.cadence import Cadence
from bq_etl.manager import ExportShardManager

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")
SAME = object()  # Edge.expected: BigQuery gives the stored value back
UNSET = object()


@dataclass(frozen=True)
class Edge:
    """One value: stored as `value` (Python, through SQLAlchemy) or `sql` (SQL text, as written)."""

    value: Any = None
    expected: Any = SAME
    sql: str | None = None
    #: The value the written line holds, checked instead of BigQuery where the emulator differs.
    line: Any = UNSET

    def stored(self) -> Any:
        """What the row is inserted with."""
        return sa.literal_column(self.sql) if self.sql is not None else self.value

    def bigquery(self) -> Any:
        """What the BigQuery client reads back."""
        return self.value if self.expected is SAME else self.expected


@dataclass(frozen=True)
class Reject:
    """A value the export must refuse, naming this row and column; `reason` is part of the message."""

    sql: str
    reason: str


@dataclass(frozen=True)
class Column:
    """A column of an edge table: its type, its schema field and its values (a row each)."""

    name: str
    type: Any
    field: SchemaField
    edges: list[Edge] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def _f(name: str, kind: str, mode: str = "NULLABLE", **options: Any) -> SchemaField:
    return SchemaField(name, kind, mode, **options)


def _e(*values: Any) -> list[Edge]:
    """Edges that come back as stored."""
    return [Edge(value) for value in values]


_JSON_DOC = {"a": [1, None, {"b": "ü"}], "deep": [[[]]], "e": {}, "max": 2**64 - 1, "min": -(2**63), "f": 0.1}

_COMMON_STRINGS = _e("", " padded ", 'quote " backslash \\ tab \t newline \n', "e\u0301 (not normalised)",
                     "🙏 𝄞 beyond the BMP", "x" * 10_000) + [Edge(None)]
# What PostgreSQL's text cannot hold: NUL, with other controls, a noncharacter and the last code point.
_NUL_STRINGS = _e("nul \x00 controls \x01\x1f\x7f\x80 \u2028 \ufffe \U0010ffff", "\r\n")
_COMMON_BYTES = [Edge(b""), Edge(b"\x00\xff"), Edge(bytes(range(256)))]
_COMMON_INTEGERS = _e(0, -1, 2**31 - 1, 2**53 - 1, 2**53 + 1, 2**63 - 1, -(2**63))
_COMMON_FLOATS = _e(0.1 + 0.2, 5e-324, 1.7976931348623157e308, -1.5, 123456789012345.6)
# JSON numbers a float64 holds exactly: the value of the double's shortest repr (1.10 is 1.1, 1e2
# is 100.0, 123456789.12345678 has 17 significant digits and is a double).
_EXACT_JSON_NUMBERS = "[0.1, 1.10, 1e2, 5e-324, -0.0, 1.7976931348623157e308, 0.30000000000000004, 123456789.12345678]"
_EXACT_JSON_NUMBERS_READ = [0.1, 1.1, 100.0, 5e-324, -0.0, 1.7976931348623157e308, 0.30000000000000004,
                            123456789.12345678]
# What no float64 holds exactly (BigQuery refuses them): below the smallest double, or with more
# significant digits than the double they read as keeps.
_INEXACT = "cannot be held exactly by a float64"
_INEXACT_JSON_NUMBERS = ["'1e-400'", "'[2.4e-324]'", """'{"pi": 3.141592653589793238462643383279}'""",
                         "'[12345678901234567890.5]'", "'[1.00000000000000001]'"]
_COMMON_JSON = [Edge(_JSON_DOC), Edge([]), Edge({}), Edge("a string"), Edge(1.5), Edge(False),
                Edge({"emoji": "🙏", "nested": {"list": [1, [2, [3]]]}}),
                # JSON null, not SQL NULL: the line says null; the emulator stores SQL NULL.
                Edge(sa.JSON.NULL, expected=None, line=None), Edge(sa.null(), expected=None)]


EDGES: dict[str, list[Column]] = {
    "sqlite": [
        Column("n", sa.BigInteger, _f("n", "INTEGER"), _COMMON_INTEGERS),
        # SQLite stores NaN as NULL and -0.0 as 0 (the database's doing, before any export).
        Column("f", sa.Double, _f("f", "FLOAT"), _COMMON_FLOATS + [
            Edge(-0.0, line=0.0), Edge(math.inf), Edge(-math.inf), Edge(math.nan, expected=None)]),
        # SQLite keeps a NUMERIC as an integer, or as a float when it has a fraction.
        Column("d", sa.Numeric, _f("d", "NUMERIC"), [
            Edge(sql="9007199254740993", expected=Decimal("9007199254740993")),
            Edge(sql="-9223372036854775808", expected=Decimal("-9223372036854775808")),
            Edge(sql="0.1", expected=Decimal("0.1")), Edge(sql="-12345.6789", expected=Decimal("-12345.6789")),
            Edge(sql="123456789.012345", expected=Decimal("123456789.012345")),
            Edge(Decimal("0.000000001")),
        ]),
        Column("m", sa.Numeric(10, 2), _f("m", "NUMERIC"), _e(Decimal("99999999.99"), Decimal("-0.01"), Decimal("0.10"))),
        Column("b", sa.Boolean, _f("b", "BOOLEAN"), _e(True, False)),
        Column("s", sa.Text, _f("s", "STRING"), _COMMON_STRINGS + _NUL_STRINGS),
        Column("y", sa.LargeBinary, _f("y", "BYTES"), _COMMON_BYTES),
        Column("ts", sa.DateTime(timezone=True), _f("ts", "TIMESTAMP"), _e(
            datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(2024, 3, 31, 1, 0, 0, 1, tzinfo=UTC))),
        Column("dt", sa.DateTime, _f("dt", "DATETIME"), _e(
            datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(2024, 3, 31, 2, 30))),
        Column("day", sa.Date, _f("day", "DATE"), _e(date(1, 1, 1), date(9999, 12, 31), date(2024, 2, 29))),
        Column("t", sa.Time, _f("t", "TIME"), _e(time(0, 0), time(23, 59, 59, 999999), time(12, 0, 0, 1))),
        # A column declared JSON has NUMERIC affinity: a scalar JSON number is stored as a number.
        Column("j", sa.JSON, _f("j", "JSON"), [edge for edge in _COMMON_JSON if edge.value != 1.5] + [
            Edge(7), Edge(sql=f"'{_EXACT_JSON_NUMBERS}'", expected=_EXACT_JSON_NUMBERS_READ)]),
    ],
    "postgresql": [
        Column("n", sa.BigInteger, _f("n", "INTEGER"), _COMMON_INTEGERS),
        Column("f", sa.Double, _f("f", "FLOAT"), _COMMON_FLOATS + [
            Edge(-0.0, line=-0.0), Edge(math.inf), Edge(-math.inf), Edge(math.nan, line="NaN")]),
        # A real (float4) arrives as the shortest decimal PostgreSQL prints for it, read as a double.
        Column("f4", sa.REAL, _f("f4", "FLOAT"), [Edge(1.5), Edge(sql="'0.1'", expected=0.1)]),
        Column("d", sa.Numeric, _f("d", "NUMERIC"), _e(
            Decimal("99999999999999999999999999999.999999999"), Decimal("-99999999999999999999999999999.999999999"),
            Decimal("0.000000001"), Decimal("-0.5"), Decimal("9007199254740993"))),
        # The emulator cannot hold BIGNUMERIC (DuckDB decimals stop at 38 digits): the line is checked.
        Column("big", sa.Numeric, _f("big", "BIGNUMERIC"), [
            Edge(Decimal("1E-38"), line="0.00000000000000000000000000000000000001"),
            Edge(Decimal("-12345678901234567890.12345678901234567890"),
                 line="-12345678901234567890.12345678901234567890")]),
        Column("m", sa.Numeric(10, 2), _f("m", "NUMERIC", precision=10, scale=2), _e(
            Decimal("99999999.99"), Decimal("-0.01"))),
        Column("b", sa.Boolean, _f("b", "BOOLEAN"), _e(True, False)),
        Column("s", sa.Text, _f("s", "STRING"), _COMMON_STRINGS),
        Column("e", sa.Enum("new", "done", name="edge_status"), _f("e", "STRING"), _e("new", "done")),
        Column("y", sa.LargeBinary, _f("y", "BYTES"), _COMMON_BYTES),
        Column("ts", sa.DateTime(timezone=True), _f("ts", "TIMESTAMP"), [
            *_e(datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
            # Both 01:30s of the night London leaves summer time, and an offset zone: kept as instants.
            Edge(datetime(2024, 10, 27, 1, 30, tzinfo=LONDON), expected=datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),
            Edge(datetime(2024, 10, 27, 1, 30, tzinfo=LONDON, fold=1),
                 expected=datetime(2024, 10, 27, 1, 30, tzinfo=UTC)),
            Edge(sql="'2024-01-01 05:30:00.000001+05:30'", expected=datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        ]),
        Column("dt", sa.DateTime, _f("dt", "DATETIME"), _e(
            datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(2024, 3, 31, 1, 30))),
        Column("day", sa.Date, _f("day", "DATE"), _e(date(1, 1, 1), date(9999, 12, 31), date(2024, 2, 29))),
        Column("t", sa.Time, _f("t", "TIME"), _e(time(0, 0), time(23, 59, 59, 999999), time(12, 0, 0, 1))),
        # jsonb keeps a number as its exact decimal, without an exponent: 1e2 as 100, an integer
        # (the largest double would be a 309-digit integer, refused).
        Column("j", postgresql.JSONB, _f("j", "JSON"), _COMMON_JSON + [
            Edge(sql=f"'{_EXACT_JSON_NUMBERS.replace(', 1.7976931348623157e308', '')}'",
                 expected=[100 if n == 100.0 else n for n in _EXACT_JSON_NUMBERS_READ if n != 1.7976931348623157e308])]),
        Column("jt", sa.JSON, _f("jt", "JSON"), [
            Edge(sql="""'{"a": 1, "a": 2}'""", expected={"a": 2}), Edge({"t": "\u00e9", "n": -0.5}),
            Edge(sa.JSON.NULL, expected=None, line=None),
            Edge(sql=f"'{_EXACT_JSON_NUMBERS}'", expected=_EXACT_JSON_NUMBERS_READ)]),
        Column("tags", postgresql.ARRAY(sa.Text), _f("tags", "STRING", "REPEATED"), [
            Edge(["a", "🙏", ""]), Edge([]), Edge(None, expected=[])]),
        Column("counts", postgresql.ARRAY(sa.Integer), _f("counts", "INTEGER", "REPEATED"), [
            Edge([0, -(2**31), 2**31 - 1])]),
        Column("flags", postgresql.ARRAY(sa.Boolean), _f("flags", "BOOLEAN", "REPEATED"), [Edge([True, False])]),
    ],
    "mariadb": [
        Column("n", sa.BigInteger, _f("n", "INTEGER"), _COMMON_INTEGERS),
        # MariaDB has no NaN or infinities; a negative zero reads back as 0.
        Column("f", sa.Double, _f("f", "FLOAT"), _COMMON_FLOATS),
        # `Float` makes a single-precision FLOAT: the shortest decimal that reads back as the same
        # float32 (MariaDB's own text of it has six digits: 281914.34375 as 281914).
        Column("f4", sa.Float, _f("f4", "FLOAT"), [
            Edge(sql="281914.34375", expected=281914.34), Edge(sql="16777216", expected=16777216.0),
            Edge(sql="3.1415927", expected=3.1415927), Edge(sql="0.1", expected=0.1), Edge(sql="-0.0", expected=0.0),
            Edge(sql="3.4028234663852886e38", expected=3.4028235e38), Edge(sql="1.401298464324817e-45", expected=1e-45)]),
        Column("d", sa.Numeric(38, 9), _f("d", "NUMERIC"), _e(
            Decimal("99999999999999999999999999999.999999999"), Decimal("-0.000000001"), Decimal("9007199254740993"))),
        # ZEROFILL pads a number's text with zeros (0000000042), which no JSON number has.
        Column("nz", mysql.BIGINT(zerofill=True, unsigned=True), _f("nz", "INTEGER"), _e(0, 42, 2**53 + 1, 2**63 - 1)),
        Column("dz", mysql.DECIMAL(20, 9, zerofill=True), _f("dz", "NUMERIC"), _e(Decimal("12.500000000"), Decimal("0E-9"))),
        Column("fz", mysql.DOUBLE(zerofill=True, asdecimal=False), _f("fz", "FLOAT"), _e(1.5, 0.001, 0.0)),
        Column("big", sa.Numeric(65, 30), _f("big", "BIGNUMERIC"), [
            Edge(Decimal("12345678901234567890123456789012345.123456789012345678901234567891"),
                 line="12345678901234567890123456789012345.123456789012345678901234567891")]),
        Column("b", sa.Boolean, _f("b", "BOOLEAN"), _e(True, False)),
        Column("s", sa.Text, _f("s", "STRING"), _COMMON_STRINGS + _NUL_STRINGS),
        Column("e", sa.Enum("new", "done"), _f("e", "STRING"), _e("new", "done")),
        Column("y", sa.LargeBinary, _f("y", "BYTES"), _COMMON_BYTES),
        Column("ts", mysql.DATETIME(fsp=6), _f("ts", "TIMESTAMP"), [
            Edge(datetime(1000, 1, 1), expected=datetime(1000, 1, 1, tzinfo=UTC)),
            Edge(datetime(9999, 12, 31, 23, 59, 59, 999999),
                 expected=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
            Edge(datetime(2024, 3, 31, 1, 0, 0, 1), expected=datetime(2024, 3, 31, 1, 0, 0, 1, tzinfo=UTC))]),
        # A TIMESTAMP is an instant, read in a UTC session whatever the server's time_zone.
        Column("stamp", mysql.TIMESTAMP(fsp=6), _f("stamp", "TIMESTAMP"), [
            Edge(sql="'1970-01-01 00:00:01'", expected=datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
            Edge(sql="'2038-01-19 03:14:07.999999'", expected=datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC))]),
        Column("dt", mysql.DATETIME(fsp=6), _f("dt", "DATETIME"), _e(
            datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(2024, 3, 31, 2, 30))),
        Column("day", sa.Date, _f("day", "DATE"), _e(date(1000, 1, 1), date(9999, 12, 31), date(2024, 2, 29))),
        Column("t", mysql.TIME(fsp=6), _f("t", "TIME"), [
            *_e(time(0, 0), time(23, 59, 59, 999999), time(12, 0, 0, 1)),
            Edge(sql="'23:59:59.999999'", expected=time(23, 59, 59, 999999))]),
        Column("j", sa.JSON, _f("j", "JSON"), _COMMON_JSON + [
            Edge(sql=f"'{_EXACT_JSON_NUMBERS}'", expected=_EXACT_JSON_NUMBERS_READ)]),
    ],
}

# An integer column declared FLOAT: beyond 2**53 a float64 would round it (2**53 + 1 to 2**53).
_ROUNDED_INTEGER = Column("nf", sa.BigInteger, _f("nf", "FLOAT"), rejects=[
    Reject("9007199254740993", "cannot hold this integer exactly"),
    Reject("-9223372036854775807", "cannot hold this integer exactly")])

REJECTS: dict[str, list[Column]] = {
    "sqlite": [
        _ROUNDED_INTEGER,
        Column("n", sa.BigInteger, _f("n", "INTEGER"), rejects=[
            Reject("'twelve'", "got str 'twelve'"), Reject("1.5", "got float 1.5")]),
        Column("d", sa.Numeric, _f("d", "NUMERIC"), rejects=[
            Reject("0.30000000000000004", "a float is not exact"), Reject("'abc'", "got str 'abc'"),
            Reject("1.0000000001", "more than 9 fractional digits")]),
        Column("m", sa.Numeric(10, 2), _f("m", "NUMERIC"), rejects=[Reject("1e30", "outside the NUMERIC range")]),
        Column("b", sa.Boolean, _f("b", "BOOLEAN"), rejects=[Reject("2", "only True/False, or the integers 0 and 1")]),
        Column("ts", sa.DateTime(timezone=True), _f("ts", "TIMESTAMP"), rejects=[
            Reject("'yesterday'", "driver cannot read"), Reject("'2024-02-30 10:00:00'", "driver cannot read"),
            Reject("'2024-01-01 10:00:00.1234567'", "more than 6 fractional digits"),
            Reject("'2024-01-01 10:00:00,1234567'", "more than 6 fractional digits")]),
        Column("day", sa.Date, _f("day", "DATE"), rejects=[Reject("'0000-00-00'", "driver cannot read")]),
        Column("t", sa.Time, _f("t", "TIME"), rejects=[
            Reject("'24:00:00'", "driver cannot read"), Reject("'10:00:00,1234567'", "more than 6 fractional digits")]),
        Column("j", sa.JSON, _f("j", "JSON"), rejects=[
            Reject("""'{"a": '""", "driver cannot read"), Reject("'[1e400]'", _INEXACT),
            Reject("'[18446744073709551616]'", "integer outside int64/uint64"),
            Reject("'1.5'", "stored this JSON number as a binary float"),
            # Containers: a scalar number would be stored as a number (NUMERIC affinity).
            *(Reject(sql, _INEXACT) for sql in _INEXACT_JSON_NUMBERS if sql.startswith(("'[", "'{")))]),
        # SQLite stores whatever bytes a TEXT is given: one that is not UTF-8 is shown as its bytes.
        Column("s", sa.Text, _f("s", "STRING"), rejects=[
            Reject("x'00ff'", "got bytes"),
            Reject("CAST(x'c3' AS TEXT)", "got bytes b'\\xc3', expected STRING: the database driver cannot read"),
            Reject("CAST(x'eda080' AS TEXT)", "Could not decode to UTF-8")]),
        # SQLite does not check an Enum's labels; SQLAlchemy's Enum (kept) raises on an unknown one.
        Column("e", sa.Enum("new", "done"), _f("e", "STRING"), rejects=[Reject("'old'", "driver cannot read")]),
    ],
    "postgresql": [
        _ROUNDED_INTEGER,
        Column("ts", sa.DateTime(timezone=True), _f("ts", "TIMESTAMP"), rejects=[
            Reject("'infinity'", "driver cannot read"), Reject("'-infinity'", "driver cannot read"),
            Reject("'0044-03-15 12:00+00 BC'", "driver cannot read"),
            Reject("'10000-01-01 00:00+00'", "driver cannot read")]),
        Column("dt", sa.DateTime, _f("dt", "DATETIME"), rejects=[
            Reject("'0001-01-01 00:00 BC'", "driver cannot read"), Reject("'infinity'", "driver cannot read")]),
        Column("day", sa.Date, _f("day", "DATE"), rejects=[
            Reject("'0001-12-31 BC'", "driver cannot read"), Reject("'-infinity'", "driver cannot read"),
            Reject("'10000-01-01'", "driver cannot read")]),
        Column("t", sa.Time, _f("t", "TIME"), rejects=[Reject("'24:00:00'", "driver cannot read")]),
        Column("d", sa.Numeric, _f("d", "NUMERIC"), rejects=[
            Reject("'NaN'", "NaN and Infinity"), Reject("1.0000000001", "more than 9 fractional digits"),
            Reject("1e29", "outside the NUMERIC range")]),
        Column("tags", postgresql.ARRAY(sa.Text), _f("tags", "STRING", "REPEATED"), rejects=[
            Reject("ARRAY['a', NULL]", "cannot hold NULL")]),
        # jsonb keeps 1e400 as the integer 1 followed by 400 zeros; json keeps the text.
        # jsonb keeps 1e-400 as 0.000...0001, 400 places: the fast path looks for long numbers.
        Column("j", postgresql.JSONB, _f("j", "JSON"), rejects=[
            Reject("'1e400'", "integer outside int64/uint64"),
            Reject("'[18446744073709551616]'", "integer outside int64/uint64"),
            *(Reject(sql, _INEXACT) for sql in _INEXACT_JSON_NUMBERS)]),
        # json keeps the text: one with an exponent is the Python path's.
        Column("jt", sa.JSON, _f("jt", "JSON"), rejects=[
            Reject("'[1e400]'", _INEXACT), *(Reject(sql, _INEXACT) for sql in _INEXACT_JSON_NUMBERS)]),
    ],
    "mariadb": [
        _ROUNDED_INTEGER,
        Column("t", mysql.TIME(fsp=6), _f("t", "TIME"), rejects=[
            Reject("'838:59:59'", "outside 00:00:00 to 23:59:59.999999"),
            Reject("'-00:00:01'", "outside 00:00:00 to 23:59:59.999999"),
            Reject("'24:00:00'", "outside 00:00:00 to 23:59:59.999999")]),
        Column("b", sa.Boolean, _f("b", "BOOLEAN"), rejects=[
            Reject("2", "only True/False, or the integers 0 and 1"), Reject("-1", "only True/False")]),
        Column("day", sa.Date, _f("day", "DATE"), rejects=[Reject("'0000-00-00'", "got str '0000-00-00', expected DATE: MariaDB's zero date")]),
        Column("ts", mysql.DATETIME(fsp=6), _f("ts", "TIMESTAMP"), rejects=[
            Reject("'0000-00-00 00:00:00'", "got str '0000-00-00 00:00:00.000000', expected TIMESTAMP: MariaDB's zero date")]),
        Column("d", sa.Numeric(65, 30), _f("d", "NUMERIC"), rejects=[
            Reject("1.0000000001", "more than 9 fractional digits"), Reject("1e29", "outside the NUMERIC range")]),
        Column("j", sa.JSON, _f("j", "JSON"), rejects=[
            Reject("'[18446744073709551616]'", "integer outside int64/uint64"),
            *(Reject(sql, _INEXACT) for sql in _INEXACT_JSON_NUMBERS)]),
    ],
}

# A naive timestamp means London time in the local tables: a time the clocks skipped (the night
# summer time starts) or showed twice (the night it ends) is no one instant.
_LOCAL_TIMES = [
    Edge(datetime(2024, 7, 1, 12, 0), expected=datetime(2024, 7, 1, 11, 0, tzinfo=UTC)),
    Edge(datetime(2024, 1, 15, 12, 0, 0, 1), expected=datetime(2024, 1, 15, 12, 0, 0, 1, tzinfo=UTC)),
    Edge(datetime(2024, 3, 31, 2, 0), expected=datetime(2024, 3, 31, 1, 0, tzinfo=UTC)),  # just after the gap
    Edge(datetime(2024, 10, 27, 2, 0), expected=datetime(2024, 10, 27, 2, 0, tzinfo=UTC)),  # just after the overlap
]
_LOCAL_TIME_REJECTS = [Reject("'2024-03-31 01:30:00'", "does not exist in Europe/London (the clocks skipped it)"),
                       Reject("'2024-10-27 01:30:00'", "occurs twice in Europe/London")]

LOCAL_EDGES: dict[str, list[Column]] = {
    "sqlite": [Column("ts", sa.DateTime, _f("ts", "TIMESTAMP"), _LOCAL_TIMES)],
    "postgresql": [
        Column("ts", sa.DateTime, _f("ts", "TIMESTAMP"), _LOCAL_TIMES),
        # An element of ARRAY<JSON> is any JSON value, a JSON array too. (The emulator gives each
        # element back as its JSON text, '[1,2]': the line is checked.)
        Column("docs", postgresql.ARRAY(postgresql.JSONB), _f("docs", "JSON", "REPEATED"), [
            Edge(sql="""ARRAY['[1, 2]', '{"a": [null, 0.5]}', '"x"', '1.5', 'true', '[]']::jsonb[]""",
                 line=[[1, 2], {"a": [None, 0.5]}, "x", 1.5, True, []]),
            Edge(sql="ARRAY[]::jsonb[]", expected=[])]),
    ],
    "mariadb": [
        Column("ts", mysql.DATETIME(fsp=6), _f("ts", "TIMESTAMP"), _LOCAL_TIMES),
        # A TIMESTAMP is an instant (read in UTC): London's zone is no part of it, and its
        # repeated and skipped hours are instants like any other.
        Column("stamp", mysql.TIMESTAMP(fsp=6), _f("stamp", "TIMESTAMP"), [
            Edge(sql="'2024-07-01 12:00:00'", expected=datetime(2024, 7, 1, 12, 0, tzinfo=UTC)),
            Edge(sql="'2024-10-27 01:30:00.000001'", expected=datetime(2024, 10, 27, 1, 30, 0, 1, tzinfo=UTC)),
            Edge(sql="'2024-03-31 01:30:00'", expected=datetime(2024, 3, 31, 1, 30, tzinfo=UTC))]),
    ],
}

LOCAL_REJECTS: dict[str, list[Column]] = {
    "sqlite": [Column("ts", sa.DateTime, _f("ts", "TIMESTAMP"), rejects=_LOCAL_TIME_REJECTS)],
    "postgresql": [
        Column("ts", sa.DateTime, _f("ts", "TIMESTAMP"), rejects=_LOCAL_TIME_REJECTS),
        # BigQuery reads a JSON null element as a NULL element, which no array holds.
        Column("docs", postgresql.ARRAY(postgresql.JSONB), _f("docs", "JSON", "REPEATED"), rejects=[
            Reject("""ARRAY['{"a": 1}'::jsonb, 'null'::jsonb]""", "cannot hold NULL (a JSON null element is read as NULL too)"),
            Reject("ARRAY[NULL::jsonb]", "cannot hold NULL"),
            Reject("ARRAY['[1e-400]'::jsonb]", _INEXACT)]),
        # Types the fast path leaves alone, read as text: the reason says how to convert them.
        Column("cash", postgresql.MONEY, _f("cash", "NUMERIC"), rejects=[Reject("'12.34'", "CAST(column AS numeric)")]),
        Column("bit", postgresql.BIT(1), _f("bit", "BOOLEAN"), rejects=[Reject("B'1'", "CAST(column AS integer)")]),
    ],
    "mariadb": [
        Column("ts", mysql.DATETIME(fsp=6), _f("ts", "TIMESTAMP"), rejects=_LOCAL_TIME_REJECTS),
        Column("opts", mysql.SET("a", "b"), _f("opts", "STRING"), rejects=[Reject("'a,b'", "CAST(column AS CHAR)")]),
    ],
}


def edge_table(metadata: sa.MetaData, name: str, columns: list[Column]) -> sa.Table:
    """A table keyed by `id` with one column per entry of `columns`."""
    return sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                    *(sa.Column(column.name, column.type) for column in columns))


def edge_rows(columns: list[Column]) -> list[tuple[int, Column, Edge]]:
    """(row id, column, edge) of each edge value, ids from 1."""
    pairs = [(column, edge) for column in columns for edge in column.edges]
    return [(row_id, column, edge) for row_id, (column, edge) in enumerate(pairs, start=1)]


def reject_rows(columns: list[Column]) -> list[tuple[int, Column, Reject]]:
    """(row id, column, reject) of each value to refuse, ids from 1."""
    pairs = [(column, reject) for column in columns for reject in column.rejects]
    return [(row_id, column, reject) for row_id, (column, reject) in enumerate(pairs, start=1)]


METADATA = sa.MetaData()
ID = SchemaField("id", "INTEGER", "REQUIRED")


def _export(database: str, kind: str, columns: list[Column], zone: Any = UTC) -> type[ExportShardManager]:
    table = edge_table(METADATA, f"{kind}_{database}", columns)
    # The emulator cannot create a BIGNUMERIC column (DuckDB decimals stop at 38 digits): those
    # columns are left out of the load and checked in the written lines (see `with_every_column`).
    loaded = [column for column in columns if column.field.field_type != "BIGNUMERIC"]

    class EdgeExport(ExportShardManager):
        __doc__ = f"The {kind} table of {database}, column for column (BIGNUMERIC ones aside)."
        table_name = table.name
        schema_file = "edge_values.json"  # not read: the schema is given below
        schema = [ID, *(column.field for column in loaded)]
        cadence = Cadence.HOURLY
        shard_key = table.c.id
        naive_timestamp_zone = zone

        def query(self) -> sa.Select:
            return sa.select(table.c.id, *(table.c[column.name] for column in loaded))

    EdgeExport.__name__ = EdgeExport.__qualname__ = f"{kind.title().replace('_', '')}{database.title()}Export"
    return EdgeExport


def with_every_column(export: type[ExportShardManager]) -> ExportShardManager:
    """An export like `export` of every column of its table (not one `Tables` lists)."""
    table = export.shard_key.table
    columns = {column.name: column for column in EDGES_AND_REJECTS[table.name]}

    class EveryColumn(export):
        schema = [ID, *(columns[name].field for name in table.c.keys() if name != "id")]

        def query(self) -> sa.Select:
            return sa.select(table)

    return EveryColumn()


#: Each database's corpus of each kind: edges, rejects, local_edges, local_rejects.
CORPORA = {"edges": EDGES, "rejects": REJECTS, "local_edges": LOCAL_EDGES, "local_rejects": LOCAL_REJECTS}
#: The export of each database's table of each kind.
EXPORTS = {
    database: {kind: _export(database, kind, corpus[database], LONDON if kind.startswith("local") else UTC)
               for kind, corpus in CORPORA.items()}
    for database in EDGES
}
EDGES_AND_REJECTS = {f"{kind}_{database}": corpus[database] for kind, corpus in CORPORA.items() for database in corpus}
# `Tables` finds an app's exports among its modules' names: each export is one (EdgesSqliteExport, ...).
globals().update({export.__name__: export for exports in EXPORTS.values() for export in exports.values()})
