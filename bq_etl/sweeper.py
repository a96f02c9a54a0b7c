"""The sweep: removing what runs that died without cleaning up left behind.

A run deletes its files and its staging table whether it loads or fails. Some ends skip that: a
work horse killed outright (the OOM killer, SIGKILL) on a shard's last attempt, whose RQ failure
callback never runs, so the run's load job waits forever and its files stay; a whole worker
killed mid-shard or mid-load, whose job RQ still calls started; a load job killed in the middle
of its replace, which leaves its staging table; a `start_run` killed while planning, which leaves
a run the history calls running though RQ retries it as another. `sweep` finds every run that
left files or a staging table, and every run the history records as running, and judges each as
the claim and the history do (`liveness.run_state`, told what the history or the claim knows of
the run: its start job, or its foreground process): a dead run is given up at once, whatever its
age; a run whose history records an outcome is over, so what it left goes at once too; a run
nothing in Redis knows of (a foreground run on another host, or any run after Redis lost its
data) is given up once older than `ETL_SWEEP_AFTER`; a running run is left alone.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from . import claim, history
from .extension import ExporterState
from .jobs import abandon_run, claim_key
from .liveness import run_state
from .logs import event
from .run import ExportRun, run_started

# A run's files are `<table>/<run id>/...` (ExportRun.prefix); its staging table is
# `<table>__staging_<run id with "_" for "-">` (warehouse.staging_table, ExportRun.staging_suffix).
_OBJECT = re.compile(r"^(?P<table>[^/]+)/(?P<time>\d{8}T\d{12}Z)-(?P<token>[0-9a-f]{6})/")
_STAGING = re.compile(r"^(?P<table>.+)__staging_(?P<time>\d{8}T\d{12}Z)_(?P<token>[0-9a-f]{6})$")


@dataclass
class SweepReport:
    """What a sweep removed, and the runs it left because their jobs still wait or run."""

    runs: list[str] = field(default_factory=list)
    objects: int = 0
    staging_tables: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)


def sweep(exporter: ExporterState, older_than: timedelta | None = None,
          now: datetime | None = None) -> SweepReport:
    """Give up every run of a known table that left files in the bucket or a staging table in the
    dataset, or that the history records as running, and will not finish by itself: at once when
    it is dead (`liveness.run_state`) or its history records an outcome; once it started more than
    `older_than` ago (default `ETL_SWEEP_AFTER`) when nothing in Redis knows of it. Return what was
    removed.

    A run that can still finish is left alone whatever its age.
    """
    if older_than is None:
        older_than = timedelta(seconds=exporter.config.sweep_after)
    cutoff = (now or datetime.now(timezone.utc)) - older_than
    tables = set(exporter.tables.names())
    found: dict[ExportRun, list[str]] = {}
    warehouse = exporter.warehouse
    for names, pattern in ((exporter.bucket.names(""), _OBJECT), (warehouse.tables(), _STAGING)):
        for name in names:
            match = pattern.match(name)
            if match and match["table"] in tables:
                staging = found.setdefault(ExportRun(match["table"], f"{match['time']}-{match['token']}"), [])
                if pattern is _STAGING:
                    staging.append(name)
    for table in sorted(tables):  # dead runs that left nothing still read as running until given up
        for record in history.runs(exporter.redis, table):
            if record.outcome == "running" and record.alive is False:
                found.setdefault(ExportRun(table, record.run_id), [])

    report = SweepReport()
    for run in sorted(found, key=lambda r: (r.table, r.run_id)):
        label = f"{run.table}/{run.run_id}"
        state = _state(exporter, run)
        if state == "unknown" and run_started(run.run_id) >= cutoff:
            continue  # may still be starting, or running where nothing here can see it
        if state == "running":
            report.busy.append(label)
            continue
        report.objects += abandon_run(run.table, run.run_id, run.load_job_id, exporter.redis)
        for staging in found[run]:
            warehouse.drop(staging)
            report.staging_tables.append(staging)
        report.runs.append(label)
        recorded = history.run(exporter.redis, run.table, run.run_id)
        event(logging.WARNING, "run swept", table=run.table, run_id=run.run_id, jobs=state,
              outcome=recorded.outcome if recorded else "abandoned", staging_tables=len(found[run]))
    return report


def _state(exporter: ExporterState, run: ExportRun) -> str:
    """`liveness.run_state` of a run found by what it left, told what the history (else the
    table's claim) knows of it; `ended` when the history records its outcome."""
    record = history.run(exporter.redis, run.table, run.run_id)
    if record is not None and record.outcome:
        if record.outcome != "running":
            return "ended"  # it ended without deleting all it wrote (the bucket was down, say)
        return run_state(exporter.redis, run, start_job=record.start_job or None, host=record.host or None,
                         pid=record.pid or None)
    holder = claim.current(exporter.redis, claim_key(exporter, run.table))
    if holder is not None and holder.run_id == run.run_id:
        return run_state(exporter.redis, run, start_job=holder.job_id, host=holder.host, pid=holder.pid)
    return run_state(exporter.redis, run)
