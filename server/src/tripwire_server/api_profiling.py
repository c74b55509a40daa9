"""JSON API of profiles (docs/profiling.md): a transaction's slowest functions, the regression
between two releases, the stored profiles of a transaction, and one profile's call tree.

They join :data:`tripwire_server.api.ENDPOINTS` (routes and OpenAPI come from that table).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from .api import ApiError, _endpoint, _int, _project, _run
from .performance.service import parse_since
from .profiling import service
from .profiling.aggregate import flame_tree
from .store.base import User

if TYPE_CHECKING:
    from .state import CollectorState

_FILTERS = (
    ("transaction", "the transaction name (required)"),
    ("since", "time range back from now: 30m, 1h, 24h, 7d (default 24h)"),
    ("release", "only this release"),
)


def _range(request: Request) -> tuple[float, float]:
    try:
        seconds = parse_since(request.query_params.get("since"))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    until = time.time()
    return until - seconds, until


def _transaction(request: Request) -> str:
    name = request.query_params.get("transaction")
    if not name:
        raise ApiError(400, "the transaction query parameter is required")
    return name


@_endpoint(
    "GET",
    "/api/0/projects/{project}/profiling/functions/",
    "A transaction's slowest functions: [{function, module, file, self_share, total_share, samples,"
    " total_samples}] by self_share (0..1 of the transaction thread's samples; idle frames left out)",
    (*_FILTERS, ("limit", "rows, default 100")),
)
async def profile_functions(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    name = _transaction(request)
    since, until = _range(request)
    _totals, rows = await _run(
        service.functions,
        state.store,
        project,
        name,
        since,
        until,
        release=request.query_params.get("release") or None,
        limit=_int(request, "limit", 100, 1, 2000),
    )
    return rows


@_endpoint(
    "GET",
    "/api/0/projects/{project}/profiling/regression/",
    "Each function's share of a transaction's time in a release (default: the newest) and in the"
    " release before it: {release, previous_release, functions: [{function, module, file, self_share,"
    " previous_self_share, total_share, previous_total_share, change}]}",
    _FILTERS,
)
async def profile_regression(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    name = _transaction(request)
    since, until = _range(request)
    release = request.query_params.get("release") or None
    return await _run(service.regression, state.store, project, name, since, until, release=release)


@_endpoint(
    "GET",
    "/api/0/projects/{project}/profiling/profiles/",
    "Stored profiles, newest first: [{profile_id, kind, event_id, trace_id, name, release,"
    " environment, start, end, duration_ms, samples}]",
    (
        ("transaction", "only this transaction name"),
        ("since", "time range back from now (default 24h)"),
        ("release", "only this release"),
        ("limit", "rows, default 50"),
    ),
)
async def list_profiles(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    since, _until = _range(request)
    rows = await _run(
        state.store.profiles.list_profiles,
        project.id,
        request.query_params.get("transaction") or None,
        since=since,
        release=request.query_params.get("release") or None,
        limit=_int(request, "limit", 50, 1, 500),
    )
    return [r.to_json() for r in rows]


@_endpoint(
    "GET",
    "/api/0/projects/{project}/profiling/profiles/{profile_id}/",
    "One stored profile: its details and the call tree of its transaction's thread"
    " {function, module, file, total, self, children}",
)
async def get_profile(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    profile_id = request.path_params["profile_id"]
    if len(profile_id) > 100:
        raise ApiError(404, "no such profile")
    info, profile = await _run(state.store.profiles.get_profile, project.id, profile_id)
    return {**info.to_json(), "tree": flame_tree([profile]).to_json()}
