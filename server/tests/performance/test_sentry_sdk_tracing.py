"""The official sentry-sdk (traces_sample_rate=1.0, Starlette under uvicorn) reports to the
collector: routes, counts and percentiles, a trace across two services, and errors linked to traces."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from tripwire_server.performance.histogram import RELATIVE_ACCURACY

from ..conftest import LiveServer, PgSchemas, wait_until
from .services import TracedService

# One traced scenario per backend (about 10 s each: two uvicorn services, ~30 requests).
pytestmark = pytest.mark.slow


def _exact(durations: list[float], q: float) -> float:
    ordered = sorted(durations)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One collector per backend for the whole module: the scenario runs once per backend."""
    if request.param == "sqlite":
        live = LiveServer(f"sqlite:///{tmp_path_factory.mktemp('perf') / 'tripwire.sqlite3'}")
        yield live
        live.stop()
        return
    schemas: PgSchemas = request.getfixturevalue("pg_schemas")
    url = schemas.new()
    live = LiveServer(url)
    yield live
    live.stop()
    schemas.drop(url)


@pytest.fixture(scope="module")
def traced(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two services (projects "default" and "backend"): /checkout on the first calls the second."""
    tmp_path = tmp_path_factory.mktemp("services")
    backend_project = server.store.accounts.create_project("backend")
    backend = TracedService(backend_project.dsn(server.url), tmp_path, "backend")
    try:
        frontend = TracedService(server.dsn, tmp_path, "frontend", downstream=backend.url)
    except BaseException:
        backend.stop()  # not left running for the rest of the run
        raise
    try:
        for path, n in (("/fast", 12), ("/medium", 8), ("/slow", 5), ("/checkout", 2)):
            for _ in range(n):
                assert frontend.get(path).status_code == 200
        assert frontend.get("/boom").status_code == 500
    finally:
        sent = {"frontend": frontend.stop(), "backend": backend.stop()}
    server.wait_digested()
    yield sent


def _rows(server: LiveServer, project: str = "default", **params: str) -> dict[str, dict[str, Any]]:
    rows = server.api(f"/api/0/projects/{project}/performance/", params={"since": "1h", **params})
    return {r["transaction"]: r for r in rows}


def test_each_route_shows_with_its_count_and_percentiles_within_bucket_precision(
    server: LiveServer, traced: dict[str, Any]
) -> None:
    """Every route of the traced app has the count sent, and p50..p99 within 2 % of the true ones."""
    sent: dict[str, list[float]] = {}
    for tx in traced["frontend"]:
        sent.setdefault(str(tx["transaction"]), []).append(float(tx["ms"]))
    rows = wait_until(
        lambda: (
            (r := _rows(server))
            and sum(x["count"] for x in r.values()) == sum(len(v) for v in sent.values())
            and r
        )
    )
    assert set(rows) == set(sent)
    for name, durations in sent.items():
        row = rows[name]
        assert row["count"] == len(durations), name
        assert row["op"] == "http.server"
        for key, q in (("p50_ms", 0.5), ("p75_ms", 0.75), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            exact = _exact(durations, q)
            assert abs(row[key] - exact) <= exact * RELATIVE_ACCURACY + 1e-6, (name, key, row[key], exact)
    assert rows["/slow"]["p50_ms"] >= 200 * (1 - RELATIVE_ACCURACY)  # it sleeps 200 ms
    assert rows["/boom"]["failure_rate"] == 1.0 and rows["/fast"]["failure_rate"] == 0.0
    assert rows["/fast"]["apdex"] == 1.0  # 20 ms against the default 300 ms threshold
    assert 0.0 <= rows["/slow"]["apdex"] <= 1.0


def test_a_trace_across_two_services_assembles_into_one_waterfall(
    server: LiveServer, traced: dict[str, Any]
) -> None:
    """/checkout on one project calls /inventory on another: one trace holds both transactions' spans."""
    detail = server.api(
        "/api/0/projects/default/performance/", params={"since": "1h", "transaction": "/checkout"}
    )
    assert detail["count"] == 2 and len(detail["samples"]) == 2
    durations = [s["duration_ms"] for s in detail["samples"]]
    assert durations == sorted(durations, reverse=True)
    trace = server.api(f"/api/0/traces/{detail['samples'][0]['trace_id']}/")
    by_project: dict[str, list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        by_project.setdefault(span["project"], []).append(span)
    assert set(by_project) == {"default", "backend"}
    ids = {s["span_id"] for s in trace["spans"]}
    roots = [s for s in trace["spans"] if s["parent_span_id"] not in ids]
    assert len(roots) == 1 and roots[0]["project"] == "default" and roots[0]["op"] == "http.server"
    backend_root = next(s for s in by_project["backend"] if s["op"] == "http.server")
    assert backend_root["parent_span_id"] in ids  # hangs under the frontend's outgoing HTTP span
    queries = [s for s in by_project["backend"] if s["op"] == "db.sql.query"]
    assert len(queries) == 7
    for span in trace["spans"]:
        assert isinstance(span["start_timestamp"], float) and span["timestamp"] >= span["start_timestamp"]


def test_an_error_inside_a_traced_request_links_to_its_trace_and_back(
    server: LiveServer, traced: dict[str, Any]
) -> None:
    """The error of /boom carries the trace id of its transaction; the trace lists the error."""
    issues = server.api("/api/0/projects/default/issues/")["issues"]
    (issue,) = [i for i in issues if "payment gateway exploded" in i["title"]]
    (event,) = server.api(f"/api/0/issues/{issue['id']}/events/traces/")
    assert event["trace_id"]
    trace = server.api(f"/api/0/traces/{event['trace_id']}/")
    assert [e["event_id"] for e in trace["errors"]] == [event["event_id"]]
    assert trace["errors"][0]["issue_id"] == issue["id"]
    assert any(s["transaction"] == "/boom" for s in trace["spans"])


def test_repeated_queries_open_an_n_plus_one_issue_with_an_example_trace(
    server: LiveServer, traced: dict[str, Any]
) -> None:
    """Seven sequential SELECTs by id in /inventory open one "N+1 Query" issue of the backend project."""
    issues = server.api("/api/0/projects/backend/issues/")["issues"]
    (issue,) = [i for i in issues if i["type"] == "N+1 Query"]
    assert issue["title"] == "N+1 Query: SELECT * FROM items WHERE id = ?"
    assert issue["culprit"] == "/inventory"
    assert issue["event_count"] == 2  # one per /checkout call, grouped into one issue
    (event, _second) = server.api(f"/api/0/issues/{issue['id']}/events/traces/")
    trace = server.api(f"/api/0/traces/{event['trace_id']}/")
    assert any(s["op"] == "db.sql.query" for s in trace["spans"])


def _cli(server: LiveServer, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    from tripwire_server.cli import main

    assert main([*args, "--database-url", server.config.effective_database_url, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_cli_shows_each_route_its_samples_its_traces_and_an_issues_events(
    server: LiveServer, traced: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """`tripwire performance`, `trace show` and `event list --issue` print what the API serves."""
    rows = _cli(server, capsys, "performance", "--project", "default", "--since", "1h")
    api_rows = _rows(server)
    assert {r["transaction"]: r["count"] for r in rows} == {n: r["count"] for n, r in api_rows.items()}
    assert set(rows[0]) == {
        "transaction", "op", "count", "failure_rate", "apdex", "p50_ms", "p75_ms", "p95_ms", "p99_ms"
    }  # fmt: skip
    slow = _cli(server, capsys, "performance", "--project", "default", "--transaction", "/slow")
    assert slow["count"] == 5 and slow["p95_ms"] == api_rows["/slow"]["p95_ms"]
    assert len(slow["samples"]) == 5
    assert set(slow["samples"][0]) == {"trace_id", "event_id", "duration_ms", "timestamp"}
    trace = _cli(server, capsys, "trace", "show", slow["samples"][0]["trace_id"])
    (root,) = trace["spans"]  # /slow has no child span
    assert root["op"] == "http.server" and root["description"] == "/slow" and root["project"] == "default"
    assert root["timestamp"] - root["start_timestamp"] >= 0.2 * (1 - RELATIVE_ACCURACY)
    issues = server.api("/api/0/projects/default/issues/")["issues"]
    issue = next(i for i in issues if "payment gateway exploded" in i["title"])
    (event,) = _cli(server, capsys, "event", "list", "--issue", str(issue["id"]))
    assert set(event) == {"id", "timestamp", "trace_id"} and event["trace_id"]
    linked = _cli(server, capsys, "trace", "show", event["trace_id"])
    assert linked["errors"] == [
        {"event_id": event["id"], "issue_id": issue["id"], "span_id": linked["errors"][0]["span_id"]}
    ]


def test_the_performance_page_shows_each_route_with_its_count(
    server: LiveServer, traced: dict[str, Any]
) -> None:
    """Logged in, the Performance page lists every route of the traced app with its count."""
    import re

    import httpx

    expected = {n: r["count"] for n, r in _rows(server).items()}
    # A web login of its own (a new password also ends the admin's API tokens).
    server.store.accounts.set_password("admin", "perf-password-123")
    server.token = server.store.accounts.create_api_token(server.store.accounts.get_user("admin").id, "tests")
    with httpx.Client(base_url=server.url, timeout=10) as web:
        form = web.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf
        data = {"csrf_token": csrf.group(1), "username": "admin", "password": "perf-password-123"}
        assert web.post("/login", data={**data, "next": "/"}).status_code == 303
        page = web.get(f"/projects/{server.project.id}/performance", params={"since": "1h"}).text
    rows = dict(
        re.findall(r'summary[^"]*">([^<]+)</a>.*?<td class="num">(\d+)</td>\s*<td class="chart">', page, re.S)
    )
    assert {name: int(count) for name, count in rows.items()} == expected
    assert expected["/fast"] == 12 + 1  # the 12 requests and the readiness probe
