"""Performance pages: the transaction table, a transaction's summary, and the trace waterfall.

Everything is drawn from rollups (the table and the summary) or from stored samples (the trace),
as inline SVG with attributes only: no chart library, no inline style, no script (the CSP).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from ..performance import service
from ..store import NotFound
from ._auth import Page
from ._charts import Bar, BarChart
from .issues import not_found, project_of

RANGES = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "14d": "Last 14 days"}
COLUMNS = {
    "transaction": "Transaction",
    "throughput_per_minute": "TPM",
    "p50_ms": "p50",
    "p75_ms": "p75",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "failure_rate": "Failure rate",
    "apdex": "Apdex",
    "count": "Count",
}


def _filters(page: Page) -> dict[str, Any]:
    params = page.request.query_params
    since = params.get("since", "24h")
    if since not in RANGES:
        since = "24h"
    return {
        "since": since,
        "environment": params.get("environment") or None,
        "release": params.get("release") or None,
    }


def _spark(counts: list[int], width: float = 96.0, height: float = 20.0) -> BarChart:
    peak = max(counts) if counts else 0
    slot = width / max(1, len(counts))
    bars = []
    for index, count in enumerate(counts):
        h = max(1.5, height * count / peak) if count and peak else 0.5
        bars.append(
            Bar(
                round(index * slot, 2),
                round(height - h, 2),
                round(max(0.5, slot - 1), 2),
                round(h, 2),
                count,
                0.0,
            )
        )
    return BarChart(tuple(bars), width, height, sum(counts), peak)


def performance_list(page: Page) -> Response:
    """``GET /projects/{project}/performance``: one row per transaction, sortable, filterable."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    f = _filters(page)
    params = page.request.query_params
    search = params.get("query", "").strip()[:200]
    sort = params.get("sort", "count")
    if sort not in COLUMNS:
        sort = "count"
    descending = params.get("dir", "desc") != "asc"
    until = time.time()
    since = until - service.parse_since(f["since"])
    rows = service.table(
        page.store, project, since, until, environment=f["environment"], release=f["release"], search=search
    )

    # Rows without a value (no Apdex yet) sort last either way.
    present = [r for r in rows if r.get(sort) is not None]
    missing = [r for r in rows if r.get(sort) is None]
    present.sort(key=lambda r: r[sort], reverse=descending)
    rows = present + missing
    for row in rows:
        row["chart"] = _spark(row["sparkline"])
        row["summary_url"] = f"/projects/{project.id}/performance/summary?" + urlencode(
            {"transaction": row["transaction"], "since": f["since"]}
            | {k: v for k, v in (("environment", f["environment"]), ("release", f["release"])) if v}
        )
    environments, releases = page.store.performance.perf_filters(project.id, until - service.MAX_RANGE)

    def sort_url(column: str) -> str:
        direction = "asc" if column == sort and descending else "desc"
        query = {k: v for k, v in {**f, "query": search}.items() if v}
        return "?" + urlencode({**query, "sort": column, "dir": direction})

    return page.render(
        "performance.html",
        project=project,
        rows=rows,
        filters=f,
        search=search,
        ranges=RANGES,
        columns=COLUMNS,
        sort=sort,
        descending=descending,
        sort_urls={c: sort_url(c) for c in COLUMNS},
        environments=environments,
        releases=releases,
        apdex_ms=page.store.performance.apdex_threshold(project.id),
    )


def _line(points: list[dict[str, Any]], key: str, peak: float, width: float, height: float) -> str:
    coords = []
    step = width / max(1, len(points) - 1)
    for i, p in enumerate(points):
        if p[key] is not None:
            coords.append(f"{round(i * step, 2)},{round(height - height * p[key] / peak, 2)}")
    return " ".join(coords)


def transaction_summary(page: Page) -> Response:
    """``GET /projects/{project}/performance/summary?transaction=``: percentiles over time, the
    histogram, time by span op, the slowest samples, issues, and p95 by release."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    name = page.request.query_params.get("transaction", "")[:200]
    if not name:
        return not_found(page, "Transaction")
    f = _filters(page)
    until = time.time()
    since = until - service.parse_since(f["since"])
    data = service.summary(
        page.store, project, name, since, until, environment=f["environment"], release=f["release"]
    )
    width, height = 600.0, 120.0
    peak = max([p[k] or 0 for p in data["series"] for k in ("p50_ms", "p95_ms", "p99_ms")] + [1e-9])
    lines = {k: _line(data["series"], k, peak, width, height) for k in ("p50_ms", "p95_ms", "p99_ms")}
    hist_peak = max([b["count"] for b in data["histogram"]] + [1])
    slot = width / max(1, len(data["histogram"]))
    bars = [
        {
            **b,
            "x": round(i * slot, 2),
            "w": round(max(0.5, slot - 1), 2),
            "h": round(height * b["count"] / hist_peak, 2),
        }
        for i, b in enumerate(data["histogram"])
    ]
    total_ops = sum(o["total_ms"] for o in data["span_ops"]) or 1.0
    for o in data["span_ops"]:
        o["percent"] = round(100 * o["total_ms"] / total_ops, 1)
    # The sampled transactions that have a stored profile link to its flame graph.
    profiles = page.store.profiles.profiles_of_events(project.id, [s["event_id"] for s in data["samples"]])
    for s in data["samples"]:
        found = profiles.get(s["event_id"])
        s["profile_url"] = f"/projects/{found[0]}/profiles/{found[1]}" if found else None
    return page.render(
        "transaction.html",
        project=project,
        name=name,
        data=data,
        filters=f,
        ranges=RANGES,
        chart={"width": width, "height": height, "peak": peak, "lines": lines},
        bars=bars,
        releases=data["releases"][:2],
        profiling_url=f"/projects/{project.id}/profiling/transaction?"
        + urlencode({"transaction": name, "since": f["since"]}),
    )


def trace_view(page: Page) -> Response:
    """``GET /traces/{trace_id}``: the waterfall of every stored span across projects, errors marked."""
    trace_id = str(page.request.path_params["trace_id"]).lower()[:32]
    if not all(c in "0123456789abcdef" for c in trace_id):
        return not_found(page, "Trace")
    # Only the spans and errors of the projects this user may see (a trace crosses projects).
    visible = None if page.user.is_admin else page.store.accounts.member_project_ids(page.user.id)
    data = service.trace(page.store, trace_id, visible)
    if not data["spans"] and not data["errors"]:
        return not_found(page, "Trace")
    spans = service.waterfall(data)
    # Transactions with a stored profile (in a project the user may see) link to its flame graph.
    profiles = page.store.profiles.profiles_of_events(
        None, sorted({s["event_id"] for s in spans if s["is_segment"]})
    )
    for s in spans:
        found = profiles.get(s["event_id"]) if s["is_segment"] else None
        if found is not None and visible is not None and found[0] not in visible:
            found = None
        s["profile_url"] = f"/projects/{found[0]}/profiles/{found[1]}" if found else None
    start = min((s["start_timestamp"] for s in data["spans"]), default=0.0)
    end = max((s["timestamp"] for s in data["spans"]), default=0.0)
    return page.render(
        "trace.html",
        trace_id=trace_id,
        spans=spans,
        errors=data["errors"],
        duration_ms=(end - start) * 1000,
        start=start,
        project_count=len({s["project"] for s in data["spans"]}),
    )
