"""Release health: the per-minute aggregator of request sessions and application sessions."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import tripwire
from tripwire._sessions import (
    CRASHED,
    ERRORED,
    EXITED,
    SessionAggregator,
    end_application_session,
    start_application_session,
)
from tripwire._types import SessionBatch
from tripwire.reporters.capture import CapturedEvents, CaptureReporter

MINUTE = 1_800_000_000 - 1_800_000_000 % 60  # a minute boundary, as epoch seconds


def _collecting(batches: list[SessionBatch]) -> Callable[[SessionBatch], bool]:
    """A submit callable that keeps every batch and accepts it."""

    def submit(batch: SessionBatch) -> bool:
        batches.append(batch)
        return True

    return submit


def _client(**options: Any) -> tuple[tripwire.Client, CapturedEvents]:
    captured = CapturedEvents()
    client = tripwire.init(reporters=[CaptureReporter(captured)], **options)
    return client, captured


def test_sessions_are_counted_per_started_minute_in_the_sentry_shape() -> None:
    """Ended sessions become one aggregate per minute with exited/errored/crashed counts."""
    batches: list[SessionBatch] = []
    aggregator = SessionAggregator(_collecting(batches), release="2.0", environment="prod")
    for offset, outcome in [(1, EXITED), (5, EXITED), (59, ERRORED), (61, CRASHED), (62, EXITED)]:
        aggregator.record(MINUTE + offset, outcome)
    assert aggregator.flush()
    (batch,) = batches
    assert batch.updates == ()
    (item,) = batch.aggregates
    assert item["attrs"] == {"release": "2.0", "environment": "prod"}
    assert item["aggregates"] == [
        {"started": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(MINUTE)), "exited": 2, "errored": 1},
        {"started": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(MINUTE + 60)), "exited": 1, "crashed": 1},
    ]
    aggregator.close()


def test_requests_that_ended_well_count_on_one_counter_filed_by_minute() -> None:
    """``next(exited)`` counts; each drain files the gain under its minute; a flush sends all of it."""
    batches: list[SessionBatch] = []
    aggregator = SessionAggregator(_collecting(batches), release="2.0", environment="prod")
    for _ in range(3):
        next(aggregator.exited)
    aggregator._drain(MINUTE // 60)  # what the timer does at the minute's end
    next(aggregator.exited)  # after the drain: filed under the minute of the flush
    aggregator.record(MINUTE + 5, ERRORED)
    assert aggregator.flush()
    (batch,) = batches
    by_minute = {a["started"]: a for a in batch.aggregates[0]["aggregates"]}
    assert by_minute.pop(time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(MINUTE))) == {
        "started": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(MINUTE)),
        "exited": 3,
        "errored": 1,
    }
    ((started, aggregate),) = by_minute.items()
    now = time.time()
    assert started in {time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(t)) for t in (now, now - 60)}
    assert aggregate["exited"] == 1
    aggregator.flush()
    assert len(batches) == 1  # nothing was left to send
    aggregator.close()


def test_a_flush_empties_the_counts() -> None:
    """What was flushed is not sent again, and an empty flush sends nothing."""
    batches: list[SessionBatch] = []
    aggregator = SessionAggregator(_collecting(batches), release="1", environment="e")
    aggregator.record(MINUTE, EXITED)
    aggregator.flush()
    aggregator.flush()
    assert len(batches) == 1
    aggregator.close()


def test_the_timer_flushes_without_being_asked() -> None:
    """Counts go out every ``interval`` seconds from the background timer."""
    batches: list[SessionBatch] = []
    aggregator = SessionAggregator(_collecting(batches), release="1", environment="e", interval=0.05)
    aggregator.record(time.time(), EXITED)
    deadline = time.monotonic() + 5
    while not batches and time.monotonic() < deadline:
        time.sleep(0.01)
    aggregator.close()
    assert sum(a.get("exited", 0) for b in batches for i in b.aggregates for a in i["aggregates"]) == 1


def test_a_full_queue_is_counted_as_dropped_sessions() -> None:
    """When the worker cannot take the batch, the sessions are counted as dropped, not lost silently."""
    drops: list[int] = []
    aggregator = SessionAggregator(lambda b: False, release="1", environment="e", on_drop=drops.append)
    aggregator.record(MINUTE, EXITED)
    aggregator.record(MINUTE, CRASHED)
    assert aggregator.flush() is False
    assert drops == [2]
    aggregator.close()


def test_client_flush_and_close_deliver_session_counts() -> None:
    """tripwire.flush() hands the counts to the reporters; no release means no aggregator at all."""
    client, captured = _client(release="3.1", environment="staging")
    assert client.sessions is not None
    client.sessions.record(time.time(), ERRORED)
    tripwire.flush(5)
    assert captured.sessions[0].aggregates[0]["aggregates"][0]["errored"] == 1
    assert captured.sessions[0].aggregates[0]["attrs"] == {"release": "3.1", "environment": "staging"}
    without, _ = _client()
    assert without.sessions is None


def test_child_process_does_not_resend_the_parents_counts() -> None:
    """After fork the child starts with empty counts (the parent sends its own) and its own timer."""
    aggregator = SessionAggregator(lambda b: True, release="1", environment="e")
    aggregator.record(MINUTE, EXITED)  # starts the timer thread
    next(aggregator.exited)
    pid = os.fork()
    if pid == 0:  # the child
        ok = aggregator.take() == []
        ok = ok and aggregator._thread is not None and aggregator._thread.is_alive()
        next(aggregator.exited)  # the child's own request
        ok = ok and [a["exited"] for item in aggregator.take() for a in item["aggregates"]] == [1]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert aggregator.take() != []
    aggregator.close()


def test_application_session_counts_errors_and_ends_with_one_update() -> None:
    """A session started for a job counts captured errors and is sent once, with sid, did and duration."""
    client, captured = _client(release="1.0")
    tripwire.set_user({"id": "job-user"})
    session = start_application_session(client)
    assert session is not None
    tripwire.capture_exception(ValueError("handled one"))
    assert end_application_session(client) is True
    tripwire.flush(5)
    (batch,) = captured.sessions
    (update,) = batch.updates
    assert uuid.UUID(update["sid"])
    assert update["did"] == "job-user"
    assert update["init"] is True
    assert update["status"] == "exited" and update["errors"] == 1
    assert update["attrs"] == {"release": "1.0", "environment": "production"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", update["started"])
    assert update["duration"] >= 0
    assert end_application_session(client) is False  # nothing running any more


def test_an_unhandled_error_crashes_the_application_session() -> None:
    """An error captured as unhandled marks the application session crashed."""
    client, captured = _client(release="1.0")
    start_application_session(client)
    client.capture_exception(RuntimeError("fatal"), mechanism={"type": "excepthook", "handled": False})
    end_application_session(client)
    tripwire.flush(5)
    assert captured.sessions[0].updates[0]["status"] == "crashed"


def test_no_application_session_without_release() -> None:
    """Without a release there is no release health: start returns None."""
    client, _ = _client()
    assert start_application_session(client) is None
