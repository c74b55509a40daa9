"""A mergeable duration histogram with fixed log-scale buckets (DDSketch-style).

Bucket ``i`` holds durations in ``(GAMMA**(i-1), GAMMA**i]`` milliseconds. Every collector
process and every minute uses the same buckets, so two histograms merge by adding their counts,
and a percentile read from any merged range of minutes is within :data:`RELATIVE_ACCURACY` of the
true value of a duration in that bucket (the bucket's midpoint is reported).
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Iterable, Mapping

import orjson

#: A reported percentile is within this fraction of the real duration.
RELATIVE_ACCURACY = 0.02
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
#: Durations at or below this many milliseconds share bucket 0 (reported as 0 ms).
MIN_MS = 0.01
#: Longer durations (over a day) all land in the last bucket.
MAX_INDEX = math.ceil(math.log(86_400_000 / MIN_MS) / _LOG_GAMMA)

Histogram = dict[int, int]


def bucket(duration_ms: float) -> int:
    """The bucket index of a duration (non-finite or negative durations count as 0)."""
    if not duration_ms > MIN_MS or math.isinf(duration_ms):
        return 0 if not duration_ms > MIN_MS else MAX_INDEX
    return min(MAX_INDEX, max(1, math.ceil(math.log(duration_ms / MIN_MS) / _LOG_GAMMA)))


def _value(index: int) -> float:
    if index <= 0:
        return 0.0
    return MIN_MS * 2 * GAMMA**index / (GAMMA + 1)


_VALUES = [_value(i) for i in range(MAX_INDEX + 1)]


def value(index: int) -> float:
    """The duration (ms) reported for bucket ``index``: within the relative accuracy of all its values."""
    return _VALUES[index] if 0 <= index <= MAX_INDEX else _value(index)


def add(hist: Histogram, duration_ms: float, n: int = 1) -> None:
    i = bucket(duration_ms)
    hist[i] = hist.get(i, 0) + n


def merge(into: Histogram, other: Mapping[int, int]) -> Histogram:
    for i, n in other.items():
        into[i] = into.get(i, 0) + n
    return into


def quantile(hist: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) in milliseconds, or None for an empty histogram.

    The nearest-rank definition: the smallest bucket holding at least ``q`` of all counts.
    """
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for i in sorted(hist):
        seen += hist[i]
        if seen >= rank:
            return value(i)
    return value(max(hist))  # pragma: no cover - rank <= total


def count_at_most(hist: Mapping[int, int], limit_ms: float) -> int:
    """How many durations fall in buckets whose reported value is at most ``limit_ms``."""
    last = bisect.bisect_right(_VALUES, limit_ms) - 1
    return sum(n for i, n in hist.items() if i <= last)


def apdex(hist: Mapping[int, int], threshold_ms: float, failures: int = 0) -> float | None:
    """Apdex (0..1): satisfied (<= T) plus half the tolerating (<= 4T), over all; failures frustrate.

    Failed transactions count as frustrated whatever their duration, as Sentry does; they are
    assumed to spread over the buckets like the others.
    """
    total = sum(hist.values())
    if total <= 0:
        return None
    ok_share = max(0.0, 1.0 - failures / total)
    satisfied = count_at_most(hist, threshold_ms) * ok_share
    tolerating = (count_at_most(hist, 4 * threshold_ms) * ok_share) - satisfied
    return (satisfied + tolerating / 2) / total


def encode(hist: Mapping[int, int]) -> str:
    """Stored text form: a JSON array ``[lowest index, count, count, ...]``, dense from the lowest
    to the highest bucket in use (a TEXT column on both backends).

    Dense arrays merge in C (:func:`merge_encoded`), which keeps the Performance page over a week
    fast; between the lowest and highest bucket most slots are in use anyway.
    """
    used = [i for i, n in hist.items() if n]
    if not used:
        return "[]"
    lo, hi = min(used), max(used)
    # orjson writes what json.dumps(..., separators=(",", ":")) does for a list of ints, 5x faster
    # (the digest encodes every rollup row it merges).
    return orjson.dumps([lo, *(hist.get(i, 0) for i in range(lo, hi + 1))]).decode()


def decode(text: str | None) -> Histogram:
    if not text:
        return {}
    data = orjson.loads(text)
    if isinstance(data, dict):  # the sparse form: {"index": count}
        return {int(i): int(n) for i, n in data.items()}
    if not data:
        return {}
    lo = int(data[0])
    return {lo + k: int(n) for k, n in enumerate(data[1:]) if n}


def dense() -> list[int]:
    """An accumulator for :func:`merge_encoded`: one slot per bucket."""
    return [0] * (MAX_INDEX + 1)


def merge_encoded(acc: list[int], data: list[int]) -> None:
    """Add a parsed stored histogram (``[lo, counts...]``) into a dense accumulator, in C."""
    if len(data) > 1:
        lo = data[0]
        hi = lo + len(data) - 1
        acc[lo:hi] = map(operator.add, acc[lo:hi], data[1:])


def from_dense(acc: list[int]) -> Histogram:
    return {i: n for i, n in enumerate(acc) if n}


def of(durations: Iterable[float]) -> Histogram:
    hist: Histogram = {}
    for d in durations:
        add(hist, d)
    return hist
