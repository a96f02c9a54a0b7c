"""Lines built by the database: on PostgreSQL the shard query writes each row's NDJSON line
itself, and Python only joins the lines into chunks (the fast path of `ExportShardManager.lines`).

Type by type the SQL writes what `RecordEncoder` writes (shared/BIGQUERY-JSON.md). Beside each
line it decides whether the row is *suspect*: true for every row the encoder might refuse, and
for a few it would accept (a conservative superset). One check is Python's, on each chunk of
lines: JSON numbers outside int64/uint64 or that no double holds exactly (cheaper there than in
SQL). A suspect row is read
again and goes through the Python path (`records`, then `encoder.encode`), so a violating row
raises exactly the Python path's RecordError, and an over-flagged row still gets the encoder's
own line.

The fast path applies only where the Python path would get each value exactly as psycopg's
stock loader makes it (no SQLAlchemy result processing, no `to_record`/`records` override) and
where every schema field has a column type below; elsewhere `postgres_lines` returns None and
the Python path runs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta, timezone, tzinfo
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import orjson
import psycopg
from google.cloud.bigquery import SchemaField
from psycopg.pq import Format
from psycopg.types.string import ByteaBinaryLoader
from sqlalchemy import ARRAY, Enum, Select
from sqlalchemy.engine import Dialect

from .json_values import MAX_DEPTH, is_exact_float
from .schema import TYPE_NAMES
from .shard import shard_query
from .suspect_rows import with_suspects_encoded

if TYPE_CHECKING:
    from .manager import ExportShardManager
    from .run import Shard

#: Rows per round of the stream; one round's lines are joined into one chunk of bytes.
CHUNK_ROWS = 2_000

_MAX_SAFE_INTEGER = 2**53 - 1
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
# The encoder refuses JSON containers nested MAX_DEPTH deep. (JSON numbers outside int64/uint64,
# or that no double holds exactly, are looked for in the lines: see _rows_with_long_numbers.)
# A jsonb value nesting N containers takes at least 8 bytes per level (a container header and
# the JEntry pointing at it), so a smaller uncompressed value cannot be too deep: the cheap test
# spares the jsonpath walk for almost every row.
_JSON_DEPTH_MIN_BYTES = 8 * MAX_DEPTH
# A json (not jsonb) value is read as jsonb. The cast fails on \u0000, unpaired surrogates
# (every \uD800-\uDFFF escape is flagged) and numbers beyond the numeric type (an exponent, a
# text over 100,000 bytes); and jsonb rewrites numbers the Python path reads from the text as
# floats: 1E2 as 100, -0.0 as 0.0. Such values skip the cast and go to the Python path. The full
# pattern is slow: a text without \u escapes gets two cheaper ones (no escape to mistake a hex
# digit followed by E for an exponent).
_JSON_CAST_RISK = r"\\u(0000|[dD][89a-fA-F])|(^|[\s:,[])-?[0-9]+(\.[0-9]+)?[eE]|-0\.0*(?![0-9])"
_JSON_EXPONENT = r"[0-9][eE]"
_JSON_NEGATIVE_ZERO = r"-0\.0*(?![0-9])"
_JSON_CAST_MAX_BYTES = 100_000

# to_char formats of the encoder's canonical forms, quotes included (\" is a literal quote).
_UTC_FORMAT = r"""'\"YYYY-MM-DD"T"HH24:MI:SS.US"Z"\"'"""
_WALL_CLOCK_FORMAT = r"""'\"YYYY-MM-DD"T"HH24:MI:SS.US\"'"""
_TIME_FORMAT = r"""'\"HH24:MI:SS.US\"'"""
# Loading timestamps in the session's zone or shifting naive ones moves them by under a day:
# values within a day of the ends of years 1-9999 are suspect.
_TIMESTAMP_RANGE = ("0001-01-02", "9999-12-31")

_TYPES = psycopg.postgres.types
_ARRAY_SUFFIX = "[]"


@dataclass(frozen=True)
class _Field:
    """How the SQL writes one schema field."""

    #: SQL text of the field's JSON value; NULL leaves the field out of the line.
    value: str
    #: SQL conditions, each true when the encoder might refuse the row for this field.
    suspect: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Column:
    """One column of the shard query, as the Python path would receive it."""

    ref: str
    pg_type: str  # "int4", "text[]", "enum", ...
    precision: int | None  # numeric(p, s) type modifier, when the column has one
    scale: int | None
    enum_labels: Sequence[str] | None  # a SQLAlchemy Enum of plain strings


def postgres_lines(manager: ExportShardManager, shard: Shard) -> Iterator[bytes] | None:
    """The shard's NDJSON lines, built by PostgreSQL and yielded in chunks of many lines each;
    None when the fast path does not apply to `manager` (then the Python path must run).

    Runs a LIMIT 0 probe of the shard query in the manager's session to learn its column types.
    """
    if not _plain_manager(manager):
        return None
    connection = manager.source_connection()
    dialect = connection.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return None
    driver = connection.connection.driver_connection
    if not _plain_text_session(driver):
        return None
    statement = shard_query(manager.query(), manager.key, shard)
    compiled = _compiled(statement, dialect)
    if compiled is None:
        return None
    probe = connection.execute(statement.limit(0))
    names, description = list(probe.keys()), probe.cursor.description
    probe.close()
    columns = _columns(statement, names, description, dialect, driver)
    if columns is None or manager.key_column not in columns:
        return None
    fields = _fields(manager, columns)
    if fields is None:
        return None
    sql, params = compiled
    query = _line_query(sql, len(names), fields, columns, manager.schema, columns[manager.key_column].ref)
    scan_numbers = any(TYPE_NAMES[field.field_type] == "JSON" for field in manager.schema)
    return _stream(manager, shard, driver, query, params, scan_numbers)


# --- when the fast path applies ------------------------------------------------------------------

def _plain_manager(manager: ExportShardManager) -> bool:
    return (
        manager.database_lines
        and manager.records_are_columns()
        and all(TYPE_NAMES[field.field_type] != "RECORD" for field in manager.schema)
    )


def _plain_text_session(driver: psycopg.Connection) -> bool:
    # UTF-8 both ways (SQL_ASCII passes bytes through unchecked), and string literals where a
    # backslash is just a backslash (the to_char formats rely on it).
    info = driver.info
    return (
        info.encoding == "utf-8"
        and info.parameter_status("server_encoding") != "SQL_ASCII"
        and info.parameter_status("standard_conforming_strings") == "on"
    )


def _compiled(statement: Select, dialect: Dialect) -> tuple[str, dict[str, Any]] | None:
    """The statement's SQL and parameters as psycopg takes them; None if SQLAlchemy would
    convert a parameter on the way (a JSON or custom type) and so must run it itself."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    for bind in compiled.binds.values():
        if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
            return None
    return str(compiled), dict(compiled.params)


def _columns(statement: Select, names: list[str], description: Sequence[Any], dialect: Dialect,
             driver: psycopg.Connection) -> dict[str, _Column] | None:
    """The shard query's columns by record key, or None if the Python path would see a value
    other than psycopg's stock loading of a supported type."""
    selected = list(statement.selected_columns)
    if not len(names) == len(description) == len(selected) or len(set(names)) != len(names):
        return None
    enum_oids = _enum_oids(driver, {column.type_code for column in description} - set(_PG_TYPES))
    columns = {}
    for index, (name, column, expression) in enumerate(zip(names, description, selected)):
        oid = column.type_code
        pg_type = "enum" if oid in enum_oids else _PG_TYPES.get(oid)
        sa_type = expression.type.dialect_impl(dialect)
        enum_labels = None
        if isinstance(sa_type, Enum):
            # Plain strings only: with an enum class the Python path gets enum members.
            if sa_type.enum_class is not None or pg_type not in ("text", "varchar", "enum"):
                return None
            enum_labels = sa_type.enums
        elif isinstance(sa_type, ARRAY):
            element_oid = _TYPES.get(oid).oid if pg_type and pg_type.endswith(_ARRAY_SUFFIX) else None
            element = sa_type.item_type.dialect_impl(dialect)
            if element_oid is None or element.result_processor(dialect, element_oid) is not None:
                return None
            if not _stock_loader(driver, element_oid):
                return None
        elif sa_type.result_processor(dialect, oid) is not None:
            return None
        if pg_type is None or not _stock_loader(driver, oid):
            return None
        columns[name] = _Column(f"t.c{index}", pg_type, column.precision, column.scale, enum_labels)
    return columns


def _enum_oids(driver: psycopg.Connection, oids: set[int]) -> set[int]:
    if not oids:
        return set()
    rows = driver.execute("SELECT oid FROM pg_type WHERE oid = ANY(%s) AND typtype = 'e'", [list(oids)])
    return {oid for (oid,) in rows}


def _stock_loader(driver: psycopg.Connection, oid: int) -> bool:
    # A loader of the app's own (say, set_json_loads) could make values the SQL does not mirror.
    # An enum has no loader: psycopg loads it with the one for unknown types (oid 0).
    return all(
        driver.adapters.get_loader(each, Format.TEXT) is psycopg.adapters.get_loader(each, Format.TEXT)
        for each in (oid, 0)
    )


# --- the SQL of each field -----------------------------------------------------------------------

def _fields(manager: ExportShardManager, columns: dict[str, _Column]) -> list[_Field] | None:
    """The SQL of every schema field in schema order, or None if one has no SQL form here."""
    if set(columns) != {field.name for field in manager.schema}:
        return None  # the encoder refuses a record with a column the schema lacks
    fields = []
    for field in manager.schema:
        built = _field(field, columns[field.name], manager.naive_timestamp_zone)
        if built is None:
            return None
        fields.append(built)
    return fields


def _field(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    field_type = TYPE_NAMES[field.field_type]
    ref = column.ref
    if field.mode == "REPEATED":
        element = column.pg_type.removesuffix(_ARRAY_SUFFIX)
        if column.pg_type == element or element not in _REPEATABLE.get(field_type, ()) or field.max_length:
            return None
        # array_position refuses multidimensional arrays, hence the CASE.
        return _Field(f"to_json({ref})::text", (
            f"CASE WHEN array_ndims({ref}) > 1 THEN true ELSE array_position({ref}, NULL) IS NOT NULL END",
        ))
    builder = _BUILDERS.get(field_type)
    built = builder(field, column, zone) if builder else None
    if built is None:
        return None
    suspect = list(built.suspect)
    if column.enum_labels is not None:
        labels = ", ".join(_literal(label) for label in column.enum_labels)
        suspect.append(f"{ref}::text NOT IN ({labels})")  # SQLAlchemy raises LookupError on these
    if field.mode == "REQUIRED":
        suspect.append(f"{ref} IS NULL")
    return _Field(built.value, tuple(suspect))


def _integer(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    ref = column.ref
    if column.pg_type in ("int2", "int4"):
        return _Field(f"{ref}::text")
    if column.pg_type == "int8":
        n = _MAX_SAFE_INTEGER
        return _Field(f"""CASE WHEN {ref} BETWEEN -{n} AND {n} THEN {ref}::text ELSE '"' || {ref} || '"' END""")
    return None


def _float(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.pg_type not in ("float4", "float8"):
        return None
    ref = column.ref
    # to_json writes NaN and the infinities as the encoder does ("NaN", "-Infinity"), but a
    # whole number without its ".0" (so it would read back as an integer) and a negative zero
    # as -0 (so it would lose its sign). Whole numbers print without an exponent below 1e15
    # (float4: 1e6).
    plain = "1e15" if column.pg_type == "float8" else "1e6"
    return _Field(
        f"CASE WHEN {ref} = 0 THEN CASE WHEN {ref}::text = '-0' THEN '-0.0' ELSE '0.0' END "
        f"WHEN {ref} = trunc({ref}) AND {ref} > -{plain} AND {ref} < {plain} THEN {ref}::text || '.0' "
        f"ELSE to_json({ref})::text END"
    )


def _decimal(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.pg_type != "numeric":
        return None
    ref = column.ref
    if field.precision is not None:
        scale = field.scale or 0
        integer_digits = field.precision - scale
    elif TYPE_NAMES[field.field_type] == "NUMERIC":
        scale, integer_digits = 9, 29
    else:
        scale, integer_digits = 38, 38  # BIGNUMERIC reaches 5.7e38; the encoder decides beyond 1e38
    value = f"""'"' || {ref} || '"'"""
    if column.precision is not None and column.scale <= scale and column.precision - column.scale <= integer_digits:
        # A numeric(p, s) column holds nothing wider; only NaN fits its type modifier.
        return _Field(value, (f"{ref} = 'NaN'",))
    # NaN and the infinities compare as beyond any bound.
    bound = f"1e{integer_digits}"
    return _Field(value, (f"(scale({ref}) > {scale} OR {ref} >= {bound} OR {ref} <= -{bound})",))


def _boolean(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    return _Field(f"{column.ref}::text") if column.pg_type == "bool" else None


def _string(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.pg_type not in ("text", "varchar", "enum"):
        return None
    ref = column.ref
    limit = (f"char_length({ref}) > {field.max_length}",) if field.max_length else ()
    return _Field(f"to_json({ref})::text", limit)


def _bytes(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.pg_type != "bytea":
        return None
    ref = column.ref
    limit = (f"octet_length({ref}) > {field.max_length}",) if field.max_length else ()
    # PostgreSQL breaks base64 into lines of 76 characters; the encoder does not.
    return _Field(f"""'"' || translate(encode({ref}, 'base64'), E'\\n', '') || '"'""", limit)


def _timestamp(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    ref = column.ref
    low, high = _TIMESTAMP_RANGE
    if column.pg_type == "timestamptz":
        return _Field(f"to_char({ref} AT TIME ZONE 'UTC', {_UTC_FORMAT})",
                      (f"({ref} < '{low} 00:00:00+00' OR {ref} >= '{high} 00:00:00+00')",))
    # A naive value means the declared zone; only fixed offsets shift the way Python does
    # (PostgreSQL and zoneinfo resolve a wall-clock time in a DST gap or overlap differently).
    if column.pg_type != "timestamp" or not isinstance(zone, timezone):
        return None
    offset = zone.utcoffset(None)
    shifted = f"({ref} - interval '{offset // _MICROSECOND} microseconds')" if offset else ref
    return _Field(f"to_char({shifted}, {_UTC_FORMAT})", (f"({ref} < '{low}' OR {ref} >= '{high}')",))


def _datetime(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.pg_type != "timestamp":
        return None  # an aware value is refused for a wall-clock column: the Python path says so
    ref = column.ref
    low, high = _TIMESTAMP_RANGE
    return _Field(f"to_char({ref}, {_WALL_CLOCK_FORMAT})", (f"({ref} < '{low}' OR {ref} >= '{high}')",))


def _date(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.pg_type != "date":
        return None
    ref = column.ref
    return _Field(f"to_json({ref})::text", (f"({ref} < '0001-01-01' OR {ref} > '9999-12-31')",))


def _time(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.pg_type != "time":
        return None  # a timetz is refused by the encoder
    ref = column.ref
    return _Field(f"to_char({ref}::interval, {_TIME_FORMAT})", (f"{ref} > '23:59:59.999999'",))


def _json(field: SchemaField, column: _Column, zone: tzinfo | None) -> _Field | None:
    if column.pg_type == "json":
        # Read through jsonb (see _line_query): keys deduplicated as json.loads does, and no
        # whitespace of the source (a newline in it would split the line).
        ref, cast = _jsonb_name(column), (f"({column.ref} IS NOT NULL AND {_jsonb_name(column)} IS NULL)",)
    elif column.pg_type == "jsonb":
        ref, cast = column.ref, ()
    else:
        return None
    # A JSON null is written as null (BigQuery's JSON null); the Python path refuses it in a
    # REQUIRED field.
    value = f"{ref}::text"
    required = (f"jsonb_typeof({ref}) = 'null'",) if field.mode == "REQUIRED" else ()
    # A bare number as the whole value sits in the line as a FLOAT's does, which the number scan
    # passes by (see _rows_with_long_numbers): such a row is the Python path's.
    scalar = (f"jsonb_typeof({ref}) = 'number'",)
    return _Field(value, cast + required + scalar + (
        f"CASE WHEN pg_column_size({ref}) < {_JSON_DEPTH_MIN_BYTES} AND pg_column_compression({ref}) IS NULL "
        f"THEN false ELSE jsonb_path_exists({ref}, 'strict $.**{{{MAX_DEPTH}}}') END",
    ))


def _jsonb_name(column: _Column) -> str:
    return column.ref.replace("t.c", "t.j", 1)


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

# Arrays whose to_json is the encoder's line exactly (no int8: beyond 2**53 the encoder writes
# strings; no floats: a negative zero).
_REPEATABLE = {"STRING": ("text", "varchar"), "INTEGER": ("int2", "int4"), "BOOLEAN": ("bool",)}

_PG_TYPES: dict[int, str] = {
    **{_TYPES[name].oid: name for name in (
        "int2", "int4", "int8", "float4", "float8", "numeric", "bool", "text", "varchar", "bytea",
        "timestamptz", "timestamp", "date", "time", "json", "jsonb",
    )},
    **{_TYPES[name].array_oid: name + _ARRAY_SUFFIX for name in ("int2", "int4", "bool", "text", "varchar")},
}

_MICROSECOND = timedelta(microseconds=1)


def _literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings is on), `%` doubled for psycopg."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


# --- the query and the stream --------------------------------------------------------------------

def _line_query(sql: str, width: int, fields: list[_Field], columns: dict[str, _Column],
                schema: Sequence[SchemaField], key_ref: str) -> str:
    """SELECT line (NULL for a suspect row), key FROM the shard query, in key order."""
    values = ", ".join(
        f"{_literal(orjson.dumps(field.name).decode() + ':')} || {built.value}"
        for field, built in zip(schema, fields)
    )
    suspect = " OR ".join(condition for built in fields for condition in built.suspect) or "false"
    names = ", ".join(f"c{index}" for index in range(width))
    source = f"({sql}) AS t({names})"
    json_columns = [column for column in columns.values() if column.pg_type == "json"]
    if json_columns:
        # Cast json to jsonb once per row, in a layer of its own (OFFSET 0 keeps the planner from
        # folding it into the outer SELECT, which would repeat the cast per use).
        casts = ", ".join(
            f"CASE WHEN {_json_cast_risk(c.ref + '::text')} THEN NULL ELSE {c.ref}::jsonb END "
            f"AS {_jsonb_name(c).removeprefix('t.')}"
            for c in json_columns
        )
        source = f"(SELECT t.*, {casts} FROM {source} ORDER BY {key_ref} OFFSET 0) AS t"
    # concat_ws skips NULLs: a NULL value leaves its field out, as the encoder does. The shard
    # query's order carries through each layer, so ORDER BY costs no sort.
    return (
        f"SELECT CASE WHEN {suspect} THEN NULL ELSE '{{' || concat_ws(',', {values}) || E'}}\\n' END, "
        f"{key_ref} FROM {source} ORDER BY {key_ref}"
    )


def _json_cast_risk(text: str) -> str:
    """SQL true when a json text must not be cast to jsonb (see _JSON_CAST_RISK)."""
    return (
        f"CASE WHEN octet_length({text}) > {_JSON_CAST_MAX_BYTES} THEN true "
        f"WHEN strpos({text}, '\\u') > 0 THEN {text} ~ {_literal(_JSON_CAST_RISK)} "
        f"ELSE {text} ~ {_literal(_JSON_EXPONENT)} "
        f"OR (strpos({text}, '-0.') > 0 AND {text} ~ {_literal(_JSON_NEGATIVE_ZERO)}) END"
    )


def _stream(manager: ExportShardManager, shard: Shard, driver: psycopg.Connection,
            query: str, params: dict[str, Any], scan_numbers: bool) -> Iterator[bytes]:
    # A plain (not server-side) cursor's stream: the server keeps sending while Python joins,
    # with at most CHUNK_ROWS rows held here. In libpq's chunked-rows mode where psycopg has it;
    # else each row comes as a result of its own, which costs Python about 1.3 µs more per row
    # (a server-side cursor's FETCHes, where the server and Python wait for each other, took
    # longer still: docs/design.md, "Version ranges").
    cursor = driver.cursor(binary=True)
    # Lines come as the UTF-8 bytes the server sent: never decoded and encoded again.
    cursor.adapters.register_loader("text", ByteaBinaryLoader)
    rows = cursor.stream(query, params, binary=True, **({"size": CHUNK_ROWS} if _CHUNKED_STREAM else {}))
    try:
        while chunk := list(islice(rows, CHUNK_ROWS)):
            lines = [line for line, _ in chunk]
            flagged = None in lines
            # A suspect row's NULL line stands as an empty line, so newlines still count rows.
            data = b"".join([line or b"\n" for line in lines] if flagged else lines)
            suspects = [index for index, line in enumerate(lines) if line is None] if flagged else []
            if scan_numbers:
                suspects.extend(_rows_with_long_numbers(data))
            if suspects:
                data = b"".join(with_suspects_encoded(manager, shard, chunk, set(suspects)))
            yield data
    finally:
        rows.close()  # cancels the query if the export stops early
        cursor.close()


def _has_chunked_stream() -> bool:
    # Cursor.stream(size=...) and psycopg.capabilities came in psycopg 3.2; the chunked-rows
    # mode needs libpq 17 too (the binary package bundles it; a system libpq may be older).
    capabilities = getattr(psycopg, "capabilities", None)
    return capabilities is not None and capabilities.has_stream_chunked()


#: Whether `_stream` reads rows in chunks (psycopg 3.2 and libpq 17) or one at a time.
_CHUNKED_STREAM = _has_chunked_stream()


# Only a JSON value puts a bare (unquoted) number in a line that the encoder may refuse: INTEGER
# beyond 2**53, NUMERIC and BIGNUMERIC are quoted, and FLOAT prints the shortest repr of its
# double. A JSON value's numbers come from jsonb's text, in plain notation (a json text with an
# exponent skips the cast and is suspect already), so what it could hold is a long run of digits
# and points: an integer outside int64/uint64 has 19 digits or more, and a decimal of at most 15
# significant digits is exactly the double it reads as (see json_values). Inside a JSON value
# jsonb writes a space after each ":" and ",": a number right after ":" is a field's whole value,
# a FLOAT's (many have 17 digits; a JSON column holding just a number is suspect in SQL).
_DIGITS = bytes(ord("0") if byte in b"0123456789." else ord("_") for byte in range(256))
_LONG_RUN = b"0" * 17
_NUMBER_BYTES = frozenset(b"0123456789.-")
_BARE_AFTER = frozenset(b"[ ")  # what precedes a bare number inside jsonb's text
_NUMBER = re.compile(rb"-?[0-9.]+(?:[eE][-+]?[0-9]+)?")


def _rows_with_long_numbers(data: bytes) -> list[int]:
    """Indexes of the lines of `data` holding a number of 17 digits and points or more, inside
    a JSON value, that the encoder might refuse: an integer outside int64/uint64, or a number
    with a fraction no double holds exactly.

    Looked for here rather than in SQL, where a jsonpath walk of every JSON value cost
    PostgreSQL a fifth of its time: two C-speed passes over the chunk, then a look at each
    (rarer) long number.
    """
    marked = data.translate(_DIGITS)
    rows, row, counted, start = [], 0, 0, 0
    while (hit := marked.find(_LONG_RUN, start)) >= 0:
        begin = hit
        while data[begin - 1] in _NUMBER_BYTES:
            begin -= 1
        start = marked.index(b"_", hit)  # past the run (a line ends in "}")
        if data[begin - 1] not in _BARE_AFTER:
            continue  # a field's value, or digits inside a string (an id, a word)
        number = _NUMBER.match(data, begin)
        if number is not None and _exact_number(number[0]):
            continue
        row += data.count(b"\n", counted, hit)
        rows.append(row)
        counted = start = data.index(b"\n", hit) + 1
        row += 1
    return rows


def _exact_number(text: bytes) -> bool:
    """Whether the encoder writes the bare number `text` as it stands in the line (False for
    what is no number: digits and points inside a string, over-flagged)."""
    try:
        if text.strip(b"-0123456789"):
            return is_exact_float(text.decode())
        return _INT64_MIN <= int(text) <= _UINT64_MAX
    except ValueError:
        return False
