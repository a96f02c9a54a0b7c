"""CPU seconds spent by each part of a case (workers, PostgreSQL, the emulators), from /proc.

On two cores the parts of a run compete for the same CPUs, so how far a second worker can speed
a run up depends on how many cores one worker's run already keeps busy: `CpuSampler` reads
every part's CPU time while a case runs, and the report divides it by the wall time.
"""
from __future__ import annotations

import os
import threading
from typing import Callable, Iterable

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """User + system CPU seconds of process `pid` (with `children`: also of the children it
    has reaped, and of those still running); None once it has gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Fields after the name, counted from `state` as index 0: utime 11, stime 12, cutime 13, cstime 14.
    total = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    seconds = total / _TICK
    if children:
        seconds += sum(cpu_seconds(child) or 0.0 for child in _children(pid))
    return seconds


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listed:
            return [int(child) for child in listed.read().split()]
    except FileNotFoundError:
        return []


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine have spent on anything but idling, since boot."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / _TICK  # user..softirq, steal; guest is in user


def pids_running(*words: str) -> list[int]:
    """Processes whose command line holds every one of `words`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    argv = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            except (FileNotFoundError, ProcessLookupError):
                continue
            if all(word in argv for word in words):
                found.append(int(entry))
    return found


class CpuSampler:
    """Samples, every `interval` seconds until stopped, the CPU seconds of the processes each
    part names (a part: a name and a function listing its pids now, with whether their reaped
    and running children count too). A process's figure is its last reading, so a part's total
    counts every process it listed while the sampler ran, including those that ended."""

    def __init__(self, parts: dict[str, tuple[Callable[[], Iterable[int]], bool]], interval: float = 0.05):
        self.parts = parts
        self.interval = interval
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._late = False
        self._machine = 0.0
        self._machine_end: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "CpuSampler":
        self._machine = machine_busy_seconds()
        self._sample()
        self._late = True  # a process first seen from now on started after the first sample: from 0
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._machine_end = machine_busy_seconds()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for name, (pids, children) in self.parts.items():
            for pid in pids():
                seconds = cpu_seconds(pid, children)
                if seconds is not None:
                    self._first.setdefault((name, pid), 0.0 if self._late else seconds)
                    self._last[(name, pid)] = seconds

    def seconds(self) -> dict[str, float]:
        """CPU seconds each part spent while sampled, and under "other" what every other
        process of the machine spent meanwhile (another session's tests, say)."""
        totals = dict.fromkeys(self.parts, 0.0)
        for (name, pid), last in self._last.items():
            totals[name] += last - self._first[(name, pid)]
        machine = self._machine_end if self._machine_end is not None else machine_busy_seconds()
        totals["other"] = max(machine - self._machine - sum(totals.values()), 0.0)
        return totals

