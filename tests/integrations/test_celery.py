"""A real Celery prefork worker (Redis broker on 127.0.0.1) whose tasks fail and log the failure.

The pool process logs the error (tripwire reports it), then pickles the exception to the worker's
main process. If tripwire had left something unpicklable on it, the parent would get a
``MaybeEncodingError`` instead, log that, and tripwire would report a second, misleading event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.celery_app import BROKER, PaymentDeclined, make_app
from tests.support.figures import record
from tests.support.sink import Answer, Sink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"tripwire-test-{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(BROKER)
    client.delete(name, *client.keys(f"{name}*"))
    client.close()


def _start_worker(queue: str, dsn: str, *options: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        TRIPWIRE_TEST_DSN=dsn,
        TRIPWIRE_TEST_QUEUE=queue,
    )
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.support.celery_worker",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        "--queues",
        queue,
        "--hostname",
        f"{queue}@localhost",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
        *options,
    ]
    return subprocess.Popen(
        command, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _stop(worker: subprocess.Popen[str]) -> str:
    """Warm shutdown (SIGTERM), as a deploy does; the worker must end by itself. Its stderr."""
    worker.send_signal(signal.SIGTERM)
    try:
        _, stderr = worker.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        _, stderr = worker.communicate()
        pytest.fail(f"the Celery worker did not stop on SIGTERM:\n{stderr}")
    return stderr


@pytest.mark.slow
def test_a_failed_task_reaches_the_parent_as_itself_and_is_reported_once(sink: Sink, queue: str) -> None:
    """The parent gets the task's real exception (no MaybeEncodingError) and tripwire sends one event each."""
    app = make_app(queue)
    worker = _start_worker(queue, sink.dsn)
    try:
        results = [app.send_task("charge", args=[n]) for n in (2, 3)]
        errors = [result.get(timeout=30, propagate=False) for result in results]
        assert sink.wait_until(lambda: len(sink.events) >= 2, 10)
    finally:
        stderr = _stop(worker)
    # The main process wrote the outcome last: read it again from the backend.
    final = [app.AsyncResult(result.id).result for result in results]
    for error in (errors, final):
        assert [type(e) for e in error] == [ValueError, PaymentDeclined], stderr
        assert str(error[0]) == "order 2 is empty"
        assert vars(error[1]) == {"order": 3, "reason": "card expired"}
    assert "MaybeEncodingError" not in stderr
    # The main process delivers what it still had at exit: nothing more may have come.
    reported = [e["exception"]["values"][-1] for e in sink.events]
    assert sorted(v["type"] for v in reported) == ["PaymentDeclined", "ValueError"]
    assert {e["logger"] for e in sink.events} == {"celery.app.trace"}
    app.close()


@pytest.mark.slow
@pytest.mark.reliability
def test_a_pool_child_that_ends_right_after_its_task_still_delivers(sink: Sink, queue: str) -> None:
    """--max-tasks-per-child 1: each pool child ends (os._exit) right after logging; every event arrives.

    The backend takes 0.3 s per event, so a child that ends without flushing loses its event.
    """
    sink.answer = Answer(delay=0.3)
    app = make_app(queue)
    worker = _start_worker(queue, sink.dsn, "--max-tasks-per-child", "1")
    try:
        results = [app.send_task("charge", args=[n]) for n in range(2, 6)]
        for result in results:
            result.get(timeout=30, propagate=False)
        arrived = sink.wait_until(lambda: len(sink.events) >= 4, 10)
    finally:
        stderr = _stop(worker)
    assert arrived, f"{len(sink.events)} of 4 events arrived\n{stderr}"
    values = sorted(e["exception"]["values"][-1]["value"] for e in sink.events)
    assert len(values) == 4 and len(set(values)) == 4
    record(
        "fork-shutdown",
        "Celery prefork children recycled after every task (--max-tasks-per-child 1)",
        "4 of 4 delivered",
        "each child logs the failure and ends with os._exit; backend 0.3 s per event",
    )
    app.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running
