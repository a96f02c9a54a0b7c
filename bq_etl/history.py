"""The run history: every run's progress and outcome, kept in Redis, bounded per table.

Each run is one hash, `bq-etl:history:run:<table>:<run id>`, written as the run goes: created
when the run starts (outcome `running`), given its plan, bumped with HINCRBY as each shard lands
(so workers exporting shards of one run in parallel never lose an update), and given its outcome
once, when it ends. A sorted set per table, `bq-etl:history:runs:<table>` (score: start time),
orders the runs and is trimmed to `ETL_HISTORY_RUNS` as each new run starts. What the metrics
count for ever (rows, bytes, runs by outcome, the duration histogram) goes into
`bq-etl:history:totals:<table>` in the same atomic step that records an outcome, so trimming
the history never makes a counter go backwards.

A run killed half way keeps its last progress and the outcome `running`; when it is read, a
running run nothing can finish any more reads as dead (`RunRecord.alive` False), by the same
judgement the claim and the sweep make (`liveness.run_state`: its foreground process is gone, or
its RQ jobs died with their worker or horse, failed, or were retried as a run of their own),
until the next enqueue of its table or `flask export sweep` records it `abandoned`.

All of it lives in the exporter's Redis: flushing that Redis forgets the history and the
totals (the live BigQuery tables keep their data and their `bq_etl_run` label).
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from redis import Redis
from rq import get_current_job

from .liveness import run_state
from .run import ExportRun, RunSummary, ShardResult, run_started

#: Every outcome a run can have; all but `running` are final and recorded once.
OUTCOMES = ("running", "loaded", "superseded", "refused", "failed", "abandoned")
#: Outcomes that mean the run did not do its job; `flask export status --check` pages on them.
FAILURES = ("refused", "failed", "abandoned")
#: Upper bounds (seconds) of the run duration histogram's buckets.
DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)

_ERROR_CHARS = 500

# Records an outcome only while the run is still `running` (the first final outcome wins: a
# shard's error stays when the sweep later gives the same run up), and counts the run into the
# table's totals and its newest loaded run in the same step.
# KEYS: run hash, totals hash, newest-loaded key. ARGV: outcome, ended, then field/value pairs.
_FINISH = """
if redis.call('HGET', KEYS[1], 'outcome') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'outcome', ARGV[1], 'ended', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local run = redis.call('HGET', KEYS[1], 'run_id')
local rows = tonumber(redis.call('HGET', KEYS[1], 'rows') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
local seconds = tonumber(ARGV[2]) - tonumber(redis.call('HGET', KEYS[1], 'started') or ARGV[2])
redis.call('HINCRBY', KEYS[2], 'runs:' .. ARGV[1], 1)
redis.call('HINCRBY', KEYS[2], 'rows', rows)
redis.call('HINCRBY', KEYS[2], 'bytes', bytes)
redis.call('HINCRBYFLOAT', KEYS[2], 'seconds:sum', seconds)
redis.call('HINCRBY', KEYS[2], 'seconds:count', 1)
for _, le in ipairs({%s}) do
  if seconds <= le then redis.call('HINCRBY', KEYS[2], 'seconds:le:' .. le, 1) end
end
if ARGV[1] == 'loaded' then
  local newest = redis.call('GET', KEYS[3])
  if not newest or run > newest then redis.call('SET', KEYS[3], run) end
end
return 1
""" % ", ".join(str(b) for b in DURATION_BUCKETS)


@dataclass
class RunRecord:
    """One run as the history holds it: what started it, how far it got, how it ended."""

    table: str
    run_id: str
    trigger: str = ""
    outcome: str = "running"
    started: float = 0.0
    ended: float | None = None
    updated: float = 0.0  # last progress written
    planned_rows: int = 0
    rows: int = 0  # written by the shards so far; a loaded run's rows are what BigQuery counted
    shards_done: int = 0
    shards_total: int = 0
    bytes: int = 0
    error: str = ""
    job_ids: list[str] = field(default_factory=list)  # BigQuery jobs
    start_job: str = ""  # RQ jobs, for runs on workers
    load_job: str = ""
    host: str = ""  # process, for runs in the foreground
    pid: int = 0
    #: For a running run, read at query time (`liveness.run_state`): True while a process or RQ
    #: job can still finish it, False once none can (killed: the next enqueue or the sweep
    #: abandons it), None when it cannot be told (a foreground run on another host). None for
    #: finished runs.
    alive: bool | None = None

    @property
    def seconds(self) -> float | None:
        """How long the run took, has taken so far if it is running, or ran until its last
        progress if it is dead."""
        if not self.started:
            return None
        end = self.ended or (self.updated if self.alive is False else time.time())
        return end - self.started

    @property
    def label(self) -> str:
        """The outcome as shown to operators: a running run nothing will finish says so."""
        if self.outcome == "running" and self.alive is False:
            return "running (dead: no job left)"
        return self.outcome

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types, with its duration and label."""
        return {**asdict(self), "seconds": self.seconds, "label": self.label}


def run_key(table: str, run_id: str) -> str:
    """The Redis hash holding one run's record."""
    return f"bq-etl:history:run:{table}:{run_id}"


def runs_key(table: str) -> str:
    """The Redis sorted set of a table's run ids, scored by start time."""
    return f"bq-etl:history:runs:{table}"


def totals_key(table: str) -> str:
    """The Redis hash of a table's counters since the history began (for the metrics)."""
    return f"bq-etl:history:totals:{table}"


def loaded_key(table: str) -> str:
    """The Redis key holding the id of the newest run the history saw load `table`."""
    return f"bq-etl:history:loaded:{table}"


def started(redis: Redis, run: ExportRun, trigger: str, keep: int) -> None:
    """Record that `run` started (outcome running); keep only the table's newest `keep` runs."""
    now = time.time()
    record: dict[str, Any] = {"table": run.table, "run_id": run.run_id, "trigger": trigger,
                              "outcome": "running", "started": now, "updated": now}
    job = get_current_job()
    if job is not None:
        record["start_job"] = job.id
        job.meta["run_id"] = run.run_id  # so the start job's failure callback can name the run
        job.save_meta()
    else:
        record.update(host=socket.gethostname(), pid=os.getpid())
    with redis.pipeline() as pipe:
        pipe.hset(run_key(run.table, run.run_id), mapping=record)
        pipe.zadd(runs_key(run.table), {run.run_id: now})
        pipe.execute()
    old = redis.zrange(runs_key(run.table), 0, -keep - 1)
    if old:
        with redis.pipeline() as pipe:
            pipe.delete(*(run_key(run.table, run_id.decode()) for run_id in old))
            pipe.zrem(runs_key(run.table), *old)
            pipe.execute()


def planned(redis: Redis, run: ExportRun, shards: int, rows: int, load_job: str = "") -> None:
    """Record a run's plan: its shard count, the rows the plan counted, its load job's id."""
    redis.hset(run_key(run.table, run.run_id),
               mapping={"shards_total": shards, "planned_rows": rows, "load_job": load_job,
                        "updated": time.time()})


def shard_exported(redis: Redis, run: ExportRun, result: ShardResult) -> None:
    """Count one exported shard, its rows and bytes into its run (atomic: shards run in parallel)."""
    key = run_key(run.table, run.run_id)
    with redis.pipeline() as pipe:
        pipe.hincrby(key, "shards_done", 1)
        pipe.hincrby(key, "rows", result.rows)
        pipe.hincrby(key, "bytes", result.bytes)
        pipe.hset(key, "updated", time.time())
        pipe.execute()


def finished(redis: Redis, summary: RunSummary) -> bool:
    """Record the end of a run the loader completed (loaded or superseded)."""
    return _finish(redis, summary.table, summary.run_id, summary.status,
                   rows=summary.rows, bytes=summary.bytes, shards_done=summary.shards,
                   job_ids=json.dumps(summary.job_ids))


def failed(redis: Redis, table: str, run_id: str, error: BaseException, job_ids: Iterable[str] = ()) -> bool:
    """Record that a run ended with `error`: outcome `error.outcome` if it has one, else failed."""
    return _finish(redis, table, run_id, getattr(error, "outcome", "failed"), error=one_line(error),
                   job_ids=json.dumps(list(job_ids)))


def abandoned(redis: Redis, table: str, run_id: str) -> bool:
    """Record that a run was given up without an error of its own (a killed run, swept)."""
    return _finish(redis, table, run_id, "abandoned",
                   error="given up: its process or jobs died without recording an outcome")


def _finish(redis: Redis, table: str, run_id: str, outcome: str, **fields: Any) -> bool:
    assert outcome in OUTCOMES[1:], outcome
    pairs = [str(item) for name, value in fields.items() for item in (name, value)]
    return bool(redis.eval(_FINISH, 3, run_key(table, run_id), totals_key(table), loaded_key(table),
                           outcome, time.time(), *pairs))


def one_line(error: BaseException) -> str:
    """An error as one line: its class and the first line of its message, cut to a sane length."""
    message = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
    return text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS - 1] + "…"


def runs(redis: Redis, table: str, limit: int | None = None) -> list[RunRecord]:
    """A table's runs, newest first (at most `limit`); running ones say whether they are alive."""
    ids = redis.zrevrange(runs_key(table), 0, -1 if limit is None else limit - 1)
    with redis.pipeline(transaction=False) as pipe:
        for run_id in ids:
            pipe.hgetall(run_key(table, run_id.decode()))
        hashes = pipe.execute()
    records = [_record(data) for data in hashes if data]
    for record in records:
        if record.outcome == "running":
            record.alive = _alive(redis, record)
    return records


def run(redis: Redis, table: str, run_id: str) -> RunRecord | None:
    """One run's record, or None if the history does not hold it."""
    data = redis.hgetall(run_key(table, run_id))
    if not data:
        return None
    record = _record(data)
    if record.outcome == "running":
        record.alive = _alive(redis, record)
    return record


def newest_loaded(redis: Redis, table: str) -> RunRecord | None:
    """The newest run that loaded `table`, even once it has left the bounded history (then
    only its id and start time are known), or None if the history never saw one."""
    run_id = redis.get(loaded_key(table))
    if run_id is None:
        return None
    return run(redis, table, run_id.decode()) or RunRecord(
        table, run_id.decode(), outcome="loaded", started=run_started(run_id.decode()).timestamp())


def totals(redis: Redis, table: str) -> dict[str, float]:
    """The table's counters since the history began: `runs:<outcome>`, rows, bytes,
    `seconds:sum`, `seconds:count`, `seconds:le:<bound>`."""
    return {key.decode(): float(value) for key, value in redis.hgetall(totals_key(table)).items()}


_INTS = ("planned_rows", "rows", "shards_done", "shards_total", "bytes", "pid")
_FLOATS = ("started", "updated")


def _record(data: dict[bytes, bytes]) -> RunRecord:
    raw = {key.decode(): value.decode() for key, value in data.items()}
    values: dict[str, Any] = {name: raw.get(name, "") for name in
                              ("table", "run_id", "trigger", "outcome", "error", "start_job", "load_job", "host")}
    values.update({name: int(raw.get(name) or 0) for name in _INTS})
    values.update({name: float(raw.get(name) or 0) for name in _FLOATS})
    values["ended"] = float(raw["ended"]) if raw.get("ended") else None
    values["job_ids"] = json.loads(raw.get("job_ids") or "[]")
    return RunRecord(**values)


def _alive(redis: Redis, record: RunRecord) -> bool | None:
    """Can anything still finish this running run? (See `RunRecord.alive`.)"""
    found = run_state(redis, ExportRun(record.table, record.run_id), start_job=record.start_job or None,
                      host=record.host or None, pid=record.pid or None)
    return None if found == "unknown" else found == "running"
