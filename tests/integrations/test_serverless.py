"""``@tripwire.serverless``: handlers invoked in a subprocess the way a function runtime invokes them.

The runtime (tests/support/serverless_runtime.py) ends the process with ``os._exit`` the moment the
handler returns, and kills it at the deadline: an event that was not delivered by then is lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tripwire
from tests.support.figures import record
from tests.support.sink import Answer, Sink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


def _invoke(sink: Sink, handler: str, event: dict[str, Any], timeout_ms: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]), TRIPWIRE_TEST_DSN=sink.dsn)
    command = [
        sys.executable,
        "-m",
        "tests.support.serverless_runtime",
        f"tests.support.serverless_handlers:{handler}",
        json.dumps(event),
        str(timeout_ms),
    ]
    done = subprocess.run(command, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=30)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stderr
    outcome: dict[str, Any] = json.loads(lines[-1])
    return outcome


@pytest.mark.reliability
def test_an_unhandled_error_is_delivered_before_the_runtime_ends_the_process(sink: Sink) -> None:
    """The handler's exception reaches the runtime unchanged and its event, with the invocation's
    context, tags and user, was delivered before the process ended (backend 0.3 s per event)."""
    sink.answer = Answer(delay=0.3)
    event = {"order": 7, "plan": "pro", "user": "u-7", "fail": True}
    outcome = _invoke(sink, "charge", event, timeout_ms=10_000)
    assert outcome["outcome"] == "error"
    assert (outcome["type"], outcome["message"], outcome["same"]) == (
        "CardDeclined",
        "card of order 7 declined",
        True,
    )
    assert len(sink.events) == 1  # delivered before os._exit: nothing arrives later
    reported = sink.events[0]
    value = reported["exception"]["values"][-1]
    assert value["type"] == "CardDeclined"
    assert value["mechanism"] == {"type": "serverless", "handled": False}
    assert reported["transaction"] == "checkout-handler"
    assert reported["tags"]["customer.plan"] == "pro"
    assert reported["user"]["id"] == "u-7"
    context = reported["contexts"]["serverless"]
    assert context["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e812345678"
    assert context["function_name"] == "checkout-handler"
    assert 9_000 < context["remaining_time_ms"] <= 10_000
    record(
        "fork-shutdown",
        "serverless handler error, process ended with os._exit() as the handler returns",
        "1 of 1 delivered",
        "delivered before the exception is re-raised; backend 0.3 s per event",
    )


def test_what_a_successful_invocation_captured_is_delivered_before_it_returns(sink: Sink) -> None:
    """A message captured in a handler that then returns arrives, and the handler's result is intact."""
    sink.answer = Answer(delay=0.3)
    outcome = _invoke(sink, "note", {"order": 9}, timeout_ms=10_000)
    assert outcome == {"outcome": "ok", "result": {"statusCode": 202}, "seconds": outcome["seconds"]}
    assert [e["logentry"]["formatted"] for e in sink.events] == ["refund requested for order 9"]


@pytest.mark.reliability
def test_an_invocation_about_to_time_out_sends_a_warning_before_it_is_killed(sink: Sink) -> None:
    """2 s to run, a handler that never ends: a warning event with the invocation's scope arrives
    about 1 s in (warning_margin=1.0), before the runtime kills the process."""
    outcome = _invoke(sink, "slow", {}, timeout_ms=2_000)
    assert outcome["outcome"] == "timed out"
    assert len(sink.events) == 1
    warning = sink.events[0]
    assert warning["level"] == "warning"
    assert warning["tags"]["step"] == "export"
    assert warning["tags"]["serverless.timeout_warning"] == "true"
    assert warning["contexts"]["serverless"]["function_name"] == "checkout-handler"
    record(
        "fork-shutdown",
        "serverless invocation killed at its deadline (2 s, handler never returns)",
        "timeout warning delivered before the kill",
        "warning_margin=1.0: sent and delivered about 1 s before the runtime kills the process",
    )


class _Context:
    def __init__(self, request_id: str, timeout_ms: int) -> None:
        self.aws_request_id = request_id
        self.function_name = "fn"
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def test_a_successful_invocation_that_captured_nothing_returns_without_waiting(sink: Sink) -> None:
    """Nothing captured: the wrapped handler returns at once even though the backend takes 2 s."""
    sink.answer = Answer(delay=2.0)
    tripwire.init(sink.dsn, send_client_reports=False, release=None)

    @tripwire.serverless
    def handler(event: dict[str, Any], context: Any) -> int:
        return int(event["n"]) * 2

    started = time.monotonic()
    assert handler({"n": 21}, _Context("r-1", 5_000)) == 42
    assert time.monotonic() - started < 0.2
    assert sink.events == []


def test_the_flush_after_an_error_waits_no_longer_than_the_invocation_has_left(sink: Sink) -> None:
    """A backend slower than the invocation's 1 s left: the handler's error is re-raised within it."""
    sink.answer = Answer(delay=3.0)
    tripwire.init(sink.dsn, send_client_reports=False, release=None, shutdown_timeout=5.0)

    @tripwire.serverless(timeout_warning=False)
    def handler(event: Any, context: Any) -> None:
        raise KeyError("order")

    started = time.monotonic()
    with pytest.raises(KeyError):
        handler({}, _Context("r-2", 1_000))
    assert time.monotonic() - started < 1.0


def test_concurrent_invocations_keep_their_own_scope(sink: Sink) -> None:
    """Eight invocations on threads, each setting its own tag: every event carries its own tag and id."""
    tripwire.init(sink.dsn, send_client_reports=False, release=None)
    barrier = threading.Barrier(8)

    @tripwire.serverless
    def handler(event: dict[str, Any], context: Any) -> None:
        tripwire.set_tag("n", event["n"])
        barrier.wait(5)
        raise RuntimeError(f"job {event['n']}")

    def invoke(n: int) -> None:
        with pytest.raises(RuntimeError):
            handler({"n": n}, _Context(f"req-{n}", 5_000))

    threads = [threading.Thread(target=invoke, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    events = sink.wait_for_events(8)
    assert len(events) == 8
    for reported in events:
        n = reported["tags"]["n"]
        assert reported["exception"]["values"][-1]["value"] == f"job {n}"
        assert reported["contexts"]["serverless"]["request_id"] == f"req-{n}"


def test_without_a_client_the_handler_runs_unchanged() -> None:
    """tripwire not initialised: the decorated handler returns and raises exactly as it would."""

    @tripwire.serverless
    def handler(event: Any, context: Any) -> Any:
        if event == "boom":
            raise ValueError("boom")
        return event

    assert handler("x", None) == "x"
    with pytest.raises(ValueError, match="boom"):
        handler("boom", None)
