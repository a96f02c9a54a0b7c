"""JSON column values as a shard's stream reads them: PostgreSQL json/jsonb parsed by orjson,
into exactly the Python values the standard library's parser gives.

psycopg parses json and jsonb with `json.loads`, which was about a third of the Python path's
read time for a table with one small JSON column. orjson parses the same text several times
faster, with two differences that matter to the encoder: it reads an integer beyond 64 bits as
a float (so a 30-digit number would be rounded where it must be refused), and it rejects what
the encoder must see to refuse with its named error (`1e400`, a lone surrogate escape). Text
that could hold either goes to `json.loads`.
"""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from typing import Any, Iterator

import orjson
from sqlalchemy import Connection, event

#: BigQuery's JSON type is refused containers nested this deep (orjson's own limit is 255 levels,
#: and a line nests the value in a record of its own).
MAX_DEPTH = 200
# Any integer outside int64/uint64 has 19 digits or more; so does a float orjson and json.loads
# might round differently. The run may sit inside a string too: parsed slowly, but the same.
_LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The Python value of a JSON text, as `json.loads` gives it, parsed by orjson where that is
    known to give the same."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _LONG_DIGIT_RUN.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json.loads reads some of these (1e400 as inf) for the encoder to refuse
    return json.loads(raw)


class CheckedJSON:
    """A JSON column's value whose parse proved it fits BigQuery's JSON type as it is: the
    encoder writes `value` without walking it again. Only `column_value` makes one."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def column_value(data: bytes | bytearray | memoryview | str) -> Any:
    """A JSON column's text as the encoder takes it: `JSON_NULL` for JSON null, else the value
    `loads` gives, as a `CheckedJSON` where its parse proved it fits.

    orjson reads only finite floats and valid UTF-8, and without a run of 19 digits no integer
    can leave int64; nor can a text of at most MAX_DEPTH brackets nest deeper. That leaves
    nothing the encoder's walk over the value could refuse."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _LONG_DIGIT_RUN.search(raw) is None:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = json.loads(raw)
        else:
            if value is not None and raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
                return CheckedJSON(value)
    else:
        value = json.loads(raw)
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
