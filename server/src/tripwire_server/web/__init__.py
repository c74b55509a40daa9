"""The collector's web dashboard: server-rendered pages behind a login.

The collector app mounts :func:`routes`. Every page needs a dashboard login (``/login``); every form
carries a CSRF token; a page of a project the user is not a member of is a 404 (admins see every
project); every HTML answer carries a strict Content-Security-Policy; every value that
came from an event is escaped by Jinja2's autoescape (see docs/dashboard.md).

Pages:

    /                                             -> the first project's issues
    /login, /logout                               login form, logout (POST)
    /projects/{project}/issues                    issue list: status tabs, search, filters, sparklines
    /projects/{project}/issues/bulk               resolve/ignore/reopen ticked issues (POST)
    /projects/{project}/releases                  releases with sessions and crash-free rate
    /projects/{project}/settings                  DSN keys, members, limits, client-report and intake
                                                  counters; POST: an admin sets the attachment budget
    /projects/{project}/keys/rotate|revoke        add a DSN key / revoke one (POST, admins)
    /projects/{project}/members/add|remove        add / remove a member (POST, admins)
    /projects/{project}/tokens/create|revoke      create one's API token (shown once) / revoke (POST)
    /projects/{project}/alerts                    alert rules, and a form to add one (POST, admins)
    /projects/{project}/alerts/{rule_id}          a rule with its history; .../test, .../delete (POST)
    /projects/{project}/monitors                  cron monitors with a timeline of their last runs
    /projects/{project}/monitors/{slug}           one monitor and its check-ins
    /projects/{project}/performance               transactions: throughput, percentiles, Apdex
    /projects/{project}/performance/summary       one transaction (?transaction=NAME)
    /projects/{project}/profiling                 profiled transactions, recent profiles
    /projects/{project}/profiling/transaction     slowest functions, flame graph, regression
    /projects/{project}/profiles/{profile_id}     one profile's flame graph
    /traces/{trace_id}                            the waterfall of a trace across projects
    /issues/{issue_id}                            one issue: actions, why grouped, tags, latest event
    /issues/{issue_id}/status                     change the status (POST)
    /issues/{issue_id}/events/{event_id}          one event: exception chain, frames, breadcrumbs, ...
    /issues/{issue_id}/events/{event_id}/json     the stored event as a JSON download
    /issues/{issue_id}/events/{event_id}/md       the event as Markdown (plain text), for tickets
    /static/...                                   the stylesheet and a small script
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from . import (
    alerts,
    attachments,
    events,
    feedback,
    issues,
    logs,
    monitors,
    performance,
    profiling,
    project_access,
    projects,
)
from ._auth import login_endpoints, login_required
from ._render import STATIC_DIR

__all__ = ["routes"]


class _Static(StaticFiles):
    """The stylesheet and script, never sniffed into another type."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def routes(state: Any) -> list[BaseRoute]:
    """The dashboard's routes; ``state`` carries ``store`` (a :class:`~..store.Store`) and ``config``
    (a :class:`~..config.CollectorConfig`)."""
    login, logout = login_endpoints(state)

    def page(path: str, handler: Any, methods: tuple[str, ...] = ("GET",)) -> Route:
        return Route(path, login_required(state, handler), methods=list(methods))

    return [
        Route("/login", login, methods=["GET", "POST"], name="login"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        page("/", projects.home),
        page("/projects/{project}/issues", issues.issue_list),
        page("/projects/{project}/issues/bulk", issues.bulk_status, ("POST",)),
        page("/projects/{project}/releases", projects.releases),
        page("/projects/{project}/settings", projects.settings, ("GET", "POST")),
        page("/projects/{project}/keys/rotate", project_access.rotate_key, ("POST",)),
        page("/projects/{project}/keys/revoke", project_access.revoke_key, ("POST",)),
        page("/projects/{project}/members/add", project_access.add_member, ("POST",)),
        page("/projects/{project}/members/remove", project_access.remove_member, ("POST",)),
        page("/projects/{project}/tokens/create", project_access.create_token, ("POST",)),
        page("/projects/{project}/tokens/revoke", project_access.revoke_token, ("POST",)),
        page("/projects/{project}/alerts", alerts.alert_list, ("GET", "POST")),
        page("/projects/{project}/alerts/{rule_id:id}", alerts.alert_detail),
        page("/projects/{project}/alerts/{rule_id:id}/test", alerts.alert_test, ("POST",)),
        page("/projects/{project}/alerts/{rule_id:id}/delete", alerts.alert_delete, ("POST",)),
        page("/projects/{project}/monitors", monitors.monitor_list),
        page("/projects/{project}/monitors/{slug}", monitors.monitor_detail),
        page("/projects/{project}/performance", performance.performance_list),
        page("/projects/{project}/performance/summary", performance.transaction_summary),
        page("/traces/{trace_id}", performance.trace_view),
        page("/projects/{project}/profiling", profiling.profiling_list),
        page("/projects/{project}/profiling/transaction", profiling.profiling_transaction),
        page("/projects/{project}/profiles/{profile_id}", profiling.profile_view),
        page("/projects/{project}/feedback", feedback.feedback_list),
        page("/projects/{project}/logs", logs.log_list),
        page("/issues/{issue_id:id}", issues.issue_detail),
        page("/issues/{issue_id:id}/status", issues.issue_status, ("POST",)),
        page("/issues/{issue_id:id}/events/{event_id}", events.event_detail),
        page("/issues/{issue_id:id}/events/{event_id}/json", events.event_json),
        page("/issues/{issue_id:id}/events/{event_id}/md", events.event_md),
        page(
            "/issues/{issue_id:id}/events/{event_id}/attachments/{attachment_id:id}",
            attachments.attachment_download,
        ),
        Mount("/static", app=_Static(directory=str(STATIC_DIR)), name="static"),
    ]
