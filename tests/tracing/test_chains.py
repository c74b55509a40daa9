"""Traces across services: two tripwire services, and a sentry-sdk service with a tripwire one in
both directions, make one trace."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.coverage_env import without_coverage
from tests.support.sink import Sink, decode_body
from tripwire.reporters.capture import CapturedEvents

from ..asgi.servers import serve
from .apps import APPS
from .test_asgi_transactions import wait_transactions

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def sentry_service(dsn: str) -> Iterator[str]:
    """The sentry-sdk service in its own process; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    # sentry-sdk only: nothing of ours to measure
    env = {k: v for k, v in without_coverage().items() if not k.startswith("TRIPWIRE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.tracing.sentry_service", str(sock.fileno()), dsn],
        cwd=ROOT,
        env=env,
        pass_fds=[sock.fileno()],
    )
    try:
        # 60 s: sentry-sdk and Starlette import under coverage, on a 2-core machine shared by a run's
        # workers (15 s ran out at a load average of 15).
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/data", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        sock.close()


def sentry_transactions(
    sink: Sink, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The transactions sentry-sdk sent that ``match``, once there is one (or ``timeout`` passed)."""
    from sentry_sdk.envelope import Envelope

    deadline = time.monotonic() + timeout
    while True:
        found = []
        for request in list(sink.requests):
            body = decode_body(request.body, request.headers.get("content-encoding"))
            for item in Envelope.deserialize(body).items:
                # The parsed JSON, as get_transaction_event() returns it (typed there as sentry-sdk's
                # own Event, whose AnnotatedValue fields never come out of JSON).
                event: dict[str, Any] | None = item.payload.json if item.type == "transaction" else None
                if event is not None:
                    found.append(event)
        named = [t for t in found if match(t)]
        if named or time.monotonic() > deadline:
            return named
        time.sleep(0.05)


def test_two_tripwire_services_make_one_trace(traced: CapturedEvents) -> None:
    """Service A calling service B: B's transaction has A's trace id, under A's http.client span."""
    # A's /items calls B's /data (B's own upstream is never called).
    with (
        serve(APPS["starlette"]("http://127.0.0.1:9"), "uvicorn") as b,
        serve(APPS["starlette"](b.url), "uvicorn") as a,
    ):
        assert httpx.get(f"{a.url}/items/x").status_code == 200
        transactions = wait_transactions(traced, 2)
    by_name = {t["transaction"]: t for t in transactions}
    a_txn, b_txn = by_name["/items/{tag}"], by_name["/data"]
    assert b_txn["contexts"]["trace"]["trace_id"] == a_txn["contexts"]["trace"]["trace_id"]
    assert b_txn["contexts"]["trace"]["parent_span_id"] == a_txn["spans"][0]["span_id"]


@pytest.mark.slow  # a sentry-sdk service process: ~2 s to start
def test_tripwire_calling_sentry_sdk_service_makes_one_trace(traced: CapturedEvents) -> None:
    """A tripwire service calling a sentry-sdk service: sentry-sdk continues tripwire's trace under
    the http.client span, and takes its sampling context (sample_rand) from tripwire's baggage."""
    with (
        Sink() as sink,
        sentry_service(sink.dsn) as sentry_url,
        serve(APPS["starlette"](sentry_url), "uvicorn") as ours,
    ):
        assert httpx.get(f"{ours.url}/items/x").status_code == 200
        (txn,) = wait_transactions(traced, 1)
        # (The readiness probe's /data is a transaction of sentry-sdk's too: wait for the one we caused.)
        ours_span = txn["spans"][0]["span_id"]
        theirs = sentry_transactions(
            sink, lambda t: t["contexts"]["trace"].get("parent_span_id") == ours_span
        )
    (their,) = theirs
    assert their["transaction"] == "/data"
    assert their["contexts"]["trace"]["trace_id"] == txn["contexts"]["trace"]["trace_id"]


@pytest.mark.slow
def test_sentry_sdk_service_calling_tripwire_makes_one_trace(traced: CapturedEvents) -> None:
    """A sentry-sdk service calling a tripwire service: tripwire continues its trace under sentry-sdk's
    http.client span and honours its sampling decision."""
    with (
        Sink() as sink,
        sentry_service(sink.dsn) as sentry_url,
        serve(APPS["starlette"]("http://127.0.0.1:9"), "uvicorn") as ours,
    ):
        target = f"{ours.url}/boom"
        httpx.get(f"{sentry_url}/call", params={"target": target}, timeout=10)
        (txn,) = wait_transactions(traced, 1)
        theirs = sentry_transactions(sink, lambda t: t.get("transaction") == "/call")
    (call,) = theirs
    assert txn["contexts"]["trace"]["trace_id"] == call["contexts"]["trace"]["trace_id"]
    client_spans = [s for s in call["spans"] if s["op"] == "http.client"]
    assert txn["contexts"]["trace"]["parent_span_id"] == client_spans[0]["span_id"]
