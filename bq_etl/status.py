"""Each table's state at a glance, read from the run history: how fresh its BigQuery table is,
what is running, what failed last. `flask export status`, the status page, the metrics and the
demo all show this one reading."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from . import history
from .cadence import Cadence
from .extension import ExporterState
from .history import RunRecord
from .loader import overwritten

#: Freshness of a table: loaded within its cadence's interval plus the margin, later than
#: that, later than twice that, never loaded (as far as the history knows), or overwritten: an
#: older run's write went over the last load (WriteRace), so the live rows are not the newest
#: loaded run's, whatever that load's age, until a later run loads.
FRESHNESS = ("fresh", "late", "stale", "never", "overwritten")


@dataclass
class TableStatus:
    """One table's state: its newest load and how old it is, a running run, the last failure."""

    table: str
    cadence: str
    late_after: float  # seconds since the last load after which the table is late (stale at twice)
    freshness: str
    age: float | None  # seconds since the last load finished
    last_loaded: RunRecord | None
    last_run: RunRecord | None  # the newest run that has ended, whatever its outcome
    last_failure: RunRecord | None
    running: RunRecord | None
    #: The run whose write went over the last load (WriteRace), while no later run has loaded.
    overwritten_by: RunRecord | None = None

    @property
    def bigquery_rows(self) -> int | None:
        """Rows in BigQuery from the last load (the load checks them with a COUNT(*))."""
        return self.last_loaded.rows if self.last_loaded and self.last_loaded.run_id else None

    @property
    def open_failure(self) -> RunRecord | None:
        """The last failure when no load came after it (an older one is resolved): what
        `status` and the status page list as failing."""
        if self.overwritten_by is not None:
            return self.overwritten_by  # older than the last load, but its write came after it
        failure, loaded = self.last_failure, self.last_loaded
        if failure is None or (loaded is not None and failure.run_id < loaded.run_id):
            return None
        return failure

    @property
    def last_run_failed(self) -> bool:
        """True when the newest run that ended did not load (or know it need not)."""
        return self.last_run is not None and self.last_run.outcome in history.FAILURES

    @property
    def ok(self) -> bool:
        """Nothing to page about: fresh, and the newest run that ended did not fail."""
        return self.freshness == "fresh" and not self.last_run_failed

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for `--json`."""
        records = ("last_loaded", "last_run", "last_failure", "running", "overwritten_by")
        return {"table": self.table, "cadence": self.cadence, "freshness": self.freshness, "ok": self.ok,
                "age_seconds": self.age, "late_after_seconds": self.late_after,
                "bigquery_rows": self.bigquery_rows, "last_run_failed": self.last_run_failed,
                **{name: getattr(self, name).to_dict() if getattr(self, name) else None for name in records}}


def late_after(cadence: Cadence, margin: float) -> float:
    """Seconds after its last load at which a table on `cadence` is late."""
    return cadence.interval.total_seconds() + margin


def freshness(age: float | None, late: float) -> str:
    """`fresh`, `late` (older than `late`), `stale` (older than twice that) or `never`."""
    if age is None:
        return "never"
    if age > 2 * late:
        return "stale"
    return "late" if age > late else "fresh"


def table_status(exporter: ExporterState, table: str, now: float | None = None) -> TableStatus:
    """The state of one exported table, from its run history."""
    now = time.time() if now is None else now
    cadence = Cadence(exporter.tables.get(table).cadence)
    late = late_after(cadence, exporter.config.late_margin)
    runs = history.runs(exporter.redis, table)
    ended = [run for run in runs if run.outcome != "running"]
    loaded = next((run for run in ended if run.outcome == "loaded"), None) \
        or history.newest_loaded(exporter.redis, table)
    loaded_at = (loaded.ended or loaded.started) if loaded else None
    age = max(now - loaded_at, 0.0) if loaded_at else None
    race = overwritten(exporter.redis, exporter.config.dataset, table)
    overwriter = None
    if race is not None:
        overwriter = history.run(exporter.redis, table, race["run_id"]) or RunRecord(
            table, race["run_id"], outcome="failed", ended=race["at"],
            error=f"WriteRace: its write went over run {race['newest_run_id']}'s load")
    return TableStatus(
        table=table, cadence=cadence.value, late_after=late, age=age,
        freshness="overwritten" if overwriter else freshness(age, late),
        last_loaded=loaded, last_run=ended[0] if ended else None,
        last_failure=next((run for run in ended if run.outcome in history.FAILURES), None),
        running=next((run for run in runs if run.outcome == "running"), None),
        overwritten_by=overwriter,
    )


def table_statuses(exporter: ExporterState, now: float | None = None) -> list[TableStatus]:
    """The state of every exported table, by table name."""
    return [table_status(exporter, name, now) for name in sorted(exporter.tables.names())]


def duration(seconds: float | None) -> str:
    """A short human duration: 0.4s, 45s, 12m05s, 3h05m, 2d04h; '-' for none."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def progress(run: RunRecord) -> str:
    """A running run's progress: shards done/total and rows so far, and whether it is dead."""
    text = f"{run.shards_done}/{run.shards_total} shards, {run.rows:,} rows"
    return f"{text}, DEAD (no job left)" if run.alive is False else text


def status_lines(statuses: list[TableStatus]) -> list[str]:
    """The status as aligned text: one line per table, then one line per table whose last
    failure is newer than its last load, or went over it (`open_failure`, with the error)."""
    header = ("table", "cadence", "freshness", "last load", "age", "bq rows", "running", "last run")
    rows = []
    for status in statuses:
        loaded = status.last_loaded
        rows.append((
            status.table, status.cadence, status.freshness,
            loaded.run_id if loaded else "-", duration(status.age),
            f"{status.bigquery_rows:,}" if status.bigquery_rows is not None else "-",
            progress(status.running) if status.running else "-",
            status.last_run.outcome if status.last_run else "-",
        ))
    lines = aligned(header, rows)
    for status in statuses:
        failure = status.open_failure
        if failure:
            lines.append(f"{status.table}: run {failure.run_id} {failure.outcome}: {failure.error}")
        if status.overwritten_by is not None:
            lines.append(f"{status.table}: the live table holds run {status.overwritten_by.run_id}'s rows, written "
                         f"over the last load (run {status.last_loaded.run_id if status.last_loaded else '?'}); "
                         "the next run loads current data")
    return lines


def history_lines(runs: list[RunRecord]) -> list[str]:
    """A table's runs as aligned text, newest first, each failure's error on the line below."""
    header = ("run", "trigger", "outcome", "started (UTC)", "took", "shards", "rows", "planned", "MB")
    rows = [(run.run_id, run.trigger, run.label, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run.started)),
             duration(run.seconds), f"{run.shards_done}/{run.shards_total}", f"{run.rows:,}",
             f"{run.planned_rows:,}", f"{run.bytes / 1e6:.2f}") for run in runs]
    table = aligned(header, rows)
    lines = table[:1]
    for run, line in zip(runs, table[1:]):
        lines.append(line)
        if run.error:
            lines.append(f"    {run.error}")
        if run.job_ids:
            lines.append(f"    bigquery jobs: {', '.join(run.job_ids)}")
    return lines


def aligned(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """The header and rows as lines of left-aligned columns."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in (header, *rows)]
