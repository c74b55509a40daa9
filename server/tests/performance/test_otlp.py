"""An app instrumented with the OpenTelemetry SDK exports OTLP/HTTP to the collector: it shows
like a Sentry SDK's transactions (routes, counts, percentiles, traces, N+1 issues)."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tripwire_server.performance.histogram import RELATIVE_ACCURACY
from tripwire_server.performance.otlp import span_op

from ..conftest import LiveServer, wait_until

SERVICE = Path(__file__).with_name("otel_service.py")


def _run_otel_app(server: LiveServer, endpoint: str, tmp_path: Path) -> list[dict[str, Any]]:
    durations = tmp_path / "otel.jsonl"
    out = subprocess.run(
        [sys.executable, str(SERVICE), endpoint, server.key, str(durations)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1])["exports"] == ["SUCCESS"], out.stderr
    return [json.loads(line) for line in durations.read_text().splitlines()]


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.slow
def test_the_opentelemetry_exporter_shows_routes_percentiles_traces_and_n_plus_one(
    server: LiveServer, tmp_path: Path
) -> None:
    """The official OTLP/HTTP exporter (protobuf, gzip) to Sentry's path: each route with the right
    count and percentiles within a bucket, its db spans in the trace, and an N+1 issue."""
    sent = _run_otel_app(server, f"{server.url}/api/{server.project.id}/integration/otlp/v1/traces", tmp_path)
    server.wait_digested()
    durations: dict[str, list[float]] = {}
    for tx in sent:
        durations.setdefault(tx["transaction"], []).append(tx["ms"])
    rows = {
        r["transaction"]: r
        for r in server.api("/api/0/projects/default/performance/", params={"since": "1h"})
    }
    assert set(rows) == {"GET /fast", "GET /slow"}
    for name, values in durations.items():
        row = rows[name]
        assert row["count"] == len(values) and row["op"] == "http.server"
        for key, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            exact = _exact(values, q)
            assert abs(row[key] - exact) <= exact * RELATIVE_ACCURACY + 1e-6, (name, key)
    slow = server.api(
        "/api/0/projects/default/performance/", params={"since": "1h", "transaction": "GET /slow"}
    )
    trace = server.api(f"/api/0/traces/{slow['samples'][0]['trace_id']}/")
    db = [s for s in trace["spans"] if s["op"] == "db"]
    assert len(db) == 6 and db[0]["description"].startswith("SELECT * FROM items WHERE id = ")
    assert all(s["parent_span_id"] == slow["samples"][0]["trace_id"] or s["parent_span_id"] for s in db)
    issues = server.api("/api/0/projects/default/issues/")["issues"]
    assert [i["title"] for i in issues if i["type"] == "N+1 Query"] == [
        "N+1 Query: SELECT * FROM items WHERE id = ?"
    ]
    summary = server.api(
        "/api/0/projects/default/performance/summary/", params={"transaction": "GET /slow", "since": "1h"}
    )
    assert summary["releases"][0]["release"] == "otel-shop@3.1"


def _otlp_json(trace_id: str, start_ns: int) -> dict[str, Any]:
    def span(
        span_id: str, parent: str, name: str, kind: int, ms: int, attrs: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "traceId": trace_id,
            "spanId": span_id,
            "parentSpanId": parent,
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(start_ns),
            "endTimeUnixNano": str(start_ns + ms * 1_000_000),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
            "status": {},
        }

    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.version", "value": {"stringValue": "js@1"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            span("a" * 16, "", "GET /api/cart", 2, 80, {"http.request.method": "GET"}),
                            span("b" * 16, "a" * 16, "fetch prices", 3, 30, {"http.request.method": "GET"}),
                        ]
                    }
                ],
            }
        ]
    }


def test_otlp_json_at_v1_traces_with_the_sentry_auth_header_is_stored(server: LiveServer) -> None:
    """OTLP/JSON at /v1/traces (gzip, X-Sentry-Auth): one transaction with its http.client span."""
    trace_id = uuid.uuid4().hex
    body = gzip.compress(json.dumps(_otlp_json(trace_id, time.time_ns() - 100_000_000)).encode())
    response = server.http.post(
        "/v1/traces",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "X-Sentry-Auth": f"Sentry sentry_key={server.key}",
        },
    )
    assert response.status_code == 200 and response.json() == {}
    server.wait_digested()
    trace = wait_until(
        lambda: server.http.get(
            f"/api/0/traces/{trace_id}/", headers={"Authorization": f"Bearer {server.token}"}
        ).json()
    )
    assert [(s["op"], s["description"]) for s in trace["spans"]] == [
        ("http.server", "GET /api/cart"),
        ("http.client", "fetch prices"),
    ]


def test_otlp_without_a_valid_key_or_with_a_bad_body_is_refused(server: LiveServer) -> None:
    """No key: 401; an unknown key: 403; a key of another project in the path: 403; garbage: 400."""
    post = server.http.post
    assert (
        post("/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf"}).status_code == 401
    )
    bad_key = {"X-Sentry-Auth": "Sentry sentry_key=" + "0" * 32, "Content-Type": "application/json"}
    assert post("/v1/traces", content=b"{}", headers=bad_key).status_code == 403
    good = {"X-Sentry-Auth": f"Sentry sentry_key={server.key}"}
    other = post(f"/api/{server.project.id + 1000}/integration/otlp/v1/traces", content=b"", headers=good)
    assert other.status_code == 403
    garbage = post(
        "/v1/traces",
        content=b"\xff\xff\xff not protobuf",
        headers={**good, "Content-Type": "application/x-protobuf"},
    )
    assert garbage.status_code == 400 and "OTLP" in garbage.text
    assert (
        post("/v1/traces", content=b"[1]", headers={**good, "Content-Type": "application/json"}).status_code
        == 400
    )
    assert post("/v1/traces", content=b"x", headers={**good, "Content-Type": "text/plain"}).status_code == 415


@pytest.mark.parametrize(
    ("kind", "attrs", "op"),
    [
        (2, {"http.request.method": "GET"}, "http.server"),
        (3, {"http.method": "POST"}, "http.client"),
        (3, {"db.system": "postgresql"}, "db"),
        (4, {"messaging.system": "kafka"}, "queue.publish"),
        (5, {"messaging.system": "kafka"}, "queue.process"),
        (1, {}, "default"),
        (1, {"sentry.op": "ui.render"}, "ui.render"),
    ],
)
def test_an_otel_span_s_kind_and_attributes_give_its_op(kind: int, attrs: dict[str, Any], op: str) -> None:
    """Semantic-convention attributes and the span kind map to Sentry's ops."""
    assert span_op(kind, attrs) == op
