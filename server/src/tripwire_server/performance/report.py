"""What the API, the CLI and the pages show, computed from rollup rows alone (pure functions)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

from ..store.perf_records import RollupRow
from . import histogram

PERCENTILES = (("p50_ms", 0.50), ("p75_ms", 0.75), ("p95_ms", 0.95), ("p99_ms", 0.99))
#: Points of a sparkline.
SPARK_POINTS = 24


@dataclasses.dataclass
class Stats:
    """One transaction name and op over a time range."""

    transaction: str
    op: str
    count: int = 0
    failures: int = 0
    duration_sum: float = 0.0
    histogram: histogram.Histogram = dataclasses.field(default_factory=dict)
    #: count per bucket start, for the sparkline
    by_bucket: dict[float, int] = dataclasses.field(default_factory=dict)

    def add(self, row: RollupRow) -> None:
        self.count += row.count
        self.failures += row.failures
        self.duration_sum += row.duration_sum
        histogram.merge(self.histogram, row.histogram)
        self.by_bucket[row.bucket] = self.by_bucket.get(row.bucket, 0) + row.count

    def to_json(self, apdex_ms: float, minutes: float) -> dict[str, Any]:
        """The row of ``tripwire performance --json``: rates and Apdex as fractions 0..1."""
        out: dict[str, Any] = {
            "transaction": self.transaction,
            "op": self.op,
            "count": self.count,
            "failure_rate": self.failures / self.count if self.count else 0.0,
            "apdex": histogram.apdex(self.histogram, apdex_ms, self.failures),
        }
        for key, q in PERCENTILES:
            v = histogram.quantile(self.histogram, q)
            out[key] = None if v is None else round(v, 3)
        out["avg_ms"] = round(self.duration_sum / self.count, 3) if self.count else None
        out["throughput_per_minute"] = self.count / minutes if minutes > 0 else 0.0
        return out


def summarize(rows: Iterable[RollupRow]) -> list[Stats]:
    """Rows merged per (transaction, op), busiest first."""
    by_key: dict[tuple[str, str], Stats] = {}
    for row in rows:
        stats = by_key.get((row.name, row.op))
        if stats is None:
            stats = by_key[(row.name, row.op)] = Stats(row.name, row.op)
        stats.add(row)
    return sorted(by_key.values(), key=lambda s: (-s.count, s.transaction, s.op))


def sparkline(stats: Stats, since: float, until: float, points: int = SPARK_POINTS) -> list[int]:
    """Counts in ``points`` equal slots of ``[since, until)``."""
    out = [0] * points
    width = max(1e-9, (until - since) / points)
    for bucket, n in stats.by_bucket.items():
        slot = min(points - 1, max(0, int((bucket - since) // width)))
        out[slot] += n
    return out


def series(rows: Iterable[RollupRow], res: int, since: float, until: float) -> list[dict[str, Any]]:
    """Per time slot (at most 60 slots): count, failures and percentiles, for the summary chart."""
    slots = max(1, min(60, math.ceil((until - since) / res)))
    step = max(res, math.ceil((until - since) / slots / res) * res)
    start = math.floor(since / res) * res
    merged: dict[float, Stats] = {}
    for row in rows:
        slot = start + ((row.bucket - start) // step) * step
        stats = merged.get(slot)
        if stats is None:
            stats = merged[slot] = Stats("", "")
        stats.add(row)
    out = []
    t = float(start)
    while t < until:
        stats = merged.get(t)
        point: dict[str, Any] = {"t": t, "count": stats.count if stats else 0}
        for key, q in PERCENTILES:
            v = histogram.quantile(stats.histogram, q) if stats else None
            point[key] = None if v is None else round(v, 3)
        out.append(point)
        t += step
    return out


def distribution(hist: histogram.Histogram, bars: int = 30) -> list[dict[str, Any]]:
    """The duration histogram regrouped into at most ``bars`` bars: ``{from_ms, to_ms, count}``."""
    if not hist:
        return []
    lo, hi = min(hist), max(hist)
    per_bar = max(1, math.ceil((hi - lo + 1) / bars))
    out = []
    for first in range(lo, hi + 1, per_bar):
        last = first + per_bar - 1
        n = sum(hist.get(i, 0) for i in range(first, last + 1))
        out.append(
            {
                "from_ms": round(histogram.value(first - 1) if first > 0 else 0.0, 3),
                "to_ms": round(histogram.value(last), 3),
                "count": n,
            }
        )
    return out


def releases_p95(rows: Iterable[RollupRow]) -> list[dict[str, Any]]:
    """p95 and count per release, the latest release (by last bucket seen) first."""
    by_release: dict[str, Stats] = {}
    last_seen: dict[str, float] = {}
    for row in rows:
        stats = by_release.setdefault(row.release, Stats("", ""))
        stats.add(row)
        last_seen[row.release] = max(last_seen.get(row.release, 0.0), row.bucket)
    order = sorted(by_release, key=lambda r: (-last_seen[r], r))
    return [
        {
            "release": r,
            "count": by_release[r].count,
            "p95_ms": histogram.quantile(by_release[r].histogram, 0.95),
        }
        for r in order
    ]
