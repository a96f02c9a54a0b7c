"""JSON column values as a shard's stream reads them: PostgreSQL json/jsonb parsed by orjson,
into exactly the Python values the standard library's parser gives, and JSON numbers no float64
holds exactly marked for the encoder to refuse.

psycopg parses json and jsonb with `json.loads`, which was about a third of the Python path's
read time for a table with one small JSON column. orjson parses the same text several times
faster, with two differences that matter to the encoder: it reads an integer beyond 64 bits as
a float (so a 30-digit number would be rounded where it must be refused), and it rejects what
the encoder must see to refuse with its named error (`1e400`, a lone surrogate escape). Text
that could hold either goes to `json.loads`.

BigQuery's JSON type holds a number as an int64, a uint64 or a float64, and refuses one it
cannot hold without losing precision. Both parsers round a number with a fraction or an
exponent to the nearest float64 (`1e-400` to 0.0, `3.14159265358979323846` to
3.141592653589793); where that loses anything, `json.loads` here reads it as an `InexactFloat`,
a float that keeps the text, which the encoder refuses. Text where that could happen (a number
of 16 significant digits or more, or with an exponent) is never left to orjson.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Iterator

import orjson
from sqlalchemy import Connection, event

#: BigQuery's JSON type is refused containers nested this deep (orjson's own limit is 255 levels,
#: and a line nests the value in a record of its own).
MAX_DEPTH = 200

# What decides whether orjson's value may differ from json.loads' or from the text: each byte
# marked as a digit or point ("0"), an exponent letter ("e"), a minus, a byte that may come just
# before a bare number ("b"), or anything else ("_"). An integer outside int64/uint64 has 19
# digits or more, and a decimal of at most 15 significant digits is the shortest repr of its
# float64 (DBL_DIG): only a run of 17 digits and points, or a bare number with an exponent, can
# hold a number orjson and json.loads read differently, or that no float64 holds exactly. The
# run may sit inside a string too: parsed slowly, but the same.
_MARKS = bytes(
    ord("0") if byte in b"0123456789." else ord("e") if byte in b"eE" else ord("-") if byte == ord("-")
    else ord("b") if byte in b":,[ \t\n\r" else ord("_")
    for byte in range(256)
)
_LONG_RUN = b"0" * 17


def _risky(raw: bytes) -> bool:
    """Whether `raw` may hold a number orjson cannot be trusted with: a run of 17 digits and
    points, or a bare number (after `:`, `,`, `[`, whitespace or at the start) with an exponent.
    Plain byte scans, several times cheaper than a regular expression."""
    marked = raw.translate(_MARKS)
    if _LONG_RUN in marked:
        return True
    if b"0e" not in marked:
        return False  # no digit before an e at all: no exponent (the common case)
    # Runs of up to 16 digits and points shrink to one "0" (16, 8, 4, 2, 1), so a bare number
    # with an exponent reads "b0e" or "b-0e"; inside a string (a hex id) a letter or quote
    # stands before it.
    for _ in range(4):
        marked = marked.replace(b"00", b"0")
    return b"b0e" in marked or b"b-0e" in marked or marked.startswith((b"0e", b"-0e"))


class InexactFloat(float):
    """A JSON number with a fraction or an exponent that no float64 holds exactly (`1e-400`,
    `2.4e-324`, `3.14159265358979323846`): to code reading it, the nearest float, as json.loads
    gives; `text` is the number as written, for the encoder to refuse it with."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> InexactFloat:
        number = super().__new__(cls, text)
        number.text = text
        return number


def is_exact_float(text: str) -> bool:
    """Whether the JSON number `text` (with a fraction or an exponent) is exactly the float64 it
    parses to: its value equals that of the float's shortest repr (`0.1`, `1.10`, `1e2`,
    `5e-324`, `-0.0` are; `1e-400`, `1e400`, `0.1000000000000000055511151231257827` are not)."""
    shortest = repr(float(text))
    return shortest == text or Decimal(text) == Decimal(shortest)


def _float(text: str) -> float:
    """json.loads' `parse_float`: the float, or an InexactFloat where that loses precision."""
    return float(text) if is_exact_float(text) else InexactFloat(text)


def _json_loads(raw: bytes) -> Any:
    return json.loads(raw, parse_float=_float)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The Python value of a JSON text, as `json.loads` gives it, parsed by orjson where that is
    known to give the same; a number no float64 holds exactly as an `InexactFloat`."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if not _risky(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json.loads reads some of these (a lone surrogate) for the encoder to refuse
    return _json_loads(raw)


class CheckedJSON:
    """A JSON column's value whose parse proved it fits BigQuery's JSON type as it is: the
    encoder writes `value` without walking it again. Only `column_value` makes one."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def column_value(data: bytes | bytearray | memoryview | str) -> Any:
    """A JSON column's text as the encoder takes it: `JSON_NULL` for JSON null, else the value
    `loads` gives, as a `CheckedJSON` where its parse proved it fits.

    orjson reads only valid UTF-8; a text with no run of 17 digits and points and no bare
    exponent holds no integer outside int64 and no number its float64 would not give back
    exactly (nor an infinity); nor can a text of at most MAX_DEPTH brackets nest deeper. That
    leaves nothing the encoder's walk over the value could refuse."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if not _risky(raw):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = _json_loads(raw)
        else:
            if value is not None and raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
                return CheckedJSON(value)
    else:
        value = _json_loads(raw)
    return JSON_NULL if value is None else value


@contextmanager
def fast_json(connection: Connection) -> Iterator[None]:
    """While in the block, cursors the connection opens parse json and jsonb with `loads`.

    Only for psycopg connections, and not where the app gave the engine a `json_deserializer`
    of its own (its values are what `to_record` expects). Set per cursor, so the pooled
    connection keeps its parser for the rest of the app.
    """
    dialect = connection.dialect
    if dialect.driver != "psycopg" or getattr(dialect, "_json_deserializer", None) is not None:
        yield
        return
    from psycopg.types.json import set_json_loads  # psycopg is there: the dialect's driver

    def use_loads(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        set_json_loads(loads, cursor)

    event.listen(connection, "before_cursor_execute", use_loads)
    try:
        yield
    finally:
        event.remove(connection, "before_cursor_execute", use_loads)


class JsonNull:
    """The type of `JSON_NULL` (falsy, like the None it stands apart from)."""

    def __repr__(self) -> str:
        return "JSON_NULL"

    def __bool__(self) -> bool:
        return False


#: A JSON column holding JSON `null` (not SQL NULL): written as `"column": null`, which BigQuery
#: stores as JSON null. The Python path reads it so where records are the row's columns; a
#: `to_record` may return it too.
JSON_NULL = JsonNull()
