"""The Performance page, the transaction summary and the trace view, over HTTP (server-rendered)."""

from __future__ import annotations

import re
import time
import uuid

import httpx

from ..conftest import make_event
from ..performance.payloads import n_plus_one_spans, transaction
from .conftest import Collector, post_envelope, wait_for

HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


def _report(collector: Collector, name: str) -> tuple[object, str]:
    project = collector.new_project(name)
    trace_id = uuid.uuid4().hex
    now = time.time()
    items = []
    for i, ms in enumerate((40, 60, 80, 120, 900)):
        spans = [("db.sql.query", HOSTILE, 1.0, 5.0)] + (n_plus_one_spans() if i == 0 else [])
        tx = transaction("/orders/{id}", ms, end=now - i, spans=spans, trace_id=trace_id if i == 4 else None)
        items.append(({"type": "transaction"}, tx))
    items.append(({"type": "transaction"}, transaction("/health", 2, end=now)))
    post_envelope(collector, project, items)
    error = make_event(value="card declined", contexts={"trace": {"trace_id": trace_id, "span_id": "1" * 16}})
    error["transaction"] = "/orders/{id}"
    post_envelope(collector, project, [({"type": "event"}, error)])
    wait_for(
        lambda: (
            collector.store.performance.list_samples(project.id, "/orders/{id}")
            and collector.store.issues.count_events(project.id) >= 2
        )
    )
    return project, trace_id


def test_the_performance_page_lists_each_transaction_sorted_by_any_column(
    collector: Collector, web: httpx.Client
) -> None:
    """Rows per transaction with p95 and Apdex; ?sort=p95_ms&dir=asc puts the fast one first."""
    project, _trace = _report(collector, "perf-page")
    page = web.get(f"/projects/{project.id}/performance", params={"since": "1h"})  # type: ignore[attr-defined]
    assert page.status_code == 200
    names = re.findall(r'class="mono" href="[^"]*summary[^"]*">([^<]+)</a>', page.text)
    assert names == ["/orders/{id}", "/health"]  # by count, busiest first
    ascending = web.get(
        f"/projects/{project.id}/performance",  # type: ignore[attr-defined]
        params={"since": "1h", "sort": "p95_ms", "dir": "asc"},
    )
    assert re.findall(r'class="mono" href="[^"]*summary[^"]*">([^<]+)</a>', ascending.text) == [
        "/health",
        "/orders/{id}",
    ]
    searched = web.get(f"/projects/{project.id}/performance", params={"query": "health"})  # type: ignore[attr-defined]
    assert "/health" in searched.text and "/orders/{id}" not in searched.text
    assert "Performance" in page.text


def test_the_summary_shows_percentiles_span_ops_samples_and_issues(
    collector: Collector, web: httpx.Client
) -> None:
    """The summary of /orders/{id}: p99 near 900 ms, db time, five samples slowest first, the error."""
    project, trace_id = _report(collector, "perf-summary")
    page = web.get(
        f"/projects/{project.id}/performance/summary",  # type: ignore[attr-defined]
        params={"transaction": "/orders/{id}", "since": "1h"},
    )
    assert page.status_code == 200
    assert "polyline" in page.text and "Duration histogram" in page.text
    samples = re.findall(r'href="/traces/([0-9a-f]+)"', page.text)
    assert len(samples) == 5 and samples[0] == trace_id  # the 900 ms one is the slowest
    assert ">db<" in page.text
    assert "card declined" in page.text  # the error issue seen in this transaction
    assert HOSTILE not in page.text


def test_the_trace_view_draws_every_span_marks_errors_and_escapes_descriptions(
    collector: Collector, web: httpx.Client
) -> None:
    """Hostile span descriptions render as text; the error of the trace is listed and linked."""
    project, trace_id = _report(collector, "perf-trace")
    page = web.get(f"/traces/{trace_id}")
    assert page.status_code == 200
    assert HOSTILE not in page.text
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page.text
    assert page.text.count('class="span-row') == 2  # the root and its one db span
    assert re.search(r'href="/issues/\d+/events/[0-9a-f]{32}"', page.text)
    assert web.get("/traces/" + "f" * 32).status_code == 404


def test_an_error_event_with_a_trace_id_links_to_its_trace(collector: Collector, web: httpx.Client) -> None:
    """The event page of an error that carries contexts.trace shows "View trace"."""
    project, trace_id = _report(collector, "perf-link")
    issues = collector.store.issues.list_issues(project.id)  # type: ignore[attr-defined]
    error_issue = next(i for i in issues if "card declined" in i.title)
    event = collector.store.issues.latest_event(error_issue.id)
    assert event is not None
    page = web.get(f"/issues/{error_issue.id}/events/{event.event_id}")
    assert f'href="/traces/{trace_id}"' in page.text and "View trace" in page.text


def test_an_n_plus_one_query_shows_in_the_issue_list_with_an_example_trace(
    collector: Collector, web: httpx.Client
) -> None:
    """Six SELECTs by id in a row open an "N+1 Query" issue whose page links to the trace."""
    project, _trace = _report(collector, "perf-n1")
    listing = web.get(f"/projects/{project.id}/issues")  # type: ignore[attr-defined]
    assert "N+1 Query" in listing.text and "SELECT * FROM items WHERE id = ?" in listing.text
    issue = next(i for i in collector.store.issues.list_issues(project.id) if i.type == "N+1 Query")  # type: ignore[attr-defined]
    page = web.get(f"/issues/{issue.id}")
    assert "View trace" in page.text
