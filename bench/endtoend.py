"""Case 4: a whole run through real RQ workers, the storage emulator and the BigQuery emulator.

The workers are started first and left idle (as in production, where they are long-lived), so
the wall time runs from `enqueue_run` to the load job's end: planning, every shard, the upload,
the staging load, the count check and the copy into the live table.
"""
from __future__ import annotations

import contextlib
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from .cases import Measurement
from .cpu import CpuSampler, pids_running
from .memory import peak_rss_mb

POLL_SECONDS = 0.05
ROOT = Path(__file__).resolve().parents[1]


class RunFailed(RuntimeError):
    """A job of the bench run failed or did not finish in time."""


def end_to_end(workers: int, log_dir: str, timeout: float = 900, offline: bool = False) -> Measurement:
    """Export the bench table with `workers` RQ workers and load it into the BigQuery emulator;
    with `offline`, only plan and export it, into the storage stand-in (`VisitsOfflineExport`),
    and let its load fail.

    Settings come from the environment (`bench.__main__` sets them). The peak RSS is that of
    the largest worker process or forked work horse.
    """
    import resource

    from rq import Worker
    from rq.job import Job

    from api import create_app
    from api.demo.services import child_process
    from bq_etl.extension import state
    from bq_etl.jobs import enqueue_run
    from bq_etl.provision import provision

    from .exports import VisitsExport, VisitsOfflineExport

    table = (VisitsOfflineExport if offline else VisitsExport).table_name
    app = create_app()
    with app.app_context():
        exporter = state()
        provision(exporter)  # before the check: workers refuse to start without the bucket
        exporter.check()
        exporter.redis.flushdb()
        # Each run creates the table afresh, so 1 and 2 workers do the same work.
        exporter.warehouse.client.delete_table(exporter.warehouse.table_id(table), not_found_ok=True)
        deadline = time.monotonic() + timeout
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as processes:
            # Stopped on exit with SIGTERM, RQ's warm shutdown: an idle worker exits at once.
            pool = [processes.enter_context(child_process(
                [sys.executable, "-m", "flask", "export", "worker"],
                log=Path(log_dir) / f"worker-{workers}-{number}.log", cwd=ROOT,
            )) for number in range(workers)]
            _wait_for(lambda: Worker.count(connection=exporter.redis, queue=exporter.queue) == workers,
                      deadline, "workers to register")
            with _sampler(pool) as cpu:
                started = time.monotonic()
                start_job = enqueue_run(exporter, table)
                planned = _result(start_job, deadline)
                load_job = Job.fetch(planned["load_job_id"], connection=exporter.redis)
                # The load job starts once every shard has finished: the CPU until then is the
                # plan's and the shards'.
                _wait_for(lambda: load_job.get_status(refresh=True) != "deferred", deadline, "the shards")
                cpu_shards, until_load = cpu.seconds(), time.monotonic() - started
                if offline:
                    _wait_for(lambda: load_job.get_status(refresh=True) in ("finished", "failed"),
                              deadline, "the load to end")
                    load_job.refresh()  # for its timestamps
                else:
                    summary = _result(load_job, deadline)
                seconds = time.monotonic() - started
            shard_jobs = Job.fetch_many(load_job.args[3], connection=exporter.redis)
    results = [job.return_value() for job in shard_jobs]
    if offline:
        summary = {"status": "exported", "rows": sum(r["rows"] for r in results),
                   "bytes": sum(r["bytes"] for r in results)}
    if summary["rows"] != planned["planned_rows"] or not (offline or summary["status"] == "loaded"):
        raise RunFailed(f"the run did not {'export' if offline else 'load'} every row: {summary}")
    return Measurement(
        rows=summary["rows"], bytes=summary["bytes"], seconds=seconds,
        peak_mb=peak_rss_mb(resource.RUSAGE_CHILDREN),
        extra={
            "workers": workers,
            "shards": planned["shards"],
            "plan_seconds": _span([start_job]),
            "shards_seconds": _span(shard_jobs),
            "load_seconds": _span([load_job]),
            "cpu_shards": cpu_shards,
            "until_load_seconds": until_load,
            "cpu": cpu.seconds(),
        },
    )


def _sampler(workers: list[Any]) -> CpuSampler:
    """CPU of the run's parts: the workers with their work horses, the PostgreSQL backends
    serving the bench database, each emulator, and this process (which enqueues and polls)."""
    import os

    from .cases import postgres_backends

    storage_port = os.environ["STORAGE_EMULATOR_HOST"].rsplit(":", 1)[1]
    bigquery_port = os.environ["ETL_BIGQUERY_API_ENDPOINT"].rsplit(":", 1)[1]
    return CpuSampler({
        "workers": (lambda: [worker.pid for worker in workers], True),
        "postgres": (postgres_backends, False),
        "storage emulator": (lambda: pids_running("gcp-storage-emulator", storage_port), False),
        "bigquery emulator": (lambda: pids_running("bqemulator", bigquery_port), False),
        "bench": (lambda: [os.getpid()], False),
    })


def _result(job: Any, deadline: float) -> Any:
    """The job's return value once it has finished; RunFailed if it fails or time runs out."""
    def done() -> bool:
        status = job.get_status(refresh=True)
        if status in ("failed", "canceled", "stopped"):
            raise RunFailed(f"job {job.id} {status}: {job.exc_info}")
        return status == "finished"

    _wait_for(done, deadline, f"job {job.id}")
    job.refresh()  # for its timestamps
    return job.return_value()


def _wait_for(condition: Callable[[], bool], deadline: float, what: str) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise RunFailed(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


def _span(jobs: list[Any]) -> float:
    """Seconds from the first job's start to the last one's end (RQ records both)."""
    starts: list[datetime] = [job.started_at for job in jobs]
    ends: list[datetime] = [job.ended_at for job in jobs]
    return (max(ends) - min(starts)).total_seconds()
