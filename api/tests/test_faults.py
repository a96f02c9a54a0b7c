"""The fault suite: real worker processes, a Redis and emulators of the suite's own, and faults
dealt by signal: a worker killed (SIGKILL) mid-shard, mid-load and while it deletes a loaded run's
files, a work horse killed mid-query on PostgreSQL and while planning, a loader stopped (SIGSTOP)
past its lock, a foreground run interrupted (SIGINT) after its copy, Redis killed and restarted
mid-run, while a load held the table's lock and under a foreground run, and emptied while a load
waited, the storage emulator killed during a shard's write, the BigQuery emulator paused
(SIGSTOP) during the load; and two enqueuers racing for one table.

After each fault the live table holds exactly the old rows or exactly the new ones (checksums
against the source), no run files or staging tables remain once the run or the sweep is over,
and the next scheduled run loads the table without a hand. Only this suite's own services are
stopped; the shared Redis and emulators other tests use are never touched.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis
from rq.job import Job

from api.db import db
from api.demo.services import child_process, free_port, local_cloud
from api.models import CareTrack
from api.tests.conftest import ROOT, Workers
from api.tests.fault_tables import HOLD_DIR, POINTS, SESSIONS, HeldTracksExport
from bq_etl.errors import RunInProgress

TABLE = HeldTracksExport.table_name
CADENCE = HeldTracksExport.cadence.value
REDIS_SERVER = "/usr/bin/redis-server"
DEADLINE = 180.0


def wait_for(predicate, what: str, timeout: float = DEADLINE):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class OwnRedis:
    """A redis-server of the test's own, with an append-only file, so it can be killed and
    restarted with its data, as a production Redis with persistence would be."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, "the test's redis-server to answer", timeout=30)

    def _answers(self) -> bool:
        try:
            return Redis.from_url(self.url, socket_connect_timeout=1).ping()
        except Exception:
            return False

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def _pid_of(*words: str) -> int:
    """The pid of the one process whose command line holds every word in `words`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                if all(any(arg == word or arg.endswith("/" + word) for arg in argv) for word in words):
                    found.append(int(entry.name))
    assert len(found) == 1, f"processes matching {words}: {found}"
    return found[0]


@pytest.fixture(scope="module")
def own_cloud(tmp_path_factory):
    """Emulators of this suite's own (the faults stop them), started as the session's are."""
    with contextlib.ExitStack() as stack:
        cloud = stack.enter_context(local_cloud(tmp_path_factory.mktemp("own-cloud"), project="bq-etl-faults"))
        cloud.restarts = stack  # a restarted emulator is stopped with the rest
        yield cloud


class Fault:
    """One fault test's world: its Redis, the app (SQLite unless the test asks for another
    `database_url`), its workers and hold folder."""

    def __init__(self, app, env: dict[str, str], redis: OwnRedis, workers: Workers, hold: Path):
        self.app, self.env, self.redis, self.workers, self.hold = app, env, redis, workers, hold

    @property
    def exporter(self):
        from bq_etl.extension import state

        return state(self.app)

    def source(self, names: list[str]) -> str:
        """Make the care tracks exactly `names` (ids 1..n); return their checksum."""
        db.session.execute(db.delete(CareTrack))
        db.session.add_all([CareTrack(id=i, name=name) for i, name in enumerate(names, start=1)])
        db.session.commit()
        return checksum((i, name) for i, name in enumerate(names, start=1))

    def live(self, table: str = TABLE) -> str:
        """The checksum of the live BigQuery table's rows."""
        warehouse = self.exporter.warehouse
        rows = warehouse.client.query(f"SELECT id, name FROM `{warehouse.table_id(table)}`").result()
        return checksum((row["id"], row["name"]) for row in rows)

    def foreground(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """`flask export run ARGS` in a process of its own (stdout and stderr together)."""
        return subprocess.Popen([sys.executable, "-m", "flask", "export", "run", *args], cwd=ROOT,
                                env={**os.environ, **self.env, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def scheduled_run(self) -> Job:
        """What the crontab does (`flask export schedule`), then wait for the table's load job."""
        result = self.app.test_cli_runner().invoke(args=["export", "schedule", CADENCE])
        assert result.exit_code == 0, result.output
        line = next(line for line in result.output.splitlines() if line.startswith(f"enqueued {TABLE} "))
        start = Job.fetch(line.split()[-1], connection=self.exporter.redis)
        wait_for(lambda: start.get_status() in ("finished", "failed"), "the run to be planned")
        assert start.get_status() == "finished", start.latest_result().exc_string
        load = Job.fetch(start.return_value()["load_job_id"], connection=self.exporter.redis)
        wait_for(lambda: load.get_status() in ("finished", "failed", "canceled"), "the run's load")
        return load

    def leftovers(self, table: str = TABLE) -> tuple[list[str], list[str]]:
        """The table's run files in the bucket and staging tables in the dataset, of any run (the
        shipped tables on the same cadence load at their own pace)."""
        files = self.exporter.bucket.names(f"{table}/")
        staging = [t for t in self.exporter.warehouse.tables() if t.startswith(f"{table}__staging_")]
        return files, staging

    def sweep_now(self):
        """`flask export sweep` as the crontab runs it (ETL_SWEEP_AFTER: a day)."""
        from bq_etl.sweeper import sweep

        return sweep(self.exporter)

    def held_pid(self, point: str = "shard") -> int:
        """Wait until a job is held at `point`; return its work horse's pid."""
        held = self.hold / f"{point}.held"
        wait_for(held.exists, f"a job to be held at {point}")
        return int(held.read_text())

    def release(self, *points: str) -> None:
        """Let a job held at `points` go on (and any reaching them later)."""
        for point in points or POINTS:
            (self.hold / f"{point}.go").touch()

    def arm(self, point: str) -> None:
        """Make the next job to reach `point` stop there."""
        for name in (".held", ".held.once", ".go"):
            (self.hold / f"{point}{name}").unlink(missing_ok=True)

    def enqueue(self) -> Job:
        """`flask export run TABLE --enqueue`; return the start job."""
        result = self.app.test_cli_runner().invoke(args=["export", "run", TABLE, "--enqueue"])
        assert result.exit_code == 0, result.output
        return Job.fetch(result.output.split()[4], connection=self.exporter.redis)

    def first_run(self, count: int = 300) -> str:
        """Load version 1 of the source with one worker; return its checksum."""
        old = self.source(names(count, "v1"))
        self.workers.start(1, burst=False)
        load = self.scheduled_run()
        assert load.get_status() == "finished", load.latest_result().exc_string
        assert self.live() == old
        return old

    def next_run_loads(self, checksum: str) -> None:
        """The next scheduled run loads `checksum`, and nothing of any run is left behind."""
        load = self.scheduled_run()
        assert load.get_status() == "finished", load.latest_result().exc_string
        assert self.live() == checksum
        assert self.leftovers() == ([], [])

    def kill_worker(self, process: subprocess.Popen, horse: int) -> None:
        """SIGKILL a worker and its work horse, as a lost machine or the OOM killer would."""
        for pid in (horse, process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        self.workers.processes.remove(process)


#: The two ways to run a worker (docs/design.md, Deployment): the app's command, and a plain `rq
#: worker` whose jobs load the app from FLASK_APP.
FLASK_WORKER = [sys.executable, "-m", "flask", "export", "worker"]
RQ_WORKER = [str(Path(sys.executable).parent / "rq"), "worker", "-w", "bq_etl.worker.Worker", "--with-scheduler"]


class LoggedWorkers(Workers):
    """Workers whose output goes to a file: a long-running worker's pipe that nobody reads fills
    up and blocks it (RQ logs a traceback per failed attempt). `command`: `FLASK_WORKER` or
    `RQ_WORKER`."""

    def __init__(self, env: dict[str, str], log: Path):
        super().__init__(env)
        self.log = log
        self.command = FLASK_WORKER

    def start(self, count: int = 1, burst: bool = True) -> None:
        command = self.command + (["--burst"] if burst else [])
        if self.command is RQ_WORKER:
            command += ["--url", self.env["REDIS_URL"], self.env["ETL_QUEUE"]]
        with self.log.open("ab") as out:
            for _ in range(count):
                self.processes.append(subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out,
                                                       stderr=subprocess.STDOUT))


def checksum(rows) -> str:
    return hashlib.sha256(repr(sorted(rows)).encode()).hexdigest()


def finish(process: subprocess.Popen) -> tuple[int, str]:
    out, _ = process.communicate(timeout=DEADLINE)
    return process.returncode, out


def run_id_of(output: str) -> str:
    return re.findall(r"\(run (\S+)\)", output)[-1]


@contextlib.contextmanager
def storage_down(own_cloud):
    """The suite's storage emulator killed (SIGKILL: connections are refused) for the block, then
    started again as it was, with its data."""
    storage = _pid_of("gcp-storage-emulator", own_cloud.storage_url.rsplit(":", 1)[1])
    argv = Path(f"/proc/{storage}/cmdline").read_bytes().decode().split("\0")[:-1]
    os.kill(storage, signal.SIGKILL)
    try:
        yield
    finally:
        own_cloud.restarts.enter_context(child_process(argv, log=own_cloud.data_dir / "storage-restarted.log",
                                                       cwd=own_cloud.data_dir))
        wait_for(lambda: _answers(own_cloud.storage_url), "the storage emulator to answer again")


@pytest.fixture
def fault(request, tmp_path, own_cloud, database_url, monkeypatch):
    """The world of one fault test; `indirect` parametrization adds settings. On SQLite (the
    default) a database file of the test's own; on another `database_url` its tables made anew."""
    redis = OwnRedis(tmp_path)
    redis.start()
    token = uuid.uuid4().hex[:10]
    hold = tmp_path / "hold"
    hold.mkdir()
    env = {
        "FLASK_APP": "api",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'clinic.db'}" if database_url.startswith("sqlite") else database_url,
        "REDIS_URL": redis.url,
        "ETL_SYNC_BUCKET": f"bq-etl-fault-{token}",
        "ETL_BQ_DATASET": f"fault_{token}",
        "ETL_QUEUE": f"bq-etl-{token}",
        "ETL_SHARD_RETRY_INTERVALS": "0",
        "ETL_LOCK_TIMEOUT": "5",
        "ETL_LOCK_WAIT": "60",
        "ETL_EXPORT_MODULES": "api.events_join_data.export_event_join_tables,api.tests.fault_tables",
        HOLD_DIR: str(hold),
        **own_cloud.env(),
        **getattr(request, "param", {}),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from api import create_app

    app = create_app({"TESTING": True})
    workers = LoggedWorkers(env, tmp_path / "workers.log")
    with app.app_context():
        db.drop_all()
        db.create_all()
        world = Fault(app, env, redis, workers, hold)
        world.release()
        world.exporter.bucket.ensure_exists()
        try:
            yield world
        finally:
            world.release()
            workers.stop()
            if workers.log.exists():
                print(workers.log.read_text(errors="replace")[-20000:])  # shown when the test fails
            db.session.remove()
            db.engine.dispose()
            if redis.process.poll() is None:
                redis.kill()


def names(count: int, version: str) -> list[str]:
    return [f"track {i} {version}" for i in range(1, count + 1)]


def running_metric(exporter, alive: str, table: str = TABLE) -> float:
    """`bq_etl_runs_running{table=..., alive=...}` as the status page's /metrics serves it."""
    from prometheus_client.parser import text_string_to_metric_families

    from bq_etl.metrics import metrics_text

    for family in text_string_to_metric_families(metrics_text(exporter).decode()):
        for sample in family.samples:
            if sample.name == "bq_etl_runs_running" and sample.labels == {"table": table, "alive": alive}:
                return sample.value
    raise AssertionError("no bq_etl_runs_running sample")


def test_a_worker_killed_mid_shard_blocks_nothing_and_leaves_nothing(fault):
    from bq_etl import history

    old = fault.first_run()
    new = fault.source(names(280, "v2"))
    fault.arm("shard")

    start = fault.enqueue()
    fault.kill_worker(fault.workers.processes[0], fault.held_pid("shard"))
    run_id = start.return_value()["run_id"]

    assert fault.live() == old
    # Every reading says at once what the sweep and the claim say: nothing can finish the run.
    run = history.run(fault.exporter.redis, TABLE, run_id)
    assert (run.outcome, run.alive, run.label) == ("running", False, "running (dead: no job left)")
    status = fault.app.test_cli_runner().invoke(args=["export", "status"]).output
    assert f"2/6 shards, 100 rows, DEAD" in status, status
    assert (running_metric(fault.exporter, "false"), running_metric(fault.exporter, "true")) == (1, 0)
    # The dead run holds the table no longer: the next tick gives it up (its files) and loads.
    fault.workers.start(1, burst=False)
    fault.next_run_loads(new)
    assert history.run(fault.exporter.redis, TABLE, run_id).outcome == "abandoned"
    assert running_metric(fault.exporter, "false") == 0


# The OOM killer's way: the horse alone is killed while its shard's rows stream from PostgreSQL;
# its worker lives on and runs every later job. A plain `rq worker` loads the app in each horse.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("worker", ["flask export worker", "rq worker"])
def test_a_work_horse_killed_mid_query_on_postgresql_leaves_its_worker_working(fault, worker):
    fault.workers.command = FLASK_WORKER if worker == "flask export worker" else RQ_WORKER
    old = fault.first_run()
    new = fault.source(names(330, "v2"))
    fault.arm("shard")

    start = fault.enqueue()
    os.kill(fault.held_pid("shard"), signal.SIGKILL)

    # RQ retries the killed shard on the same worker, and the run loads.
    load = Job.fetch(start.return_value()["load_job_id"], connection=fault.exporter.redis)
    wait_for(lambda: load.get_status() in ("finished", "failed", "canceled"), "the run's load")
    assert load.get_status() == "finished", load.latest_result().exc_string
    assert fault.live() == new
    [process] = fault.workers.processes
    assert process.poll() is None
    fault.next_run_loads(new)  # not skipped as "already running", not stuck
    # No two processes ever read through one database connection: each horse opened its own.
    sessions = [entry.decode().split() for entry in fault.exporter.redis.lrange(SESSIONS, 0, -1)]
    processes_of = {}
    for pid, backend in sessions:
        processes_of.setdefault(backend, set()).add(pid)
    # Three runs: a plan and 6 shards, a plan and 7 shards and the killed one's retry, a plan and 7.
    assert len(sessions) == 7 + 9 + 8, sessions
    assert [pids for pids in processes_of.values() if len(pids) > 1] == []


def test_a_worker_killed_mid_load_is_swept_at_once_and_its_lock_expires(fault):
    from bq_etl.lock import lock_name
    from bq_etl.sweeper import sweep

    old = fault.first_run()
    new = fault.source(names(320, "v2"))
    fault.arm("load")

    start = fault.enqueue()
    fault.kill_worker(fault.workers.processes[0], fault.held_pid("load"))
    run_id = start.return_value()["run_id"]

    assert fault.live() == old
    assert fault.exporter.redis.exists(lock_name(TABLE))  # the dead loader's, until ETL_LOCK_TIMEOUT
    assert len(fault.exporter.bucket.names(f"{TABLE}/{run_id}/")) == 7
    # A young run, but its load job's worker is gone: the sweep need not wait ETL_SWEEP_AFTER.
    report = sweep(fault.exporter)
    assert (report.runs, report.busy, report.objects) == ([f"{TABLE}/{run_id}"], [], 7)
    fault.workers.start(1, burst=False)
    fault.next_run_loads(new)


# The storage client retries a refused upload for two minutes; the shard's job timeout ends an
# attempt sooner, and one retry keeps the test short.
@pytest.mark.parametrize("fault", [{"ETL_SHARD_TIMEOUT": "5", "ETL_SHARD_RETRIES": "1"}], indirect=True)
def test_the_storage_emulator_killed_during_a_shard_write(fault, own_cloud):
    old = fault.first_run()
    new = fault.source(names(260, "v2"))
    fault.arm("shard")
    start = fault.enqueue()
    fault.held_pid("shard")

    with storage_down(own_cloud):
        fault.release("shard")
        # Both attempts of the held shard fail to upload: the run is given up, its load cancelled.
        load = Job.fetch(f"bq-etl-{TABLE}-{start.return_value()['run_id']}-load", connection=fault.exporter.redis)
        wait_for(lambda: load.get_status() == "canceled", "the run to be given up")

    assert fault.live() == old
    # Whatever the outage kept the run from deleting, the sweep removes at once: its jobs ended.
    fault.sweep_now()
    assert fault.leftovers() == ([], [])
    fault.next_run_loads(new)


def test_redis_killed_and_restarted_mid_run(fault):
    from bq_etl.liveness import run_state
    from bq_etl.run import ExportRun

    old = fault.first_run()
    new = fault.source(names(290, "v2"))
    fault.arm("shard")
    start = fault.enqueue()
    fault.held_pid("shard")
    run = ExportRun(TABLE, start.return_value()["run_id"])

    fault.redis.kill()
    fault.redis.start()
    fault.release("shard")

    # Seen ended twice, a second apart: a judgement made while RQ, reconnecting, moves a job
    # between its registries can be passing (seen once in CI under rq 3.0).
    for _ in range(2):
        wait_for(lambda: run_state(fault.exporter.redis, run) != "running", "the run to end one way or the other")
        time.sleep(1)
    wait_for(lambda: run_state(fault.exporter.redis, run) != "running", "the run to end one way or the other")
    assert fault.live() in (old, new)
    for process in list(fault.workers.processes):
        if process.poll() is not None:  # a worker that lost Redis for good: its supervisor restarts it
            fault.workers.processes.remove(process)
            fault.workers.start(1, burst=False)
    fault.sweep_now()
    fault.next_run_loads(new)


def test_redis_restarted_while_a_load_holds_the_lock_keeps_the_lock_and_loads(fault):
    from bq_etl.lock import lock_name

    fault.first_run()
    new = fault.source(names(290, "v2"))
    fault.arm("load")
    start = fault.enqueue()
    fault.held_pid("load")  # under the table's lock (5 s, renewed every 1.7 s)
    redis = fault.exporter.redis
    assert redis.exists(lock_name(TABLE))

    fault.redis.kill()
    time.sleep(2)  # down across a renewal (every 1.7 s): the keeper's request is refused
    fault.redis.start()  # with its data (append-only file): the lock is still the loader's
    time.sleep(6)  # past the lock's timeout: only renewals after the restart keep it
    assert redis.exists(lock_name(TABLE)), "the lock was not renewed after Redis came back"
    fault.release("load")

    load = Job.fetch(start.return_value()["load_job_id"], connection=redis)
    wait_for(lambda: load.get_status() in ("finished", "failed"), "the load to end")
    assert load.get_status() == "finished", load.latest_result().exc_string
    assert load.return_value()["status"] == "loaded"
    assert fault.live() == new
    log = fault.workers.log.read_text(errors="replace")
    assert "could not renew the table lock; trying again" in log and "table lock renewed again" in log
    assert "table lock lost while loading" not in log
    assert fault.leftovers() == ([], [])


@pytest.mark.parametrize("point", ["shard", "copied"])
def test_a_foreground_run_that_loses_redis_says_so_naming_the_table_and_leaves_no_files(fault, point):
    from bq_etl import history

    old = fault.first_run()
    new = fault.source(names(280, "v2"))
    fault.arm(point)
    process = fault.foreground(TABLE)
    fault.held_pid(point)  # `shard`: two shards written and recorded; `copied`: its rows live, unlabelled

    fault.redis.kill()
    try:
        fault.release(point)  # its progress (or its load) cannot be recorded: the run stops
        code, output = finish(process)
    finally:
        fault.redis.start()

    assert code == 1, output
    error = output.splitlines()[-1]
    run_id = re.match(rf"Error: table '{TABLE}', run (\S+): Redis stopped answering during the run "
                      r"\(ConnectionError: ", error).group(1)
    assert "Traceback" not in output
    assert fault.leftovers() == ([], [])  # deleted by the run itself, no sweep needed
    # Redis could not record the outcome: the run reads dead until the next run gives it up.
    assert history.run(fault.exporter.redis, TABLE, run_id).label == "running (dead: no job left)"
    if point == "shard":
        assert "the live table was left as it was. Run the table again once Redis answers. The run's " \
            "files were deleted" in error, error
        assert fault.live() == old
        fault.next_run_loads(new)
        assert history.run(fault.exporter.redis, TABLE, run_id).outcome == "abandoned"
    else:
        assert "so the run stopped after its copy: the live table holds its rows (it is labelled with it), " \
            "and the next run or the sweep records it loaded once Redis answers" in error, error
        assert (fault.live(), fault.exporter.warehouse.loaded_run(TABLE)) == (new, run_id)
        fault.next_run_loads(fault.source(names(290, "v3")))
        assert history.run(fault.exporter.redis, TABLE, run_id).outcome == "loaded"


def test_a_worker_that_loses_redis_mid_job_exits_saying_it_was_redis(fault):
    fault.first_run()
    new = fault.source(names(280, "v2"))
    fault.arm("shard")
    fault.enqueue()
    fault.held_pid("shard")
    [process] = fault.workers.processes

    fault.redis.kill()
    try:
        fault.release("shard")  # the horse fails on Redis, and so does the worker handling that
        wait_for(lambda: process.poll() is not None, "the worker to exit", timeout=60)
    finally:
        fault.redis.start()

    fault.workers.processes.remove(process)
    errors = [line for line in fault.workers.log.read_text(errors="replace").splitlines()
              if line.startswith("Error: ")]
    assert errors and errors[-1].startswith(f"Error: REDIS_URL '{fault.redis.url}' does not answer: "
                                            "ConnectionError: "), errors
    # Its process manager starts it again; the next tick gives the dead run up and loads.
    fault.workers.start(1, burst=False)
    fault.next_run_loads(new)


def test_a_load_whose_shard_results_redis_lost_fails_saying_so_and_leaves_nothing(fault):
    old = fault.first_run()
    new = fault.source(names(270, "v2"))
    fault.arm("preload")
    start = fault.enqueue()
    fault.held_pid("preload")
    run_id = start.return_value()["run_id"]
    assert len(fault.exporter.bucket.names(f"{TABLE}/{run_id}/")) == 6

    fault.exporter.redis.flushall()  # the test's own redis-server: its data gone while the load waits
    fault.release("preload")

    wait_for(lambda: "load failed" in fault.workers.log.read_text(), "the load to fail")
    log = fault.workers.log.read_text()
    assert (f"load failed table={TABLE} run_id={run_id} error=LoadError: table '{TABLE}', run {run_id}: Redis "
            "no longer holds the results of 6 of the run's 6 shard jobs") in log, log
    assert fault.exporter.bucket.names(f"{TABLE}/{run_id}/") == []  # deleted before it failed
    assert fault.live() == old
    fault.next_run_loads(new)  # the same worker, on the emptied Redis


def test_the_bigquery_emulator_paused_during_the_load(fault, own_cloud):
    from bq_etl.lock import lock_name

    fault.first_run()
    new = fault.source(names(310, "v2"))
    fault.arm("load")
    start = fault.enqueue()
    fault.held_pid("load")
    bigquery = _pid_of("bqemulator", own_cloud.bigquery_url.rsplit(":", 1)[1])
    redis = fault.exporter.redis

    os.kill(bigquery, signal.SIGSTOP)
    try:
        fault.release("load")
        # The loader keeps its lock through the outage: it is renewed while BigQuery is stopped.
        first = wait_for(lambda: redis.pttl(lock_name(TABLE)) > 0 and redis.pttl(lock_name(TABLE)), "the lock")
        wait_for(lambda: redis.pttl(lock_name(TABLE)) > first, "the lock to be renewed during the outage")
    finally:
        os.kill(bigquery, signal.SIGCONT)
    load = Job.fetch(start.return_value()["load_job_id"], connection=redis)
    wait_for(lambda: load.get_status() in ("finished", "failed"), "the load to end")

    assert load.get_status() == "finished", load.latest_result().exc_string
    assert fault.live() == new
    assert fault.leftovers() == ([], [])
    fault.next_run_loads(new)


@pytest.mark.parametrize("via", ["foreground", "workers"])
def test_storage_down_after_the_copy_the_run_is_loaded_and_its_files_left_to_the_sweep(fault, own_cloud, via):
    from bq_etl import history
    from bq_etl.status import table_status

    fault.first_run()
    new = fault.source(names(270, "v2"))
    exporter = fault.exporter
    fault.arm("copied")
    if via == "foreground":
        process = fault.foreground(TABLE)
    else:
        start = fault.enqueue()
    fault.held_pid("copied")  # the live table replaced; nothing recorded or cleaned up yet

    with storage_down(own_cloud):
        fault.release("copied")
        if via == "foreground":
            code, output = finish(process)
            assert code == 0, output
            run_id = run_id_of(output)
            assert f"{TABLE}: loaded, 270 rows" in output.splitlines()[-1]
        else:
            run_id = start.return_value()["run_id"]
            load = Job.fetch(start.return_value()["load_job_id"], connection=exporter.redis)
            wait_for(lambda: load.get_status() in ("finished", "failed"), "the load to end")
            assert load.get_status() == "finished", load.latest_result().exc_string
            assert load.return_value()["status"] == "loaded"
            output = fault.workers.log.read_text(errors="replace")
        warnings = [line for line in output.splitlines() if "could not delete the run's files; the sweep will" in line]
        assert len(warnings) == 1 and run_id in warnings[0], output
        # The refused connection is not retried for the client's two minutes, and no traceback.
        assert "RetryError" not in warnings[0] and "Traceback" not in output

        assert fault.live() == new
        assert exporter.warehouse.loaded_run(TABLE) == run_id
        assert history.run(exporter.redis, TABLE, run_id).outcome == "loaded"
        assert table_status(exporter, TABLE).last_loaded.run_id == run_id

    assert len(exporter.bucket.names(f"{TABLE}/{run_id}/")) == 6
    # The sweep removes them at once (the run recorded its outcome), and records nothing more.
    report = fault.sweep_now()
    assert (report.runs, report.objects) == ([f"{TABLE}/{run_id}"], 6)
    assert fault.leftovers() == ([], [])
    record = history.run(exporter.redis, TABLE, run_id)
    assert (record.outcome, record.error) == ("loaded", "")
    fault.next_run_loads(new)


def test_a_loader_killed_while_it_makes_the_table_anew_lets_no_run_shrink_it_unasked(fault):
    table, v2 = "evolving_tracks", {"BQ_ETL_FAULT_SCHEMA": "v2"}
    warehouse = fault.exporter.warehouse
    fault.source(names(300, "v1"))
    code, output = finish(fault.foreground(table))
    assert code == 0, output
    first = run_id_of(output)
    fault.arm("copy")

    killed = fault.foreground(table, env=v2)  # a new column: on the emulator, the table is made anew
    os.kill(fault.held_pid("copy"), signal.SIGKILL)
    killed.wait()

    # The window of making a table anew (docs/reliability.md): made again, its rows not yet copied.
    assert warehouse.row_count(table) == 0
    assert warehouse.loaded_mark(table) == (first, 300)
    # The source lost 90% of its rows: the guard holds the run to what the last load recorded.
    fault.source(names(30, "v2"))
    code, output = finish(fault.foreground(table, env=v2))
    assert code == 1, output
    assert (f"the run would replace 300 rows (what run {first} loaded; the table holds 0, as a replace "
            "interrupted half way leaves it) with 30; under its shrink_threshold of 0.5") in output
    assert warehouse.row_count(table) == 0
    # A run with the whole source loads, with the new column.
    full = fault.source(names(300, "v2"))
    code, output = finish(fault.foreground(table, env=v2))
    assert code == 0, output
    assert fault.live(table) == full
    assert [f.name for f in warehouse.live_schema(table)] == ["id", "name", "note"]
    assert fault.leftovers(table) == ([], [])


def test_a_write_race_shows_in_the_status_until_the_next_run_loads(fault):
    from prometheus_client.parser import text_string_to_metric_families

    from api.tests.test_status_page import Page
    from bq_etl.blueprint import status_blueprint
    from bq_etl.lock import lock_name
    from bq_etl.status import table_status

    fault.app.register_blueprint(status_blueprint(auth=lambda: True, name="ops"), url_prefix="/ops")
    exporter, runner = fault.exporter, fault.app.test_cli_runner()
    fault.first_run()
    older_rows = fault.source(names(300, "v2"))
    fault.arm("copy")
    older = fault.foreground(TABLE)
    pid = fault.held_pid("copy")  # its last check passed, its copy not yet sent
    os.kill(pid, signal.SIGSTOP)
    try:
        fault.release("copy")
        wait_for(lambda: not exporter.redis.exists(lock_name(TABLE)), "the stopped loader's lock to expire")
        newest_rows = fault.source(names(310, "v3"))
        forced = runner.invoke(args=["export", "run", TABLE, "--force"])
        assert forced.exit_code == 0, forced.output
        newer = run_id_of(forced.output)
    finally:
        os.kill(pid, signal.SIGCONT)
    code, output = finish(older)

    assert code == 1, output
    older_id = re.search(rf"run {newer} loaded between run (\S+)'s last check and its write", output).group(1)
    assert older_id < newer
    assert fault.live() == older_rows  # the documented window: the older rows went over the newer
    status = table_status(exporter, TABLE)
    assert (status.freshness, status.ok, status.last_loaded.run_id) == ("overwritten", False, newer)
    assert status.overwritten_by.run_id == older_id
    text = runner.invoke(args=["export", "status"]).output
    assert f"{TABLE}: run {older_id} failed: WriteRace: table {TABLE!r}: run {newer} loaded between" in text
    assert f"{TABLE}: the live table holds run {older_id}'s rows, written over the last load (run {newer})" in text
    checked = runner.invoke(args=["export", "status", "--json", "--check"])
    assert checked.exit_code == 1
    ours = next(entry for entry in json.loads(checked.output.split("\nnot ok")[0]) if entry["table"] == TABLE)
    assert (ours["freshness"], ours["ok"], ours["overwritten_by"]["run_id"]) == ("overwritten", False, older_id)
    client = fault.app.test_client()
    page = Page(client.get("/ops/").text)
    assert page.rows[TABLE][2] == "overwritten"
    assert older_id in page.failures and "WriteRace" in page.failures

    def metric(name: str) -> float:
        return next(sample.value for family in text_string_to_metric_families(client.get("/ops/metrics").text)
                    for sample in family.samples if sample.name == name and sample.labels == {"table": TABLE})

    assert (metric("bq_etl_table_overwritten"), metric("bq_etl_table_ok")) == (1, 0)

    # The next scheduled run loads current data over it, and the table is fine again.
    fault.next_run_loads(newest_rows)
    status = table_status(exporter, TABLE)
    assert (status.freshness, status.ok, status.overwritten_by) == ("fresh", True, None)
    assert (metric("bq_etl_table_overwritten"), metric("bq_etl_table_ok")) == (0, 1)


def test_a_worker_stopped_under_the_lock_and_resumed_while_a_forced_run_holds_it_writes_nothing(fault):
    from bq_etl import history
    from bq_etl.lock import lock_name
    from bq_etl.status import table_status

    exporter = fault.exporter
    fault.first_run()
    fault.source(names(280, "v2"))
    fault.arm("load")
    start = fault.enqueue()
    horse, worker = fault.held_pid("load"), fault.workers.processes[0].pid
    stopped = start.return_value()["run_id"]
    for pid in (horse, worker):
        os.kill(pid, signal.SIGSTOP)
    try:
        fault.release("load")
        wait_for(lambda: not exporter.redis.exists(lock_name(TABLE)), "the stopped loader's lock to expire")
        newest = fault.source(names(290, "v3"))
        fault.arm("copy")
        forced = fault.foreground(TABLE, "--force")
        fault.held_pid("copy")  # the forced run holds the lock, its last check passed
    finally:
        for pid in (worker, horse):
            os.kill(pid, signal.SIGCONT)

    load = Job.fetch(start.return_value()["load_job_id"], connection=exporter.redis)
    wait_for(lambda: load.get_status() in ("finished", "failed"), "the resumed load to end")
    assert load.get_status() == "failed"
    assert f"LockLost: table '{TABLE}', run {stopped}: the table's lock expired before the write" in \
        load.latest_result().exc_string
    fault.release("copy")
    code, output = finish(forced)
    assert code == 0, output
    assert fault.live() == newest
    assert history.run(exporter.redis, TABLE, stopped).outcome == "failed"
    status = table_status(exporter, TABLE)
    assert (status.last_loaded.run_id, status.ok, status.open_failure) == (run_id_of(output), True, None)
    assert fault.leftovers() == ([], [])
    fault.next_run_loads(newest)


def test_a_loader_killed_between_its_copy_and_its_label_is_recorded_loaded_when_given_up(fault):
    from bq_etl import history

    exporter = fault.exporter
    fault.first_run()
    before = exporter.warehouse.loaded_run(TABLE)
    new = fault.source(names(280, "v2"))
    fault.arm("copied")
    killed = fault.foreground(TABLE)
    os.kill(fault.held_pid("copied"), signal.SIGKILL)
    killed.wait()
    killed_id = history.runs(exporter.redis, TABLE)[0].run_id

    # The window (docs/reliability.md): its rows are live, the label names the run before.
    assert fault.live() == new
    assert exporter.warehouse.loaded_run(TABLE) == before
    # The next run gives it up; its copy job completed, so it is recorded as what it did.
    newest = fault.source(names(290, "v3"))
    fault.next_run_loads(newest)
    record = history.run(exporter.redis, TABLE, killed_id)
    assert (record.outcome, record.rows, record.error) == ("loaded", 280, "")


def test_a_worker_killed_while_it_deletes_a_loaded_runs_files_leaves_the_run_loaded(fault, caplog):
    from bq_etl import history

    exporter = fault.exporter
    fault.first_run()
    new = fault.source(names(280, "v2"))
    fault.arm("cleanup")
    start = fault.enqueue()
    horse = fault.held_pid("cleanup")  # loaded and recorded; one of its 6 files deleted
    run_id = start.return_value()["run_id"]
    fault.kill_worker(fault.workers.processes[0], horse)

    assert fault.live() == new
    assert exporter.warehouse.loaded_run(TABLE) == run_id
    assert history.run(exporter.redis, TABLE, run_id).outcome == "loaded"
    assert len(exporter.bucket.names(f"{TABLE}/{run_id}/")) == 5
    # The next tick gives the dead load up: its files go, its outcome stays, and the log says so.
    fault.workers.start(1, burst=False)
    newest = fault.source(names(290, "v3"))
    fault.next_run_loads(newest)
    record = history.run(exporter.redis, TABLE, run_id)
    assert (record.outcome, record.rows, record.error) == ("loaded", 280, "")
    [line] = [r.getMessage() for r in caplog.records
              if "dead run given up" in r.getMessage() and run_id in r.getMessage()]
    assert "outcome=loaded" in line and "files=5" in line, line


def test_a_run_interrupted_after_its_copy_is_recorded_loaded(fault):
    from bq_etl import history
    from bq_etl.status import table_status

    exporter = fault.exporter
    fault.first_run()
    new = fault.source(names(280, "v2"))
    fault.arm("copied")
    process = fault.foreground(TABLE)
    os.kill(fault.held_pid("copied"), signal.SIGINT)  # Ctrl-C once the copy is done
    code, output = finish(process)

    assert code != 0, output
    run_id = history.runs(exporter.redis, TABLE)[0].run_id
    assert fault.live() == new
    # Recorded as what it did, as a run killed there is once given up: loaded, and labelled.
    record = history.run(exporter.redis, TABLE, run_id)
    assert (record.outcome, record.rows, record.error) == ("loaded", 280, ""), record
    assert exporter.warehouse.loaded_mark(TABLE) == (run_id, 280)
    status = table_status(exporter, TABLE)
    assert (status.last_loaded.run_id, status.ok) == (run_id, True)
    assert "run interrupted after its copy; recorded as loaded" in output
    assert fault.leftovers() == ([], [])
    fault.next_run_loads(fault.source(names(290, "v3")))


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


# -- Runs do not pile up: one run per table at a time ---------------------------------------------

def test_a_table_with_a_run_queued_gets_no_second_one_unless_forced(app, redis):
    from bq_etl.extension import state

    runner = app.test_cli_runner()
    first = runner.invoke(args=["export", "run", "members", "--enqueue"])
    again = runner.invoke(args=["export", "run", "members", "--enqueue"])
    tick = runner.invoke(args=["export", "schedule", "every_three_hours"])
    foreground = runner.invoke(args=["export", "run", "members"])

    assert first.exit_code == 0, first.output
    job_id = first.output.split()[4]
    holder = f"not yet planned, job {job_id}"
    assert again.exit_code == 1
    assert f"Error: table 'members' already has a run queued or running ({holder})" in again.output
    assert tick.exit_code == 0, tick.output
    assert f"skipped members: a run is already queued or running ({holder})" in tick.output
    assert "every_three_hours: 0 tables enqueued, 1 skipped" in tick.output
    assert foreground.exit_code == 1 and holder in foreground.output
    assert [job.id for job in state().queue.get_jobs()] == [job_id]

    forced = runner.invoke(args=["export", "run", "members", "--enqueue", "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(state().queue.get_jobs()) == 2


# The other enqueuer gets in at the worst moment: after this one judged the table free, before
# its start job is written (cron firing twice, two hosts' crontabs; a foreground run started by
# hand). Of the two, one wins: the claim and its start job are written in one transaction.
@pytest.mark.export_modules("api.tests.fault_tables")
@pytest.mark.parametrize("other", ["run --enqueue", "run"])
def test_of_two_enqueuers_racing_for_a_table_one_wins(app, app_env, redis, tmp_path, monkeypatch, other):
    from rq import Queue

    from api.tests.test_pipeline import add_tracks
    from bq_etl.claim import current
    from bq_etl.extension import state
    from bq_etl.jobs import claim_key, enqueue_run

    exporter = state()
    add_tracks([f"track {i}" for i in range(1, 151)])
    hold = tmp_path / "hold"
    hold.mkdir()
    env = {**os.environ, **app_env, HOLD_DIR: str(hold)}
    for point in POINTS:
        if point != "shard":
            (hold / f"{point}.go").touch()
    argv = [sys.executable, "-m", "flask", "export", *other.split(), TABLE]
    enqueue, racers = Queue.enqueue, []

    def racing(queue, *args, **kwargs):
        if not racers:
            racers.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            if other == "run --enqueue":
                racers[0].wait(timeout=DEADLINE)
            else:  # until the foreground run is under way (held in its third shard)
                wait_for(lambda: (hold / "shard.held").exists() or racers[0].poll() is not None, "the other run")
        return enqueue(queue, *args, **kwargs)

    monkeypatch.setattr(Queue, "enqueue", racing)
    try:
        with pytest.raises(RunInProgress):
            enqueue_run(exporter, TABLE)
        holder = current(redis, claim_key(exporter, TABLE))
        queued = exporter.queue.get_job_ids()
    finally:
        (hold / "shard.go").touch()
        output = racers[0].communicate(timeout=DEADLINE)[0].decode() if racers else ""
    assert racers and racers[0].returncode == 0, output
    if other == "run --enqueue":
        assert queued == [holder.job_id] and f"as job {holder.job_id}" in output  # the other's, alone
    else:
        assert queued == [] and holder.pid == racers[0].pid  # the foreground run's claim, no start job
        assert f"{TABLE}: loaded, 150 rows" in output


def test_enqueueing_with_no_worker_listening_warns(app, redis, workers):
    from bq_etl.extension import state

    runner = app.test_cli_runner()
    alone = runner.invoke(args=["export", "schedule", "midnight"])
    workers.start(1, burst=False)
    wait_for(lambda: state().workers_listening(), "the worker to register", timeout=60)
    heard = runner.invoke(args=["export", "run", "members", "--enqueue"])

    assert alone.exit_code == 0 and heard.exit_code == 0, alone.output + heard.output
    assert f"Warning: no worker listens on queue '{state().queue.name}'" in alone.output
    assert "Warning" not in heard.output


@pytest.mark.export_modules("api.tests.fault_exports")
def test_a_run_that_ended_frees_its_table(app, workers, redis):
    from api.tests.test_pipeline import add_tracks, run_with_workers
    from bq_etl.extension import state
    from bq_etl.jobs import claim_key

    add_tracks(["a", "b", "c"])
    _, first = run_with_workers(workers, "flaky_tracks")
    _, second = run_with_workers(workers, "flaky_tracks")  # not refused: the first released it

    assert first.get_status() == second.get_status() == "finished"
    assert not redis.exists(claim_key(state(), "flaky_tracks"))


def test_a_claim_nothing_can_finish_blocks_nothing(app, redis):
    from bq_etl.claim import Holder
    from bq_etl.extension import state
    from bq_etl.jobs import claim_key, enqueue_run
    from bq_etl.run import ExportRun, new_run_id

    exporter = state()
    dead = subprocess.Popen(["true"])
    dead.wait()
    run = ExportRun("members", new_run_id())
    exporter.bucket.write(f"{run.prefix}00000.json", [b'{"id":1}\n'])
    foreground_gone = Holder(run_id=run.run_id, host=socket.gethostname(), pid=dead.pid)
    cases = {"members": foreground_gone, "messages": Holder(job_id="bq-etl-messages-start-expired")}
    for table, holder in cases.items():
        redis.set(claim_key(exporter, table), holder.to_json())
    redis.set(claim_key(exporter, "practitioners"), Holder.this_process("20261130T000000000000Z-abcdef").to_json())

    for table in cases:
        enqueue_run(exporter, table)
    with pytest.raises(RunInProgress, match=f"foreground process {os.getpid()}"):
        enqueue_run(exporter, "practitioners")  # this very process: alive
    assert exporter.bucket.names(run.prefix) == []  # the dead foreground run's files, given up


# -- Fail fast where retrying cannot help ---------------------------------------------------------

@pytest.mark.export_modules("api.tests.fault_exports")
def test_a_record_error_is_not_retried_and_gives_the_run_up_at_once(app, workers, redis):
    from api.tests.test_pipeline import add_tracks
    from bq_etl.extension import state
    from bq_etl.jobs import enqueue_run

    add_tracks(["a", "b", "c", "d"])
    start = enqueue_run(state(), "bad_tracks")
    workers.start(1)
    output = workers.wait()

    run_id = start.return_value()["run_id"]
    shard = Job.fetch(f"bq-etl-bad_tracks-{run_id}-shard-00001", connection=redis)
    load = Job.fetch(f"bq-etl-bad_tracks-{run_id}-load", connection=redis)
    assert (shard.get_status(), load.get_status()) == ("failed", "canceled")
    errors = [line for line in output.splitlines() if " ERROR bq_etl: " in line]
    assert len(errors) == 1, output
    assert "shard failed for good; abandoning run table=bad_tracks" in errors[0]
    assert "error=RecordError: table 'bad_tracks', row key 3, column 'name': got int 42" in errors[0]
    assert "RQ will retry" not in output  # ETL_SHARD_RETRIES is 3: none was used


@pytest.mark.export_modules("api.tests.fault_tables")
def test_start_run_is_retried_while_the_database_is_down_for_a_moment(app, workers, redis):
    from api.tests.test_pipeline import add_tracks, run_with_workers

    add_tracks(["a", "b", "c"])
    redis.set("fault:flaky_plan_tracks:plan", 1)  # the first attempt fails

    start, load = run_with_workers(workers, "flaky_plan_tracks")

    assert load.get_status() == "finished", load.latest_result()
    assert start.retries_left == 2


@pytest.mark.export_modules("api.tests.fault_tables")
def test_start_run_gives_up_at_once_on_an_error_retrying_cannot_fix(app, workers, redis):
    from bq_etl.extension import state
    from bq_etl.jobs import claim_key, enqueue_run

    start = enqueue_run(state(), "flaky_plan_tracks")
    app.config["ETL_EXPORT_MODULES"] = "api.tests.fault_exports"  # the workers know no such table
    workers.env["ETL_EXPORT_MODULES"] = "api.events_join_data.export_event_join_tables"
    workers.start(1)
    output = workers.wait()

    assert start.get_status() == "failed"
    errors = [line for line in output.splitlines() if " ERROR bq_etl: " in line]
    assert len(errors) == 1 and "run could not start table=flaky_plan_tracks" in errors[0], output
    assert "error=UnknownTableError: unknown table 'flaky_plan_tracks'" in errors[0]
    assert "RQ will retry" not in output
    assert not redis.exists(claim_key(state(), "flaky_plan_tracks"))  # the table is free again


# -- A missing bucket ---------------------------------------------------------------------------

def test_a_missing_bucket_is_caught_before_any_work(app, redis):
    from bq_etl.extension import state

    app.config["ETL_SYNC_BUCKET"] = bucket = f"missing-{uuid.uuid4().hex[:10]}"
    for cached in ("config", "bucket"):
        state().__dict__.pop(cached, None)
    runner = app.test_cli_runner()

    for args in (["run", "members"], ["run", "members", "--enqueue"], ["schedule", "every_three_hours"]):
        result = runner.invoke(args=["export", *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.output == (f"Error: bucket '{bucket}' (ETL_SYNC_BUCKET) does not exist: create it with "
                                 "`flask export setup`\n"), args
    assert state().queue.count == 0


@pytest.mark.export_modules("api.tests.fault_tables")
def test_a_bucket_gone_during_the_run_shows_the_uploads_own_error(app, redis, caplog):
    from api.tests.test_pipeline import add_tracks
    from bq_etl.extension import state

    add_tracks(["a", "b", "c"])
    result = app.test_cli_runner().invoke(args=["export", "run", "vanishing_bucket_tracks"])

    assert result.exit_code == 1
    bucket = state().config.bucket
    assert result.output.splitlines()[-1] == (f"Error: bucket '{bucket}' (ETL_SYNC_BUCKET) does not exist: "
                                              "create it with `flask export setup`")
    assert "Traceback" not in result.output and "404" not in result.output
    # The cleanup's own failure (it cannot list a bucket that is gone) is a warning, not the error.
    assert [r.levelname for r in caplog.records if "could not delete the run's files" in r.message] == ["WARNING"]


# -- No secret in any message -------------------------------------------------------------------

def test_no_command_shows_a_password_of_redis_or_the_database(cloud, tmp_path):
    from api.demo.services import free_port

    env = {**os.environ, **cloud.env(), "FLASK_APP": "api",
           "REDIS_URL": f"redis://:s3cret-redis@127.0.0.1:{free_port()}/0",
           "DATABASE_URL": f"postgresql://postgres:s3cret-db@127.0.0.1:{free_port()}/clinic",
           "ETL_SYNC_BUCKET": f"bq-etl-secret-{uuid.uuid4().hex[:8]}",
           "ETL_EXPORT_MODULES": "api.events_join_data.export_event_join_tables"}
    listed = subprocess.run([sys.executable, "-m", "flask", "export", "list"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=DEADLINE)
    # `list` reads only the definitions: it works with nothing running, and shows no secret either.
    assert listed.returncode == 0 and "members" in listed.stdout, listed.stdout + listed.stderr
    assert "s3cret" not in listed.stdout + listed.stderr
    commands = [["run", "members"], ["run", "members", "--enqueue"], ["schedule", "hourly"],
                ["sweep"], ["worker", "--burst"]]
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "flask", "export", *command], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=DEADLINE)
        output = done.stdout + done.stderr

        assert done.returncode != 0, (command, output)
        assert "s3cret" not in output, (command, output)
        assert "REDIS_URL 'redis://:***@127.0.0.1:" in output, (command, output)
        assert "the database 'postgresql+psycopg://postgres:***@127.0.0.1:" in output, (command, output)
        assert len(output.splitlines()) == 1, (command, output)  # one line, no traceback
