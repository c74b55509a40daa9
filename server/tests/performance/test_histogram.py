"""The mergeable duration histogram: fixed log-scale buckets, percentiles within 2 %."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from tripwire_server.performance import histogram

durations = st.lists(st.floats(min_value=0.05, max_value=3_600_000.0), min_size=1, max_size=200)


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@given(durations, st.sampled_from([0.5, 0.75, 0.95, 0.99]))
def test_a_percentile_is_within_the_relative_accuracy_of_the_exact_one(values: list[float], q: float) -> None:
    """Whatever the durations, p50..p99 from the buckets are within 2 % of the exact nearest-rank value."""
    got = histogram.quantile(histogram.of(values), q)
    exact = _exact(values, q)
    assert got is not None
    assert abs(got - exact) <= exact * histogram.RELATIVE_ACCURACY * 1.0000001


@given(durations, durations)
def test_merging_two_histograms_equals_the_histogram_of_all_durations(a: list[float], b: list[float]) -> None:
    """Minutes merge by adding counts: the merge of two is the histogram of both lists."""
    assert histogram.merge(histogram.of(a), histogram.of(b)) == histogram.of(a + b)


def test_the_stored_text_form_round_trips() -> None:
    """encode/decode keep every bucket and count."""
    hist = histogram.of([1, 2, 2, 300, 15_000])
    assert histogram.decode(histogram.encode(hist)) == hist
    assert histogram.decode("") == {} and histogram.decode(None) == {}


def test_zero_negative_and_huge_durations_land_in_the_edge_buckets() -> None:
    """0 ms, negative and NaN durations count as 0 ms; beyond a day they share the last bucket."""
    assert histogram.bucket(0) == histogram.bucket(-5) == histogram.bucket(float("nan")) == 0
    assert histogram.bucket(float("inf")) == histogram.bucket(10**12) == histogram.MAX_INDEX
    assert histogram.quantile({}, 0.5) is None


def test_apdex_counts_satisfied_tolerating_and_failures() -> None:
    """T=300 ms: 100 ms satisfied, 900 ms tolerating (half), 2 s frustrated; a failure frustrates."""
    hist = histogram.of([100, 100, 900, 2000])
    assert histogram.apdex(hist, 300) == (2 + 0.5) / 4
    assert histogram.apdex(histogram.of([100, 100]), 300, failures=1) == 0.5
    assert histogram.apdex({}, 300) is None
