"""Small bar charts of a table's recent runs, laid out here and drawn as inline SVG by the
status page's template (no JavaScript): one bar, one mark, per run."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


#: A chart has room for at least this many bars.
MIN_SLOTS = 12


@dataclass(frozen=True)
class Bar:
    """One run's mark: its rectangle, the value it stands for and the tooltip text."""

    x: float
    y: float
    width: float
    height: float
    title: str
    kind: str  # the run's outcome, a CSS class


@dataclass(frozen=True)
class Chart:
    """A bar chart in a `width` x `height` SVG view box."""

    label: str
    width: int
    height: int
    bars: list[Bar]
    top: str  # the largest value, as the axis label


def bar_chart(label: str, values: Sequence[float | None], titles: Sequence[str], kinds: Sequence[str],
              unit: str = "", width: int = 300, height: int = 48) -> Chart:
    """Bars for `values` left to right, scaled to the largest; a value of None (not known yet)
    or 0 still gets a 1-unit mark, so every run shows."""
    largest = max((v for v in values if v), default=0) or 1
    slot = width / max(len(values), MIN_SLOTS)  # a few runs are bars from the left, not blocks
    gap = min(2.0, slot / 4)
    bars = []
    for index, (value, title, kind) in enumerate(zip(values, titles, kinds)):
        tall = max((value or 0) / largest * (height - 1), 1.0)
        bars.append(Bar(x=round(index * slot + gap / 2, 2), y=round(height - tall, 2),
                        width=round(slot - gap, 2), height=round(tall, 2), title=title, kind=kind))
    return Chart(label=label, width=width, height=height, bars=bars, top=f"{_short(largest)}{unit}")


def _short(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"
