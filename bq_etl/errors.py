"""Errors the exporter raises: one base class, one subclass per way a run can go wrong."""
from __future__ import annotations

from typing import Any


class ExportError(Exception):
    """Base class of every error bq-etl raises on purpose."""

    #: False when trying again cannot help (a bad schema file, a record the schema refuses): a
    #: job failing with such an error is not retried and its run is given up at once. Any
    #: exception may carry the mark (see `is_retryable`); an instance may set it too.
    retryable: bool = True


def is_retryable(error: BaseException) -> bool:
    """Whether a job that raised `error` may succeed if run again."""
    return getattr(error, "retryable", True) is not False


class ConfigError(ExportError):
    """A setting is missing or malformed; raised at start, before any work."""

    retryable = False


class UnknownTableError(ExportError):
    """A table name was asked for that no export defines."""

    retryable = False

    def __init__(self, name: str, known: list[str]):
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown table {name!r}; known tables: {', '.join(self.known) or '(none)'}")


class SchemaError(ExportError):
    """A BigQuery JSON schema file is missing, unreadable or malformed, or the export's query
    cannot fill one (a selected column with no name)."""

    retryable = False


class ShardKeyError(ExportError):
    """The shard key is NULL in some of the query's rows, which no key range holds; raised when
    a run is planned, before anything is exported."""

    retryable = False

    def __init__(self, table: str, column: str, null_rows: int, total: int):
        self.table = table
        self.column = column
        self.null_rows = null_rows
        super().__init__(
            f"table {table!r}: the shard key {column!r} is NULL in {null_rows} of the query's {total} rows, "
            "which no shard's key range holds; make the shard key a column that is never NULL (the "
            f"primary key, say), or leave those rows out in query() (WHERE {column} IS NOT NULL)")


class RecordError(ExportError):
    """A record does not conform to its table's schema; raised before anything is written.

    `expected` is the type the column's value must fit, or None for a column the schema does
    not have (then `reason` says so)."""

    retryable = False

    def __init__(self, table: str, key: Any, column: str, value: Any, expected: str | None, reason: str = ""):
        self.table = table
        self.key = key
        self.column = column
        self.value = value
        self.expected = expected
        self.reason = reason
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        got = f"{type(value).__name__} {shown}"
        if expected is None:
            problem = f"{reason} (got {got})"
        else:
            problem = f"got {got}, expected {expected}" + (f": {reason}" if reason else "")
        super().__init__(f"table {table!r}, row key {key!r}, column {column!r}: {problem}")


class LoadError(ExportError):
    """The BigQuery load of a run failed or produced something other than what was exported."""


class RowCountMismatch(LoadError):
    """The loaded table does not hold exactly the rows the shards wrote."""


class LockLost(LoadError):
    """The run's table lock expired before its write (a paused or stalled loader) and no newer
    run had loaded: the run wrote nothing, since another load may be under way."""


class WriteRace(LoadError):
    """A newer run loaded between this run's last check and its write, so this run's older rows
    may have replaced the newer ones (the window docs/reliability.md describes)."""


class ShrinkError(LoadError):
    """A run would replace the live table with far fewer rows than it holds; nothing was written."""

    outcome = "refused"

    def __init__(self, table: str, live_rows: int, new_rows: int, threshold: float | None, note: str = ""):
        self.table = table
        #: The rows the table holds, or (`note` says so) those its newest loaded run recorded.
        self.live_rows = live_rows
        self.new_rows = new_rows
        self.threshold = threshold
        limit = "a non-empty table is never replaced by an empty source unasked" if new_rows == 0 \
            else f"under its shrink_threshold of {threshold:g} ({threshold * live_rows:.0f} rows)"
        super().__init__(
            f"table {table!r}: the run would replace {live_rows} {'' if note else 'live '}rows{note} with {new_rows}; {limit}. "
            f"The live table was left as it was. If the source really shrank, run "
            f"`flask export run {table} --allow-shrink` once, or set shrink_threshold = None on "
            f"the export if it may shrink on any run"
        )


class LockTimeout(ExportError):
    """Another load of the same table held the table's lock for longer than we would wait."""



class RedisUnavailable(ExportError):
    """Redis stopped answering in the middle of a foreground run, which stopped there, its outcome
    unrecorded (the message says what the live table holds)."""


class StorageError(ExportError):
    """Cloud Storage refused a shard's file or a listing (a missing bucket is not retryable)."""


class RunInProgress(ExportError):
    """A run of the table is already queued or running; another would only pile up behind it."""

    def __init__(self, table: str, holder: str):
        self.table = table
        self.holder = holder
        super().__init__(f"table {table!r} already has a run queued or running ({holder}); "
                         "not starting another (--force starts one anyway)")
