"""Tracing under WSGI: a real waitress server serving Flask through TripwireMiddleware.

Each sampled request is one ``http.server`` transaction named after its route, with the status the
app answered (or ``internal_error`` for an exception); an incoming ``sentry-trace`` continues the
caller's trace; unsampled requests send nothing and are counted.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import tripwire
from tests.wsgi.servers import request, waitress_server
from tripwire.reporters.capture import CapturedEvents, CaptureReporter
from tripwire.wsgi import TripwireMiddleware


def _flask_app() -> Any:
    from flask import Flask, Response, abort, stream_with_context

    app = Flask("wsgi_transactions")

    @app.route("/orders/<int:oid>")
    def order(oid: int) -> str:
        with tripwire.start_span(op="db", name="SELECT order"):
            pass
        return f"order {oid}"

    @app.route("/missing")
    def missing() -> str:
        abort(404)

    @app.route("/boom")
    def boom() -> str:
        raise ValueError("boom")

    @app.route("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            # Made while the server streams the response: still inside the request's transaction.
            with tripwire.start_span(op="render", name="chunk"):
                yield "a"
            yield "b"

        return Response(stream_with_context(chunks()))

    app.wsgi_app = TripwireMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


@pytest.fixture
def traced() -> Iterator[CapturedEvents]:
    """A tripwire client tracing every request, keeping errors and transactions in memory."""
    captured = CapturedEvents()
    tripwire.init(
        reporters=[CaptureReporter(captured)],
        release="1.0",
        environment="test",
        traces_sample_rate=1.0,
        include_local_variables=False,
    )
    yield captured


def _raw_get(address: str, path: str, headers: dict[str, str]) -> int:
    """A GET over a plain socket: http.client would add this process's own trace headers."""
    host, port = address.rsplit(":", 1)
    lines = [f"GET {path} HTTP/1.1", f"Host: {address}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def _wait_transactions(captured: CapturedEvents, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(captured.transactions) < count and time.monotonic() < deadline:
        tripwire.flush(0.5)
    return list(captured.transactions)


def test_each_request_is_a_transaction_named_after_its_route_with_its_status(traced: CapturedEvents) -> None:
    """Three requests under waitress: three http.server transactions named after the Flask route,
    status ok / not_found / internal_error, the span made in the view inside the first."""
    with waitress_server(_flask_app()) as address:
        assert request(address, "GET", "/orders/7").body == b"order 7"
        assert request(address, "GET", "/missing").status == 404
        assert request(address, "GET", "/boom").status == 500
        transactions = _wait_transactions(traced, 3)
    by_name = {t["transaction"]: t for t in transactions}
    assert set(by_name) == {"/orders/<int:oid>", "/missing", "/boom"}
    ok = by_name["/orders/<int:oid>"]
    assert ok["contexts"]["trace"]["op"] == "http.server"
    assert ok["contexts"]["trace"]["status"] == "ok"
    assert ok["transaction_info"]["source"] == "route"
    assert ok["request"]["method"] == "GET" and ok["request"]["url"].endswith("/orders/7")
    assert [s["op"] for s in ok["spans"]] == ["db"]
    assert by_name["/missing"]["contexts"]["trace"]["status"] == "not_found"
    failed = by_name["/boom"]
    assert failed["contexts"]["trace"]["status"] == "internal_error"
    # The error event of the failing request is linked to its transaction.
    [error] = [e for e in traced if e.get("exception")]
    assert error["contexts"]["trace"]["trace_id"] == failed["contexts"]["trace"]["trace_id"]
    assert error["contexts"]["trace"]["span_id"] == failed["contexts"]["trace"]["span_id"]


def test_spans_made_while_the_response_streams_belong_to_the_request(traced: CapturedEvents) -> None:
    """A streamed Flask response: the span its generator makes while waitress sends it is in the
    request's transaction, which ends once the response is closed."""
    with waitress_server(_flask_app()) as address:
        assert request(address, "GET", "/stream").body == b"ab"
        [txn] = _wait_transactions(traced, 1)
    assert txn["transaction"] == "/stream"
    assert [s["description"] for s in txn["spans"]] == ["chunk"]
    assert txn["contexts"]["trace"]["status"] == "ok"


def test_an_incoming_sentry_trace_is_continued(traced: CapturedEvents) -> None:
    """A caller's sentry-trace and baggage: the request's transaction has the caller's trace id and
    its span as parent, and keeps the caller's sampling context."""
    trace_id, parent = "a" * 32, "b" * 16
    headers = {
        "sentry-trace": f"{trace_id}-{parent}-1",
        "baggage": f"sentry-trace_id={trace_id},sentry-sample_rate=0.5,sentry-sample_rand=0.25",
    }
    with waitress_server(_flask_app()) as address:
        assert _raw_get(address, "/orders/1", headers) == 200
        [txn] = _wait_transactions(traced, 1)
    assert txn["contexts"]["trace"]["trace_id"] == trace_id
    assert txn["contexts"]["trace"]["parent_span_id"] == parent


def test_unsampled_requests_send_nothing_and_are_counted() -> None:
    """traces_sample_rate=0: no transaction; each request is counted as sampled out; a caller that
    decided "not sampled" is honoured even at rate 1, yet its errors carry the caller's trace id."""
    captured = CapturedEvents()
    tripwire.init(reporters=[CaptureReporter(captured)], traces_sample_rate=0.0)
    with waitress_server(_flask_app()) as address:
        for _ in range(3):
            assert request(address, "GET", "/orders/2").status == 200
        tripwire.flush(5)
    assert captured.transactions == []
    drops = tripwire.stats()["dropped_by"]
    assert {"reason": "sample_rate", "category": "transaction", "reporter": None, "quantity": 3} in drops

    captured = CapturedEvents()
    tripwire.init(reporters=[CaptureReporter(captured)], traces_sample_rate=1.0)
    unsampled = {"sentry-trace": f"{'c' * 32}-{'d' * 16}-0"}
    with waitress_server(_flask_app()) as address:
        assert _raw_get(address, "/boom", unsampled) == 500
        tripwire.flush(5)
    assert captured.transactions == []
    [error] = list(captured)
    assert error["contexts"]["trace"]["trace_id"] == "c" * 32


def test_untraced_middleware_makes_no_transaction(events: CapturedEvents) -> None:
    """Without traces_sample_rate the middleware makes no transaction and counts nothing as sampled out."""
    with waitress_server(_flask_app()) as address:
        assert request(address, "GET", "/orders/3").status == 200
        tripwire.flush(5)
    assert events.transactions == []
    assert "sample_rate" not in tripwire.stats()["dropped"]
