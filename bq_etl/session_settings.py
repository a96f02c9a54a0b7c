"""The session settings every read of the exporter runs under, whatever the server's, the
database's, the role's or the app's defaults are: the values a shard's rows arrive as must not
depend on them.

PostgreSQL:

- `TimeZone` 'UTC': psycopg builds a timestamptz in the session's zone, and cannot build one whose
  local date falls outside years 1-9999 ('9999-12-31 23:59:59.999999+00' in Asia/Kathmandu).
- `DateStyle` 'ISO': psycopg reads timestamptz text in ISO style only. Only the output style is
  set: the day/month order, which the query's own date literals are read in, stays the app's.
- `IntervalStyle` 'postgres': the only style psycopg reads intervals in.
- `extra_float_digits` 1: at 0 or below PostgreSQL rounds float4 and float8 text (0.1 + 0.2
  as 0.3) and prints the largest double as a number out of range; from 1 up it prints the
  shortest text that reads back as the same float.

They are set with `set_config(..., is_local => true)`, within the transaction the read runs in,
so the rollback that ends every read of the exporter undoes them; on a connection in autocommit
mode, where a local setting would not hold, they are set for the session and put back after.

MariaDB and MySQL:

- `time_zone` '+00:00': the server sends a TIMESTAMP column in the session's zone, as a naive
  value the exporter reads as UTC (`naive_timestamp_zone`). With the server's default, SYSTEM,
  every value on a host outside UTC was shifted, and the two instants of a DST fall-back hour
  became one. DATETIME columns do not depend on it.
- `sql_select_limit` unlimited: a limit would silently cut every SELECT of the read short.
- `character_set_results` the character set PyMySQL decodes with: text in another one would
  arrive garbled or as `?`.

These are session settings: the values the session had are put back after the read, and a
connection they cannot be put back on is invalidated, so its pool never hands it out again.

The shard's query itself runs under these settings too: time functions and literals in an
export's query see UTC (`now()`, `CURRENT_DATE`, a TIMESTAMP compared with a literal).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy import Connection

#: PostgreSQL's settings for a read.
POSTGRES_SETTINGS = {"TimeZone": "UTC", "DateStyle": "ISO", "IntervalStyle": "postgres", "extra_float_digits": "1"}
#: MariaDB's and MySQL's settings for a read (`sql_select_limit` as large as it goes: DEFAULT
#: would be the server's global limit); PyMySQL's connections get `character_set_results` too.
MYSQL_SETTINGS = {"time_zone": "+00:00", "sql_select_limit": 2**64 - 1}


@contextmanager
def reading_settings(connection: Connection) -> Iterator[None]:
    """While in the block, `connection` (one the exporter reads rows through, from the app's
    pool) has the settings the exporter reads values in (see the module docstring); after it,
    the settings it had.

    On PostgreSQL the settings are local to the connection's transaction, which the read must
    end (roll back or close the connection) when the block ends. Other databases have none.
    """
    dialect = connection.dialect
    if dialect.name == "postgresql":
        with _postgres(connection):
            yield
    elif dialect.name in ("mysql", "mariadb"):
        with _mysql(connection):
            yield
    else:
        yield


@contextmanager
def _postgres(connection: Connection) -> Iterator[None]:
    names = list(POSTGRES_SETTINGS)
    setting = "SELECT " + ", ".join(f"set_config('{name}', %({name})s, %(local)s)" for name in names)
    if not getattr(connection.connection.driver_connection, "autocommit", False):
        connection.exec_driver_sql(setting, {**POSTGRES_SETTINGS, "local": True})
        yield
        return
    # Autocommit: a local setting would end with its statement.
    had = connection.exec_driver_sql("SELECT " + ", ".join(f"current_setting('{name}')" for name in names)).one()
    connection.exec_driver_sql(setting, {**POSTGRES_SETTINGS, "local": False})
    try:
        yield
    finally:
        _put_back(connection, setting, {**dict(zip(names, had)), "local": False})


@contextmanager
def _mysql(connection: Connection) -> Iterator[None]:
    wanted: dict[str, Any] = dict(MYSQL_SETTINGS)
    charset = getattr(connection.connection.driver_connection, "charset", None)
    if isinstance(charset, str):  # PyMySQL decodes text in this character set
        wanted["character_set_results"] = charset
    names = list(wanted)
    had = dict(zip(names, connection.exec_driver_sql("SELECT " + ", ".join(f"@@session.{name}" for name in names)).one()))
    if had == wanted:
        yield
        return
    setting = "SET SESSION " + ", ".join(f"{name} = %({name})s" for name in names)
    connection.exec_driver_sql(setting, wanted)
    try:
        yield
    finally:
        _put_back(connection, setting, had)


def _put_back(connection: Connection, setting: str, values: dict[str, Any]) -> None:
    """Set the values a session had back; if that fails, invalidate the connection: the pool
    then discards it rather than hand the app a session in settings it did not choose."""
    try:
        connection.exec_driver_sql(setting, values)
    except Exception:
        connection.invalidate()
