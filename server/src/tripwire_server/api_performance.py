"""JSON API of performance data (docs/performance.md): the transaction table, a transaction's
summary with its samples, traces, the Apdex threshold, and an issue's events with their trace ids.

They join :data:`tripwire_server.api.ENDPOINTS` (routes and OpenAPI come from that table).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from .api import ApiError, _body, _endpoint, _int, _project, _run
from .performance import service
from .store.base import User

if TYPE_CHECKING:
    from .state import CollectorState

_FILTERS = (
    ("since", "time range back from now: 30m, 1h, 24h, 7d (default 24h)"),
    ("environment", "only this environment"),
    ("release", "only this release"),
)


def _range(request: Request) -> tuple[float, float]:
    try:
        seconds = service.parse_since(request.query_params.get("since"))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    until = time.time()
    return until - seconds, until


def _filters(request: Request) -> dict[str, str | None]:
    return {
        "environment": request.query_params.get("environment") or None,
        "release": request.query_params.get("release") or None,
    }


@_endpoint(
    "GET",
    "/api/0/projects/{project}/performance/",
    "Transactions: [{transaction, op, count, failure_rate, apdex, p50_ms, p75_ms, p95_ms, p99_ms}];"
    " with ?transaction=, that row plus its samples (slowest first)",
    (*_FILTERS, ("query", "substring of the transaction name"), ("transaction", "one transaction name")),
)
async def performance(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    since, until = _range(request)
    name = request.query_params.get("transaction") or None
    rows = await _run(
        service.table,
        state.store,
        project,
        since,
        until,
        search=request.query_params.get("query"),
        transaction=name,
        **_filters(request),
    )
    if name is None:
        return rows
    samples = await _run(state.store.performance.list_samples, project.id, name, since=since)
    row = (
        rows[0]
        if rows
        else {
            "transaction": name,
            "op": None,
            "count": 0,
            "failure_rate": 0.0,
            "apdex": None,
            "p50_ms": None,
            "p75_ms": None,
            "p95_ms": None,
            "p99_ms": None,
        }
    )
    return {**row, "samples": [service.sample_json(s) for s in samples]}


@_endpoint(
    "GET",
    "/api/0/projects/{project}/performance/summary/",
    "A transaction's summary: percentiles over time, histogram, time by span op, samples, issues,"
    " p95 by release",
    (("transaction", "the transaction name (required)"), *_FILTERS),
)
async def performance_summary(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    name = request.query_params.get("transaction")
    if not name:
        raise ApiError(400, "the transaction query parameter is required")
    since, until = _range(request)
    return await _run(service.summary, state.store, project, name, since, until, **_filters(request))


@_endpoint(
    "GET",
    "/api/0/traces/{trace_id}/",
    "A trace across projects: {trace_id, spans: [{span_id, parent_span_id, op, description,"
    " start_timestamp, timestamp, project}], errors: [{event_id, issue_id, span_id}]}",
)
async def get_trace(request: Request, state: CollectorState, user: User) -> Any:
    trace_id = request.path_params["trace_id"]
    if not (1 <= len(trace_id) <= 32 and all(c in "0123456789abcdefABCDEF" for c in trace_id)):
        raise ApiError(400, "a trace id is 32 hexadecimal digits")
    visible = None if user.is_admin else await _run(state.store.accounts.member_project_ids, user.id)
    data = await _run(service.trace, state.store, trace_id.lower(), visible)
    if not data["spans"] and not data["errors"]:
        raise ApiError(404, f"no stored transaction or event of trace {trace_id}")
    return data


@_endpoint(
    "GET",
    "/api/0/issues/{issue_id:id}/events/traces/",
    "An issue's events with their trace ids: [{event_id, timestamp, trace_id}], newest first",
    (("limit", "page size, default 50"), ("offset", "rows to skip")),
)
async def issue_event_traces(request: Request, state: CollectorState, user: User) -> Any:
    issue = await _run(state.store.issues.get_issue, request.path_params["issue_id"])
    events = await _run(
        state.store.issues.list_events,
        issue.id,
        limit=_int(request, "limit", 50, 1, 1000),
        offset=_int(request, "offset", 0, 0, 10**9),
    )
    traces = await _run(state.store.performance.trace_ids, issue.project_id, [e.event_id for e in events])
    return [
        {"event_id": e.event_id, "timestamp": e.timestamp, "trace_id": traces.get(e.event_id)} for e in events
    ]


@_endpoint(
    "PUT",
    "/api/0/projects/{project}/performance/settings/",
    "Set the project's Apdex threshold (admin)",
    body='{"apdex_threshold_ms": 300}',
)
async def performance_settings(request: Request, state: CollectorState, user: User) -> Any:
    if not user.is_admin:
        raise ApiError(403, "only admins can change the Apdex threshold")
    project = await _project(state, request.path_params["project"])
    body = await _body(request)
    value = body.get("apdex_threshold_ms")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 600_000:
        raise ApiError(400, "apdex_threshold_ms must be a number of milliseconds in (0, 600000]")
    await _run(state.store.performance.set_apdex_threshold, project.id, float(value))
    return {"apdex_threshold_ms": float(value)}
