"""The sweep: removing what runs that died without cleaning up left behind.

A run deletes its files and its staging table whether it loads or fails. Some ends skip that: a
work horse killed outright (the OOM killer, SIGKILL) on a shard's last attempt, whose RQ failure
callback never runs, so the run's load job waits forever and its files stay; a whole worker
killed mid-shard or mid-load, whose job RQ still calls started; and a load job killed in the
middle of its replace, which leaves its staging table. `sweep` finds every run that left files or
a staging table and asks its RQ jobs (`jobs.run_state`): a run whose jobs died is given up at
once, whatever its age; a run with no jobs to ask (a foreground run) is given up once older
than `ETL_SWEEP_AFTER`, or at once if it recorded its outcome (a load whose clean-up could not
reach the bucket); a run whose jobs still wait or run on a live worker is left alone.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from . import claim, history
from .extension import ExporterState
from .jobs import abandon_run, claim_key, holder_state, load_job_id, run_state
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
    dataset and will not finish by itself: at once when its RQ jobs died with their worker, or
    failed without cleaning up; once it started more than `older_than` ago (default
    `ETL_SWEEP_AFTER`) when it has no jobs to ask. Return what was removed.

    A run whose jobs wait or run on a live worker is left alone whatever its age.
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

    report = SweepReport()
    for run in sorted(found, key=lambda r: (r.table, r.run_id)):
        label = f"{run.table}/{run.run_id}"
        state = run_state(exporter, run)
        recorded = history.run(exporter.redis, run.table, run.run_id)
        if state == "unknown" and recorded is not None and recorded.outcome != "running":
            state = "ended"  # it recorded its outcome (a foreground run whose clean-up failed)
        if state == "unknown":
            holder = claim.current(exporter.redis, claim_key(exporter, run.table))
            if holder is not None and holder.run_id == run.run_id and \
                    holder_state(exporter, run.table, holder) == "running":
                state = "running"
            elif run_started(run.run_id) >= cutoff:
                continue  # may still be starting, or running in the foreground on another host
        if state == "running":
            report.busy.append(label)
            continue
        report.objects += abandon_run(run.table, run.run_id, load_job_id(run), exporter.redis)
        for staging in found[run]:
            warehouse.drop(staging)
            report.staging_tables.append(staging)
        report.runs.append(label)
        recorded = history.run(exporter.redis, run.table, run.run_id)
        event(logging.WARNING, "run swept", table=run.table, run_id=run.run_id, jobs=state,
              outcome=recorded.outcome if recorded else "abandoned", staging_tables=len(found[run]))
    return report
