"""The record encoder: one record (a dict of Python values) in, one validated NDJSON line out.

The rules per BigQuery type are those of shared/BIGQUERY-JSON.md. A value BigQuery cannot hold
exactly is refused with a RecordError, never rounded or dropped.
"""
from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import Enum
from os import PathLike
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson

from .errors import RecordError, SchemaError
from .json_values import JSON_NULL, MAX_DEPTH, CheckedJSON, InexactFloat
from .schema import TYPE_NAMES, check_schema

if TYPE_CHECKING:
    from google.cloud.bigquery import SchemaField

Converter = Callable[[Any], Any]

_MAX_SAFE_INTEGER = 2**53 - 1  # beyond this a JSON number loses digits in many readers
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1
_ONE_DAY = timedelta(days=1)
# How pymysql hands back a MariaDB date or datetime it cannot make a date of: as its text.
_TEXT_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_UTC = timezone.utc
# Zones seen to be UTC at every instant (so their datetimes are written as they are, with "Z"):
# fixed zones of offset zero, added as met (a database session in UTC gives ZoneInfo("Etc/UTC")).
_UTC_ZONES: set[tzinfo] = {_UTC}
_UTC_ZONE_KEYS = frozenset({
    "UTC", "UCT", "Universal", "Zulu", "Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu",
})
# Converters hand orjson a datetime, date or time it writes in BigQuery's form as it is: an
# aware datetime only when in UTC (written with "Z"), never a naive one meaning UTC.
_LINE_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_UTC_Z
# A refused JSON value's path names this many levels, then how deep the value lies.
_JSON_PATH_LEVELS = 8


#: Why a NULL in a REQUIRED field is refused, and what to do.
REQUIRED_NULL = ("the field is REQUIRED in the schema file; make it NULLABLE there, or leave out or COALESCE "
                 "the NULLs in the query")


class _Invalid(Exception):
    """A value a converter refuses; `path` grows (".name", "[2]") as it leaves nested values."""

    def __init__(self, value: Any, expected: str | None, reason: str = "", path: str = ""):
        self.value = value
        self.expected = expected
        self.reason = reason
        self.path = path
        self.levels = 0  # inside a JSON value: how deep it lies (the path names the first few)


class RecordEncoder:
    """Turns records (dicts of Python values) into validated NDJSON lines for one table."""

    def __init__(
        self,
        table: str,
        schema: Sequence[SchemaField],
        key_column: str,
        naive_timestamp_zone: tzinfo | None = timezone.utc,
        schema_file: str | PathLike[str] | None = None,
    ):
        """Compile `schema` once; raise SchemaError if it is malformed or lacks `key_column`.
        `schema_file`, where the schema was read from, is named in errors."""
        check_schema(schema, f"schema of table {table!r}")
        if key_column not in {field.name for field in schema}:
            raise SchemaError(
                f"schema of table {table!r}: key column {key_column!r} is not a top-level field"
            )
        self.table = table
        self.key_column = key_column
        self.naive_timestamp_zone = naive_timestamp_zone
        self.schema_file = schema_file
        self._fields = _compiled_fields(schema, naive_timestamp_zone)
        self._convert = _mapping_converter(self._fields)
        self._expected = {field.name: _expected(field) for field in schema}

    def expected(self, column: str) -> str:
        """The type a top-level column's value must fit, as error messages name it."""
        return self._expected.get(column, "a value the database driver can read")

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """One NDJSON line (ending in a newline) for `record`; RecordError if it does not fit the schema."""
        try:
            row = self._convert(record)
        except _Invalid as e:
            key = record.get(self.key_column) if isinstance(record, Mapping) else None
            # Paths start with the "." a nested field adds; a top-level column has none.
            column = e.path[1:]
            reason = e.reason if e.expected is not None else self._not_in_schema(column, e.reason)
            raise RecordError(self.table, key, column, e.value, e.expected, reason) from None
        return orjson.dumps(row, option=_LINE_OPTIONS)

    def _not_in_schema(self, column: str, fields: str) -> str:
        """What to do about a record's column the schema does not have (`fields`: those it has there)."""
        where = f" {self.schema_file}" if self.schema_file else ""
        parent = column.rpartition(".")[0]
        return (f"the column is not in the table's schema file{where} (fields{f' of {parent!r}' if parent else ''}: "
                f"{fields}); add the field to the schema file, or leave the column out of the query (or of the "
                "records to_record builds)")

    def row_encoder(self, keys: Sequence[str]) -> Callable[[Sequence[Any]], bytes] | None:
        """`encode` for records given as rows of values named `keys` (the default records of a
        query's rows), without building a dict per row; None unless `keys` are distinct and
        name each schema field, and only those."""
        names = [name for name, *_ in self._fields]
        if len(set(keys)) != len(keys) or set(keys) != set(names):
            return None
        # A row's values are read by position, in schema order.
        fetch = [f"row[{list(keys).index(name)}]" for name in names]
        convert_row, encode = _values_converter(self._fields, fetch, "row"), self.encode

        def encode_row(row: Sequence[Any]) -> bytes:
            try:
                return orjson.dumps(convert_row(row), option=_LINE_OPTIONS)
            except _Invalid:
                return encode(dict(zip(keys, row)))  # raises the RecordError naming the row

        return encode_row


# --- compiling a schema into converters ---------------------------------------------------------

def _record_converter(fields: Sequence[SchemaField], zone: tzinfo | None) -> Converter:
    return _mapping_converter(_compiled_fields(fields, zone))


def _compiled_fields(fields: Sequence[SchemaField], zone: tzinfo | None) -> tuple[tuple[Any, ...], ...]:
    """Each field's name, converter, whether it is REQUIRED, its expected type, and the test
    (a Python expression in `{v}`) that its commonest valid values pass unchanged, or None."""
    return tuple(
        (field.name, converter, field.mode == "REQUIRED", _expected(field), _unchanged_test(field, zone))
        for field in fields
        for converter in (_field_converter(field, zone),)
    )


def _unchanged_test(field: SchemaField, zone: tzinfo | None) -> str | None:
    """An expression true of a value `{v}` the field's converter would return as it is: the
    commonest valid values, tested inline because a converter call per value would dominate the
    cost. Everything else goes through the converter, which has the final word."""
    if field.mode == "REPEATED" or field.max_length is not None:
        return None
    field_type = TYPE_NAMES[field.field_type]
    if field_type == "TIMESTAMP" and zone is not _UTC:
        return None
    return _UNCHANGED_TESTS.get(field_type)


_UNCHANGED_TESTS = {
    "INTEGER": f"type({{v}}) is int and {-_MAX_SAFE_INTEGER} <= {{v}} <= {_MAX_SAFE_INTEGER}",
    "STRING": "type({v}) is str and {v}.isascii()",
    "BOOLEAN": "{v} is True or {v} is False",
    "FLOAT": "type({v}) is float and -inf < {v} < inf",
    "DATE": "type({v}) is date",
    # orjson writes a non-zero fraction as BigQuery's six digits, and these zones with "Z".
    "DATETIME": "type({v}) is datetime and {v}.microsecond and {v}.tzinfo is None",
    "TIMESTAMP": "type({v}) is datetime and {v}.microsecond and {v}.tzinfo in utc_zones",
}


def _values_converter(compiled: tuple[tuple[Any, ...], ...], fetch: Sequence[str],
                      argument: str) -> Callable[[Any], dict[str, Any]]:
    """What a line holds for a record's values: a function of `argument` generated for the
    schema, whose field values are the `fetch` expressions (Python source in `argument`, one
    per field, in schema order). It is one straight run of tests per field, with no loop, no
    tuple and no call for the commonest values: per value, those cost more than the tests."""
    namespace: dict[str, Any] = {
        "_Invalid": _Invalid, "inf": math.inf, "date": date, "datetime": datetime, "utc_zones": _UTC_ZONES,
    }
    source = [f"def convert_values({argument}):"]
    source += [f"    v{index} = {expression}" for index, expression in enumerate(fetch)]
    source.append("    line = {}")
    for index, (name, converter, required, expected, unchanged) in enumerate(compiled):
        v, path = f"v{index}", repr(f".{name}")
        namespace[f"convert{index}"], namespace[f"expected{index}"] = converter, expected
        if required:
            source += [f"    if {v} is None:",
                       f"        raise _Invalid(None, expected{index}, {REQUIRED_NULL!r}, {path})"]
            indent = "    "
        else:  # SQL NULL: left out of the line
            source.append(f"    if {v} is not None:")
            indent = "        "
        convert = [f"try:",
                   f"    {v} = convert{index}({v})",
                   f"except _Invalid as e:",
                   f"    e.path = {path} + e.path",
                   f"    raise"]
        if unchanged:
            source.append(f"{indent}if not ({unchanged.format(v=v)}):")
            source += [f"{indent}    {statement}" for statement in convert]
        else:
            source += [f"{indent}{statement}" for statement in convert]
        source.append(f"{indent}line[{name!r}] = {v}")
    source.append("    return line")
    label = f"<record converter of {', '.join(item[0] for item in compiled)}>"
    exec(compile("\n".join(source), label, "exec"), namespace)
    return namespace["convert_values"]


def _mapping_converter(compiled: tuple[tuple[Any, ...], ...]) -> Converter:
    """What a line holds for a record given as a mapping of field name to value."""
    names = frozenset(item[0] for item in compiled)
    columns = ", ".join(item[0] for item in compiled)
    convert_values = _values_converter(compiled, [f"get({item[0]!r})" for item in compiled], "get")

    def convert(record: Any) -> dict[str, Any]:
        if type(record) is not dict and not isinstance(record, Mapping):
            raise _Invalid(record, "RECORD", _wrong_type(record, "a RECORD takes a mapping (a dict)"))
        if not names.issuperset(record):
            unknown = next(k for k in record if k not in names)
            # No expected type: the encoder words the reason (it knows the schema file).
            raise _Invalid(record[unknown], None, columns, f".{unknown}")
        return convert_values(record.get)
    return convert


def _type_name(field: SchemaField) -> str:
    """The field's type as error messages name it: `INTEGER`, `NUMERIC(10, 2)`, `STRING(20)`."""
    name = TYPE_NAMES[field.field_type]
    if field.precision is not None:
        return f"{name}({field.precision}, {field.scale or 0})"
    if field.max_length is not None:
        return f"{name}({field.max_length})"
    return name


def _expected(field: SchemaField) -> str:
    return f"ARRAY<{_type_name(field)}>" if field.mode == "REPEATED" else _type_name(field)


def _field_converter(field: SchemaField, zone: tzinfo | None) -> Converter:
    field_type = TYPE_NAMES[field.field_type]
    if field_type == "RECORD":
        element = _record_converter(field.fields, zone)
    elif field_type in ("NUMERIC", "BIGNUMERIC"):
        element = _decimal_converter(field_type, field.precision, field.scale)
    elif field_type in ("STRING", "BYTES") and field.max_length is not None:
        element = _limit_length(_SIMPLE[field_type], field.max_length, _type_name(field))
    elif field_type == "TIMESTAMP":
        element = _timestamp_converter(zone)
    elif field_type == "JSON" and field.mode == "REQUIRED":
        element = _required_json
    else:
        element = _SIMPLE[field_type]
    if field.mode == "REPEATED":
        return _array_converter(element, _type_name(field))
    return element


def _array_converter(element: Converter, element_type: str) -> Converter:
    expected = f"ARRAY<{element_type}>"
    plain = _PLAIN_TYPES.get(element)
    # An element of ARRAY<JSON> is a JSON value, which may be a JSON array; a JSON null element
    # BigQuery would read as a NULL element, which no array holds.
    of_json = element is _json
    null_reason = ("BigQuery arrays cannot hold NULL (a JSON null element is read as NULL too)" if of_json
                   else "BigQuery arrays cannot hold NULL")

    def convert(value: Any) -> list[Any]:
        if type(value) is not list and not isinstance(value, (list, tuple)):
            reason = ("a set has no order: pass a sorted list in to_record, or read the column as text "
                      "(CAST(column AS CHAR)) into a STRING column") if isinstance(value, (set, frozenset)) else (
                      _wrong_type(value, "a REPEATED column takes a list or a tuple"))
            raise _Invalid(value, expected, reason)
        if plain is str and type(value) is list:
            # An array of ASCII strings, the common case, is written as it is.
            for item in value:
                if type(item) is not str or not item.isascii():
                    break
            else:
                return value
        out = []
        for index, item in enumerate(value):
            if item is None or item is JSON_NULL:
                raise _Invalid(item, element_type, null_reason, f"[{index}]")
            if not of_json and isinstance(item, (list, tuple)):
                raise _Invalid(item, element_type, "BigQuery arrays cannot hold arrays", f"[{index}]")
            try:
                out.append(element(item))
            except _Invalid as e:
                e.path = f"[{index}]{e.path}"
                raise
        return out

    return convert


def _wrong_type(value: Any, takes: str, example: str = "") -> str:
    """Why a value of a Python type the column does not take is refused, and what to do
    (`example`: a SQL CAST that fits a common case)."""
    cast = f"a SQL CAST; {example}" if example else "a SQL CAST"
    return f"{takes}; convert it in the export's query() ({cast}) or in to_record"


# --- scalar converters: each takes a non-None value and returns what orjson writes ------------

def _integer(value: Any) -> int | str:
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(value, "INTEGER", _wrong_type(value, "an INTEGER takes an int"))
        value = int(value)  # an IntEnum or other subclass: write its number
    if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        return value
    if _INT64_MIN <= value <= _INT64_MAX:
        # Google: big integers as strings "to avoid data corruption" by float-based readers.
        return str(value)
    raise _Invalid(value, "INTEGER", "outside the INTEGER (int64) range")


def _float(value: Any) -> float | str:
    if type(value) is not float:
        if type(value) is InexactFloat:
            raise _Invalid(value.text, "FLOAT", _inexact(value, "declare the column NUMERIC and pass a Decimal, "
                                                              "or round it in to_record"))
        if isinstance(value, bool) or not isinstance(value, (float, int)):
            reason = ("a Decimal would be rounded to a binary float; declare the column NUMERIC "
                      "or convert the value yourself") if isinstance(value, Decimal) else (
                      _wrong_type(value, "a FLOAT takes a float or an int"))
            raise _Invalid(value, "FLOAT", reason)
        try:
            number = float(value)
        except OverflowError:
            raise _Invalid(value, "FLOAT", "too large for a 64-bit float") from None
        if number != value:  # beyond 2**53 not every integer is a float: 2**53 + 1 would become 2**53
            raise _Invalid(value, "FLOAT", "a float64 cannot hold this integer exactly, it would be rounded to "
                                           f"{number!r}; declare the column INTEGER (or NUMERIC)")
        value = number
    if -math.inf < value < math.inf:
        return value
    # orjson would write null for these; BigQuery reads the strings.
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _boolean(value: Any) -> bool:
    if value is True or value is False:
        return value
    # MariaDB BOOLEAN is TINYINT(1): 0 and 1 are the only honest booleans among ints.
    if isinstance(value, int) and not isinstance(value, bool) and (value == 0 or value == 1):
        return value == 1
    if isinstance(value, int):
        reason = "only True/False, or the integers 0 and 1"
    else:
        bit = "PostgreSQL bit(1) reads as text: CAST(column AS integer)" if isinstance(value, str) else ""
        reason = _wrong_type(value, "a BOOLEAN takes True/False or the integers 0 and 1", bit)
    raise _Invalid(value, "BOOLEAN", reason)


def _string(value: Any) -> str:
    if type(value) is not str and not isinstance(value, str):
        if isinstance(value, Enum):
            raise _Invalid(value, "STRING", "an enum member is not text: make the record hold the text to "
                                            "write (member.name, as SQLAlchemy stores it, or member.value)")
        mariadb_set = "a MariaDB SET reads as a set: CAST(column AS CHAR)" if isinstance(value, (set, frozenset)) else ""
        reason = _wrong_type(value, "no implicit conversion to text: a STRING takes a str", mariadb_set)
        raise _Invalid(value, "STRING", reason)
    if not value.isascii():
        _check_utf8(value, "STRING")
    return value


def _check_utf8(value: str, expected: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _Invalid(
            value, expected, f"lone surrogate {value[e.start]!r} at index {e.start} is not valid UTF-8",
        ) from None


def _bytes(value: Any) -> str:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _Invalid(value, "BYTES", _wrong_type(value, "BYTES take bytes"))
    return base64.b64encode(value).decode("ascii")


def _limit_length(convert: Converter, max_length: int, expected: str) -> Converter:
    """STRING(L) or BYTES(L): BigQuery would fail the whole load on a longer value."""
    is_string = expected.startswith("STRING")
    unit = "characters" if is_string else "bytes"

    def limited(value: Any) -> Any:
        out = convert(value)
        length = len(value) if is_string else memoryview(value).nbytes
        if length > max_length:
            raise _Invalid(value, expected, f"{length} {unit}, more than {max_length}")
        return out

    return limited


def _decimal_converter(field_type: str, precision: int | None, scale: int | None) -> Converter:
    """NUMERIC/BIGNUMERIC, optionally parameterised: exact digits as a string, or refused."""
    if precision is not None:
        scale = scale or 0
        expected = f"{field_type}({precision}, {scale})"
        lowest, highest = -(10**precision - 1), 10**precision - 1
        integer_digits = precision - scale
    elif field_type == "NUMERIC":
        scale, expected = 9, "NUMERIC"
        lowest, highest = -(10**38 - 1), 10**38 - 1
        integer_digits = 29
    else:
        # BIGNUMERIC is a 256-bit integer scaled by 10**38: about 5.79e38, so partly 39 digits.
        scale, expected = 38, "BIGNUMERIC"
        lowest, highest = -(2**255), 2**255 - 1
        integer_digits = 38  # below 10**38 every value fits; above, the exact check decides
    unit = 10**scale
    # The int range follows from the scaled range; ceil/floor so no int outside it slips in.
    int_lowest, int_highest = -(-lowest // unit), highest // unit
    out_of_range = f"outside the {expected} range"

    def convert(value: Any) -> str:
        if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
            if int_lowest <= value <= int_highest:
                return str(int(value))
            raise _Invalid(value, expected, out_of_range)
        if not isinstance(value, Decimal):
            if isinstance(value, float):
                reason = ("a float is not exact; pass a Decimal (SQLite keeps a NUMERIC with a fraction as a "
                          "float: one of more than 15 significant digits cannot be read back exactly)")
            else:
                money = "PostgreSQL money reads as text: CAST(column AS numeric)" if isinstance(value, str) else ""
                reason = _wrong_type(value, f"{expected} takes a Decimal or an int", money)
            raise _Invalid(value, expected, reason)
        # Common case, without the costly as_tuple(): |value| < 10**integer_digits and str()
        # gives plain notation with no more fractional digits than the scale.
        if value.is_finite() and value.adjusted() < integer_digits:
            text = str(value)
            dot = text.find(".")
            if "E" not in text and (dot < 0 or len(text) - dot - 1 <= scale):
                return text
        return _exact_decimal(value, expected, scale, integer_digits, lowest, highest, out_of_range)

    return convert


def _exact_decimal(value: Decimal, expected: str, scale: int, integer_digits: int,
                   lowest: int, highest: int, out_of_range: str) -> str:
    if not value.is_finite():
        raise _Invalid(value, expected, "NaN and Infinity are not numbers BigQuery can hold")
    sign, digits, exponent = value.as_tuple()
    excess = -scale - exponent  # fractional digits beyond the scale
    if excess > 0:
        # Trailing zeros beyond the scale lose nothing; any other digit would be rounded away.
        if any(digits[-excess:]):
            raise _Invalid(value, expected, f"more than {scale} fractional digits would be rounded")
        digits, exponent = digits[:-excess] or (0,), -scale
    coefficient = int("".join(map(str, digits)))
    # Refuse huge exponents before building 10**exponent (BIGNUMERIC reaches 39 integer digits).
    if coefficient and len(digits) + exponent > integer_digits + 1:
        raise _Invalid(value, expected, out_of_range)
    scaled = coefficient * 10 ** (exponent + scale)
    if not lowest <= (-scaled if sign else scaled) <= highest:
        raise _Invalid(value, expected, out_of_range)
    text = format(value, "f")
    return text[:-excess] if excess > 0 else text


def _timestamp_converter(zone: tzinfo | None) -> Converter:
    # A zone of one fixed offset gives every wall-clock time exactly one instant; another (a
    # ZoneInfo with summer time) skips some and repeats others.
    shifts = zone is not None and type(zone) is not timezone

    def convert(value: Any) -> str:
        if type(value) is not datetime and not isinstance(value, datetime):
            raise _Invalid(value, "TIMESTAMP", "a date has no time of day" if isinstance(value, date) else _invalid_date(value))
        value_zone = value.tzinfo
        if value_zone is _UTC:
            return _utc(value)
        offset = None if value_zone is None else value.utcoffset()
        if offset is not None and not offset:
            # Already UTC (a database session in UTC gives ZoneInfo("Etc/UTC")): no shift needed.
            if _always_utc(value_zone):
                _UTC_ZONES.add(value_zone)
            return _utc(value)
        if offset is None:
            if zone is None:
                raise _Invalid(
                    value, "TIMESTAMP", "naive datetime and no time zone declared for naive timestamps"
                )
            if zone is _UTC:
                return _utc_text(value.replace(tzinfo=None) if value_zone else value)
            if shifts:
                _check_wall_clock(value, zone)
            value = value.replace(tzinfo=zone)
        try:
            value = value.astimezone(_UTC)
        except OverflowError:
            raise _Invalid(value, "TIMESTAMP", "in UTC it falls outside years 1 to 9999") from None
        return _utc(value)

    return convert


def _check_wall_clock(value: datetime, zone: tzinfo) -> None:
    """Refuse a naive `value` that is no single instant in `zone`: a time its clocks skipped,
    or one they showed twice (PEP 495: fold 0 and fold 1 then have different offsets)."""
    first = value.replace(tzinfo=zone, fold=0).utcoffset()
    second = value.replace(tzinfo=zone, fold=1).utcoffset()
    if first == second:
        return
    wall_clock = value.replace(tzinfo=None).isoformat(sep=" ")
    if first < second:  # a gap: before it the offset was smaller
        what = f"{wall_clock} does not exist in {zone} (the clocks skipped it)"
    else:
        what = f"{wall_clock} occurs twice in {zone} (the clocks went back), so its instant is ambiguous"
    raise _Invalid(value, "TIMESTAMP",
                   f"{what}; store the instant (an aware timestamp) or convert it in the export's query()")


def _always_utc(zone: tzinfo) -> bool:
    """Whether `zone` has offset zero at every instant, not just now."""
    if type(zone) is timezone:
        return not zone.utcoffset(None)
    return type(zone) is ZoneInfo and zone.key in _UTC_ZONE_KEYS


def _datetime(value: Any) -> datetime | str:
    if type(value) is not datetime and not isinstance(value, datetime):
        raise _Invalid(value, "DATETIME", _invalid_date(value))
    if value.tzinfo is not None:
        if value.utcoffset() is not None:
            raise _Invalid(
                value, "DATETIME",
                "an aware datetime would have to be shifted into a wall-clock column; "
                "pass it naive, or declare the column TIMESTAMP",
            )
        value = value.replace(tzinfo=None)
    return _wall_clock(value)


def _date(value: Any) -> date | str:
    if type(value) is date:
        return value  # orjson writes YYYY-MM-DD
    if not isinstance(value, date) or isinstance(value, datetime):
        reason = "a datetime would lose its time of day" if isinstance(value, datetime) else _invalid_date(value)
        raise _Invalid(value, "DATE", reason)
    return value.isoformat()


def _invalid_date(value: Any) -> str:
    """Why a MariaDB date that is no day of the calendar (which pymysql hands back as text) is
    refused, else nothing."""
    if not isinstance(value, str):
        return ""
    if value.startswith("0000-00-00"):
        return ("MariaDB's zero date: BigQuery has no year 0; store NULL instead, "
                "or map it to NULL in the export's query() (NULLIF)")
    if _TEXT_DATE.match(value):
        return ("not a day of the calendar (MariaDB keeps a zero month or day, and under ALLOW_INVALID_DATES a "
                "day past the month's end); correct the row or store NULL")
    return ""


def _time(value: Any) -> time | str:
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise _Invalid(value, "TIME", "a TIME column has no time zone")
        return _wall_clock(value)
    if isinstance(value, timedelta):
        # MariaDB/pymysql hand TIME back as a timedelta, which may be negative or over a day.
        if not timedelta(0) <= value < _ONE_DAY:
            raise _Invalid(value, "TIME", "outside 00:00:00 to 23:59:59.999999")
        seconds = value.seconds
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{value.microseconds:06d}"
    raise _Invalid(value, "TIME", _wrong_type(value, "a TIME takes a time or a timedelta"))


# orjson formats dates and times several times faster than isoformat(), but only of the exact
# types, and it leaves out a zero fraction where BigQuery's canonical form has six digits: such
# values are handed to it as they are, the others as text.

def _utc(value: datetime) -> datetime | str:
    """What the line holds for a datetime in UTC (aware, offset zero)."""
    if value.microsecond and type(value) is datetime:
        return value
    return _utc_text(value)


def _wall_clock(value: datetime | time) -> datetime | time | str:
    """What the line holds for a naive datetime or time."""
    if value.microsecond and (type(value) is datetime or type(value) is time):
        return value
    return _wall_clock_text(value)


def _utc_text(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ` of a datetime in UTC, or naive and meaning UTC."""
    if type(value) is datetime:
        text = orjson.dumps(value, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)
        return text[1:-1].decode() if value.microsecond else text[1:-2].decode() + ".000000Z"
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _wall_clock_text(value: datetime | time) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffff` or `HH:MM:SS.ffffff` of a naive datetime or time."""
    if type(value) is datetime or type(value) is time:
        text = orjson.dumps(value)[1:-1].decode()
        return text if value.microsecond else text + ".000000"
    return value.isoformat(timespec="microseconds")


def _json(value: Any) -> Any:
    """A JSON column: the value itself, after checking orjson and BigQuery can both hold it;
    JSON_NULL as JSON null."""
    if type(value) is CheckedJSON:
        return value.value
    if value is JSON_NULL:
        return None  # orjson writes null: BigQuery stores JSON null, not SQL NULL
    try:
        _check_json(value, 0)
    except _Invalid as e:
        where = f"${e.path}" if e.levels <= _JSON_PATH_LEVELS else f"${e.path}... ({e.levels} levels down)"
        e.reason = f"at {where}: {e.reason}"
        e.path = ""
        raise
    return value


def _required_json(value: Any) -> Any:
    if value is JSON_NULL:
        raise _Invalid(
            value, "JSON",
            "JSON null in a REQUIRED column is refused: a load may read it as a missing value; "
            "make the column NULLABLE to keep JSON null, or map it in to_record",
        )
    return _json(value)


def _check_json(value: Any, depth: int) -> None:
    # Decimal is refused rather than converted: a float would round it, a string would change its type.
    kind = type(value)
    if kind is dict or kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            raise _Invalid(value, "JSON", f"nested deeper than {MAX_DEPTH} levels")
        is_object = kind is dict
        for key, item in value.items() if is_object else enumerate(value):
            if is_object and (type(key) is not str or not key.isascii()):
                if not isinstance(key, str):
                    raise _Invalid(key, "JSON", f"object key {key!r} is not a string")
                _check_utf8(key, "JSON")
            # Valid scalars inline: a call per JSON value would dominate the cost.
            item_kind = type(item)
            if item_kind is str:
                if item.isascii():
                    continue
            elif item_kind is int:
                if _INT64_MIN <= item <= _UINT64_MAX:
                    continue
            elif item_kind is float:
                if -math.inf < item < math.inf:
                    continue
            elif item is None or item_kind is bool:
                continue
            try:
                _check_json(item, depth + 1)
            except _Invalid as e:
                if depth < _JSON_PATH_LEVELS:  # the path names the first few levels only
                    e.path = f"{'.' if is_object else '['}{key}{'' if is_object else ']'}{e.path}"
                e.levels += 1
                raise
    elif kind is str:
        if not value.isascii():
            _check_utf8(value, "JSON")
    elif kind is int:
        if not _INT64_MIN <= value <= _UINT64_MAX:
            raise _Invalid(value, "JSON", "integer outside int64/uint64")
    elif kind is float:
        if not -math.inf < value < math.inf:
            raise _Invalid(value, "JSON", "NaN and Infinity are not JSON numbers")
    elif value is None or kind is bool:
        pass
    elif kind is InexactFloat:
        raise _Invalid(value.text, "JSON", _inexact(value, "BigQuery refuses it; a JSON string keeps its digits"))
    elif isinstance(value, (str, int, dict, list)):
        # orjson writes subclasses of these four (an IntEnum, an OrderedDict) as their base type.
        base = next(base for base in (str, int, dict, list) if isinstance(value, base))
        _check_json(base(value), depth)
    else:
        raise _Invalid(value, "JSON", f"{kind.__name__} is not a JSON type")


def _inexact(number: InexactFloat, advice: str) -> str:
    """Why a JSON number no float64 holds exactly is refused, then `advice`."""
    text = number.text
    if len(text) > 40:  # jsonb writes 1e-400 as 0.000...0001: say it as 1e-400
        scientific = f"{Decimal(text):e}"
        text = scientific if len(scientific) <= 40 else text[:37] + "..."
    return f"JSON number {text} cannot be held exactly by a float64 (it would become {float(number)!r}); {advice}"


_SIMPLE: dict[str, Converter] = {
    "INTEGER": _integer,
    "FLOAT": _float,
    "BOOLEAN": _boolean,
    "STRING": _string,
    "BYTES": _bytes,
    "DATETIME": _datetime,
    "DATE": _date,
    "TIME": _time,
    "JSON": _json,
}

# Converters whose commonest valid input (of exactly this type: ASCII str, int within 2**53,
# bool) is written unchanged, so callers can skip the call for it.
_PLAIN_TYPES: dict[Converter, type] = {_string: str, _integer: int, _boolean: bool}
