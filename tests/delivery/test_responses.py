"""How the HTTP reporters react to what the backend answers: retry, wait, or drop and count."""

from __future__ import annotations

import logging

import pytest

import tripwire
from tests.support.clock import FastClock
from tests.support.sink import Answer, Received, Sink
from tripwire.reporters.sentry import SentryReporter

from .conftest import raise_and_capture


class Script:
    """Answers a scripted list of statuses/headers in order, then 200 forever."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)

    def __call__(self, received: Received) -> Answer:
        return self.answers.pop(0) if self.answers else Answer()


def _statuses(sink: Sink) -> list[int]:
    return [status for _, _, status in sink.attempts]


def _fast_reporter(sink: Sink, clock: FastClock, **options: object) -> SentryReporter:
    """A Sentry reporter whose back-offs and rate-limit windows run on ``clock``."""
    reporter = SentryReporter(sink.dsn, clock=clock, **options)  # type: ignore[arg-type]
    tripwire.init(reporters=[reporter], send_client_reports=False)
    return reporter


def _waits(sink: Sink, clock: FastClock) -> list[float]:
    """The pauses between consecutive attempts, in the clock's seconds."""
    times = [t for t, _, _ in sink.attempts]
    return [clock.seconds(b - a) for a, b in zip(times, times[1:], strict=False)]


def test_429_with_retry_after_waits_then_delivers(sink: Sink) -> None:
    """After a 429 with Retry-After: 1 the event is sent again no sooner than 1 s later, and arrives."""
    sink.answer = Script(Answer(status=429, headers={"Retry-After": "1"}))
    clock = FastClock()
    _fast_reporter(sink, clock)
    raise_and_capture(1)
    assert tripwire.flush(10)
    assert _statuses(sink) == [429, 200]
    assert _waits(sink, clock)[0] >= 0.95
    assert len(sink.events) == 1


def test_events_captured_during_a_rate_limit_are_dropped_and_counted(sink: Sink) -> None:
    """While X-Sentry-Rate-Limits disables the error category, new events are not sent but counted."""
    sink.answer = Script(Answer(status=200, headers={"X-Sentry-Rate-Limits": "30:error:key"}))
    tripwire.init(sink.dsn, send_client_reports=False)
    raise_and_capture(1)
    assert tripwire.flush(10)
    raise_and_capture(5)
    assert tripwire.flush(10)
    assert len(sink.events) == 1
    stats = tripwire.stats()
    assert stats["dropped"] == {"rate_limited": 5}
    assert 25 < stats["rate_limits"]["sentry"]["error"] <= 30


def test_rate_limit_on_one_category_leaves_others_flowing(sink: Sink) -> None:
    """A limit on the session category does not hold back error events."""
    from tripwire._types import SessionBatch

    sink.answer = Script(Answer(status=429, headers={"X-Sentry-Rate-Limits": "60:session:org"}))
    tripwire.init(sink.dsn, release="1", send_client_reports=False)
    client = tripwire.get_client()
    assert client is not None
    client.submit_sessions(SessionBatch(updates=[{"sid": "1" * 32, "init": True, "status": "ok"}]))
    assert client._worker.flush(5)
    assert sink.wait_until(lambda: len(sink.attempts) == 1, 5)
    raise_and_capture(3)
    assert sink.wait_until(lambda: len(sink.events) == 3, 10)
    assert sink.items("session") == []
    client.submit_sessions(SessionBatch(updates=[{"sid": "2" * 32, "init": True, "status": "ok"}]))
    client._worker.flush(5)
    assert tripwire.stats()["dropped_by"] == [
        {"reason": "rate_limited", "category": "session", "reporter": "sentry", "quantity": 1}
    ]


def test_413_is_counted_as_too_large_and_logged(sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    """A 413 is not retried; the event counts as too_large and a warning names the size."""
    sink.answer = Script(Answer(status=413, body=b'{"detail":"too big"}'))
    tripwire.init(sink.dsn, send_client_reports=False)
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        raise_and_capture(1)
        assert tripwire.flush(10)
    assert _statuses(sink) == [413]
    assert tripwire.stats()["dropped"] == {"too_large": 1}
    messages = [r.getMessage() for r in caplog.records]
    assert any("too large (HTTP 413)" in m and "too big" in m for m in messages)


@pytest.mark.parametrize("status", [400, 401, 403])
def test_client_errors_are_not_retried(sink: Sink, status: int) -> None:
    """400/401/403 mean the payload will never be accepted: one attempt, counted as rejected."""
    sink.answer = Script(Answer(status=status))
    tripwire.init(sink.dsn, send_client_reports=False)
    raise_and_capture(1)
    assert tripwire.flush(10)
    assert _statuses(sink) == [status]
    assert tripwire.stats()["pending"] == {"sentry": 0}  # nothing left that could be retried
    assert tripwire.stats()["dropped"] == {"rejected": 1}


@pytest.mark.parametrize("status", [408, 500, 502, 503])
def test_server_errors_are_retried_with_backoff(sink: Sink, status: int) -> None:
    """408 and 5xx are retried after a backoff, and the event then arrives."""
    sink.answer = Script(Answer(status=status), Answer(status=status))
    clock = FastClock()
    _fast_reporter(sink, clock)
    raise_and_capture(1)
    assert tripwire.flush(15)
    assert _statuses(sink) == [status, status, 200]
    # Jittered exponential (see test_policy for the exact values): the first wait is at least
    # 0.25 s, the second at least 0.5 s.
    first, second = _waits(sink, clock)
    assert first >= 0.24
    assert second >= 0.49
    assert tripwire.stats()["dropped"] == {}


def test_a_payload_that_always_fails_with_500_is_given_up(sink: Sink) -> None:
    """A payload the server keeps failing on (500) is dropped after max_attempts, not retried forever."""
    sink.answer = Answer(status=500)
    _fast_reporter(sink, FastClock(), max_attempts=3)
    raise_and_capture(1)
    assert tripwire.flush(10)
    assert _statuses(sink) == [500, 500, 500]
    assert tripwire.stats()["dropped"] == {"rejected": 1}


def test_503_with_retry_after_waits_as_told(sink: Sink) -> None:
    """A 503 with Retry-After: 2 pauses delivery for 2 s (longer than the backoff would)."""
    sink.answer = Script(Answer(status=503, headers={"Retry-After": "2"}))
    clock = FastClock()
    _fast_reporter(sink, clock)
    raise_and_capture(1)
    assert tripwire.flush(10)
    assert _statuses(sink) == [503, 200]
    assert _waits(sink, clock)[0] >= 1.95
    assert len(sink.events) == 1


def test_events_held_by_a_rate_limit_at_close_count_as_rate_limited(sink: Sink) -> None:
    """Events still waiting for a long rate limit when the client closes are counted as rate_limited."""
    sink.answer = Script(Answer(status=429, headers={"X-Sentry-Rate-Limits": "600:error:key"}))
    client = tripwire.init(sink.dsn, send_client_reports=False)
    raise_and_capture(1)
    assert sink.wait_until(lambda: len(sink.attempts) == 1, 5)
    client.close(0.3)
    assert client.stats.snapshot()["dropped"] == {"rate_limited": 1}
