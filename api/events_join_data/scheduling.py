"""The four cadences as rq-scheduler cron entries, for deployments without system cron."""
from __future__ import annotations

from rq_scheduler import Scheduler

from .cadence import Cadence
from .extension import ExporterState
from .jobs import schedule_cadence


def scheduler_job_id(cadence: Cadence) -> str:
    """The fixed id of a cadence's cron entry, so registering twice replaces rather than doubles."""
    return f"bq-etl-cadence-{cadence.value}"


def register_cadences(exporter: ExporterState) -> list[tuple[Cadence, str]]:
    """(Re-)register one cron entry per cadence; return (cadence, scheduler job id) pairs."""
    scheduler = Scheduler(queue=exporter.queue, connection=exporter.redis)
    registered = []
    for cadence in Cadence:
        job_id = scheduler_job_id(cadence)
        if job_id in scheduler:
            scheduler.cancel(job_id)
        scheduler.cron(cadence.cron, func=schedule_cadence, args=[cadence.value], id=job_id,
                       queue_name=exporter.queue.name, use_local_timezone=False)
        registered.append((cadence, job_id))
    return registered
