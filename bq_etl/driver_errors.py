"""Naming the row a database driver could not read.

Some values stop the read itself, before the encoder sees them: psycopg raises on a PostgreSQL
timestamp before year 1 or after 9999, `infinity`, a BC date or `24:00:00`; SQLAlchemy's SQLite
processing raises on a malformed date, timestamp or JSON text; Python's sqlite3 raises on TEXT
that is not UTF-8 (SQLite stores whatever bytes it is given). The error names no row. When a
shard's read fails so, the shard query is read again column by column from the last row that
was read, one row at a time, until the failing column and row show; the value is then read as
text (or, where even that fails, as the bytes the database holds) and the failure becomes a
RecordError naming table, row key, column and value.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, LargeBinary, Select, Text, cast
from sqlalchemy.exc import DataError, DBAPIError

from .errors import RecordError
from .session_settings import reading_settings

if TYPE_CHECKING:
    from .manager import ExportShardManager

_NOT_READ = object()


def located_error(manager: ExportShardManager, statement: Select, error: BaseException,
                  after: Any = None) -> RecordError | None:
    """The RecordError for the row and column of `statement` (a shard query, ordered by the
    shard key) that raised `error` while being read, looking only at keys above `after` when
    given; None if no single value reproduces it (the connection failed, say)."""
    if not _may_be_a_value(error):
        return None  # the database or the connection failed, not a value: nothing to look for
    try:
        # In the settings the shard was read in, so the same values fail (see `session_settings`).
        with manager.source_engine.connect() as connection, reading_settings(connection):
            return _locate(manager, connection, statement, error, after)
    except Exception:
        return None  # the database cannot be read at all: the original error says more


def _locate(manager: ExportShardManager, connection: Connection, statement: Select,
            error: BaseException, after: Any) -> RecordError | None:
    key = manager.key
    rows = statement if after is None else statement.where(key > after)
    names = list(connection.execute(rows.limit(0)).keys())
    for name, column in zip(names, rows.selected_columns):
        failing = _failing_key(connection, rows, key, column, after)
        if failing is _NOT_READ:
            continue
        shown, form = _shown(connection, rows, key, column, failing)
        return RecordError(
            manager.table_name, failing, name, shown, manager.encoder.expected(name),
            f"the database driver cannot read this value ({_first_line(error)}); the value shown "
            f"is the database's {form} of it. Correct the row, or convert the column in the export's query()",
        )
    return None


def _shown(connection: Connection, rows: Select, key: Any, column: Any, failing: Any) -> tuple[Any, str]:
    """The failing value as the database's text of it, else (TEXT that is not UTF-8 cannot be
    read as text either) as its bytes; and which of the two it is."""
    for form, kind in (("text", Text), ("bytes", LargeBinary)):
        try:
            value = connection.execute(
                rows.with_only_columns(cast(column, kind), maintain_column_froms=True).where(key == failing)
            ).scalar()
        except Exception:
            continue
        return value, form
    return None, "text"


def _may_be_a_value(error: BaseException) -> bool:
    """Whether one value the driver cannot read may have raised `error`: a driver's DataError,
    sqlite3's refusal of TEXT that is not UTF-8, or an error of Python's own (a result
    processor's); not other database errors (a lost connection, a lock, an SQL error)."""
    if not isinstance(error, DBAPIError):
        return True
    if isinstance(error, DataError):
        return True
    cause = error.orig
    return type(cause).__module__ == "sqlite3" and str(cause).startswith("Could not decode to UTF-8")


def _failing_key(connection: Connection, rows: Select, key: Any, column: Any, after: Any) -> Any:
    """The key of the first row whose `column` cannot be read, or _NOT_READ if every one can."""
    try:
        result = connection.execute(rows.with_only_columns(key, column, maintain_column_froms=True))
    except Exception:
        return _NOT_READ  # the query itself fails: not one value's doing
    last = after
    try:
        while (row := result.fetchone()) is not None:  # one row at a time: the failure marks the row
            last = row[0]
    except Exception:
        following = rows.with_only_columns(key, maintain_column_froms=True)
        if last is not None:
            following = following.where(key > last)
        return connection.execute(following.limit(1)).scalar()
    finally:
        result.close()
    return _NOT_READ


def _first_line(error: BaseException) -> str:
    """The driver's own message: SQLAlchemy's wrapper adds the statement and a link."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
