"""Small charts as data for inline SVG: the templates draw ``<rect>`` elements from these numbers, so
no chart library, no script and no inline style is needed (the CSP forbids both)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..store import HourlyCount

HOUR = 3600.0


@dataclasses.dataclass(frozen=True)
class Bar:
    """One bar of a chart, in the chart's own coordinates."""

    x: float
    y: float
    width: float
    height: float
    count: int
    #: Start of the bucket (Unix seconds), for the tooltip.
    start: float


@dataclasses.dataclass(frozen=True)
class BarChart:
    """Bars over a fixed time window; ``width``/``height`` are the SVG viewBox."""

    bars: tuple[Bar, ...]
    width: float
    height: float
    total: int
    peak: int


def hourly_chart(
    counts: Sequence[HourlyCount],
    *,
    now: float,
    hours: int = 24,
    width: float = 96.0,
    height: float = 20.0,
    gap: float = 1.0,
) -> BarChart:
    """Bars for the last ``hours`` hours (the current hour last) from sparse hourly counts."""
    first = (int(now // HOUR) - hours + 1) * HOUR
    buckets = [0] * hours
    for item in counts:
        index = int((item.hour - first) // HOUR)
        if 0 <= index < hours:
            buckets[index] += int(item.count)
    peak = max(buckets)
    slot = width / hours
    bars: list[Bar] = []
    for index, count in enumerate(buckets):
        # Hours with events always get a visible bar; empty hours a hairline baseline.
        bar_height = max(1.5, height * count / peak) if count and peak else 0.5
        bars.append(
            Bar(
                x=round(index * slot, 2),
                y=round(height - bar_height, 2),
                width=round(max(0.5, slot - gap), 2),
                height=round(bar_height, 2),
                count=count,
                start=first + index * HOUR,
            )
        )
    return BarChart(tuple(bars), width, height, sum(buckets), peak)


@dataclasses.dataclass(frozen=True)
class Share:
    """One value of a distribution with its share of the total (0..100)."""

    label: str
    count: int
    percent: float


def shares(items: Sequence[tuple[str, int]]) -> list[Share]:
    """Turn ``(label, count)`` pairs into shares of their sum, biggest first."""
    total = sum(count for _, count in items) or 1
    ordered = sorted(items, key=lambda item: (-item[1], item[0]))
    return [Share(label, count, round(100.0 * count / total, 1)) for label, count in ordered]
