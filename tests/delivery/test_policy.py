"""tripwire.delivery.policy and RateLimits: what an answer means, without a network or a clock."""

from __future__ import annotations

import http.client

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.clock import ManualClock
from tripwire.delivery import policy
from tripwire.delivery.connections import Unreachable
from tripwire.delivery.policy import (
    DROP,
    MAX_RETRY_AFTER,
    RETRY,
    SENT,
    backoff,
    classify,
    parse_retry_after,
    parse_sentry_rate_limits,
    rate_limits,
)
from tripwire.delivery.ratelimits import RateLimits


def _fields(outcome: policy.Outcome) -> tuple[str, str, bool, bool]:
    return outcome.action, outcome.reason, outcome.uses_attempt, outcome.backs_off


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, (SENT, "", False, False)),
        (202, (SENT, "", False, False)),
        (408, (RETRY, "network_error", False, True)),
        (429, (RETRY, "network_error", False, False)),  # the rate limit says how long, not a backoff
        (502, (RETRY, "network_error", False, True)),
        (503, (RETRY, "network_error", False, True)),
        (504, (RETRY, "network_error", False, True)),
        (500, (RETRY, "rejected", True, True)),
        (507, (RETRY, "rejected", True, True)),
        (413, (DROP, "too_large", False, False)),
        (400, (DROP, "rejected", False, False)),
        (401, (DROP, "rejected", False, False)),
        (403, (DROP, "rejected", False, False)),
        (404, (DROP, "rejected", False, False)),
        (301, (DROP, "rejected", False, False)),
    ],
)
def test_each_status_has_its_outcome(status: int, expected: tuple[str, str, bool, bool]) -> None:
    """2xx is sent; 408/429/502-504 retried without using up an attempt; other 5xx retried and counted
    against max_attempts; 413 dropped as too_large; every other answer dropped as rejected."""
    assert _fields(classify(status, {})) == expected


def test_an_unreachable_backend_is_not_the_payloads_fault() -> None:
    """Failing to connect retries without using up an attempt; failing once the request went out
    (a reset, a timeout, a garbled answer) uses one up."""
    assert _fields(classify(0, {}, Unreachable("refused"))) == (RETRY, "network_error", False, True)
    for error in (ConnectionResetError(), TimeoutError(), http.client.BadStatusLine("x")):
        assert _fields(classify(0, {}, error)) == (RETRY, "network_error", True, True)


def test_backoff_doubles_from_the_base_up_to_the_maximum() -> None:
    """Nominal waits 0.5, 1, 2, 4, 8, 10, 10 s; jitter takes each to 50-100 % of its nominal value."""
    nominal = [backoff(n, 0.5, 10.0, jitter=lambda: 1.0) for n in range(1, 8)]
    assert nominal == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [backoff(n, 0.5, 10.0, jitter=lambda: 0.0) for n in (1, 2, 6)] == [0.25, 0.5, 5.0]


@given(
    st.integers(min_value=-5, max_value=10**6),
    st.floats(min_value=0.001, max_value=60),
    st.floats(min_value=0.001, max_value=3600),
    st.floats(min_value=0.0, max_value=0.999999),
)
def test_backoff_stays_between_half_the_base_and_the_maximum(
    failures: int, base: float, maximum: float, jitter: float
) -> None:
    """Whatever the failure count (a million included), the wait is finite and within its bounds."""
    wait = backoff(failures, base, maximum, jitter=lambda: jitter)
    assert min(base, maximum) / 2 <= wait <= maximum


def test_backoff_is_jittered_by_default() -> None:
    """Without an injected jitter, waits of one failure count differ (processes do not return in step)."""
    waits = {backoff(3) for _ in range(50)}
    assert len(waits) > 1
    assert all(1.0 <= w <= 2.0 for w in waits)


def test_parse_retry_after_accepts_seconds_and_http_dates() -> None:
    """Retry-After is read as delta seconds or as an HTTP date; nonsense is ignored."""
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 30) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("1e999") == 24 * 3600  # capped at a day


def test_parse_sentry_rate_limits_per_category() -> None:
    """Each quota applies to its categories; an empty list means all of them."""
    assert parse_sentry_rate_limits("60:transaction:key, 2700:default;error;security:organization") == {
        "transaction": 60.0,
        "default": 2700.0,
        "error": 2700.0,
        "security": 2700.0,
    }
    assert parse_sentry_rate_limits("10::organization") == {"": 10.0}
    assert parse_sentry_rate_limits("nan:error:key") == {"error": 60.0}


def test_which_responses_ask_for_a_pause() -> None:
    """X-Sentry-Rate-Limits (any status) wins over Retry-After; a 429 without either pauses all for
    60 s; a 503 pauses only with Retry-After; other answers ask for nothing."""
    both = {"x-sentry-rate-limits": "5:error:key", "retry-after": "100"}
    assert rate_limits(429, both) == {"error": 5.0}
    assert rate_limits(200, {"x-sentry-rate-limits": "7::org"}) == {"": 7.0}
    assert rate_limits(429, {}) == {"": 60.0}
    assert rate_limits(429, {"retry-after": "3"}) == {"": 3.0}
    assert rate_limits(503, {"retry-after": "2"}) == {"": 2.0}
    assert rate_limits(503, {}) == {}
    assert rate_limits(500, {"retry-after": "2"}) == {}
    assert rate_limits(200, {}) == {}


def test_a_limit_ends_when_its_window_does() -> None:
    """A category is limited for exactly the seconds the backend named, on the injected clock;
    an all-categories limit holds every category back."""
    clock = ManualClock()
    limits = RateLimits(clock)
    assert limits.update(429, {"x-sentry-rate-limits": "30:error:key"}) == 30.0
    assert limits.is_limited(["error"]) and not limits.is_limited(["session"])
    assert limits.active() == {"error": 30.0}
    clock.advance(29.9)
    assert limits.is_limited(["error"])
    clock.advance(0.2)
    assert not limits.is_limited(["error"])
    assert limits.active() == {}
    limits.update(200, {"x-sentry-rate-limits": "10::organization"})
    assert limits.is_limited(["session"]) and limits.is_limited(["error"])


def test_a_shorter_limit_never_shortens_a_longer_one() -> None:
    """Two answers naming the same category keep the later end."""
    clock = ManualClock()
    limits = RateLimits(clock)
    limits.update(429, {"x-sentry-rate-limits": "60:error:key"})
    limits.update(429, {"x-sentry-rate-limits": "5:error:key"})
    clock.advance(30)
    assert limits.is_limited(["error"])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=40), st.integers(min_value=100, max_value=599))
def test_any_rate_limit_header_is_survived(limits_header: str, retry_after: str, status: int) -> None:
    """Whatever a server puts in X-Sentry-Rate-Limits or Retry-After, parsing never raises and every
    window is between 0 and a day."""
    headers = {"x-sentry-rate-limits": limits_header, "retry-after": retry_after}
    for asked in (rate_limits(status, headers), rate_limits(status, {"retry-after": retry_after})):
        assert all(0.0 <= seconds <= MAX_RETRY_AFTER for seconds in asked.values())
    wait = RateLimits(ManualClock()).update(429, headers)
    assert 0.0 <= wait <= MAX_RETRY_AFTER
    parsed = parse_retry_after(retry_after)
    assert parsed is None or 0.0 <= parsed <= MAX_RETRY_AFTER


@given(
    st.integers(min_value=-1000, max_value=10**4),
    st.dictionaries(st.text(max_size=20), st.text(max_size=40)),
)
def test_every_answer_has_exactly_one_outcome(status: int, headers: dict[str, str]) -> None:
    """Any status with any headers classifies without raising; only 2xx counts as sent."""
    outcome = classify(status, headers)
    assert outcome.action in (SENT, RETRY, DROP)
    assert (outcome.action == SENT) == (200 <= status < 300)
    assert outcome.action == SENT or outcome.reason in ("network_error", "rejected", "too_large")
