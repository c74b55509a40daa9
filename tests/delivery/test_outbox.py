"""The outbox (tripwire.delivery.outbox), alone and in a reporter: bounded, errors before sessions,
and every overflow counted."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

import tripwire
from tripwire._types import SessionBatch
from tripwire.delivery.outbox import Outbox
from tripwire.reporters.sentry import SentryReporter

from .conftest import free_port, raise_and_capture


def test_outbox_is_bounded_while_the_backend_is_down() -> None:
    """With a dead backend and no spool, the outbox keeps max_outbox_items and counts the rest."""
    reporter = SentryReporter(f"http://k@127.0.0.1:{free_port()}/1", max_outbox_items=10)
    tripwire.init(reporters=[reporter], send_client_reports=False)
    raise_and_capture(30)
    client = tripwire.get_client()
    assert client is not None and client._worker.flush(10)
    stats = tripwire.stats()
    # 10 queued, plus at most the one that was being sent when the outbox filled up.
    assert stats["pending"]["sentry"] in (10, 11)
    assert stats["pending"]["sentry"] + sum(stats["dropped"].values()) == 30
    assert set(stats["dropped"]) <= {"network_error", "queue_full"}


def test_errors_push_sessions_out_of_a_full_outbox() -> None:
    """When the outbox is full, an error evicts a queued session envelope, never the reverse."""
    reporter = SentryReporter(f"http://k@127.0.0.1:{free_port()}/1", max_outbox_items=3)
    client = tripwire.init(reporters=[reporter], release="1", send_client_reports=False)
    client.submit_sessions(SessionBatch(updates=[{"sid": "1" * 32, "init": True, "status": "ok"}]))
    assert client._worker.flush(5)
    # Wait for the first (failed) attempt, so the session envelope is back in the outbox.
    deadline = time.monotonic() + 5
    while reporter._failures == 0 or reporter._worker._inflight:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    raise_and_capture(3)
    assert client._worker.flush(5)
    client.submit_sessions(SessionBatch(updates=[{"sid": "2" * 32, "init": True, "status": "ok"}]))
    assert client._worker.flush(5)
    by = {(d["reason"], d["category"]): d["quantity"] for d in tripwire.stats()["dropped_by"]}
    # One session envelope was pushed out by an error, the other refused: both counted, no error lost.
    assert sum(n for (reason, category), n in by.items() if category == "session") == 2
    assert sum(n for (reason, category), n in by.items() if category == "error") == 0


# -- the Outbox itself (tripwire.delivery.outbox), without threads --------------------------------


def test_normal_items_are_taken_before_low_priority_ones() -> None:
    """Within a lane first in, first out; the normal lane always first."""
    box = Outbox(10)
    for item, low in (("s1", True), ("e1", False), ("s2", True), ("e2", False)):
        assert box.put(item, low_priority=low) == (True, [])
    assert [box.take() for _ in range(5)] == ["e1", "e2", "s1", "s2", None]


def test_a_full_outbox_evicts_only_as_many_low_priority_items_as_it_must() -> None:
    """Bounded in bytes: a large error evicts the oldest session items until it fits, no more."""
    box = Outbox(10, max_bytes=10, size=len)
    assert box.put("sss", low_priority=True)[0] and box.put("ttt", low_priority=True)[0]
    assert box.put("uuu", low_priority=True)[0]
    assert box.put("eeeeee") == (True, ["sss", "ttt"])
    assert box.bytes == 9 and len(box) == 2
    assert list(box) == ["eeeeee", "uuu"]


def test_an_error_that_cannot_fit_evicts_nothing() -> None:
    """When even evicting every low-priority item would not make room, nothing is lost for nothing."""
    box = Outbox(10, max_bytes=10, size=len)
    assert box.put("eeeeee")[0] and box.put("ss", low_priority=True)[0]
    assert box.put("ffffff") == (False, [])
    assert list(box) == ["eeeeee", "ss"] and box.bytes == 8


def test_take_skips_items_that_are_not_ready_and_put_back_restores_order() -> None:
    """take(ready) returns the first ready item (others keep their place); put_back puts a retried
    item first again, even past the bound."""
    box = Outbox(2)
    box.put("limited")
    box.put("free")
    assert box.take(lambda item: item != "limited") == "free"
    assert box.take(lambda item: False) is None
    box.put_back("retried")
    box.put_back("again")
    assert len(box) == 3
    assert box.take_all() == ["again", "retried", "limited"]
    assert len(box) == 0 and box.bytes == 0


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=50), st.booleans()), max_size=60))
def test_the_bound_holds_and_nothing_vanishes(puts: list[tuple[int, bool]]) -> None:
    """Whatever is put, the outbox never exceeds its bounds, and every item is either held, refused,
    or handed back as evicted (so it can be counted)."""
    box = Outbox(8, max_bytes=120, size=lambda item: item[1])
    held: list[tuple[int, int]] = []
    refused, evicted = 0, 0
    for index, (size, low) in enumerate(puts):
        accepted, pushed_out = box.put((index, size), low_priority=low)
        assert all(old in held for old in pushed_out)
        held = [item for item in held if item not in pushed_out]
        evicted += len(pushed_out)
        if accepted:
            held.append((index, size))
        else:
            refused += 1
        assert len(box) <= 8 and box.bytes <= 120
        assert box.bytes == sum(item[1] for item in box)
    assert sorted(box.take_all()) == sorted(held)
    assert len(held) + refused + evicted == len(puts)
