"""A reporter's outbox: bounded, errors before sessions, and every overflow counted."""

from __future__ import annotations

import time

import tripwire
from tripwire._types import SessionBatch
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
