"""Running one case in a fresh interpreter, so the peak RSS it reports is that case's alone.

`run_case` starts `python -m bench.child CASE KWARGS`; the child runs the case, reads its own
peak RSS (`ru_maxrss`) and prints the measurement as its last line of JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from .cases import Measurement, copy_limit, limit, limit_halves, mariadb_limit, naive, reference, shard, unchecked
from .endtoend import end_to_end
from .memory import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
CASE_TIMEOUT = 1800

CASES: dict[str, Callable[..., Measurement]] = {
    "limit": limit, "limit_halves": limit_halves, "copy_limit": copy_limit, "mariadb_limit": mariadb_limit, "naive": naive,
    "unchecked": unchecked, "reference": reference, "shard": shard, "end_to_end": end_to_end,
}


class CaseFailed(RuntimeError):
    """A case's process exited with an error (its traceback is on stderr above)."""


def run_case(name: str, env: dict[str, str] | None = None, **kwargs: Any) -> Measurement:
    """Run case `name` with `kwargs` in a new interpreter, `env` added to its environment."""
    process = subprocess.run(
        [sys.executable, "-m", "bench.child", name, json.dumps(kwargs)],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True,
        timeout=CASE_TIMEOUT,
    )
    if process.returncode != 0:
        raise CaseFailed(f"case {name} {kwargs} exited with code {process.returncode}")
    return Measurement(**json.loads(process.stdout.splitlines()[-1]))


def main(argv: list[str]) -> None:
    name, kwargs = argv[1], json.loads(argv[2])
    measurement = CASES[name](**kwargs)
    if measurement.peak_mb is None:
        measurement.peak_mb = peak_rss_mb()
    print(json.dumps(asdict(measurement)))


if __name__ == "__main__":
    main(sys.argv)
