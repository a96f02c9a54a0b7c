"""Whether the process running an RQ job is still alive, so a dead one blocks nothing.

RQ marks a job `started` and leaves it so when its whole worker is killed (SIGKILL, a lost
node); its StartedJobRegistry notices only after the job's timeout. A started job's process is
judged by two things: the work horse running it, whose host and pid the job records when it
begins (`record_process`), and the RQ worker that took it (`job.worker_name`), whose Redis key
lives only while the worker sends heartbeats and holds its host and pid. On this host a pid is
checked directly (at once); on another host the worker key's expiry (about 90 s after its last
heartbeat) is what tells.
"""
from __future__ import annotations

import os
import socket

from redis import Redis
from rq.job import Job
from rq.worker import Worker

#: Where a job records the host and pid of the work horse running it.
HOST, PID = "bq_etl_host", "bq_etl_pid"


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
