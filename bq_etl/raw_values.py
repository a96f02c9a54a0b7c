"""Exact reading of a shard query's columns: where a SQLAlchemy type's stock result processing
loses information on a dialect, the column is read as the driver's raw value instead, turned
into the type's usual Python value only where that is exact, and otherwise handed on raw for the
encoder to refuse by name.

The lossy processings (SQLAlchemy 2.0):

- MySQL/MariaDB `Time`: the driver's `timedelta` becomes a `time` by dropping whole days, so
  `838:59:59` reads as `22:59:59` and `-00:00:01` as `23:59:59`.
- `Boolean` where the database has no boolean type (MySQL/MariaDB `TINYINT(1)`, SQLite): any
  non-zero integer reads as True, so a stored 2 becomes `true`.
- SQLite `Numeric` (as Decimal): the value goes through a float, so 9007199254740993 reads as
  9007199254740992.
- `Float(asdecimal=True)`, on every dialect: the float becomes a Decimal of ten decimal places,
  so 1e-12 reads as 0; it is read as the shortest Decimal that gives the float back. So is a
  `Numeric` the server sends as a float (a model's `Numeric` over a PostgreSQL double
  precision column), which SQLAlchemy rounds the same way.
- SQLite `DateTime`, `Date`, `Time`: a stored text with more than six fractional digits would be
  cut to microseconds; it is refused instead (malformed text raises, as before, and is named by
  `driver_errors`).
- SQLite `JSON`: the column has NUMERIC affinity, so a scalar JSON number is stored as a number,
  which the stock processing cannot parse (TypeError); an integer is read as it is, a float
  (its text lost) refused.
- MariaDB/MySQL single-precision `FLOAT`, whatever its SQLAlchemy type (`Float` makes one; a
  `Float` may also read a DOUBLE): the server's text of it has six significant digits (%g), so
  281914.34375 reads as 281914.0. Such a column (the server's type, learnt by
  `single_precision_columns`) is read as `CAST(... AS DOUBLE)`, its exact value, and turned into
  the shortest decimal that reads back as the same float32 (`shortest_float32`, 281914.34), as
  PostgreSQL prints a REAL; the column's own processing then gets that float.
- PostgreSQL `ARRAY(JSON)` (jsonb[]): SQLAlchemy takes an element that is a JSON array for a
  dimension of the array, so `ARRAY['[1]', '2']` fails to read; it is read as psycopg parses it.

Everything else keeps its processing (an app's TypeDecorator, ...). JSON is parsed by
`json_values.loads` unless the app gave the engine a `json_deserializer` (the values json.loads
gives, with a number no float64 holds exactly marked for the encoder to refuse). Two more
changes serve the encoder, and only where records are the row's columns (no `to_record` to surprise):
a JSON column holding JSON `null` reads as `JSON_NULL`, not None, so the line keeps it apart
from SQL NULL; and an `Enum` of a Python enum class reads as the text the database stores (the
member's name, or its value with `values_callable`), not as the member, which no BigQuery type
holds: the STRING field `schema generate` gives it gets exactly what the database holds.
"""
from __future__ import annotations

import math
import re
import struct
from datetime import datetime, time, timedelta, timezone
from decimal import Context, Decimal
from fractions import Fraction
from typing import Any, Callable

from sqlalchemy import (
    ARRAY, JSON, Boolean, Connection, Date, DateTime, Double, Engine, Enum, Float, Numeric, Select, Text, Time,
    cast, type_coerce,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import NullType, TypeDecorator

from .json_values import JSON_NULL, column_value, loads

_ONE_DAY = timedelta(days=1)
# Any decimal of up to 15 significant digits survives a round trip through a double (DBL_DIG):
# the double's shortest repr is that decimal. Beyond 15, the repr may differ from what was written.
_FLOAT_DIGITS = 15
# ISO 8601, and Python's fromisoformat, take a comma for the decimal point too.
_SUB_MICROSECOND = re.compile(r"[.,][0-9]{7}")
# Wide enough for any SQLite integer (19 digits) with any NUMERIC scale.
_WIDE = Context(prec=200)
#: The MySQL protocol's type codes of a single-precision FLOAT column (MYSQL_TYPE_FLOAT) and of
#: a TIMESTAMP one (MYSQL_TYPE_TIMESTAMP).
MYSQL_FLOAT, MYSQL_TIMESTAMP = 4, 7
_PACK32, _UNPACK32 = struct.Struct("<f").pack, struct.Struct("<f").unpack
_SMALLEST_NORMAL_FLOAT32 = 2.0**-126
_FLOAT32_MIN, _FLOAT32_MAX = 2.0**-149, (2 - 2.0**-23) * 2.0**127


def exact_statement(statement: Select, dialect: Dialect, json_nulls: bool,
                    single_precision: frozenset[int] = frozenset(),
                    utc_instants: frozenset[int] = frozenset()) -> Select:
    """`statement` with each lossy column (see module docstring) read exactly, and with JSON
    `null` read as `JSON_NULL` when `json_nulls`; `statement` itself when nothing changes.
    `single_precision` holds the positions of the columns the server types as a MariaDB/MySQL
    FLOAT, `utc_instants` those of MariaDB/MySQL TIMESTAMP columns to read as aware UTC
    datetimes (see `server_type_codes`). Result column names stay as they were."""
    columns = list(statement.selected_columns)
    exact = [_exact_column(column, dialect, json_nulls) for column in columns]
    exact = [
        _single_precision(new, old, dialect) if index in single_precision else
        _utc_instant(new, dialect) if index in utc_instants else new
        for index, (new, old) in enumerate(zip(exact, columns))
    ]
    if all(new is old for new, old in zip(exact, columns)):
        return statement
    return statement.with_only_columns(*exact, maintain_column_froms=True)


def server_type_codes(statement: Select, bind: Connection | Engine) -> tuple[int, ...]:
    """The MySQL protocol type code of each of `statement`'s columns on a MariaDB/MySQL server,
    learnt from a LIMIT 0 run of it on `bind`; none elsewhere, without a query."""
    if bind.dialect.name not in ("mysql", "mariadb"):
        return ()
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return server_type_codes(statement, connection)
    with bind.execute(statement.limit(0)) as probe:
        return tuple(column[1] for column in probe.cursor.description)


def single_precision_columns(type_codes: tuple[int, ...], dialect: Dialect) -> frozenset[int]:
    """The positions of the columns a MariaDB/MySQL server sends as single-precision FLOAT, of
    their `server_type_codes`; none where the server cannot CAST to DOUBLE (MySQL before 8.0.17)."""
    if not getattr(dialect, "_support_float_cast", False):
        return frozenset()
    return frozenset(index for index, code in enumerate(type_codes) if code == MYSQL_FLOAT)


def shortest_float32(value: float) -> float:
    """`value`, a float32 held in a float, as the float of the shortest decimal that reads back
    as the same float32 (3.1415927410125732 as 3.1415927), the nearest one of that length; any
    other value as it is."""
    if type(value) is not float or _to_float32(value) != value:
        return value
    return _shortest(value)


def _shortest(value: float) -> float:
    """`shortest_float32` of a float32."""
    if not _FLOAT32_MIN <= abs(value) <= _FLOAT32_MAX:
        return value  # zero, the infinities, NaN
    if abs(value) < _SMALLEST_NORMAL_FLOAT32:
        return next(float(text) for digits in range(1, 10) if _reads_back(text := f"{value:.{digits}g}", value))
    # A normal float32 is within 6e-8 of itself relatively, a grid of six significant digits
    # 1e-6 apart at the least: when a decimal of six digits or fewer reads back, the six-digit
    # one is that decimal. Nine digits always read back, and a rounding that reads back is
    # followed by longer ones that do (each is nearer): two tries find the shortest.
    if _reads_back(seven := "%.7g" % value, value):
        six = "%.6g" % value
        return float(six if _reads_back(six, value) else seven)
    eight = "%.8g" % value
    return float(eight if _reads_back(eight, value) else "%.9g" % value)


def _to_float32(value: float) -> float | None:
    """`value` rounded to the nearest float32 (ties to even); None beyond float32's range."""
    try:
        return _UNPACK32(_PACK32(value))[0]
    except OverflowError:
        return None


def _reads_back(text: str, value: float) -> bool:
    """True when the decimal `text` reads as the float32 `value` (as strtof reads it)."""
    candidate = float(text)
    nearest = _to_float32(candidate)
    if nearest == candidate:
        return nearest == value
    if nearest is None:
        return False
    # The decimal rounds as its nearest double does, unless that double lies exactly halfway
    # between two float32s: then the decimal's own side of it decides.
    other = 2 * candidate - nearest
    if other != nearest and _to_float32(other) == other:
        exact = Fraction(text)
        if exact != candidate:
            nearest = min(nearest, other) if exact < candidate else max(nearest, other)
    return nearest == value


def _exact_column(column: Any, dialect: Dialect, json_nulls: bool) -> Any:
    impl = column.type.dialect_impl(dialect)
    if isinstance(impl, TypeDecorator):
        return column  # the app's own processing
    mysql = dialect.name in ("mysql", "mariadb")
    if isinstance(impl, Time) and mysql:
        return type_coerce(column, _MySQLTime())
    if isinstance(impl, Boolean) and not dialect.supports_native_boolean:
        return type_coerce(column, _IntegerBoolean())
    if dialect.name == "sqlite" and isinstance(impl, Numeric) and not isinstance(impl, Float) and impl.asdecimal:
        return type_coerce(column, _SQLiteDecimal(impl.scale))
    # psycopg's Float implementation is no Float subclass: ask the type as declared.
    declared = column.type._variant_mapping.get(dialect.name, column.type)
    if isinstance(declared, Float) and declared.asdecimal:
        return type_coerce(column, _FloatDecimal())
    if isinstance(impl, Numeric) and not isinstance(declared, Float) and impl.asdecimal and dialect.name != "sqlite":
        return type_coerce(column, _NumericOfFloat(impl))
    if dialect.name == "sqlite" and isinstance(impl, (DateTime, Date, Time)):
        return type_coerce(column, _SQLiteTemporal(impl.result_processor(dialect, None)))
    if isinstance(impl, ARRAY) and isinstance(impl.item_type, JSON) and dialect.driver == "psycopg":
        item = impl.item_type.dialect_impl(dialect)
        if not impl.as_tuple and item.result_processor(dialect, None) is None:
            return type_coerce(column, _AsRead())  # SQLAlchemy would only reshape psycopg's lists
    if isinstance(impl, JSON):
        parse = getattr(dialect, "_json_deserializer", None)
        # Elsewhere psycopg parses json with `loads` already (json_values.fast_json).
        if json_nulls or (parse is None and dialect.driver != "psycopg"):
            # psycopg parses json itself, where JSON null and SQL NULL both become None: read the text.
            text = cast(column, Text) if dialect.driver == "psycopg" else column
            return type_coerce(text, _JSONOrNull(parse or loads, json_nulls))

    # Records are the row's columns: an enum class's column as its stored text (module docstring).
    if json_nulls and isinstance(impl, Enum) and impl.enum_class is not None:
        return type_coerce(column, _StoredText())
    return column


def _single_precision(exact: Any, column: Any, dialect: Dialect) -> Any:
    """A MariaDB/MySQL FLOAT `column` read as its exact value, as `shortest_float32`, then
    processed as `exact` (the column as otherwise read) processes the float PyMySQL makes."""
    process = exact.type.dialect_impl(dialect).result_processor(dialect, MYSQL_FLOAT)
    return type_coerce(cast(column, Double()), _Float32(process))


class _Processed(TypeDecorator):
    """A column read with the processor the driver's value would otherwise get (`process`),
    which a subclass applies around its own step."""

    impl = NullType
    # Holds a processor: kept out of SQLAlchemy's statement cache.
    cache_ok = False

    def __init__(self, process: Callable[[Any], Any] | None):
        super().__init__()
        self.process = process


class _Float32(_Processed):
    """A float32 read as a double: the shortest decimal's float, then the column's processing."""

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if type(value) is float:  # a FLOAT's value, read as a DOUBLE: a float32
            value = _shortest(value)
        return self.process(value) if self.process is not None else value


def _utc_instant(exact: Any, dialect: Dialect) -> Any:
    """A MariaDB/MySQL TIMESTAMP `exact` (the column as otherwise read) with its time made aware
    in UTC: an instant, which every read's session (time_zone '+00:00', `session_settings`)
    hands over as its naive UTC time, so no `naive_timestamp_zone` may shift it."""
    process = exact.type.dialect_impl(dialect).result_processor(dialect, MYSQL_TIMESTAMP)
    return type_coerce(exact, _UtcInstant(process))


class _UtcInstant(_Processed):
    """A naive datetime read in a UTC session, as that time in UTC; anything else (the zero
    date's text) as it is."""

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if self.process is not None:
            value = self.process(value)
        if type(value) is datetime and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class _AsRead(TypeDecorator):
    """The driver's value as it is."""

    impl = NullType
    cache_ok = True


class _MySQLTime(TypeDecorator):
    """MySQL TIME: the driver's timedelta as a time when it is one (0 to 24 h), else raw."""

    impl = NullType
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if type(value) is timedelta and timedelta(0) <= value < _ONE_DAY:
            seconds = value.seconds
            return time(seconds // 3600, seconds // 60 % 60, seconds % 60, value.microseconds)
        return value


class _IntegerBoolean(TypeDecorator):
    """A boolean stored as an integer: 0 and 1 as False and True, anything else raw."""

    impl = NullType
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value == 0 or value == 1:
            return value == 1 if type(value) is int else value
        return value


class _SQLiteDecimal(TypeDecorator):
    """SQLite NUMERIC: an integer or a float as the Decimal it exactly is, at the column's
    scale where that adds only zeros; a float of more than 15 significant digits, or a value
    of another storage class, raw."""

    impl = NullType
    cache_ok = True

    def __init__(self, scale: int | None):
        super().__init__()
        self.scale = scale

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        kind = type(value)
        if kind is int:
            number = Decimal(value)
        elif kind is float and math.isfinite(value):
            number = Decimal(repr(value))
            if len(number.as_tuple().digits) > _FLOAT_DIGITS:
                return value
        else:
            return value
        if self.scale is not None and number.as_tuple().exponent >= -self.scale:
            return number.quantize(Decimal(1).scaleb(-self.scale), context=_WIDE)
        return number


class _FloatDecimal(TypeDecorator):
    """A float column read as Decimal: the shortest decimal that is the same float; NaN and the
    infinities (no Decimal BigQuery can hold) and other types raw."""

    impl = NullType
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if type(value) is float and math.isfinite(value):
            return Decimal(repr(value))
        return value


class _NumericOfFloat(TypeDecorator):
    """A `Numeric` the server sends as a float (a PostgreSQL double precision or real column, or
    expression): the shortest Decimal that gives the float back, where SQLAlchemy's own
    processing would round it to ten places (1e-12 to 0E-10). Other server types as the stock
    processing reads them (psycopg's Decimal), at no cost per value."""

    impl = NullType
    # Holds the stock type: kept out of SQLAlchemy's statement cache.
    cache_ok = False

    def __init__(self, stock: Numeric):
        super().__init__()
        self.stock = stock

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        stock = self.stock.result_processor(dialect, coltype)
        if stock is None:
            return None
        decimal = _FloatDecimal().process_result_value

        def process(value: Any) -> Any:
            return decimal(value, dialect) if type(value) is float else stock(value)

        return process


class _SQLiteTemporal(TypeDecorator):
    """SQLite's date and time text parsed by SQLAlchemy's own processor, unless it has more
    fractional digits than a microsecond, which the processor would drop."""

    impl = NullType
    # Holds the processor: kept out of SQLAlchemy's statement cache.
    cache_ok = False

    def __init__(self, parse: Callable[[Any], Any]):
        super().__init__()
        self.parse = parse

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if type(value) is str and _SUB_MICROSECOND.search(value):
            raise ValueError("more than 6 fractional digits would be cut to microseconds")
        return self.parse(value) if value is not None else None


class _StoredText(TypeDecorator):
    """An enum class's column as the driver's text of it, the member's name or value as stored."""

    impl = NullType
    cache_ok = True


class _JSONOrNull(TypeDecorator):
    """A JSON column's text parsed as the dialect would (with `loads` unless the app gave its
    own parser), with JSON null as JSON_NULL when `json_nulls`."""

    impl = NullType
    # Holds a parser: kept out of SQLAlchemy's statement cache.
    cache_ok = False

    def __init__(self, parse: Callable[[Any], Any], json_nulls: bool = True):
        super().__init__()
        self.parse = parse
        self.json_nulls = json_nulls

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        kind = type(value)
        if kind is int:
            # SQLite's NUMERIC affinity (a column declared JSON has it) stores an integer JSON
            # text as an integer, exactly.
            return value
        if kind is float:
            raise ValueError(
                "SQLite stored this JSON number as a binary float, so its JSON text is lost; "
                "declare the column with TEXT affinity (e.g. JSON().with_variant(Text, 'sqlite'))"
            )
        if not self.json_nulls:
            return self.parse(value)  # for a to_record: the values json.loads gives
        if self.parse is loads:
            return column_value(value)
        parsed = self.parse(value)
        return JSON_NULL if parsed is None else parsed

