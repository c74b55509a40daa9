"""Project pages: the landing redirect, releases with release health, and settings (DSN, limits,
the attachment budget, drops)."""

from __future__ import annotations

import time

from starlette.responses import Response

from .. import item_types
from ..access import visible_projects
from ..refusals import REASONS
from ..store import NotFound, Project
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
    items = store.releases.list_releases(project.id)
    since = time.time() - 30 * 86400
    environments: dict[str, dict[str, int]] = {}
    for bucket in store.releases.session_buckets(project.id, since=since):
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
    stored = page.store.accounts.get_setting("public_url")
    return (stored or page.config.effective_public_url).rstrip("/")


MiB = 1024 * 1024
#: The largest budget the form takes (1 PiB): a bound, not advice.
_MAX_MIB = 1024**3
_BUDGET_FIELDS = (
    ("attachment_mib_per_hour", "attachment_bytes_per_hour"),
    ("attachment_mib_total", "attachment_bytes_total"),
)


def _parse_budget(form: dict[str, str]) -> dict[str, int]:
    """The project fields an admin's budget form sets, in bytes (-1: back to the default).

    Raises ValueError with the reason when a field is not a whole number of MiB from 0 up."""
    changes: dict[str, int] = {}
    for field, column in _BUDGET_FIELDS:
        if field not in form:
            continue
        text = form[field].strip()
        if not text:
            changes[column] = -1
        elif not text.isdigit() or int(text) > _MAX_MIB:
            raise ValueError(f"an attachment budget must be a whole number of MiB from 0 to {_MAX_MIB}")
        else:
            changes[column] = int(text) * MiB
    return changes


def settings(page: Page) -> Response:
    """``GET /projects/{project}/settings``: DSN, limits, the attachment budget and what was
    dropped (client and intake); ``POST`` (admins only) sets the project's attachment budget."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    error = ""
    if page.request.method == "POST":
        if not page.user.is_admin:
            message = "Only an admin may change a project's limits."
            return page.render("error.html", status_code=403, status=403, message=message)
        try:
            changes = _parse_budget(page.form)
        except ValueError as exc:
            error = str(exc)
        else:
            page.store.accounts.update_project(project.id, **changes)
            return redirect(f"/projects/{project.id}/settings")
    return render_settings(page, project, error=error)


def render_settings(
    page: Page, project: Project, *, error: str = "", new_token: str | None = None, status_code: int = 200
) -> Response:
    """The Settings page of ``project`` (``new_token``: an API token just created, shown once)."""
    store = page.store
    since = time.time() - 30 * 86400
    config = page.config
    usage = store.queue.attachment_usage(project.id)
    per_hour = project.attachment_bytes_per_hour
    total = project.attachment_bytes_total
    return page.render(
        "settings.html",
        status_code=400 if error else status_code,
        project=project,
        dsn=project.dsn(_public_url(page)),
        event_count=store.issues.count_events(project.id),
        quota=project.quota_per_minute if project.quota_per_minute is not None else config.quota_per_minute,
        retention_days=project.retention_days
        if project.retention_days is not None
        else config.retention_days,
        retention_max_events=project.retention_max_events
        if project.retention_max_events is not None
        else config.retention_max_events,
        keys=store.accounts.list_project_keys(project.id),
        members=store.accounts.list_project_members(project.id),
        tokens=store.accounts.list_api_tokens(None if page.user.is_admin else page.user.id),
        new_token=new_token,
        attachment_per_hour=config.attachment_bytes_per_hour if per_hour is None else per_hour,
        attachment_total=config.attachment_bytes_total if total is None else total,
        attachment_hour_bytes=usage.used_in(float(int(time.time() // 3600) * 3600)),
        attachment_stored_bytes=usage.stored_bytes,
        budget_error=error,
        client_outcomes=store.releases.outcomes(project.id, source="client", since=since),
        intake_outcomes=store.releases.outcomes(project.id, source="intake", since=since),
        server_refusals=_server_refusals(page) if page.user.is_admin else None,
        not_stored=_not_stored(page, project.id),
    )


def _server_refusals(page: Page) -> list[tuple[str, str, int]]:
    """``(reason, meaning, count)`` of the refusals this process counted outside any project."""
    counts = page.refusals.snapshot()
    return [(reason, meaning, counts.get(reason, 0)) for reason, meaning in REASONS.items()]


def _not_stored(page: Page, project_id: int) -> list[tuple[str, int, str]]:
    """What arrived in the last 24 hours with no home here: (item type, count, why)."""
    rows = page.store.releases.outcomes(project_id, source="intake", since=time.time() - 86400)
    out = []
    for row in rows:
        known = item_types.lookup(row.category)
        if row.reason == item_types.NOT_STORED and known is not None:
            out.append((row.category, row.quantity, known.home))
    return sorted(out, key=lambda r: -r[1])
