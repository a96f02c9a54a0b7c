"""One run per table: the Redis key naming the run that holds a table, from enqueue to load.

A run claims its table as it is enqueued (its `start_run` job is written in the same Redis
transaction as the claim, so no one ever sees a claim whose job does not exist yet) or, in the
foreground, before it plans, and releases the claim when it loads, fails or is given up.
Another run of the table is refused while the holder is alive; a holder that died (its worker
killed, its process gone) is replaced, and whoever replaces it cleans up after it. The key also
expires after `ETL_SWEEP_AFTER`, the longest a run can take, so even a holder nobody can judge
never blocks the table for ever.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from typing import Callable

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError


def claim_key(dataset: str, table: str) -> str:
    """The Redis key naming the run that holds BigQuery table `dataset.table` (apps sharing a
    Redis but loading other datasets do not block each other)."""
    return f"bq-etl:active:{dataset}.{table}"


@dataclass(frozen=True)
class Holder:
    """The run holding a table: an enqueued run (its `start_run` job) or a foreground run (its
    process); `run_id` is known once the run is planned."""

    job_id: str | None = None
    run_id: str | None = None
    host: str | None = None
    pid: int | None = None

    @classmethod
    def this_process(cls, run_id: str) -> "Holder":
        """A foreground run in this process."""
        return cls(run_id=run_id, host=socket.gethostname(), pid=os.getpid())

    def describe(self) -> str:
        """How a message names the holder: its run id and its job id or process."""
        parts = [f"run {self.run_id}" if self.run_id else "not yet planned"]
        if self.job_id:
            parts.append(f"job {self.job_id}")
        if self.pid:
            parts.append(f"foreground process {self.pid} on {self.host}")
        return ", ".join(parts)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Holder":
        return cls(**json.loads(raw))


def current(redis: Redis, key: str) -> Holder | None:
    """The holder of the claim `key` (see `claim_key`), if any (alive or not)."""
    raw = redis.get(key)
    return Holder.from_json(raw) if raw else None


def take(redis: Redis, key: str, holder: Holder, ttl: int, alive: Callable[[Holder], bool], force: bool = False,
         with_claim: Callable[[Pipeline], object] | None = None) -> tuple[Holder | None, Holder | None]:
    """Claim `key`'s table for `holder` unless a holder `alive` judges alive has it (and not `force`).

    Returns (the holder that kept the table, None) when refused, else (None, the holder that was
    replaced, if any, for the caller to clean up after when it was dead). Atomic: of two callers
    racing for a free table, one wins. `with_claim(pipeline)` adds commands to the transaction
    that writes the claim (the holder's job, enqueued with RQ's `pipeline=`, which puts the
    pipeline in MULTI), so they are written with it or not at all.
    """
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.get(key)
                previous = Holder.from_json(raw) if raw else None
                if previous is not None and not force and alive(previous):
                    pipe.unwatch()
                    return previous, None
                if with_claim is not None:
                    with_claim(pipe)  # RQ opens the transaction (MULTI) before its first write
                if not pipe.explicit_transaction:
                    pipe.multi()
                pipe.set(key, holder.to_json(), ex=ttl)
                pipe.execute()
                return None, previous
            except WatchError:
                continue


def _swap(redis: Redis, key: str, matches: Callable[[Holder], bool], new: Holder | None, ttl: int | None) -> bool:
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.get(key)
                if not raw or not matches(Holder.from_json(raw)):
                    pipe.unwatch()
                    return False
                pipe.multi()
                if new is None:
                    pipe.delete(key)
                else:
                    pipe.set(key, new.to_json(), ex=ttl)
                pipe.execute()
                return True
            except WatchError:
                continue


def planned(redis: Redis, key: str, job_id: str, run_id: str, ttl: int) -> bool:
    """Record the run id of the enqueued run `job_id`, if it still holds the table."""
    return _swap(redis, key, lambda h: h.job_id == job_id, Holder(job_id=job_id, run_id=run_id), ttl)


def release(redis: Redis, key: str, run_id: str | None = None, job_id: str | None = None) -> bool:
    """Free the claim `key` if the run `run_id` (or the start job `job_id`) still holds it; a newer
    holder (a forced run) keeps its claim."""
    return _swap(redis, key, lambda h: (run_id is not None and h.run_id == run_id)
                 or (job_id is not None and h.job_id == job_id), None, None)
