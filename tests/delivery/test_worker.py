"""The client's worker: priorities when full, fork, atexit, flush/aflush, and visible drop counts."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import tripwire
from tests.support.figures import record
from tests.support.forking import child_exit_code_after_fork_holding
from tests.support.sink import Sink
from tripwire._types import SessionBatch
from tripwire.delivery.outbox import Outbox
from tripwire.delivery.worker import Worker

from .conftest import free_port, raise_and_capture

ROOT = Path(__file__).resolve().parents[2]


def _blocked_worker(maxsize: int) -> tuple[Worker, list[object], list[object], threading.Event]:
    """A worker busy with a first job that blocks until the returned event is set."""
    gate, started = threading.Event(), threading.Event()
    done: list[object] = []
    dropped: list[object] = []

    def process(job: object) -> None:
        if job == "gate":
            started.set()
            gate.wait(5)
        done.append(job)

    worker = Worker(process, Outbox(maxsize), name="test-worker", on_drop=dropped.append)
    assert worker.submit("gate")
    assert started.wait(5)
    return worker, done, dropped, gate


def test_errors_push_out_low_priority_jobs_when_full() -> None:
    """With the queue full of session batches, an error evicts the oldest batch instead of being refused."""
    worker, done, dropped, gate = _blocked_worker(maxsize=3)
    try:
        assert worker.submit("s1", low_priority=True)
        assert worker.submit("s2", low_priority=True)
        assert worker.submit("s3", low_priority=True)
        assert worker.submit("error-1")
        assert worker.submit("error-2")
        assert not worker.submit("s4", low_priority=True)  # no room, and sessions evict nothing
    finally:
        gate.set()
    assert worker.flush(5)
    assert dropped == ["s1", "s2"]
    # Errors run before the low-priority work still queued.
    assert done == ["gate", "error-1", "error-2", "s3"]
    assert worker.close(1)[1] == []


def test_a_flush_does_not_wait_out_the_linger_of_jobs_queued_just_before_it() -> None:
    """Low-priority jobs make an idle worker linger for more; a flush that starts before the thread
    begins to linger (a session batch submitted, then flush() at once) still gets them done now."""
    done: list[object] = []
    worker = Worker(done.append, Outbox(10), name="test-worker", linger=5.0)
    try:
        for _ in range(20):  # the thread starts (and would begin to linger) while flush() waits
            done.clear()
            assert worker.submit("sessions", low_priority=True)
            started = time.monotonic()
            assert worker.flush(3)
            assert time.monotonic() - started < 1.0
            assert done == ["sessions"]
    finally:
        worker.close(1)


def test_a_queue_full_of_errors_refuses_new_errors() -> None:
    """When every slot holds an error, a new error is refused (the client counts it as queue_full)."""
    worker, done, dropped, gate = _blocked_worker(maxsize=2)
    try:
        assert worker.submit("e1") and worker.submit("e2")
        assert not worker.submit("e3")
    finally:
        gate.set()
    assert worker.flush(5)
    assert done == ["gate", "e1", "e2"]
    assert dropped == []
    assert worker.close(1)[1] == []


def test_close_hands_back_the_jobs_it_had_no_time_for() -> None:
    """close() with a timeout too short returns every job left behind (the client counts them)."""
    worker, done, dropped, gate = _blocked_worker(maxsize=5)
    assert worker.submit("e1") and worker.submit("s1", low_priority=True)
    flushed, left = worker.close(0.1)
    gate.set()
    assert not flushed
    assert left == ["e1", "s1"]
    assert dropped == []
    assert not worker.submit("late")


def test_client_close_counts_the_jobs_the_worker_had_no_time_for(sink: Sink) -> None:
    """close() with a timeout too short counts every capture still queued as queue_full."""
    client = tripwire.init(sink.dsn, send_client_reports=False)
    gate = threading.Event()

    def blocked(event: object) -> None:
        gate.wait(5)

    client.reporters[0].send_event = blocked  # type: ignore[method-assign]
    raise_and_capture(4)  # the first occupies the worker, three wait in its queue
    client.close(0.1)
    gate.set()
    assert client.stats.snapshot()["dropped"] == {"queue_full": 3}


@pytest.fixture
def no_new_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads cannot start, as during interpreter shutdown on Python >= 3.12."""

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)


def test_without_threads_jobs_run_on_the_calling_thread(no_new_threads: None) -> None:
    """When no thread can start, submit() processes the job at once on the caller's thread."""
    done: list[object] = []
    worker = Worker(done.append, Outbox(10), name="test-worker")
    assert worker.submit("e1") and worker.submit("s1", low_priority=True)
    assert done == ["e1", "s1"]
    assert worker.flush(0) and worker.close(0) == (True, [])


def test_without_threads_a_failed_send_is_spooled_or_counted_at_close(no_new_threads: None) -> None:
    """At shutdown without threads, each payload gets one attempt on the exiting thread; what the
    backend did not take is counted at close instead of being retried forever."""
    client = tripwire.init(f"http://k@127.0.0.1:{free_port()}/1", send_client_reports=False)
    raise_and_capture(2)
    client.close(0.2)
    assert client.stats.snapshot()["dropped"] == {"network_error": 2}


def test_client_counts_evicted_session_batches(sink: Sink) -> None:
    """A session batch pushed out by errors shows up in stats() as queue_full/session."""
    client = tripwire.init(sink.dsn, max_queue_size=2, send_client_reports=False)
    gate = threading.Event()

    def blocked(event: object) -> None:
        gate.wait(5)

    client.reporters[0].send_event = blocked  # type: ignore[method-assign]
    raise_and_capture(1)  # occupies the worker
    client.submit_sessions(SessionBatch(updates=[{"sid": "1" * 32}, {"sid": "2" * 32}]))
    client.submit_sessions(SessionBatch(updates=[{"sid": "3" * 32}]))
    raise_and_capture(2)
    gate.set()
    assert tripwire.flush(5)
    by = {(d["reason"], d["category"]): d["quantity"] for d in tripwire.stats()["dropped_by"]}
    assert by[("queue_full", "session")] >= 2


def test_debug_logs_every_drop(sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    """With debug=True each dropped event is logged with its reason."""
    tripwire.init(sink.dsn, debug=True, before_send=lambda e, h: None, send_client_reports=False)
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        raise_and_capture(2)
        assert tripwire.flush(5)
    drops = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert drops == ["tripwire: dropped 1 error item(s): before_send"] * 2


def test_stats_show_sent_dropped_and_pending(sink: Sink) -> None:
    """stats() reports what was sent, dropped by reason and what is still on its way."""
    tripwire.init(sink.dsn, sample_rate=0.0, send_client_reports=False)
    raise_and_capture(3)
    stats = tripwire.stats()
    assert stats["dropped"] == {"sample_rate": 3}
    assert stats["queued"] == 0
    tripwire.init(sink.dsn, send_client_reports=False)
    raise_and_capture(3)
    assert tripwire.flush(5)
    stats = tripwire.stats()
    assert stats["sent"] == {"sentry": 3}
    assert stats["pending"] == {"sentry": 0}
    assert stats["spooled"] == {"sentry": 0}


def test_aflush_waits_without_blocking_the_loop(sink: Sink) -> None:
    """await tripwire.aflush() returns after delivery while other tasks keep running."""
    tripwire.init(sink.dsn, send_client_reports=False)

    async def main() -> tuple[bool, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        raise_and_capture(50)
        ok = await tripwire.aflush(10)
        task.cancel()
        return ok, ticks

    ok, ticks = asyncio.run(main())
    assert ok
    assert len(sink.events) == 50
    assert ticks > 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_worker_and_sender_restart_in_a_forked_child(sink: Sink) -> None:
    """A child forked after init reports through its own worker and sender threads."""
    tripwire.init(sink.dsn, send_client_reports=False)
    raise_and_capture(1)
    assert tripwire.flush(5)
    script = textwrap.dedent(
        """
        import os, sys, tripwire
        tripwire.init(sys.argv[1], send_client_reports=False)
        tripwire.capture_message("parent before fork")
        tripwire.flush(5)
        pid = os.fork()
        if pid == 0:
            tripwire.capture_message("from the child")
            ok = tripwire.flush(5)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        tripwire.capture_message("parent after fork")
        tripwire.flush(5)
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script, sink.dsn],
        env=env,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    messages = sorted(e["logentry"]["formatted"] for e in sink.events if "logentry" in e)
    assert messages == ["from the child", "parent after fork", "parent before fork"]


@pytest.mark.reliability
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("held", ["client worker", "sender"])
def test_a_child_forked_while_a_delivery_lock_is_held_still_delivers(sink: Sink, held: str) -> None:
    """Forked at the moment another thread holds the client worker's or the sender's lock, the child
    still captures, builds, sends and flushes through its own threads (no deadlock, nothing lost)."""
    client = tripwire.init(sink.dsn, send_client_reports=False)
    tripwire.capture_message("warm up: both threads running")
    assert tripwire.flush(5)
    worker = client._worker if held == "client worker" else client.reporters[0]._worker  # type: ignore[attr-defined]

    def in_child() -> bool:
        tripwire.capture_message(f"from a child forked while the {held} lock was held")
        return tripwire.flush(3)

    code = child_exit_code_after_fork_holding(worker.cond, in_child)  # type: ignore[arg-type]
    assert code == 0
    assert sink.wait_until(lambda: len(sink.events) == 2, 5)
    record(
        "fork-shutdown",
        f"children forked while the {held} lock was held that delivered",
        "1 of 1",
        "tests/delivery/test_worker.py: the child renews the lock, its outbox and its thread",
    )


def test_atexit_delivers_what_is_queued_silently(sink: Sink) -> None:
    """A script that captures and exits without flushing still delivers, and prints nothing."""
    script = textwrap.dedent(
        """
        import sys, tripwire
        tripwire.init(sys.argv[1])
        for i in range(20):
            try:
                raise OSError(f"disk {i}")
            except OSError:
                tripwire.capture_exception()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", script, sink.dsn],
        env=env,
        timeout=60,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "" and done.stderr == ""
    assert len(sink.events) == 20
