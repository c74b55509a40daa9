"""JSON API endpoint of structured logs (it joins :data:`tripwire_server.api.ENDPOINTS`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from .api import ApiError, _endpoint, _int, _project, _run
from .logs import LEVELS, parse_attributes
from .store.base import User
from .store.log_records import LogQuery

if TYPE_CHECKING:
    from .state import CollectorState


@_endpoint(
    "GET",
    "/api/0/projects/{project}/logs/",
    "Structured logs of a project, newest first",
    (
        ("level", "trace, debug, info, warn, error or fatal"),
        ("query", "words that must all be in the message"),
        ("attribute", "key=value pairs separated by spaces, matched exactly"),
        ("trace_id", "only the logs of this trace"),
        ("limit", "at most this many, default 100"),
        ("offset", "skip this many"),
    ),
)
async def project_logs(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    params = request.query_params
    level = params.get("level") or None
    if level is not None and level not in LEVELS:
        raise ApiError(400, f"level must be one of {', '.join(LEVELS)}")
    query = LogQuery(
        level=level,
        text=(params.get("query") or "")[:200],
        attributes=parse_attributes((params.get("attribute") or "")[:500]),
        trace_id=(params.get("trace_id") or "").lower() or None,
        limit=_int(request, "limit", 100, 1, 1000),
        offset=_int(request, "offset", 0, 0, 1_000_000),
    )
    rows = await _run(state.store.logs.list_logs, project.id, query)
    return [r.to_json() for r in rows]
