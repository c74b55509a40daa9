"""Alert rule pages: the rules of a project with a form to add one, and a rule with its history.

Creating, testing and deleting rules is for admins (a rule makes the collector call a URL).
"""

from __future__ import annotations

from starlette.responses import Response

from ..alerts.rules import FORMATS, LEVELS, PERCENTILES, TRIGGERS, RuleError, spec_from_json
from ..alerts.ssrf import UnsafeURL, check_syntax
from ..store import NotFound
from ..store.alert_records import AlertRule
from ._auth import Page, redirect
from .issues import not_found, project_of

_FIELDS = (
    "on",
    "name",
    "webhook",
    "format",
    "email",
    "threshold",
    "window",
    "below",
    "min_sessions",
    "above_ms",
    "percentile",
    "min_count",
    "cooldown_minutes",
    "digest_seconds",
)


def _render_list(page: Page, error: str = "", status: int = 200) -> Response:
    project = project_of(page)
    return page.render(
        "alerts.html",
        status_code=status,
        project=project,
        rules=page.store.alerts.list_alert_rules(project.id),
        triggers=TRIGGERS,
        formats=FORMATS,
        levels=LEVELS,
        percentiles=PERCENTILES,
        error=error,
        form=page.form,
    )


def alert_list(page: Page) -> Response:
    """``GET /projects/{project}/alerts``: the rules; ``POST``: create one (admins)."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    if page.request.method != "POST":
        return _render_list(page)
    if not page.user.is_admin:
        return page.render(
            "error.html", status_code=403, status=403, message="Only admins can create alert rules."
        )
    form = page.form
    body: dict[str, object] = {k: form[k].strip() for k in _FIELDS if form.get(k, "").strip()}
    body["once"] = form.get("once") == "on"
    filters = {
        k: form[k].strip()
        for k in ("environment", "level", "release", "transaction")
        if form.get(k, "").strip()
    }
    tags = {}
    for part in form.get("tags", "").split(","):
        key, sep, value = part.strip().partition(":")
        if sep and key:
            tags[key] = value
    body["filters"] = {**filters, "tags": tags}
    try:
        spec = spec_from_json(body)
        if spec.webhook_url:
            check_syntax(spec.webhook_url, page.config.alerts.allow_webhook_hosts)
    except (RuleError, UnsafeURL) as exc:
        return _render_list(page, str(exc), 400)
    rule = page.store.alerts.create_alert_rule(project.id, spec)
    return redirect(f"/projects/{project.id}/alerts/{rule.id}")


def _rule_of(page: Page) -> AlertRule:
    project = project_of(page)
    rule = page.store.alerts.get_alert_rule(int(page.request.path_params["rule_id"]))
    if rule.project_id != project.id:
        raise NotFound("no such rule in this project")
    return rule


def alert_detail(page: Page) -> Response:
    """``GET /projects/{project}/alerts/{rule_id}``: the rule, its secret (admins) and its history."""
    try:
        project = project_of(page)
        rule = _rule_of(page)
    except NotFound:
        return not_found(page, "Alert rule")
    return page.render(
        "alert.html",
        project=project,
        rule=rule,
        history=page.store.alerts.alert_history(rule.id, 100),
        tested=page.request.query_params.get("tested") == "1",
    )


def alert_test(page: Page) -> Response:
    """``POST .../alerts/{rule_id}/test``: the "send test notification" button."""
    try:
        rule = _rule_of(page)
    except NotFound:
        return not_found(page, "Alert rule")
    if not page.user.is_admin:
        return page.render(
            "error.html", status_code=403, status=403, message="Only admins can test alert rules."
        )
    page.store.alerts.queue_test_notification(rule.id)
    return redirect(f"/projects/{rule.project_id}/alerts/{rule.id}?tested=1")


def alert_delete(page: Page) -> Response:
    """``POST .../alerts/{rule_id}/delete``: delete the rule and its history."""
    try:
        rule = _rule_of(page)
    except NotFound:
        return not_found(page, "Alert rule")
    if not page.user.is_admin:
        return page.render(
            "error.html", status_code=403, status=403, message="Only admins can delete alert rules."
        )
    page.store.alerts.delete_alert_rule(rule.id)
    return redirect(f"/projects/{rule.project_id}/alerts")
