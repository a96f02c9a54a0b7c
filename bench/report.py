"""How the bench prints: a readable table, then one machine-readable figure per line."""
from __future__ import annotations

from .cases import Measurement

_HEADER = f"{'case':<44} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'MB out':>8} {'MB/s':>7} {'peak MB':>8}"


def header() -> str:
    """The table's column titles and rule."""
    return f"{_HEADER}\n{'-' * len(_HEADER)}"


def row(label: str, measurement: Measurement) -> str:
    """One case as a table row."""
    m = measurement
    return (f"{label:<44} {m.rows:>10,} {m.seconds:>8.2f} {m.rows_per_second:>9,.0f} "
            f"{m.bytes / 1e6:>8.1f} {m.mb_per_second:>7.1f} {m.peak_mb:>8.0f}")


def figure(name: str, value: float, digits: int = 2) -> str:
    """A machine-readable line: `name value`."""
    return f"{name} {value:.{digits}f}"
