"""JSON API endpoints of user feedback (they join :data:`tripwire_server.api.ENDPOINTS`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from .api import _endpoint, _int, _project, _run
from .store.base import User

if TYPE_CHECKING:
    from .state import CollectorState


@_endpoint(
    "GET",
    "/api/0/projects/{project}/feedback/",
    "User feedback of a project, newest first",
    (("limit", "at most this many, default 100"), ("offset", "skip this many")),
)
async def project_feedback(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    rows = await _run(
        state.store.feedback.list_feedback,
        project.id,
        limit=_int(request, "limit", 100, 1, 1000),
        offset=_int(request, "offset", 0, 0, 1_000_000),
    )
    return [f.to_json() for f in rows]


@_endpoint("GET", "/api/0/issues/{issue_id:id}/feedback/", "User feedback about an issue's events")
async def issue_feedback(request: Request, state: CollectorState, user: User) -> Any:
    issue = await _run(state.store.issues.get_issue, request.path_params["issue_id"])
    rows = await _run(state.store.feedback.list_feedback, issue.project_id, issue_id=issue.id, limit=1000)
    return [f.to_json() for f in rows]
