"""The issue list of a project and the page of one issue, with its status actions."""

from __future__ import annotations

import dataclasses
import time
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from ..access import MAX_ID
from ..search import parse_query
from ..store import ISSUE_STATUSES, Issue, IssueQuery, NotFound, Project, StoreError
from ._auth import Page, redirect
from ._charts import hourly_chart, shares
from ._event_view import event_view

PAGE_SIZE = 50
TABS = ("unresolved", "resolved", "ignored", "all")
LEVELS = ("fatal", "error", "warning", "info", "debug")
#: Releases and environments offered in the filter drop-downs (others can still be typed).
MAX_CHOICES = 50
SORTS = {"last_seen": "Last seen", "first_seen": "First seen", "event_count": "Events"}


def not_found(page: Page, what: str) -> Response:
    """The 404 page."""
    return page.render("error.html", status_code=404, status=404, message=f"{what} not found.")


def project_of(page: Page) -> Project:
    """The project named (or numbered) in the URL; NotFound if there is none."""
    return page.store.accounts.get_project(str(page.request.path_params["project"]))


def issue_list(page: Page) -> Response:
    """``GET /projects/{project}/issues``: tabs by status, search, filters, counts, sparklines."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    params = page.request.query_params
    search = params.get("query", "").strip()[:1000]
    tab = params.get("status", "unresolved")
    if tab not in TABS:
        tab = "unresolved"
    sort = params.get("sort", "last_seen")
    if sort not in SORTS:
        sort = "last_seen"
    try:
        page_no = max(1, min(int(params.get("page", "1")), 10_000))
    except ValueError:
        page_no = 1
    # The drop-downs and the tab are the base; terms typed in the search box win over them.
    base = parse_query(
        search,
        IssueQuery(
            status=None if tab == "all" else tab,
            level=params.get("level") or None,
            release=params.get("release") or None,
            environment=params.get("environment") or None,
            sort=sort,  # type: ignore[arg-type]
            limit=PAGE_SIZE,
            offset=(page_no - 1) * PAGE_SIZE,
        ),
    )
    tab = base.status or "all"
    level, release, environment = base.level, base.release, base.environment
    store = page.store
    counts = {name: store.issues.count_issues(project.id, _with_status(base, name)) for name in TABS}
    issues = store.issues.list_issues(project.id, _with_status(base, tab))
    now = time.time()
    charts = {
        issue.id: hourly_chart(
            store.issues.hourly_counts(project.id, issue_id=issue.id, since=now - 24 * 3600, until=now + 1),
            now=now,
        )
        for issue in issues
    }

    project_chart = hourly_chart(
        store.issues.hourly_counts(project.id, since=now - 24 * 3600, until=now + 1),
        now=now,
        width=240,
        height=28,
        gap=2,
    )

    def link(**changes: Any) -> str:
        current = {
            "query": search,
            "status": tab,
            "level": level or "",
            "release": release or "",
            "environment": environment or "",
            "sort": sort,
        }
        current.update({k: v for k, v in changes.items()})
        return "?" + urlencode({k: v for k, v in current.items() if v})

    total = counts[tab]
    return page.render(
        "issues.html",
        project=project,
        issues=issues,
        charts=charts,
        project_chart=project_chart,
        counts=counts,
        tabs=TABS,
        tab=tab,
        search=search,
        level=level or "",
        release=release or "",
        environment=environment or "",
        levels=LEVELS,
        releases=[r.version for r in store.releases.list_releases(project.id)][:MAX_CHOICES],
        environments=sorted(
            {b.environment for b in store.releases.session_buckets(project.id, since=now - 30 * 86400)} - {""}
        )[:MAX_CHOICES],
        sort=sort,
        sorts=SORTS,
        page_no=page_no,
        prev_link=link(page=page_no - 1) if page_no > 1 else None,
        next_link=link(page=page_no + 1) if page_no * PAGE_SIZE < total else None,
        tab_link=lambda name: link(status=name, query=_without_status_terms(search)),
        first_shown=(page_no - 1) * PAGE_SIZE + 1 if issues else 0,
        last_shown=(page_no - 1) * PAGE_SIZE + len(issues),
        total=total,
        now=now,
        back=f"?{page.request.url.query}" if page.request.url.query else "",
    )


def _with_status(query: IssueQuery, status: str) -> IssueQuery:
    return dataclasses.replace(query, status=None if status == "all" else status)


def _without_status_terms(search: str) -> str:
    # Clicking a tab must win over an ``is:`` term typed earlier.
    return " ".join(word for word in search.split() if not word.lower().startswith(("is:", "status:")))


def issue_detail(page: Page) -> Response:
    """``GET /issues/{issue_id}``: status, actions, why grouped, tags, latest event, events."""
    store = page.store
    try:
        issue = store.issues.get_issue(int(page.request.path_params["issue_id"]))
        project = store.accounts.get_project(issue.project_id)
    except NotFound:
        return not_found(page, "Issue")
    params = page.request.query_params
    try:
        offset = max(0, min(int(params.get("offset", "0")), 10_000_000))
    except ValueError:
        offset = 0
    events = store.issues.list_events(issue.id, limit=21, offset=offset)
    latest = store.issues.latest_event(issue.id)
    tags: dict[str, list[tuple[str, int]]] = {}
    for tag in store.issues.issue_tags(issue.id):
        tags.setdefault(tag.key, []).append((tag.value, tag.count))
    now = time.time()
    chart = hourly_chart(
        store.issues.hourly_counts(project.id, issue_id=issue.id, since=now - 48 * 3600, until=now + 1),
        now=now,
        hours=48,
        width=480,
        height=60,
        gap=2,
    )
    return page.render(
        "issue.html",
        project=project,
        issue=issue,
        chart=chart,
        tags=[(key, shares(values)) for key, values in tags.items()],
        activity=store.issues.issue_activity(issue.id),
        feedback=store.feedback.list_feedback(project.id, issue_id=issue.id, limit=50),
        latest=latest,
        view=event_view(latest.data) if latest else None,
        events=events[:20],
        offset=offset,
        older=offset + 20 if len(events) > 20 else None,
        newer=max(0, offset - 20) if offset > 0 else None,
        releases=[r.version for r in store.releases.list_releases(project.id)],
        explanation=_explanation(issue),
    )


def _explanation(issue: Issue) -> dict[str, Any]:
    raw = issue.grouping_explanation if isinstance(issue.grouping_explanation, dict) else {}
    components = raw.get("components")
    if not isinstance(components, list):
        components = []
    items = []
    for component in components:
        if isinstance(component, dict):
            items.append([(str(k), v if isinstance(v, str) else str(v)) for k, v in component.items()])
        else:
            items.append([("", str(component))])
    return {
        "strategy": str(raw.get("strategy", "")),
        "description": str(raw.get("description", "")),
        "components": items,
    }


#: Form ``action`` values of the status buttons and what they set.
ACTIONS = {
    "resolve": "resolved",
    "resolve_in_release": "resolved",
    "ignore": "ignored",
    "reopen": "unresolved",
    "unignore": "unresolved",
}


def issue_status(page: Page) -> Response:
    """``POST /issues/{issue_id}/status``: resolve (optionally in a release), ignore or reopen."""
    try:
        issue_id = int(page.request.path_params["issue_id"])
        page.store.issues.get_issue(issue_id)
    except NotFound:
        return not_found(page, "Issue")
    action = page.form.get("action", "")
    status = ACTIONS.get(action)
    if status is None or status not in ISSUE_STATUSES:
        return page.render("error.html", status_code=400, status=400, message="Unknown action.")
    release = page.form.get("release", "").strip()[:200] if action == "resolve_in_release" else ""
    if action == "resolve_in_release" and not release:
        return page.render(
            "error.html", status_code=400, status=400, message="Choose the release that fixes this issue."
        )
    try:
        page.store.issues.set_issue_status(issue_id, status, resolved_in_release=release or None)
    except StoreError as exc:
        return page.render("error.html", status_code=400, status=400, message=str(exc))
    return redirect(f"/issues/{issue_id}")


def bulk_status(page: Page) -> Response:
    """``POST /projects/{project}/issues/bulk``: resolve, ignore or reopen the ticked issues."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    status = ACTIONS.get(page.form.get("action", ""))
    if status is None or page.form.get("action") == "resolve_in_release":
        return page.render("error.html", status_code=400, status=400, message="Unknown action.")
    ids = [
        int(v)
        for k, v in page.form.items()
        # ASCII digits, at most 19 of them: int() refuses Unicode digits and > 4300 digits.
        if k.startswith("issue_") and v.isascii() and v.isdigit() and len(v) <= 19 and int(v) <= MAX_ID
    ]
    for issue_id in ids[:PAGE_SIZE]:
        try:
            if page.store.issues.get_issue(issue_id).project_id == project.id:
                page.store.issues.set_issue_status(issue_id, status)
        except NotFound:
            continue
    back = page.form.get("back", "")
    return redirect(f"/projects/{project.id}/issues" + (back if back.startswith("?") else ""))
