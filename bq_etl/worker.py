"""The RQ worker that runs a table's jobs (`flask export worker`).

RQ 1.15 dequeues a job by moving it onto the queue's intermediate list, and only later, in the
work horse, adds it to the StartedJobRegistry. Its registry maintenance, run by any worker on
the queue at start and then every `maintenance_interval`, takes every job found on that list
but not in the registry for stuck and hands it to `handle_job_failure`, which re-enqueues a job
with retries left. A job another worker had just dequeued then runs twice at once: two burst
workers started together planned two runs from one enqueue (RQ issue #2061). RQ 1.16 waits
before it calls a job stuck; `Worker` brings that wait to RQ 1.15 and is RQ's own worker on
newer versions.

Every job runs in a work horse forked from the worker. A database connection the worker holds
in its SQLAlchemy pool (the start-up check's `SELECT 1` leaves one) would be inherited by every
horse, all of them talking over one socket: a horse killed mid-query (the OOM killer) leaves
that connection mid-stream, and every later horse of the worker fails on it or hangs. So, as
SQLAlchemy documents for `os.fork()`, the worker empties the pools of every engine of the app
(each Flask-SQLAlchemy bind) before it forks a horse, and the horse forgets, without closing
them, any connection it still inherited (`engine.dispose(close=False)`): every horse opens its
own. Redis needs nothing: redis-py's connection pool notices the new pid and opens new
connections in the horse, leaving the worker's alone.
"""
from __future__ import annotations

import time

import rq
from flask import current_app, has_app_context
from rq import Queue
from rq import Worker as RQWorker
from rq import worker_registration
from rq.registry import clean_registries
from rq.utils import as_text

#: How long a job may sit on the intermediate list, out of the StartedJobRegistry, before it is
#: taken for stuck: a worker dequeues it and its horse registers it within a second or two.
STUCK_AFTER = 60


def _rq_version() -> tuple[int, ...]:
    return tuple(int(part) for part in rq.VERSION.split(".")[:2])


class Worker(RQWorker):
    """An RQ worker that never runs a job twice at once on RQ 1.15, and whose work horses never
    share a database connection (see the module's text)."""

    def fork_work_horse(self, job, queue) -> None:
        """Fork the horse with no pooled database connection for it to inherit."""
        forget_database_connections(close=True)
        super().fork_work_horse(job, queue)

    def main_work_horse(self, job, queue) -> None:
        """In the horse: drop, unclosed, any connection inherited from the worker, then run the job."""
        forget_database_connections(close=False)
        super().main_work_horse(job, queue)

    if _rq_version() < (1, 16):
        def clean_registries(self) -> None:
            """RQ 1.15's registry maintenance, with `clean_intermediate_queue`'s wait added."""
            from rq.utils import utcnow  # RQ 1.x only: RQ 2 renamed it `now`

            for queue in self.queues:
                if queue.acquire_maintenance_lock():
                    self.log.info("Cleaning registries for queue: %s", queue.name)
                    clean_registries(queue)
                    worker_registration.clean_worker_registry(queue)
                    clean_intermediate_queue(self, queue)
            self.last_cleaned_at = utcnow()


def forget_database_connections(close: bool) -> None:
    """Empty the connection pool of every engine of the current app (each Flask-SQLAlchemy bind):
    closing its connections (`close`, in the process that opened them), or only dropping them (in
    a forked child, where closing would end the parent's sessions too). Nothing without an app
    context: a plain `rq worker` loads the app in each horse, with engines of its own."""
    if not has_app_context():
        return
    extension = current_app.extensions.get("sqlalchemy")
    for engine in (extension.engines.values() if extension is not None else ()):
        engine.dispose(close=close)


def clean_intermediate_queue(worker: RQWorker, queue: Queue, now: float | None = None) -> list[str]:
    """Fail (and so retry) the jobs left on `queue`'s intermediate list by a worker that died
    between dequeueing them and starting them: those seen there, out of the StartedJobRegistry,
    at a pass at least `STUCK_AFTER` seconds ago. Returns their ids."""
    redis, now = queue.connection, time.time() if now is None else now
    seen_key = f"bq-etl:intermediate-seen:{queue.name}"
    listed = [as_text(job_id) for job_id in redis.lrange(queue.intermediate_queue_key, 0, -1)]
    seen = {as_text(job_id): float(at) for job_id, at in redis.hgetall(seen_key).items()}
    stuck, started = [], []
    for job_id in listed:
        if job_id in queue.started_job_registry:
            started.append(job_id)
            continue
        job = queue.fetch_job(job_id)
        if job is None:
            redis.lrem(queue.intermediate_queue_key, 1, job_id)
        elif job_id not in seen:
            redis.hset(seen_key, job_id, now)
        elif now - seen[job_id] >= STUCK_AFTER:
            worker.handle_job_failure(job, queue, exc_string="Job was stuck in intermediate queue.")
            redis.lrem(queue.intermediate_queue_key, 1, job_id)
            stuck.append(job_id)
    gone = [job_id for job_id in seen if job_id not in listed or job_id in stuck or job_id in started]
    if gone:
        redis.hdel(seen_key, *gone)
    return stuck
