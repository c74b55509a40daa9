"""Error storms: one error's repeats beyond ``repeat_limit`` per minute are counted, not built or sent."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import tripwire
import tripwire.testing
from tests.support.forking import child_exit_code_after_fork_holding
from tripwire import _scope
from tripwire._repeats import ErrorKey, RepeatLimiter, exception_key
from tripwire._sessions import ApplicationSession


def _fail(n: int) -> None:
    raise ValueError(f"order {n} failed")


def _fail_elsewhere(n: int) -> None:
    raise ValueError(f"order {n} failed")


def _occurrences(event: dict[str, Any]) -> int:
    return 1 + int(event.get("contexts", {}).get("repeats", {}).get("coalesced", 0))


def _storm(n: int, fn: Any = _fail, **kwargs: Any) -> list[str | None]:
    ids = []
    for i in range(n):
        try:
            fn(i)
        except ValueError:
            ids.append(tripwire.capture_exception(**kwargs))
    return ids


def test_a_storm_of_one_error_sends_the_budget_and_counts_the_rest() -> None:
    """500 raises of one error in a burst: 60 events (the default budget), 439 counted as repeat_limit,
    and at flush one final event (the last occurrence) that stands for the 439 as well."""
    with tripwire.testing.capture_events() as events:
        ids = _storm(500)
        stats = tripwire.stats()
    sent = [i for i in ids if i is not None]
    # The budget refills at one per second: a slow machine may earn one more during the loop.
    assert 60 <= len(sent) <= 62
    assert len(events) == len(sent) + 1
    # One occurrence is kept to be sent as the final event: not a drop.
    assert stats["dropped"]["repeat_limit"] == 500 - len(sent) - 1
    assert sum(_occurrences(e) for e in events) == 500


def test_the_next_event_after_the_storm_carries_the_count() -> None:
    """Once the budget refills, the error's next event says how many occurrences it stands for."""
    with tripwire.testing.capture_events(repeat_limit=60) as events:
        _storm(100)
        events.wait_for(60)
        first_wave = len(events)
        time.sleep(1.1)  # 60 per minute: one token per second
        _storm(1)
    carrier = events[-1]
    assert len(events) == first_wave + 1
    assert carrier["contexts"]["repeats"] == {"type": "repeats", "coalesced": 100 - first_wave}
    assert "repeats" not in events[0].get("contexts", {})


def test_different_raise_sites_have_their_own_budgets() -> None:
    """The same exception type raised on another line is another error with a budget of its own."""
    with tripwire.testing.capture_events(repeat_limit=5) as events:
        _storm(20)
        _storm(20, _fail_elsewhere)
    assert len(events) == 12  # five each, and at flush the final event of each
    assert sum(_occurrences(e) for e in events) == 40
    sites = {e["exception"]["values"][-1]["stacktrace"]["frames"][-1]["function"] for e in events}
    assert sites == {"_fail", "_fail_elsewhere"}


def test_a_custom_fingerprint_splits_the_budget() -> None:
    """Occurrences the app fingerprints apart (one issue per tenant) are limited per fingerprint."""
    with tripwire.testing.capture_events(repeat_limit=3) as events:
        for tenant in ("a", "b"):
            _storm(10, fingerprint=["{{ default }}", tenant])
    assert sorted(e["fingerprint"][1] for e in events) == ["a"] * 4 + ["b"] * 4  # 3 and a final each


def test_repeat_limit_none_sends_every_occurrence() -> None:
    """repeat_limit=None (or 0) turns storm protection off: all 150 occurrences are events."""
    with tripwire.testing.capture_events(repeat_limit=None) as events:
        _storm(150)
    assert len(events) == 150
    with tripwire.testing.capture_events(repeat_limit=0) as events:
        _storm(70)
    assert len(events) == 70


def test_coalesced_occurrences_still_count_for_release_health() -> None:
    """Every occurrence marks the session errored, also those the repeat limit did not send."""
    with tripwire.testing.capture_events(release="shop@1", repeat_limit=1) as events:
        assert tripwire.start_session()
        _storm(5)
        session = _scope.isolation_holder().session
        assert isinstance(session, ApplicationSession)
        assert session.errors == 5
        tripwire.end_session()
    assert [_occurrences(e) for e in events] == [1, 4]


def test_the_budget_refills_over_time() -> None:
    """A token bucket: after the burst, one event per 60/limit seconds, and the pending count rides on it."""
    now = [0.0]
    limiter = RepeatLimiter(6, clock=lambda: now[0])
    key = ErrorKey(("k",))
    assert [limiter.admit(key) for _ in range(8)] == [0, 0, 0, 0, 0, 0, None, None]
    now[0] += 10.0  # 6 per minute: one token every 10 s
    assert limiter.admit(key) == 2
    assert limiter.admit(key) is None
    now[0] += 3600.0  # an hour later the burst is back, but never more than the limit
    assert [limiter.admit(key) for _ in range(7)] == [1, 0, 0, 0, 0, 0, None]


def test_the_table_of_tracked_errors_is_bounded() -> None:
    """Ten thousand distinct errors keep at most MAX_TRACKED buckets in memory."""
    from tripwire import _repeats

    limiter = RepeatLimiter(1)
    for i in range(10_000):
        assert limiter.admit(ErrorKey(("error", i))) == 0
    assert len(limiter._buckets) == _repeats.MAX_TRACKED


def test_the_key_is_the_raise_sites_not_the_message() -> None:
    """Two raises on the same line with different messages are one error; another line is another."""

    def key_of(fn: Any, n: int) -> Any:
        try:
            fn(n)
        except ValueError as exc:
            error = exception_key(exc)
            assert error is not None
            return error.key
        raise AssertionError("did not raise")

    assert key_of(_fail, 1) == key_of(_fail, 2)
    assert key_of(_fail, 1) != key_of(_fail_elsewhere, 1)


def test_a_hostile_traceback_is_always_sent() -> None:
    """An exception whose __traceback__ raises cannot be keyed: it is sent, never limited or lost."""

    class Hostile(Exception):
        @property
        def __traceback__(self) -> Any:  # type: ignore[override]
            raise RuntimeError("no")

    assert exception_key(Hostile()) is None
    with tripwire.testing.capture_events(repeat_limit=1) as events:
        for _ in range(3):
            tripwire.capture_exception(Hostile())
    assert len(events) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no fork()")
def test_a_fork_while_another_thread_holds_the_lock_leaves_the_child_working() -> None:
    """A child forked while the limiter's lock was held can still capture (no deadlock)."""
    limiter = RepeatLimiter(5)
    # As if another thread were inside admit() at the fork; the child dies by SIGALRM if admit() blocks.
    code = child_exit_code_after_fork_holding(limiter._lock, lambda: limiter.admit(ErrorKey(("k",))) == 0)
    assert code == 0


def test_a_message_object_with_a_broken_str_is_still_reported() -> None:
    """capture_message(obj) whose __str__ raises is keyed by its type and reported, not lost."""

    class Loud:
        def __str__(self) -> str:
            raise RuntimeError("no str")

        def __repr__(self) -> str:
            return "<Loud>"

    with tripwire.testing.capture_events() as events:
        assert tripwire.capture_message(Loud(), "error") is not None  # type: ignore[arg-type]
    assert len(events) == 1


def test_an_unhashable_key_is_sent_every_time() -> None:
    """A key that cannot be hashed has no budget: every occurrence is admitted, none lost."""
    limiter = RepeatLimiter(1)
    assert [limiter.admit(ErrorKey(("x", ["list"]))) for _ in range(3)] == [0, 0, 0]


def test_a_hostile_fingerprint_part_does_not_break_capture() -> None:
    """A fingerprint part whose __eq__ and __hash__ raise is left out of the key; capture still works."""

    class Hostile:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no eq")

        def __hash__(self) -> int:
            raise RuntimeError("no hash")

        def __bool__(self) -> bool:
            raise RuntimeError("no bool")

    with tripwire.testing.capture_events(repeat_limit=1) as events:
        _storm(3, fingerprint=["{{ default }}", Hostile()])
    assert [_occurrences(e) for e in events] == [1, 2]  # the budget, then the final count at flush


def test_flush_sends_the_coalesced_count_when_no_later_event_comes() -> None:
    """A burst, then flush() with the process idle: the last event stands for every coalesced one, with
    the figure in contexts.repeats and the error's own stack trace (any Sentry server keeps it)."""
    with tripwire.testing.capture_events(repeat_limit=10) as events:
        _storm(1_000)
        assert tripwire.flush(5)
        events.wait_for(11)
        assert len(events) == 11
        final = events[-1]
        assert final["contexts"]["repeats"] == {"type": "repeats", "coalesced": 989}
        assert final["exception"]["values"][-1]["stacktrace"]["frames"][-1]["function"] == "_fail"
        assert tripwire.flush(5)
    assert len(events) == 11  # sent once: a second flush has nothing more to say


def test_a_message_storm_is_counted_at_close() -> None:
    """Repeated log-style messages coalesced by the limit are sent as one final event at close()."""
    with tripwire.testing.capture_events(repeat_limit=2) as events:
        for n in range(50):
            template = {"logentry": {"message": "disk %s full"}}
            tripwire.capture_message(f"disk {n} full", level="error", event=template)
    assert [_occurrences(e) for e in events] == [1, 1, 48]


def test_the_window_timer_sends_the_count_without_a_flush() -> None:
    """At the end of each window the coalesced counts go out, though nobody flushes."""
    sent: list[list[tuple[Any, int]]] = []
    limiter = RepeatLimiter(2, emit=sent.append, window=0.05)
    key = ErrorKey(("k",))
    for n in range(10):
        if limiter.admit(key) is None:
            limiter.keep(key, f"occurrence {n}")
    deadline = time.monotonic() + 3
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    limiter.close()
    assert sent[0] == [("occurrence 9", 7)]  # the latest occurrence, standing for 7 more
    assert limiter.take_pending() == []


def test_a_forgotten_error_sends_its_count_first() -> None:
    """When the table is full and an error is forgotten for room, its coalesced count is sent, not lost."""
    from tripwire import _repeats

    sent: list[list[tuple[Any, int]]] = []
    limiter = RepeatLimiter(1, emit=sent.append)
    first = ErrorKey(("first",))
    assert limiter.admit(first) == 0
    for n in range(3):
        assert limiter.admit(first) is None
        limiter.keep(first, n)
    for i in range(_repeats.MAX_TRACKED):
        limiter.admit(ErrorKey((i,)))
    limiter.close()
    assert sent == [[(2, 2)]]


def test_events_sent_and_repeats_counted_add_up_to_every_occurrence() -> None:
    """The occurrence sent as an error's final event is not also counted as a drop: sent + repeat_limit
    equals the occurrences, before and after the count goes out."""
    with tripwire.testing.capture_events(repeat_limit=5) as events:
        sent = [i for i in _storm(300) if i is not None]
        assert len(sent) + tripwire.stats()["dropped"]["repeat_limit"] == 300 - 1  # one kept, in flight
        assert tripwire.flush(5)
        stats = tripwire.stats()
    assert len(events) + stats["dropped"]["repeat_limit"] == 300
    assert sum(_occurrences(e) for e in events) == 300
