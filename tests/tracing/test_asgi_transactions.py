"""A transaction per ASGI request under real servers (uvicorn, hypercorn) with Starlette and FastAPI,
with the spans of its outgoing HTTP call and its sqlite3 queries."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

import tripwire
from tripwire.reporters.capture import CapturedEvents

from ..asgi.servers import SERVERS, serve
from .apps import APPS
from .conftest import Upstream


def wait_transactions(events: CapturedEvents, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(events.transactions) < count and time.monotonic() < deadline:
        tripwire.flush(1)
        time.sleep(0.01)
    return list(events.transactions)


@pytest.mark.parametrize("framework", sorted(APPS))
@pytest.mark.parametrize("server", SERVERS)
def test_request_is_one_transaction_with_its_http_and_db_spans(
    traced: CapturedEvents, upstream: Upstream, framework: str, server: str
) -> None:
    """A request becomes a transaction named after its route, op http.server, status ok, with the
    request data, an http.client span for its outgoing call and a db span per sqlite3 query."""
    with serve(APPS[framework](upstream.url), server) as running:
        response = httpx.get(f"{running.url}/items/abc?token=s3cret", headers={"Authorization": "Bearer x"})
        assert response.status_code == 200
        (txn,) = wait_transactions(traced, 1)
    assert txn["type"] == "transaction"
    assert txn["transaction"] == "/items/{tag}"
    assert txn["transaction_info"] == {"source": "route"}
    trace = txn["contexts"]["trace"]
    assert trace["op"] == "http.server" and trace["status"] == "ok"
    assert txn["request"]["method"] == "GET"
    assert txn["request"]["url"].endswith("/items/abc")
    assert txn["request"]["headers"]["authorization"] != "Bearer x"  # scrubbed as on error events
    assert txn["start_timestamp"] <= txn["timestamp"]
    spans = txn["spans"]
    assert [s["op"] for s in spans] == ["http.client", "db", "db"]
    http_span, create, insert = spans
    assert http_span["description"] == f"GET {upstream.url}/data"
    assert http_span["data"]["http.response.status_code"] == 200
    assert http_span["status"] == "ok"
    assert create["description"] == "CREATE TABLE items (tag TEXT)"
    assert insert["description"] == "INSERT INTO items VALUES (?)"  # no parameter values
    assert insert["data"] == {"db.system": "sqlite", "db.name": ":memory:"}
    for span in spans:
        assert span["trace_id"] == trace["trace_id"]
        assert span["parent_span_id"] == trace["span_id"]
        assert txn["start_timestamp"] <= span["start_timestamp"] <= span["timestamp"] <= txn["timestamp"]
    # The outgoing sentry-trace names the http.client span, and carries the sampling decision.
    (sent,) = upstream.requests
    assert sent["sentry-trace"] == f"{trace['trace_id']}-{http_span['span_id']}-1"
    assert f"sentry-trace_id={trace['trace_id']}" in sent["baggage"]
    assert "traceparent" not in sent  # propagate_traceparent is off by default


@pytest.mark.parametrize("server", SERVERS)
def test_failing_request_is_internal_error_and_its_error_links_to_it(
    traced: CapturedEvents, upstream: Upstream, server: str
) -> None:
    """An unhandled exception makes the transaction's status internal_error, and the error event
    carries the transaction's trace id and span id."""
    with serve(APPS["starlette"](upstream.url), server) as running:
        assert httpx.get(f"{running.url}/boom").status_code == 500
        (txn,) = wait_transactions(traced, 1)
        traced.wait_for(1)
    trace = txn["contexts"]["trace"]
    assert trace["status"] == "internal_error"
    assert txn["transaction"] == "/boom"
    (error,) = list(traced)
    assert error["contexts"]["trace"]["trace_id"] == trace["trace_id"]
    assert error["contexts"]["trace"]["span_id"] == trace["span_id"]


def test_status_of_transaction_follows_the_response(traced: CapturedEvents, upstream: Upstream) -> None:
    """A 404 response makes the transaction's status not_found."""
    with serve(APPS["fastapi"](upstream.url), "uvicorn") as running:
        assert httpx.get(f"{running.url}/nowhere").status_code == 404
        (txn,) = wait_transactions(traced, 1)
    assert txn["contexts"]["trace"]["status"] == "not_found"
    assert txn["contexts"]["trace"]["data"]["http.response.status_code"] == 404


@pytest.mark.slow
def test_concurrent_requests_each_get_their_own_transaction(
    traced: CapturedEvents, upstream: Upstream
) -> None:
    """200 concurrent requests make 200 transactions, each with only its own three spans."""
    with serve(APPS["starlette"](upstream.url), "uvicorn") as running:

        async def one(i: int) -> int:
            # A client (one connection) per request: one client's pool of 200 connections scans
            # them all at every response it reads (httpcore), 3 s of this test's CPU.
            async with httpx.AsyncClient(timeout=30) as http:
                return (await http.get(f"{running.url}/items/t{i}")).status_code

        async def all_at_once() -> list[int]:
            return list(await asyncio.gather(*(one(i) for i in range(200))))

        assert asyncio.run(all_at_once()) == [200] * 200
        transactions = wait_transactions(traced, 200, timeout=30)
    assert len(transactions) == 200
    seen_tags = set()
    span_ids = set()
    for txn in transactions:
        tag = txn["request"]["url"].rsplit("/", 1)[1]
        seen_tags.add(tag)
        span_ids.add(txn["contexts"]["trace"]["span_id"])
        assert [s["op"] for s in txn["spans"]] == ["http.client", "db", "db"]
        assert txn["spans"][0]["data"]["http.query"] == f"tag={tag}"  # its own outgoing call
    assert seen_tags == {f"t{i}" for i in range(200)}
    # (One trace: the test's own httpx calls carry this process's trace; 200 transactions in it.)
    assert len(span_ids) == 200


def test_incoming_trace_is_continued_and_its_decision_honoured(
    traced: CapturedEvents, upstream: Upstream
) -> None:
    """A request with sentry-trace and baggage joins the caller's trace under the caller's span; a
    caller's "not sampled" makes no transaction, yet the request's errors carry the caller's trace."""
    trace_id, parent = "a" * 32, "b" * 16
    with serve(APPS["starlette"](upstream.url), "uvicorn") as running:
        headers = {
            "sentry-trace": f"{trace_id}-{parent}-1",
            "baggage": f"sentry-trace_id={trace_id},sentry-sample_rate=0.5,sentry-sample_rand=0.25,other=1",
        }
        assert httpx.get(f"{running.url}/items/x", headers=headers).status_code == 200
        (txn,) = wait_transactions(traced, 1)
        unsampled = {"sentry-trace": f"{'c' * 32}-{parent}-0"}
        assert httpx.get(f"{running.url}/boom", headers=unsampled).status_code == 500
        traced.wait_for(1)
        tripwire.flush(5)
    assert txn["contexts"]["trace"]["trace_id"] == trace_id
    assert txn["contexts"]["trace"]["parent_span_id"] == parent
    # The caller's dynamic sampling context travels on unchanged, with the other vendor's member.
    baggage = upstream.requests[0]["baggage"]
    assert "sentry-sample_rate=0.5" in baggage and "sentry-sample_rand=0.25" in baggage
    assert baggage.endswith("other=1")
    assert len(traced.transactions) == 1  # the unsampled request made none
    (error,) = list(traced)
    assert error["contexts"]["trace"]["trace_id"] == "c" * 32
    assert tripwire.stats()["dropped"].get("sample_rate") == 1


def test_w3c_traceparent_is_continued_and_sent_when_asked(upstream: Upstream) -> None:
    """An incoming W3C traceparent is continued; propagate_traceparent adds one to outgoing calls."""
    captured = CapturedEvents()
    from tripwire.reporters.capture import CaptureReporter

    tripwire.init(reporters=[CaptureReporter(captured)], traces_sample_rate=1.0, propagate_traceparent=True)
    trace_id = "d" * 32
    with serve(APPS["starlette"](upstream.url), "uvicorn") as running:
        headers = {"traceparent": f"00-{trace_id}-{'e' * 16}-01"}
        assert httpx.get(f"{running.url}/items/x", headers=headers).status_code == 200
        (txn,) = wait_transactions(captured, 1)
    assert txn["contexts"]["trace"]["trace_id"] == trace_id
    span_id = txn["spans"][0]["span_id"]
    assert upstream.requests[0]["traceparent"] == f"00-{trace_id}-{span_id}-01"


def test_unsampled_requests_send_nothing_and_are_counted(upstream: Upstream) -> None:
    """With traces_sample_rate=0 no transaction or span is sent or counted as dropped; each request
    is counted as sampled out, and its outgoing call still carries the trace with a "not sampled"
    decision (and no baggage)."""
    captured = CapturedEvents()
    from tripwire.reporters.capture import CaptureReporter

    tripwire.init(reporters=[CaptureReporter(captured)], traces_sample_rate=0.0)
    with serve(APPS["starlette"](upstream.url), "uvicorn") as running:
        for _ in range(3):
            assert httpx.get(f"{running.url}/items/x").status_code == 200
        tripwire.flush(5)
    assert captured.transactions == []
    drops = tripwire.stats()["dropped_by"]
    assert {"reason": "sample_rate", "category": "transaction", "reporter": None, "quantity": 3} in drops
    assert len(upstream.requests) == 3  # not vacuous: each request made its outgoing call
    assert all(r["sentry-trace"].endswith("-0") for r in upstream.requests)
    assert all("baggage" not in r for r in upstream.requests)  # no sampling context to carry
    assert captured.spans == [] and not any(d["category"] == "span" for d in drops)


def test_partial_rate_samples_by_one_draw_that_travels_in_the_baggage(upstream: Upstream) -> None:
    """At traces_sample_rate=0.5 some requests are sampled and the others counted as sampled out;
    a sampled one's baggage carries the rate and the draw it was sampled by (below the rate), and
    an unsampled one's outgoing call says "not sampled"."""
    captured = CapturedEvents()
    from tripwire.reporters.capture import CaptureReporter

    tripwire.init(reporters=[CaptureReporter(captured)], traces_sample_rate=0.5)
    with serve(APPS["starlette"](upstream.url), "uvicorn") as running:
        for _ in range(40):
            assert httpx.get(f"{running.url}/items/x").status_code == 200
        tripwire.flush(5)
    sampled = len(captured.transactions)
    drops = tripwire.stats()["dropped_by"]
    out = sum(d["quantity"] for d in drops if d["reason"] == "sample_rate")
    assert 0 < sampled < 40 and sampled + out == 40  # P(failing) by chance: 2 * 0.5**40
    with_baggage = [r for r in upstream.requests if "baggage" in r]
    assert len(with_baggage) == sampled
    for request in with_baggage:
        members = dict(m.split("=", 1) for m in request["baggage"].split(","))
        assert members["sentry-sample_rate"] == "0.5" and float(members["sentry-sample_rand"]) < 0.5
    assert sum(r["sentry-trace"].endswith("-0") for r in upstream.requests) == out


def test_websocket_connection_is_one_transaction(traced: CapturedEvents) -> None:
    """A websocket connection is a websocket.server transaction named after its route, status ok,
    with the spans made while it was open."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket
    from websockets.sync.client import connect

    from tripwire.asgi import TripwireMiddleware

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        with tripwire.start_span(op="ws.handle", name="echo"):
            await websocket.send_text(text)
        await websocket.close()

    app = TripwireMiddleware(Starlette(routes=[WebSocketRoute("/ws/{room}", echo)]))
    with serve(app, "uvicorn") as running:
        with connect(f"{running.ws_url}/ws/lobby", open_timeout=5) as socket:
            socket.send("hi")
            assert socket.recv(timeout=5) == "hi"
        (txn,) = wait_transactions(traced, 1)
    assert txn["transaction"] == "/ws/{room}"
    assert txn["contexts"]["trace"]["op"] == "websocket.server"
    assert txn["contexts"]["trace"]["status"] == "ok"
    assert [s["op"] for s in txn["spans"]] == ["ws.handle"]
