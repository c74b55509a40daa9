"""Project pages: the landing redirect, releases with release health, and settings (DSN, drops)."""

from __future__ import annotations

import time

from starlette.responses import Response

from ..access import visible_projects
from ..store import NotFound
from ._auth import Page, redirect
from ._charts import shares
from .issues import not_found, project_of


def home(page: Page) -> Response:
    """``GET /``: the issue list of the first project."""
    projects = visible_projects(page.store, page.user)
    if not projects:
        return page.render(
            "error.html",
            status_code=404,
            status=404,
            message="No project yet. Create one with `tripwire project create NAME`."
            if page.user.is_admin
            else "You are not a member of any project yet. Ask an admin to add you.",
        )
    return redirect(f"/projects/{projects[0].id}/issues")


def releases(page: Page) -> Response:
    """``GET /projects/{project}/releases``: events, sessions and crash-free rate per release."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    store = page.store
    items = store.list_releases(project.id)
    since = time.time() - 30 * 86400
    environments: dict[str, dict[str, int]] = {}
    for bucket in store.session_buckets(project.id, since=since):
        key = f"{bucket.release} · {bucket.environment or '(no environment)'}"
        totals = environments.setdefault(
            key, {"started": 0, "crashed": 0, "errored": 0, "abnormal": 0, "healthy": 0}
        )
        totals["started"] += bucket.started
        totals["crashed"] += bucket.crashed
        totals["errored"] += bucket.errored
        totals["abnormal"] += bucket.abnormal
        totals["healthy"] += bucket.healthy
    return page.render(
        "releases.html",
        project=project,
        releases=items,
        outcome_shares={
            r.version: shares(
                [
                    ("healthy", r.sessions_healthy),
                    ("errored", r.sessions_errored),
                    ("abnormal", r.sessions_abnormal),
                    ("crashed", r.sessions_crashed),
                ]
            )
            for r in items
        },
        by_environment=sorted(environments.items()),
    )


def _public_url(page: Page) -> str:
    stored = page.store.get_setting("public_url")
    return (stored or page.config.effective_public_url).rstrip("/")


def settings(page: Page) -> Response:
    """``GET /projects/{project}/settings``: DSN, limits, and what was dropped (client and intake)."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    store = page.store
    since = time.time() - 30 * 86400
    config = page.config
    return page.render(
        "settings.html",
        project=project,
        dsn=project.dsn(_public_url(page)),
        event_count=store.count_events(project.id),
        quota=project.quota_per_minute if project.quota_per_minute is not None else config.quota_per_minute,
        retention_days=project.retention_days
        if project.retention_days is not None
        else config.retention_days,
        retention_max_events=project.retention_max_events
        if project.retention_max_events is not None
        else config.retention_max_events,
        keys=store.list_project_keys(project.id),
        public_url=_public_url(page),
        members=store.list_project_members(project.id),
        client_outcomes=store.outcomes(project.id, source="client", since=since),
        intake_outcomes=store.outcomes(project.id, source="intake", since=since),
    )
