"""Spans that finish after their transaction was sent (a task the request spawned that outlives it)
are still delivered, as span-v2 ``span`` items linked to the transaction, not dropped."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import httpx
import pytest

import tripwire
from tripwire.reporters.capture import CapturedEvents

from ..asgi.servers import serve
from ..support.sink import Sink


def _dropped(category: str) -> int:
    return sum(d["quantity"] for d in tripwire.stats()["dropped_by"] if d["category"] == category)


def test_span_left_open_and_span_started_late_both_arrive(traced: CapturedEvents) -> None:
    """A span still running when its transaction ends is left out of it and sent when it finishes;
    a span started under the already-sent transaction is sent too; both name their parents and
    nothing is counted as dropped."""
    with tripwire.start_span(name="root") as root:
        with tripwire.start_span(op="db", name="inside"):
            pass
        left_open = tripwire.start_span(op="background", name="outlives")
    with root:  # a task that kept the finished root as its active span
        late = tripwire.start_span(op="late", name="after the end")
        late.finish()
    left_open.finish()
    tripwire.flush(5)
    (txn,) = traced.transactions
    assert [s["description"] for s in txn["spans"]] == ["inside"]
    by_name = {s["name"]: s for s in traced.spans}
    assert set(by_name) == {"outlives", "after the end"}
    root_id = txn["contexts"]["trace"]["span_id"]
    for span in by_name.values():
        assert span["trace_id"] == txn["contexts"]["trace"]["trace_id"]
        assert span["parent_span_id"] == root_id
        assert span["attributes"]["sentry.segment.id"]["value"] == root_id
        assert span["end_timestamp"] >= span["start_timestamp"]
    assert by_name["outlives"]["attributes"]["sentry.op"]["value"] == "background"
    assert _dropped("span") == 0


def _app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tripwire.asgi import TripwireMiddleware

    tasks: set[asyncio.Task[None]] = set()

    async def background() -> None:
        await asyncio.sleep(0.05)  # outlives the response
        db = sqlite3.connect(":memory:")
        try:
            db.execute("SELECT 1 WHERE 1 = ?", (1,)).fetchone()
        finally:
            db.close()

    async def spawn(request: Request) -> PlainTextResponse:
        task = asyncio.create_task(background())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return PlainTextResponse("spawned")

    return TripwireMiddleware(Starlette(routes=[Route("/spawn", spawn)]))


def test_query_of_a_task_that_outlives_the_request_reaches_the_server() -> None:
    """Under uvicorn, a sqlite3 query made by a task the request spawned, after the response, reaches
    a Sentry-protocol server as a span-v2 item under the request's transaction."""
    with Sink() as sink:
        tripwire.init(sink.dsn, traces_sample_rate=1.0, release="1.0")
        with serve(_app(), "uvicorn") as running:
            assert httpx.get(f"{running.url}/spawn").status_code == 200
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not sink.items("span"):
                tripwire.flush(1)
                time.sleep(0.02)
        tripwire.flush(5)
        (txn,) = sink.items("transaction")
        (item,) = sink.items("span")
        headers = [h for r in sink.requests for h, _ in r.items if h.get("type") == "span"]
    assert headers[0]["content_type"] == "application/vnd.sentry.items.span.v2+json"
    (span,) = item["items"]
    assert span["name"] == "SELECT 1 WHERE 1 = ?"  # the statement, without its parameter values
    assert span["attributes"]["sentry.op"]["value"] == "db"
    assert span["attributes"]["db.system"]["value"] == "sqlite"
    assert span["trace_id"] == txn["contexts"]["trace"]["trace_id"]
    assert span["parent_span_id"] == txn["contexts"]["trace"]["span_id"]
    assert txn["spans"] == []


@pytest.mark.parametrize("reporter", ["bugsnag"])
def test_reporters_without_performance_ignore_late_spans(reporter: str) -> None:
    """A BugSnag reporter gets no late span and nothing is counted as failed."""
    with Sink() as sink:
        tripwire.init(
            reporters=[{"backend": reporter, "api_key": "a" * 32, "endpoint": sink.url}],
            traces_sample_rate=1.0,
        )
        with tripwire.start_span(name="root"):
            open_span = tripwire.start_span(op="background", name="outlives")
        open_span.finish()
        assert tripwire.flush(5)
        assert sink.requests == []
    assert _dropped("span") == 0
