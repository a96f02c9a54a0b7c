"""The sweep: removing what runs that died without cleaning up left behind.

A run deletes its files and its staging table whether it loads or fails. Two ends skip that: a
work horse killed outright (the OOM killer, SIGKILL) on a shard's last attempt, whose RQ failure
callback never runs, so the run's load job waits forever and its files stay; and a load job
killed in the middle of its replace, which leaves its staging table. `sweep` finds such runs by
the start time in their run id and gives them up as a failed shard would (`abandon_run`).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from rq.exceptions import NoSuchJobError
from rq.job import Job

from .extension import ExporterState
from .jobs import abandon_run, load_job_id
from .logs import event
from .run import ExportRun, run_started

# A run's files are `<table>/<run id>/...` (ExportRun.prefix); its staging table is
# `<table>__staging_<run id with "_" for "-">` (warehouse.staging_table, ExportRun.staging_suffix).
_OBJECT = re.compile(r"^(?P<table>[^/]+)/(?P<time>\d{8}T\d{12}Z)-(?P<token>[0-9a-f]{6})/")
_STAGING = re.compile(r"^(?P<table>.+)__staging_(?P<time>\d{8}T\d{12}Z)_(?P<token>[0-9a-f]{6})$")


@dataclass
class SweepReport:
    """What a sweep removed, and the stale runs it left because their load job is running."""

    runs: list[str] = field(default_factory=list)
    objects: int = 0
    staging_tables: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)


def sweep(exporter: ExporterState, older_than: timedelta | None = None,
          now: datetime | None = None) -> SweepReport:
    """Give up every run of a known table that started more than `older_than` ago (default
    `ETL_SWEEP_AFTER`) and left files in the bucket or a staging table in the dataset; return
    what was removed.

    `older_than` must exceed the longest a live run can take (`ETL_SWEEP_AFTER` is checked
    against the timeouts): a run whose load job is running is left alone whatever its age.
    """
    if older_than is None:
        older_than = timedelta(seconds=exporter.config.sweep_after)
    cutoff = (now or datetime.now(timezone.utc)) - older_than
    tables = set(exporter.tables.names())
    stale: dict[ExportRun, list[str]] = {}
    warehouse = exporter.warehouse
    for names, pattern in ((exporter.bucket.names(""), _OBJECT), (warehouse.tables(), _STAGING)):
        for name in names:
            found = pattern.match(name)
            if found and found["table"] in tables:
                run = ExportRun(found["table"], f"{found['time']}-{found['token']}")
                if run_started(run.run_id) < cutoff:
                    staging = stale.setdefault(run, [])
                    if pattern is _STAGING:
                        staging.append(name)

    report = SweepReport()
    for run in sorted(stale, key=lambda r: (r.table, r.run_id)):
        label = f"{run.table}/{run.run_id}"
        if _load_running(exporter, run):
            report.busy.append(label)
            continue
        report.objects += abandon_run(run.table, run.run_id, load_job_id(run), exporter.redis)
        for staging in stale[run]:
            warehouse.drop(staging)
            report.staging_tables.append(staging)
        report.runs.append(label)
        event(logging.WARNING, "stale run swept", table=run.table, run_id=run.run_id,
              staging_tables=len(stale[run]))
    return report


def _load_running(exporter: ExporterState, run: ExportRun) -> bool:
    try:
        return Job.fetch(load_job_id(run), connection=exporter.redis).get_status() == "started"
    except NoSuchJobError:
        return False
