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
  so 1e-12 reads as 0; it is read as the shortest Decimal that gives the float back.
- SQLite `DateTime`, `Date`, `Time`: a stored text with more than six fractional digits would be
  cut to microseconds; it is refused instead (malformed text raises, as before, and is named by
  `driver_errors`).
- SQLite `JSON`: the column has NUMERIC affinity, so a scalar JSON number is stored as a number,
  which the stock processing cannot parse (TypeError); an integer is read as it is, a float
  (its text lost) refused.
- PostgreSQL `ARRAY(JSON)` (jsonb[]): SQLAlchemy takes an element that is a JSON array for a
  dimension of the array, so `ARRAY['[1]', '2']` fails to read; it is read as psycopg parses it.

Everything else keeps its processing (Enum, an app's TypeDecorator, ...). JSON is parsed by
`json_values.loads` unless the app gave the engine a `json_deserializer` (the values json.loads
gives, with a number no float64 holds exactly marked for the encoder to refuse). One more change
serves the encoder, and only where records are the row's columns (no `to_record` to surprise):
a JSON column holding JSON `null` reads as `JSON_NULL`, not None, so the line keeps it apart
from SQL NULL.
"""
from __future__ import annotations

import math
import re
from datetime import time, timedelta
from decimal import Context, Decimal
from typing import Any, Callable

from sqlalchemy import ARRAY, JSON, Boolean, Date, DateTime, Float, Numeric, Select, Text, Time, cast, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.types import NullType, TypeDecorator

from .json_values import JSON_NULL, column_value, loads

_ONE_DAY = timedelta(days=1)
# Any decimal of up to 15 significant digits survives a round trip through a double (DBL_DIG):
# the double's shortest repr is that decimal. Beyond 15, the repr may differ from what was written.
_FLOAT_DIGITS = 15
_SUB_MICROSECOND = re.compile(r"\.[0-9]{7}")
# Wide enough for any SQLite integer (19 digits) with any NUMERIC scale.
_WIDE = Context(prec=200)


def exact_statement(statement: Select, dialect: Dialect, json_nulls: bool) -> Select:
    """`statement` with each lossy column (see module docstring) read exactly, and with JSON
    `null` read as `JSON_NULL` when `json_nulls`; `statement` itself when nothing changes.
    Result column names stay as they were."""
    columns = list(statement.selected_columns)
    exact = [_exact_column(column, dialect, json_nulls) for column in columns]
    if all(new is old for new, old in zip(exact, columns)):
        return statement
    return statement.with_only_columns(*exact, maintain_column_froms=True)


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
    return column


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

