"""The four cadences and the daily sweep as rq-scheduler cron entries, for deployments without
system cron (the same times as api/cron/crontab).

rq-scheduler is an extra (`pip install 'bq-etl[scheduler]'`): only this module needs it, and its
newest releases require rq 2, which a host pinning rq 1 must not be upgraded to.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .cadence import Cadence
from .errors import ConfigError
from .extension import ExporterState
from .jobs import schedule_cadence, sweep_stale_runs

if TYPE_CHECKING:
    from rq_scheduler import Scheduler

#: When `flask export sweep` runs (UTC, daily): a quiet hour, after midnight's runs.
SWEEP_CRON = "30 4 * * *"
SWEEP_JOB_ID = "bq-etl-sweep"


def scheduler_job_id(cadence: Cadence) -> str:
    """The fixed id of a cadence's cron entry, so registering twice replaces rather than doubles."""
    return f"bq-etl-cadence-{cadence.value}"


def register_schedules(exporter: ExporterState) -> list[tuple[str, str, str]]:
    """(Re-)register one cron entry per cadence and one for the sweep; return (name, cron
    expression, scheduler job id) of each."""
    scheduler = new_scheduler(exporter)
    entries = [(c.value, c.cron, scheduler_job_id(c), schedule_cadence, [c.value]) for c in Cadence]
    entries.append(("sweep", SWEEP_CRON, SWEEP_JOB_ID, sweep_stale_runs, []))
    for _, cron, job_id, func, args in entries:
        if job_id in scheduler:
            scheduler.cancel(job_id)
        scheduler.cron(cron, func=func, args=args, id=job_id, queue_name=exporter.queue.name,
                       use_local_timezone=False)
    return [(name, cron, job_id) for name, cron, job_id, _, _ in entries]


def new_scheduler(exporter: ExporterState) -> Scheduler:
    """An rq-scheduler `Scheduler` on the export queue; ConfigError saying what to install if
    rq-scheduler is missing."""
    try:
        from rq_scheduler import Scheduler
    except ImportError as error:
        raise ConfigError(
            "flask export register-schedules needs rq-scheduler, which is not installed: "
            "pip install 'bq-etl[scheduler]' (or use the crontab, which needs nothing more)"
        ) from error
    return Scheduler(queue=exporter.queue, connection=exporter.redis)
