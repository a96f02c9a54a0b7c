"""Lines built by the database, on MariaDB: the shard query writes each row's NDJSON line itself,
and Python only joins the lines into chunks (the MariaDB fast path of `ExportShardManager.lines`,
the counterpart of `postgres_lines`).

Type by type the SQL writes what `RecordEncoder` writes (shared/BIGQUERY-JSON.md) for the value
the Python path gets from PyMySQL and SQLAlchemy. Beside each line it decides whether the row is
*suspect*: true for every row the encoder might refuse, and for a few it would accept (a
conservative superset). Two checks are Python's: each JSON value must be what orjson writes back
after reading it (no duplicate keys, escapes, exponents or numbers orjson would write otherwise;
MariaDB's JSON_COMPACT only drops whitespace), and a string with a `\\u00` escape (MariaDB writes
its hex digits upper case, orjson lower case) is suspect. A suspect row is read again and goes
through the Python path (`records`, then `encoder.encode`), so a violating row raises exactly
the Python path's RecordError, and an over-flagged row still gets the encoder's own line.

MariaDB joins each batch of CHUNK_ROWS lines into one value (GROUP_CONCAT over a key range), so
PyMySQL, pure Python, reads one row per batch instead of one per line (6-8 us a row). Two more
connections build batches at once, the next ones while Python checks and writes the current:
MariaDB builds one query's lines on one core, and that is most of the work (one connection alone
took a third longer than row by row, the server and Python waiting for each other). The batches
are key ranges whose bounds the session's connection reads from the key's index: a keyset scan,
each row of the shard read once, at most BUILDING_CONNECTIONS batches held here. A batch with
anything for Python to decide is read again row by row through an unbuffered cursor.

The fast path applies only on MariaDB through PyMySQL with a utf8mb4 connection (in the
settings `session_settings` gives every read; not in an sql_mode that changes what its functions
write), where the Python path gets each value as PyMySQL makes it (a FLOAT as `raw_values` reads
it) or through one of the few SQLAlchemy result processors mirrored here (Boolean, Float, TIME,
JSON, Enum, BIT), no `to_record`/`records` override, and every schema field has a column type
below; elsewhere `mysql_lines` returns None and the Python path runs. (MySQL keeps the Python path: its JSON type and functions differ, and
no MySQL server runs here to prove the SQL against.)
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field as dataclass_field
from datetime import timedelta, timezone, tzinfo
from functools import cached_property
from itertools import product
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import orjson
from google.cloud.bigquery import SchemaField
from pymysql.constants import FIELD_TYPE, FLAG
from pymysql.cursors import SSCursor
from sqlalchemy import JSON, Enum, Select, bindparam
from sqlalchemy.dialects.mysql import BIT, TIME
from sqlalchemy.engine import Dialect, processors

from .schema import TYPE_NAMES
from .session_settings import reading_settings
from .shard import shard_query
from .suspect_rows import with_suspects_encoded

if TYPE_CHECKING:
    from .manager import ExportShardManager
    from .run import Shard

#: Rows per batch: MariaDB joins a batch's lines into one value, yielded as one chunk of bytes.
CHUNK_ROWS = 2_000
#: Connections building batches at once, besides the session's (which reads the batches' key
#: bounds): MariaDB builds one query's lines on one core, and the lines cost it more than
#: Python's share, so two keep both cores busy.
BUILDING_CONNECTIONS = 2

_MAX_SAFE_INTEGER = 2**53 - 1
_INT64_MAX = 2**63 - 1
_BINARY_CHARSET = 63  # PyMySQL returns bytes for a string column in this character set

_INTEGERS = {FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG}
_FLOATS = {FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE}
_DECIMALS = {FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL}
_STRINGS = {FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.TINY_BLOB,
            FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB, FIELD_TYPE.BLOB, FIELD_TYPE.ENUM}
_INSTANTS = {FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP}

# DATE_FORMAT patterns of the encoder's canonical forms (% doubled for PyMySQL's interpolation).
_UTC_FORMAT = "'%%Y-%%m-%%dT%%H:%%i:%%s.%%fZ'"
_WALL_CLOCK_FORMAT = "'%%Y-%%m-%%dT%%H:%%i:%%s.%%f'"
_DATE_FORMAT = "'%%Y-%%m-%%d'"
_TIME_FORMAT = "'%%H:%%i:%%s.%%f'"
# Shifting naive values by a fixed offset moves them by under a day: values within a day of the
# ends of years 1-9999 are suspect, and so are MariaDB's zero dates ('0000-00-00', '2024-00-10'),
# which PyMySQL returns as text.
_DATETIME_RANGE = ("0001-01-02", "9999-12-31")
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class _Field:
    """How the SQL writes one schema field."""

    #: SQL text of the field's JSON value; NULL leaves the field out of the line.
    value: str
    #: SQL conditions, each true when the encoder might refuse the row for this field.
    suspect: tuple[str, ...] = ()
    #: Query parameters the SQL above names (`%(name)s`).
    params: dict[str, Any] = dataclass_field(default_factory=dict)


@dataclass(frozen=True)
class _Column:
    """One column of the shard query: the server's type and how SQLAlchemy processes it."""

    ref: str
    type_code: int
    binary: bool  # a string column PyMySQL returns as bytes
    scale: int
    precision: int | None  # DECIMAL(p, s)
    processing: str  # "raw", "boolean", "float", "time", "json", "enum", "bit"
    enum_labels: Sequence[str] | None = None
    zerofill: bool = False  # a ZEROFILL number, whose text MariaDB pads with zeros

    @property
    def text(self) -> str:
        """SQL of the number's text as PyMySQL reads it: `0042` of an INT ZEROFILL is 42 (a JSON
        number with leading zeros is no JSON). Only here: the key's `ref` keeps its index."""
        return f"CONCAT({self.ref} + 0)" if self.zerofill else f"CONCAT({self.ref})"


def mysql_lines(manager: ExportShardManager, shard: Shard) -> Iterator[bytes] | None:
    """The shard's NDJSON lines, built by MariaDB and yielded in chunks of many lines each;
    None when the fast path does not apply to `manager` (then the Python path must run).

    Runs a LIMIT 0 probe of the shard query in the manager's session to learn its column types.
    """
    if not _plain_manager(manager):
        return None
    connection = manager.source_connection()
    dialect = connection.dialect
    if dialect.name != "mysql" or dialect.driver != "pymysql" or not dialect.is_mariadb or dialect.paramstyle != "pyformat":
        return None
    driver = connection.connection.driver_connection
    if driver.charset != "utf8mb4":
        return None  # utf8mb3 cannot carry characters beyond the BMP the same way
    if not _plain_sql_mode(driver):
        return None
    statement = shard_query(manager.query(), manager.key, shard)
    probe = connection.execute(statement.limit(0))
    names, fields = list(probe.keys()), getattr(getattr(probe.cursor, "_result", None), "fields", None)
    probe.close()
    if fields is None:
        return None
    columns = _columns(statement, names, fields, dialect)
    if columns is None or manager.key_column not in columns:
        return None
    built = _fields(manager, columns)
    if built is None:
        return None
    sql = _LineSQL.of(manager, shard, dialect, built, columns)
    if sql is None:
        return None
    return _stream(manager, driver, sql)


# --- when the fast path applies ------------------------------------------------------------------

# sql_mode flags under which the SQL below would write other lines: ORACLE makes CONCAT skip a
# NULL (a NULL value's field would be written empty), EMPTY_STRING_IS_NULL makes its '' NULL.
_UNSUPPORTED_SQL_MODES = {"ORACLE", "EMPTY_STRING_IS_NULL"}


def _plain_sql_mode(driver: Any) -> bool:
    with driver.cursor() as cursor:
        cursor.execute("SELECT @@session.sql_mode")
        (mode,) = cursor.fetchone()
    return not set(mode.split(",")) & _UNSUPPORTED_SQL_MODES


def _plain_manager(manager: ExportShardManager) -> bool:
    return (
        manager.database_lines
        and manager.records_are_columns()
        and all(TYPE_NAMES[field.field_type] != "RECORD" and field.mode != "REPEATED" for field in manager.schema)
    )


def _columns(statement: Select, names: list[str], fields: Sequence[Any], dialect: Dialect) -> dict[str, _Column] | None:
    """The shard query's columns by record key, or None if the Python path would see a value
    other than PyMySQL's, or one of the SQLAlchemy processings mirrored here, of a known type."""
    selected = list(statement.selected_columns)
    if not len(names) == len(fields) == len(selected) or len(set(names)) != len(names):
        return None
    columns = {}
    for index, (name, field, expression) in enumerate(zip(names, fields, selected)):
        processing = _processing(expression.type.dialect_impl(dialect), dialect, field.type_code)
        if processing is None:
            return None
        labels = None
        if processing == "enum":
            labels = expression.type.dialect_impl(dialect).enums
        columns[name] = _Column(
            f"t.c{index}", field.type_code, field.charsetnr == _BINARY_CHARSET, field.scale,
            _decimal_precision(field) if field.type_code in _DECIMALS else None,
            processing, labels, bool(field.flags & FLAG.ZEROFILL),
        )
    return columns


def _decimal_precision(field: Any) -> int:
    # A DECIMAL's display length counts its point and, unless UNSIGNED, its sign.
    return field.length - (field.scale > 0) - (0 if field.flags & FLAG.UNSIGNED else 1)


def _processing(sa_type: Any, dialect: Dialect, type_code: int) -> str | None:
    """How SQLAlchemy turns PyMySQL's value into the Python path's: "raw" for not at all, a
    name for a processor mirrored here, None for one that is not."""
    processor = sa_type.result_processor(dialect, type_code)
    if processor is None:
        return "raw"
    kind = type(sa_type)
    if processor is processors.int_to_boolean:
        return "boolean"
    if processor is processors.to_float:
        return "float"
    if isinstance(sa_type, TIME) and kind.result_processor is TIME.result_processor:
        return "time"  # timedelta to time: the same digits for every value the SQL vouches for
    if isinstance(sa_type, JSON) and kind.result_processor is type(JSON().dialect_impl(dialect)).result_processor:
        # json.loads, unless the app gave the engine a deserializer of its own.
        return "json" if getattr(dialect, "_json_deserializer", None) is None else None
    if isinstance(sa_type, Enum) and kind.result_processor is Enum.result_processor:
        return "enum" if sa_type.enum_class is None else None  # with a class: enum members
    if isinstance(sa_type, BIT) and kind.result_processor is BIT.result_processor:
        return "bit"  # bytes to int
    return None


# --- the SQL of each field -----------------------------------------------------------------------

def _fields(manager: ExportShardManager, columns: dict[str, _Column]) -> list[_Field] | None:
    """The SQL of every schema field in schema order, or None if one has no SQL form here."""
    if set(columns) != {field.name for field in manager.schema}:
        return None  # the encoder refuses a record with a column the schema lacks
    fields = []
    for field in manager.schema:
        column = columns[field.name]
        builder = _BUILDERS.get(TYPE_NAMES[field.field_type])
        built = builder(field, column, manager.naive_timestamp_zone) if builder else None
        if built is None:
            return None
        suspect, params = list(built.suspect), {}
        if column.enum_labels is not None:
            # SQLAlchemy raises LookupError on an unknown label; compared byte for byte, as it does.
            params = {f"bq_etl_{field.name}_{index}": label.encode() for index, label in enumerate(column.enum_labels)}
            suspect.append(f"CAST({column.ref} AS BINARY) NOT IN ({', '.join(f'%({name})s' for name in params)})")
        if field.mode == "REQUIRED":
            suspect.append(f"{column.ref} IS NULL")
        fields.append(_Field(built.value, tuple(suspect), params))
    return fields


def _integer(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    ref, text = column.ref, column.text
    if column.processing == "bit":
        ref = f"CAST({ref} AS UNSIGNED)"
        text = f"CONCAT({ref})"
    elif column.type_code not in _INTEGERS or column.processing != "raw":
        return None
    n = _MAX_SAFE_INTEGER
    return _Field(
        f"""CASE WHEN {ref} BETWEEN -{n} AND {n} THEN {text} ELSE CONCAT('"', {text}, '"') END""",
        (f"{ref} > {_INT64_MAX}",),  # BIGINT UNSIGNED and BIT(64) reach beyond int64
    )


def _float(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.type_code not in _FLOATS or column.processing not in ("raw", "float"):
        return None
    ref = column.ref
    if column.type_code == FIELD_TYPE.FLOAT:
        return _float32(ref)
    # Between 1e-5 and 1e15 MariaDB writes a double as PyMySQL reads it and as orjson writes it
    # back, but a whole number without its ".0". Outside that range, orjson uses an exponent
    # where MariaDB may not. (MariaDB stores no negative zero, NaN or infinity.)
    text = column.text
    return _Field(
        f"IF(LOCATE('.', {text}), {text}, CONCAT({text}, '.0'))",
        (f"NOT (ABS({ref}) >= 0.00001 AND ABS({ref}) < 1000000000000000 OR {ref} = 0) OR LOCATE('e', {text})",),
    )


def _float32(ref: str) -> _Field:
    """A single-precision FLOAT as the Python path reads it (`raw_values.shortest_float32`): the
    shortest decimal that reads back as the same float32, the nearest one of its length.

    MariaDB sends a FLOAT as six significant digits (%g): when those read back, they are the
    shortest decimal (a normal float32 is too near its six-digit rounding for a shorter one to
    be another). Otherwise the value rounded to 7, then 8, then 9 digits (which always read
    back) by ROUND on its double: rint(x * 10^n) / 10^n, or rint(x / 10^-n) * 10^-n, rounds
    half to even as Python does, and exactly (an x * 10^n that is no half-integer lies further
    from one than the product's error) for n of 12 or less and -n of 6 or less: for x from 1e-4
    to 1e13. CAST(... AS FLOAT) reads a decimal through a double; from 2^-14 up no decimal of
    nine digits or fewer has a float32's halfway point for its nearest double, unless it is that
    point (checked for every float32 from there to 1e15), so it reads each as strtof does. A row
    with a FLOAT outside those ranges is suspect. Whole numbers are the integer float32s."""
    six = f"CAST(CONCAT({ref}) AS DOUBLE)"
    reads_back = f"CAST(CONCAT({ref}) AS FLOAT) = {ref}"
    exponent = f"FLOOR(LOG10(ABS({ref})))"
    rounded = [f"ROUND(CAST({ref} AS DOUBLE), {digits - 1} - {exponent})" for digits in (7, 8, 9)]
    value = (
        f"CASE WHEN {reads_back} THEN {six} "
        + "".join(f"WHEN CAST({each} AS FLOAT) = {ref} THEN {each} " for each in rounded[:2])
        + f"ELSE {rounded[2]} END"
    )
    return _Field(
        f"IF({ref} = FLOOR({ref}), CONCAT({value}, '.0'), CONCAT({value}))",
        (f"NOT ({ref} = 0 OR ABS({ref}) >= 0.0001 AND ABS({ref}) < 10000000000000 "
         f"OR ABS({ref}) >= 0.00006103515625 AND ABS({ref}) < 1000000000000000 AND {reads_back})",),
    )


def _decimal(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.type_code not in _DECIMALS or column.processing != "raw":
        return None
    if field.precision is not None:
        scale = field.scale or 0
        integer_digits = field.precision - scale
    elif TYPE_NAMES[field.field_type] == "NUMERIC":
        scale, integer_digits = 9, 29
    else:
        scale, integer_digits = 38, 38  # BIGNUMERIC reaches 5.7e38; the encoder decides beyond 1e38
    if column.scale > scale:
        return None  # every value has more fractional digits than the schema: the Python path decides
    ref = column.ref
    value = f"""CONCAT('"', {column.text}, '"')"""
    if column.precision is not None and column.precision - column.scale <= integer_digits:
        return _Field(value)
    # An exact DECIMAL literal: a double would round near the bound.
    return _Field(value, (f"ABS({ref}) >= 1{'0' * integer_digits}",))


def _boolean(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    ref = column.ref
    if column.type_code in _INTEGERS and column.processing in ("raw", "boolean") or column.processing == "bit":
        # The encoder takes the integers 0 and 1 for a BOOLEAN (MariaDB's BOOLEAN is TINYINT(1));
        # the Python path reads a Boolean column raw (raw_values), so any other integer is refused.
        ref = f"CAST({ref} AS UNSIGNED)" if column.processing == "bit" else ref
        return _Field(f"CASE {ref} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END", (f"{ref} NOT IN (0, 1)",))
    return None


def _string(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.type_code not in _STRINGS or column.binary or column.processing not in ("raw", "enum"):
        return None
    ref = column.ref
    limit = (f"CHAR_LENGTH({ref}) > {field.max_length}",) if field.max_length else ()
    return _Field(f"JSON_QUOTE(CONVERT({ref} USING utf8mb4))", limit)


def _bytes(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.type_code not in _STRINGS or not column.binary or column.processing != "raw":
        return None
    ref = column.ref
    limit = (f"OCTET_LENGTH({ref}) > {field.max_length}",) if field.max_length else ()
    # MariaDB breaks base64 into lines of 76 characters; the encoder does not.
    return _Field(f"""CONCAT('"', REPLACE(TO_BASE64({ref}), CHAR(10), ''), '"')""", limit)


def _datetime_suspect(ref: str) -> tuple[str, ...]:
    low, high = _DATETIME_RANGE
    return (f"({ref} < '{low}' OR {ref} >= '{high}' OR {_no_calendar_day(ref)})",)


def _no_calendar_day(ref: str) -> str:
    """SQL true for a date MariaDB keeps that is no day of the calendar, which PyMySQL returns
    as text: a zero month or day, or (ALLOW_INVALID_DATES) a day past the month's end, such as
    2024-02-30. Most rows cost MONTH and one DAYOFMONTH (25-50 ns a row on the bench machine);
    LAST_DAY is only reached for days 29 to 31."""
    return (f"MONTH({ref}) = 0 OR DAYOFMONTH({ref}) NOT BETWEEN 1 AND 28 "
            f"AND (DAYOFMONTH({ref}) = 0 OR DAYOFMONTH({ref}) > DAYOFMONTH(LAST_DAY({ref})))")


def _timestamp(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    # PyMySQL reads DATETIME as a naive datetime meaning the declared zone; only fixed offsets
    # shift the way Python does. A TIMESTAMP is an instant, read (and written by DATE_FORMAT) in
    # the session's UTC: never shifted (`raw_values` reads it as UTC whatever the zone).
    if column.type_code not in _INSTANTS or column.processing != "raw":
        return None
    ref = column.ref
    if column.type_code == FIELD_TYPE.TIMESTAMP:
        return _Field(f"""CONCAT('"', DATE_FORMAT({ref}, {_UTC_FORMAT}), '"')""", _datetime_suspect(ref))
    if not isinstance(zone, timezone):
        return None
    offset = zone.utcoffset(None)
    shifted = f"({ref} - INTERVAL {offset // _MICROSECOND} MICROSECOND)" if offset else ref
    return _Field(f"""CONCAT('"', DATE_FORMAT({shifted}, {_UTC_FORMAT}), '"')""", _datetime_suspect(ref))


def _datetime(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.type_code not in _INSTANTS or column.processing != "raw":
        return None
    ref = column.ref
    return _Field(f"""CONCAT('"', DATE_FORMAT({ref}, {_WALL_CLOCK_FORMAT}), '"')""", _datetime_suspect(ref))


def _date(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.type_code not in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE) or column.processing != "raw":
        return None
    ref = column.ref
    return _Field(
        f"""CONCAT('"', DATE_FORMAT({ref}, {_DATE_FORMAT}), '"')""",
        (f"({ref} < '0001-01-01' OR {_no_calendar_day(ref)})",),
    )


def _time(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    # MariaDB's TIME runs from -838:59:59 to 838:59:59 (PyMySQL reads a timedelta): the encoder
    # takes 00:00:00 to 23:59:59.999999 only.
    if column.type_code != FIELD_TYPE.TIME or column.processing not in ("raw", "time"):
        return None
    ref = column.ref
    return _Field(f"""CONCAT('"', TIME_FORMAT({ref}, {_TIME_FORMAT}), '"')""",
                  (f"({ref} < '00:00:00' OR {ref} > '23:59:59.999999')",))


def _json(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    # MariaDB's JSON is LONGTEXT checked by JSON_VALID; SQLAlchemy's JSON reads it with
    # json.loads. JSON_COMPACT drops the whitespace between tokens and keeps every token's text:
    # Python checks each value is what orjson writes back (see _stream). A text JSON_COMPACT
    # cannot read gives '' there, which no JSON reader takes.
    if column.type_code not in _STRINGS or column.binary or column.processing != "json":
        return None
    ref = column.ref
    return _Field(f"IF({ref} IS NULL, NULL, COALESCE(JSON_COMPACT({ref}), ''))")


_BUILDERS: dict[str, Callable[[SchemaField, _Column, tzinfo | None], _Field | None]] = {
    "INTEGER": _integer,
    "FLOAT": _float,
    "NUMERIC": _decimal,
    "BIGNUMERIC": _decimal,
    "BOOLEAN": _boolean,
    "STRING": _string,
    "BYTES": _bytes,
    "TIMESTAMP": _timestamp,
    "DATETIME": _datetime,
    "DATE": _date,
    "TIME": _time,
    "JSON": _json,
}


# --- the query and the stream --------------------------------------------------------------------

_AFTER, _UPTO = "bq_etl_after", "bq_etl_upto"


@dataclass(frozen=True)
class _LineSQL:
    """The SQL that builds a shard's lines, for the shard's rows in a range of keys."""

    manager: ExportShardManager
    shard: Shard
    dialect: Dialect
    line: str  # the row's line, bytes ending in a newline (CAST AS BINARY: never decoded)
    suspect: str  # true when the encoder might refuse the row
    check: str | None  # the row's JSON values, each followed by a comma, for Python's check (None without JSON fields)
    key_ref: str
    params: dict[str, Any]

    @classmethod
    def of(cls, manager: ExportShardManager, shard: Shard, dialect: Dialect, fields: list[_Field],
           columns: dict[str, _Column]) -> _LineSQL | None:
        """The SQL of `fields`, or None if SQLAlchemy would convert a query parameter on the way
        (then it must run the query itself)."""
        if any(bind.type.dialect_impl(dialect).bind_processor(dialect) is not None
               for bind in _compiled(manager, shard, dialect, True, True).binds.values()):
            return None
        schema = manager.schema
        values = ", ".join(
            f"CONCAT('{orjson.dumps(field.name).decode()}:', {built.value})" for field, built in zip(schema, fields)
        )
        # Each JSON value followed by a comma (a NULL one left out: CONCAT gives NULL, CONCAT_WS
        # skips it), so a row with none gives '' and GROUP_CONCAT needs no separator. A value
        # MariaDB cannot read (JSON_COMPACT gives NULL; so does one nested over 31 levels) becomes
        # "!", which no JSON reader takes; a bare null is found in Python (_canonical_json).
        # Each JSON_COMPACT is written once: MariaDB evaluates NULLIF's first argument twice,
        # and JSON_COMPACT is the dearest function of a line.
        checks = [
            f"IF({ref} IS NULL, NULL, CONCAT(COALESCE(JSON_COMPACT({ref}), '!'), ','))"
            for field in schema if TYPE_NAMES[field.field_type] == "JSON"
            for ref in (columns[field.name].ref,)
        ]
        return cls(
            manager, shard, dialect,
            # CONCAT_WS skips NULLs: a NULL value leaves its field out, as the encoder does.
            line=f"CAST(CONCAT('{{', CONCAT_WS(',', {values}), '}}', CHAR(10)) AS BINARY)",
            suspect=" OR ".join(condition for built in fields for condition in built.suspect) or "FALSE",
            check=f"CAST(CONCAT_WS('', {', '.join(checks)}) AS BINARY)" if checks else None,
            key_ref=columns[manager.key_column].ref,
            params={name: value for built in fields for name, value in built.params.items()},
        )

    def batch(self, after: Any, upto: Any) -> tuple[str, dict[str, Any]]:
        """One row for the rows with keys in (after, upto] (None: unbounded): their lines joined
        in key order (a suspect row's left out), their count and their JSON values."""
        sql, params = self._rows(after, upto)
        check = f"GROUP_CONCAT({self.check} SEPARATOR '')" if self.check else "NULL"
        # A batch is one value: group_concat_max_len would cut it at 1 MB. (One larger than
        # max_allowed_packet comes cut or NULL: its line count tells, see _stream.)
        return (
            f"SET STATEMENT group_concat_max_len = 4294967295 FOR "
            f"SELECT GROUP_CONCAT(IF({self.suspect}, '', {self.line}) ORDER BY {self.key_ref} SEPARATOR ''), "
            f"COUNT(*), {check} FROM ({sql}) AS t", params,
        )

    def rows(self, after: Any, upto: Any) -> tuple[str, dict[str, Any]]:
        """Each row with a key in (after, upto]: its line (NULL if suspect), key and JSON values."""
        sql, params = self._rows(after, upto)
        # The shard query's ORDER BY is dropped inside a derived table, hence the outer one (the
        # key's index still gives the order: MariaDB merges the derived table into the query).
        return (f"SELECT IF({self.suspect}, NULL, {self.line}), {self.key_ref}, {self.check or 'NULL'} "
                f"FROM ({sql}) AS t ORDER BY {self.key_ref}", params)

    def upper_key(self, after: Any) -> tuple[str, dict[str, Any]]:
        """The key CHUNK_ROWS rows on from `after` (None: the shard's start); no row if fewer
        are left. Read from the key's index alone."""
        sql, params = self._compiled[("upper_key", after is not None, False)]
        return sql, {**params, _AFTER: after}

    def _rows(self, after: Any, upto: Any) -> tuple[str, dict[str, Any]]:
        sql, params = self._compiled[("rows", after is not None, upto is not None)]
        return sql, {**params, **self.params, _AFTER: after, _UPTO: upto}

    @cached_property
    def _compiled(self) -> dict[tuple[str, bool, bool], tuple[str, dict[str, Any]]]:
        # Compiled once per shard: SQLAlchemy takes about a millisecond a compilation, and a
        # shard of a million rows has 500 batches.
        compiled = {}
        for after, upto in product((False, True), repeat=2):
            rows = _compiled(self.manager, self.shard, self.dialect, after, upto)
            compiled["rows", after, upto] = str(rows), rows.params
        key = self.manager.key
        for after in (False, True):
            statement = shard_query(self.manager.query(), key, self.shard).with_only_columns(key, maintain_column_froms=True)
            if after:
                statement = statement.where(key > bindparam(_AFTER))
            upper = statement.offset(CHUNK_ROWS - 1).limit(1).compile(
                dialect=self.dialect, compile_kwargs={"render_postcompile": True})
            compiled["upper_key", after, False] = str(upper), upper.params
        return compiled


def _compiled(manager: ExportShardManager, shard: Shard, dialect: Dialect, after: bool, upto: bool) -> Any:
    """The shard query with its columns labelled c0, c1, ..., limited to keys after and up to
    the bound parameters named _AFTER and _UPTO."""
    statement = shard_query(manager.query(), manager.key, shard)
    if after:
        statement = statement.where(manager.key > bindparam(_AFTER))
    if upto:
        statement = statement.where(manager.key <= bindparam(_UPTO))
    labelled = statement.with_only_columns(
        *[column.label(f"c{index}") for index, column in enumerate(statement.selected_columns)],
        maintain_column_froms=True,
    )
    return labelled.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})


def _canonical_json(values: bytes | None) -> bool:
    """True when `values`, JSON texts json.loads reads, each followed by a comma, are each what
    the encoder writes for the value: not a bare null (which the Python path leaves out or
    refuses), and what orjson writes back after reading it (so json.loads reads the same values:
    no duplicate keys, no number orjson reads otherwise; and no number that is not exactly its
    double, which orjson writes rounded: the encoder refuses those)."""
    if not values:
        return True
    document = b"[" + values[:-1] + b"]"
    try:
        parsed = orjson.loads(document)
        return None not in parsed and orjson.dumps(parsed) == document
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return False


def _stream(manager: ExportShardManager, driver: Any, sql: _LineSQL) -> Iterator[bytes]:
    """The shard's lines, batch by batch: CHUNK_ROWS rows' lines come joined by MariaDB as one
    value, so PyMySQL reads one row per batch instead of one per line. BUILDING_CONNECTIONS
    connections of their own build the next batches while Python checks and writes this one
    (on one connection the server would sit idle meanwhile). A batch with anything for Python
    to decide (a suspect row, a JSON value or escape to check, a batch cut short by
    max_allowed_packet) is read again row by row on the session's connection.

    The batches are key ranges (after, upto], their bounds read from the key's index on the
    session's connection: a keyset scan, each row of the shard read once."""
    cursor = driver.cursor()
    try:
        with ExitStack() as stack:
            engine = manager.source_engine
            building = [stack.enter_context(engine.connect()) for _ in range(BUILDING_CONNECTIONS)]
            for connection in building:  # in the session's settings (`ExportShardManager.lines`)
                stack.enter_context(reading_settings(connection))
            cursors = [connection.connection.driver_connection.cursor() for connection in building]
            # Entered last, so left first: its threads are done before their connections close.
            pool = stack.enter_context(ThreadPoolExecutor(BUILDING_CONNECTIONS))

            def batch(index: int, after: Any, upto: Any) -> tuple[bytes | None, int, bytes | None]:
                # Batch i on connection i % BUILDING_CONNECTIONS: at most that many are pending,
                # so the connection is free by the time its next batch is sent.
                building = cursors[index % BUILDING_CONNECTIONS]
                building.execute(*sql.batch(after, upto))
                return building.fetchone()

            pending: deque[tuple[Future, Any, Any]] = deque()
            index, after, upto = 0, None, _upper_key(cursor, sql, None)
            while True:
                while len(pending) < BUILDING_CONNECTIONS and index is not None:
                    pending.append((pool.submit(batch, index, after, upto), after, upto))
                    if upto is None:
                        index = None  # the last batch is sent
                    else:
                        index, after, upto = index + 1, upto, _upper_key(cursor, sql, upto)
                if not pending:
                    return
                built, batch_after, batch_upto = pending.popleft()
                data, count, checks = built.result()
                data = data or b""
                if data.count(b"\n") != count or b"\\u00" in data or not _canonical_json(checks):
                    data = b"".join(_rows(manager, driver, sql, batch_after, batch_upto))
                if data:
                    yield data
    finally:
        cursor.close()


def _upper_key(cursor: Any, sql: _LineSQL, after: Any) -> Any:
    cursor.execute(*sql.upper_key(after))
    bound = cursor.fetchone()
    return bound[0] if bound else None


def _rows(manager: ExportShardManager, driver: Any, sql: _LineSQL, after: Any, upto: Any) -> Iterator[bytes]:
    # An unbuffered cursor: with at most CHUNK_ROWS rows held here (the last batch may hold
    # more, if rows were added meanwhile).
    cursor = driver.cursor(SSCursor)
    try:
        cursor.execute(*sql.rows(after, upto))
        while chunk := cursor.fetchmany(CHUNK_ROWS):
            # A suspect row's NULL line, a JSON value orjson would write otherwise, and a string
            # with a \u00 escape (MariaDB writes its hex digits upper case, orjson lower case).
            suspects = {
                index for index, (line, _, checks) in enumerate(chunk)
                if line is None or b"\\u00" in line or not _canonical_json(checks)
            }
            yield b"".join(with_suspects_encoded(manager, sql.shard, chunk, suspects) if suspects else
                           [line for line, _, _ in chunk])
    finally:
        cursor.close()  # reads what is left of the result: the connection must be free again
