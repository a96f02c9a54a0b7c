"""Whether a run can still finish: the one judgement the claim, the sweep and the run history share.

A run is `running` while something can still finish it, `dead` once nothing can but it has not
been given up (it may have left files, a staging table, an outcome never recorded), `ended` once
it loaded, failed and cleaned up, or was given up, and `unknown` when nothing here can tell (a
foreground run on another host, or a run Redis holds no job of).

What finishes a run on workers is its RQ jobs; RQ marks a job `started` and leaves it so when
its whole worker is killed (SIGKILL, a lost node), and its StartedJobRegistry notices only after
the job's timeout. So a started job's process is judged by two things: the work horse running
it, whose host and pid the job records when it begins (`record_process`), and the RQ worker that
took it (`job.worker_name`), whose Redis key lives only while the worker sends heartbeats and
holds its host and pid. On this host a pid is checked directly (at once); on another host the
worker key's expiry (about 90 s after its last heartbeat) is what tells. A foreground run is
judged by its process.
"""
from __future__ import annotations

import os
import socket

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.worker import Worker

from .claim import Holder
from .run import ExportRun

#: Where a job records the host and pid of the work horse running it.
HOST, PID = "bq_etl_host", "bq_etl_pid"
#: What can be said of a run (see the module's text).
STATES = ("running", "dead", "ended", "unknown")
#: RQ statuses of a job that has yet to run.
WAITING = ("queued", "scheduled", "deferred")


def abandoned_key(run_id: str) -> str:
    """The Redis key marking a run given up: a late shard then discards its file, a late load
    loads nothing."""
    return f"bq-etl:abandoned:{run_id}"


def run_state(redis: Redis, run: ExportRun, start_job: str | None = None, host: str | None = None,
              pid: int | None = None) -> str:
    """What can be said of `run` (one of `STATES`), from its load job and shard jobs, else its
    `start_run` job `start_job` (while it plans), else its foreground process `host`/`pid`."""
    if redis.exists(abandoned_key(run.run_id)):
        return "ended"
    if pid:
        return _process_state(host, pid)
    load = _fetch(redis, run.load_job_id)
    if load is not None:
        return _load_state(redis, load)
    if not start_job:
        return "unknown"  # no job to ask: a run not enqueued, or one whose jobs Redis lost
    start = _fetch(redis, start_job)
    if start is None:
        return "dead"  # planned, but neither its start job nor its load job is left
    # The run's id is the attempt's that is planning it now, or (RQ's retry saves the job as the
    # worker last read it) none yet: the next attempt records its own as it starts.
    if start.get_status() == "started" and start.meta.get("run_id") in (None, run.run_id):
        return "running" if job_running(redis, start) else "dead"
    # The attempt that planned this run ended without its load job: killed (RQ retries start_run,
    # which plans a run of its own) or failed.
    return "dead"


def holder_state(redis: Redis, table: str, holder: Holder) -> str:
    """`run_state` for the holder of a table's claim: `running` while its `start_run` job waits
    or runs (a retry plans a run of its own), or while a foreground holder's process may (on
    another host it cannot be seen: the claim's TTL bounds it); `ended` for a holder that never
    planned; else its run's state."""
    if holder.pid is not None:
        found = _process_state(holder.host, holder.pid)
        return "running" if found == "unknown" else found
    start = _fetch(redis, holder.job_id) if holder.job_id else None
    if start is not None:
        status = start.get_status()
        if status in WAITING or (status == "started" and job_running(redis, start)):
            return "running"
    if not holder.run_id:
        return "ended"  # it never planned: nothing of it to clean up
    return run_state(redis, ExportRun(table, holder.run_id), start_job=holder.job_id)


def _load_state(redis: Redis, load: Job) -> str:
    status = load.get_status()
    if status == "started":
        return "running" if job_running(redis, load) else "dead"
    if status == "failed":
        return "dead"  # a load that raised has cleaned up; one whose horse was killed has not
    if status not in WAITING:
        return "ended"
    for shard in Job.fetch_many(load.args[3], connection=redis):
        shard_status = shard.get_status() if shard is not None else None
        if shard_status in (None, "failed", "canceled", "stopped") or (
                shard_status == "started" and not job_running(redis, shard)):
            return "dead"  # a shard failed, vanished or died: RQ will never run the load
    return "running"


def _process_state(host: str | None, pid: int) -> str:
    if host != socket.gethostname():
        return "unknown"
    return "running" if process_alive(host, pid) else "dead"


def _fetch(redis: Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return None


def record_process(job: Job | None) -> None:
    """Record, in `job.meta`, the host and pid of this process, which is running the job."""
    if job is not None:
        job.meta.update({HOST: socket.gethostname(), PID: os.getpid()})
        job.save_meta()


def job_running(redis: Redis, job: Job) -> bool:
    """Whether a `started` job's process may still be running: its work horse or its worker."""
    if process_alive(job.meta.get(HOST), job.meta.get(PID)):
        return True
    if not job.worker_name:
        return True  # not yet taken by a worker that we could judge
    host, pid = redis.hmget(Worker.redis_worker_namespace_prefix + job.worker_name, "hostname", "pid")
    if host is None:
        return False  # no heartbeat within the worker's TTL: it is gone
    if host.decode() != socket.gethostname():
        return True  # another machine's worker, still sending heartbeats
    return process_alive(host.decode(), int(pid or 0))


def process_alive(host: str | None, pid: int | None) -> bool:
    """Whether process `pid` on `host` runs; False for another host (it cannot be seen from here:
    callers decide what that means)."""
    if host != socket.gethostname() or not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except (FileNotFoundError, IndexError):
        return True  # no /proc here: kill(0) said it exists
