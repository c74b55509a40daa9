"""Cron monitor pages: the monitors of a project with a timeline of their last runs, and one monitor."""

from __future__ import annotations

from starlette.responses import Response

from ..monitors import describe_schedule
from ..store import NotFound
from ._auth import Page
from .issues import not_found, project_of

#: Runs shown in the list's timeline (oldest left).
TIMELINE = 20


def monitor_list(page: Page) -> Response:
    """``GET /projects/{project}/monitors``: status, last check-in, next expected, last runs."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    items = page.store.monitors.list_monitors(project.id)
    timelines = {m.id: list(reversed(page.store.monitors.list_checkins(m.id, TIMELINE))) for m in items}
    return page.render(
        "monitors.html",
        project=project,
        monitors=items,
        timelines=timelines,
        schedules={m.id: describe_schedule(m.schedule) for m in items},
    )


def monitor_detail(page: Page) -> Response:
    """``GET /projects/{project}/monitors/{slug}``: the monitor's settings and its check-ins."""
    try:
        project = project_of(page)
        monitor = page.store.monitors.get_monitor(project.id, page.request.path_params["slug"])
    except NotFound:
        return not_found(page, "Monitor")
    return page.render(
        "monitor.html",
        project=project,
        monitor=monitor,
        schedule=describe_schedule(monitor.schedule),
        checkins=page.store.monitors.list_checkins(monitor.id, 100),
    )
