"""The manual tracing API (start_span, @trace, continue_trace, get_traceparent/get_baggage), the
limits and the drop counts, and which reporters get transactions."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import tripwire
import tripwire.testing
from tripwire._tracing import active_span, child_span
from tripwire.reporters.capture import CapturedEvents, CaptureReporter


def _dropped(reason: str, category: str) -> int:
    return sum(
        d["quantity"]
        for d in tripwire.stats()["dropped_by"]
        if d["reason"] == reason and d["category"] == category
    )


def test_no_tracing_option_means_no_tracing_work() -> None:
    """Without traces_sample_rate/traces_sampler, start_span is a shared no-op and nothing is sent."""
    with (
        tripwire.testing.capture_events(transactions=True) as events,
        tripwire.start_span(op="a", name="b") as span,
    ):
        assert span.sampled is False
        assert active_span() is None
    assert events == [] and events.transactions == []


def test_spans_nest_in_sync_and_async_code(traced: CapturedEvents) -> None:
    """Spans started inside spans (sync, @trace'd coroutines run concurrently) nest where they were
    started: concurrent tasks do not become each other's parents."""

    @tripwire.trace(op="fetch")
    async def fetch(n: int) -> int:
        await asyncio.sleep(0.01)
        with tripwire.start_span(op="parse", name=f"parse {n}"):
            return n

    @tripwire.trace
    def render() -> None:
        pass

    async def main() -> None:
        with tripwire.start_span(op="task", name="root"):
            render()
            # typeshed types gather()'s result as a tuple; it is a list.
            assert await asyncio.gather(fetch(1), fetch(2)) == [1, 2]  # type: ignore[comparison-overlap]

    asyncio.run(main())
    tripwire.flush(5)
    (txn,) = traced.transactions
    spans = {s["description"]: s for s in txn["spans"]}
    root_id = txn["contexts"]["trace"]["span_id"]
    assert spans["test_spans_nest_in_sync_and_async_code.<locals>.render"]["parent_span_id"] == root_id
    fetches = [s for s in txn["spans"] if s["op"] == "fetch"]
    assert len(fetches) == 2 and all(s["parent_span_id"] == root_id for s in fetches)
    parse_parents = {s["parent_span_id"] for s in txn["spans"] if s["op"] == "parse"}
    assert parse_parents == {s["span_id"] for s in fetches}


def test_failing_block_marks_its_span_and_the_exception_is_untouched(traced: CapturedEvents) -> None:
    """An exception leaving a span sets its status internal_error and reaches the caller unchanged."""
    error = KeyError("k")
    with pytest.raises(KeyError) as raised, tripwire.start_span(op="task", name="root"):
        raise error
    assert raised.value is error and raised.value.__context__ is None
    tripwire.flush(5)
    assert traced.transactions[0]["contexts"]["trace"]["status"] == "internal_error"


def test_traces_sampler_decides_with_its_context() -> None:
    """traces_sampler gets the transaction context and the parent's decision; its answer decides."""
    seen: list[dict[str, Any]] = []

    def sampler(context: dict[str, Any]) -> float:
        seen.append(context)
        return 1.0 if context["transaction_context"]["name"] == "keep" else 0.0

    captured = CapturedEvents()
    tripwire.init(reporters=[CaptureReporter(captured)], traces_sampler=sampler)
    with tripwire.start_span(name="keep"):
        pass
    with tripwire.start_span(name="drop"):
        pass
    tripwire.flush(5)
    assert [t["transaction"] for t in captured.transactions] == ["keep"]
    assert seen[0]["parent_sampled"] is None
    assert _dropped("sample_rate", "transaction") == 1


def test_continue_trace_and_headers_for_hand_rolled_propagation(traced: CapturedEvents) -> None:
    """get_traceparent/get_baggage carry a trace through a queue; continue_trace on the other end
    joins it under the sender's span, with the sender's sampling context."""
    with tripwire.start_span(op="queue.publish", name="publish"):
        traceparent, baggage = tripwire.get_traceparent(), tripwire.get_baggage()
    assert traceparent is not None and baggage is not None  # set inside a span
    headers = {"sentry-trace": traceparent, "baggage": baggage}
    received: list[Any] = []

    def consumer() -> None:
        with (
            tripwire.isolation_scope(),
            tripwire.continue_trace(headers, op="queue.process", name="consume"),
        ):
            received.append(tripwire.capture_message("in consumer"))

    thread = threading.Thread(target=consumer)
    thread.start()
    thread.join()
    tripwire.flush(5)
    publish, consume = traced.transactions
    assert consume["contexts"]["trace"]["trace_id"] == publish["contexts"]["trace"]["trace_id"]
    assert consume["contexts"]["trace"]["parent_span_id"] == publish["contexts"]["trace"]["span_id"]
    (message,) = list(traced)
    assert message["contexts"]["trace"]["span_id"] == consume["contexts"]["trace"]["span_id"]


def test_spans_over_max_spans_are_counted() -> None:
    """Spans beyond max_spans are not kept and are counted (max_spans, category span)."""
    captured = CapturedEvents()
    tripwire.init(reporters=[CaptureReporter(captured)], traces_sample_rate=1.0, max_spans=3)
    with tripwire.start_span(name="root"):
        for i in range(5):
            with tripwire.start_span(op="step", name=str(i)):
                pass
    tripwire.flush(5)
    assert [s["description"] for s in captured.transactions[0]["spans"]] == ["0", "1", "2"]
    assert _dropped("max_spans", "span") == 2


def test_span_over_max_spans_after_the_end_is_still_sent_late() -> None:
    """max_spans bounds a transaction, not the spans that finish after it was sent: a task holding a
    full, already-sent transaction still gets its span delivered on its own."""
    captured = CapturedEvents()
    tripwire.init(reporters=[CaptureReporter(captured)], traces_sample_rate=1.0, max_spans=1)
    with tripwire.start_span(name="root") as root:
        for i in range(2):
            with tripwire.start_span(op="step", name=str(i)):
                pass
    late = child_span(root, "background", "too late")
    assert late is not None
    late.finish()
    tripwire.flush(5)
    assert [s["name"] for s in captured.spans] == ["too late"]
    assert _dropped("max_spans", "span") == 1


def test_monitor_job_is_a_transaction_and_its_error_links_to_it(traced: CapturedEvents) -> None:
    """Each @tripwire.monitor() run is a transaction; the error it raises carries its trace."""

    @tripwire.monitor(name="nightly")
    def nightly() -> None:
        raise RuntimeError("job failed")

    with pytest.raises(RuntimeError):
        nightly()
    tripwire.flush(5)
    (txn,) = traced.transactions
    assert txn["transaction"] == "nightly" and txn["contexts"]["trace"]["status"] == "internal_error"
    assert txn["transaction_info"] == {"source": "task"}
    (error,) = list(traced)
    assert error["contexts"]["trace"]["trace_id"] == txn["contexts"]["trace"]["trace_id"]


def test_capture_events_lists_transactions_only_when_asked() -> None:
    """capture_events(transactions=True) puts transactions in the list; the default keeps them apart."""
    tripwire.init(reporters=[CaptureReporter()], traces_sample_rate=1.0)
    with tripwire.testing.capture_events(transactions=True) as with_txn, tripwire.start_span(name="one"):
        pass
    with tripwire.testing.capture_events() as without, tripwire.start_span(name="two"):
        pass
    assert [e["transaction"] for e in with_txn] == ["one"]
    assert list(without) == [] and [t["transaction"] for t in without.transactions] == ["two"]


def test_bugsnag_and_logging_reporters_ignore_transactions(caplog: pytest.LogCaptureFixture) -> None:
    """The BugSnag and logging reporters send and log nothing for a transaction, and fail nothing."""
    from tripwire.reporters.bugsnag import BugsnagReporter
    from tripwire.reporters.logging import LoggingReporter

    bugsnag = BugsnagReporter(api_key="0" * 32, endpoint="http://127.0.0.1:9/")
    tripwire.init(reporters=[bugsnag, LoggingReporter()], traces_sample_rate=1.0)
    with caplog.at_level(logging.DEBUG):
        with tripwire.start_span(name="quiet"):
            pass
        tripwire.get_client().process_pending(5)  # type: ignore[union-attr]
    assert not [r for r in caplog.records if "quiet" in r.getMessage()]
    assert tripwire.stats()["dropped"] == {}


def test_span_integrations_are_installed_only_with_tracing() -> None:
    """The sqlite3/psycopg/asyncpg/redis hooks are installed when tracing is on, and not otherwise."""
    from tripwire.integrations import installed

    tripwire.init(reporters=[CaptureReporter()])
    assert not {"sqlite3", "psycopg", "asyncpg", "redis"} & set(installed())
    tripwire.init(reporters=[CaptureReporter()], traces_sample_rate=0.0)
    assert {"sqlite3", "psycopg", "asyncpg", "redis"} <= set(installed())


def test_outgoing_request_outside_any_unit_of_work_leaves_the_decision_to_the_receiver(
    traced: CapturedEvents,
) -> None:
    """Outside any transaction, get_traceparent has no sampled flag (the receiver decides)."""
    value = tripwire.get_traceparent()
    assert value is not None and len(value.split("-")) == 2
