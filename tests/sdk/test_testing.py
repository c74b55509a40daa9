"""tripwire.testing.capture_events(): the public helper waits for its own events, nobody else's."""

from __future__ import annotations

import socket
import time

import tripwire
import tripwire.testing
from tripwire._types import SessionBatch


def _dead_dsn() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"http://key@127.0.0.1:{port}/1"


def test_capture_events_returns_at_once_when_the_dsn_is_unreachable() -> None:
    """With a client whose DSN nobody answers, the block ends as soon as its events are built,
    not after the flush timeout spent waiting for the dead backend; the event still waits there."""
    tripwire.init(_dead_dsn(), send_client_reports=False)
    started = time.monotonic()
    with tripwire.testing.capture_events(flush_timeout=30) as events:
        tripwire.capture_message("while the backend is down")
    elapsed = time.monotonic() - started
    assert [e["logentry"]["formatted"] for e in events] == ["while the backend is down"]
    assert elapsed < 5  # waiting for the dead backend would take the whole 30 s
    stats = tripwire.stats()
    assert stats["pending"]["sentry"] == 1  # not lost: the Sentry reporter keeps retrying it
    assert stats["dropped"] == {}


def test_capture_events_on_an_active_client_gets_every_event_of_the_block() -> None:
    """Events captured inside the block are all in the list when it ends, and none from after it."""
    tripwire.init(_dead_dsn(), send_client_reports=False, repeat_limit=None)
    with tripwire.testing.capture_events() as events:
        for i in range(20):
            tripwire.capture_message(f"message {i}")
    tripwire.capture_message("after the block")
    assert [e["logentry"]["formatted"] for e in events] == [f"message {i}" for i in range(20)]


def test_capture_events_without_a_client_collects_sessions_too() -> None:
    """Without an active client the temporary one hands its release-health batches over as well."""
    with tripwire.testing.capture_events(release="1.0") as events:
        client = tripwire.get_client()
        assert client is not None
        client.submit_sessions(SessionBatch(updates=[{"sid": "1" * 32, "init": True, "status": "ok"}]))
        tripwire.capture_message("hello")
    assert [e["logentry"]["formatted"] for e in events] == ["hello"]
    assert [u["sid"] for batch in events.sessions for u in batch.updates] == ["1" * 32]
    assert tripwire.get_client() is None
