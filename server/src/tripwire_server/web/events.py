"""The page of one event and its raw JSON download."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from ..store import Event, Issue, NotFound, Project
from ..store.log_records import LogQuery, LogRecord
from ._auth import Page
from ._event_view import event_view
from ._markdown import event_markdown
from ._render import SECURITY_HEADERS
from .attachments import attachment_views
from .issues import not_found


def _lookup(page: Page) -> tuple[Issue, Project, Event] | None:
    store = page.store
    try:
        issue = store.issues.get_issue(int(page.request.path_params["issue_id"]))
        event = store.issues.get_event(str(page.request.path_params["event_id"]), issue.project_id)
        project = store.accounts.get_project(issue.project_id)
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
    newer, older = _neighbours(page, issue, event)
    return page.render(
        "event.html",
        project=project,
        issue=issue,
        event=event,
        view=event_view(event.data),
        newer=newer,
        older=older,
        attachments=attachment_views(page.store, project.id, event.event_id),
        trace_logs=trace_logs(page, project.id, event.data),
    )


def trace_logs(page: Page, project_id: int, data: dict[str, Any]) -> list[LogRecord]:
    """The logs of the event's trace (``contexts.trace.trace_id``), newest first, at most 100."""
    trace = (data.get("contexts") or {}).get("trace")
    trace_id = trace.get("trace_id") if isinstance(trace, dict) else None
    if not isinstance(trace_id, str) or not trace_id:
        return []
    return page.store.logs.list_logs(project_id, LogQuery(trace_id=trace_id.lower(), limit=100))


def _neighbours(page: Page, issue: Issue, event: Event) -> tuple[str | None, str | None]:
    """Links to the next newer and older event of the issue.

    Event links carry their position in the issue's newest-first list (``?i=``), so the neighbours
    are one small query away; if events arrived since, the position no longer matches and the page
    simply shows no neighbours.
    """
    try:
        position = max(0, min(int(page.request.query_params.get("i", "")), 10_000_000))
    except ValueError:
        return None, None
    start = max(0, position - 1)
    window = page.store.issues.list_events(issue.id, limit=3, offset=start)
    ids = [summary.event_id for summary in window]
    if event.event_id not in ids:
        return None, None
    index = ids.index(event.event_id)

    def link(k: int) -> str:
        return f"/issues/{issue.id}/events/{ids[k]}?i={start + k}"

    newer = link(index - 1) if index > 0 else None
    older = link(index + 1) if index + 1 < len(ids) else None
    return newer, older


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


def event_md(page: Page) -> Response:
    """``GET /issues/{issue_id}/events/{event_id}/md``: the event as Markdown, shown as plain text."""
    found = _lookup(page)
    if found is None:
        return not_found(page, "Event")
    issue, _, event = found
    url = str(page.request.url.replace(query="", fragment="")).removesuffix("/md")
    text = event_markdown(issue, event, event_view(event.data), url)
    return Response(text, media_type="text/plain; charset=utf-8", headers=SECURITY_HEADERS)
