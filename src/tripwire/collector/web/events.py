"""The page of one event and its raw JSON download."""

from __future__ import annotations

import json

from starlette.responses import Response

from ..store import Event, Issue, NotFound, Project
from ._auth import Page
from ._event_view import event_view
from ._render import SECURITY_HEADERS
from .issues import not_found


def _lookup(page: Page) -> tuple[Issue, Project, Event] | None:
    store = page.store
    try:
        issue = store.get_issue(int(page.request.path_params["issue_id"]))
        event = store.get_event(str(page.request.path_params["event_id"]), issue.project_id)
        project = store.get_project(issue.project_id)
    except (NotFound, ValueError):
        return None
    # An event id of another issue must not show under this one's URL.
    if event.issue_id != issue.id:
        return None
    return issue, project, event


def event_detail(page: Page) -> Response:
    """``GET /issues/{issue_id}/events/{event_id}``: exception chain, frames, breadcrumbs, request,
    user, tags, contexts."""
    found = _lookup(page)
    if found is None:
        return not_found(page, "Event")
    issue, project, event = found
    return page.render(
        "event.html",
        project=project,
        issue=issue,
        event=event,
        view=event_view(event.data),
    )


def event_json(page: Page) -> Response:
    """``GET /issues/{issue_id}/events/{event_id}/json``: the stored payload as a download."""
    found = _lookup(page)
    if found is None:
        return not_found(page, "Event")
    _, _, event = found
    body = json.dumps(event.data, indent=2, ensure_ascii=False, default=str).encode()
    # A download, never rendered: the payload is attacker-controlled.
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="event-{event.event_id}.json"',
    }
    return Response(body, media_type="application/json", headers=headers)
