"""JSON API endpoints of alert rules and cron monitors (docs/alerts.md, docs/crons.md).

They join :data:`tripwire_server.api.ENDPOINTS` (routes and OpenAPI come from that table).
Creating, testing and deleting rules is for admins: a rule makes the collector send requests to a
URL of the creator's choosing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from .alerts.rules import RuleError, spec_from_json
from .alerts.ssrf import UnsafeURL, check_syntax
from .api import ApiError, _body, _endpoint, _int, _project, _run
from .store.alert_records import AlertRule
from .store.base import User

if TYPE_CHECKING:
    from .state import CollectorState

_RULE_BODY = (
    '{"on": "new-issue|regression|frequency|users|crash-free|cron|p95", "webhook": "https://...",'
    ' "format": "json|slack|discord|mattermost|ntfy", "email": "ops@example.com", "secret": "...",'
    ' "threshold": 100, "window": 10, "below": 99.5, "min_sessions": 100, "once": false,'
    ' "above_ms": 800, "percentile": "p95", "min_count": 20,'
    ' "filters": {"environment": "production", "level": "error", "release": "1.2", "tags": {"k": "v"},'
    ' "transaction": "GET /checkout"}, "cooldown_minutes": 30, "digest_seconds": 60}'
)


def _admin(user: User, what: str) -> None:
    if not user.is_admin:
        raise ApiError(403, f"only admins can {what}")


def monitor_json(monitor: Any) -> dict[str, Any]:
    out: dict[str, Any] = monitor.to_json()
    return out


@_endpoint("GET", "/api/0/projects/{project}/alerts/", "Alert rules of a project")
async def list_alert_rules(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    rules: list[AlertRule] = await _run(state.store.alerts.list_alert_rules, project.id)
    return [r.to_json(with_secret=user.is_admin) for r in rules]


@_endpoint("POST", "/api/0/projects/{project}/alerts/", "Create an alert rule (admin)", body=_RULE_BODY)
async def create_alert_rule(request: Request, state: CollectorState, user: User) -> Any:
    _admin(user, "create alert rules")
    project = await _project(state, request.path_params["project"])
    body = await _body(request)
    try:
        spec = spec_from_json(body)
        if spec.webhook_url:
            check_syntax(spec.webhook_url, state.config.alerts.allow_webhook_hosts)
    except (RuleError, UnsafeURL) as exc:
        raise ApiError(400, str(exc)) from None
    rule: AlertRule = await _run(state.store.alerts.create_alert_rule, project.id, spec)
    return 201, rule.to_json(with_secret=True)


@_endpoint("GET", "/api/0/alerts/{rule_id:id}/", "An alert rule")
async def get_alert_rule(request: Request, state: CollectorState, user: User) -> Any:
    rule: AlertRule = await _run(state.store.alerts.get_alert_rule, request.path_params["rule_id"])
    return rule.to_json(with_secret=user.is_admin)


@_endpoint("DELETE", "/api/0/alerts/{rule_id:id}/", "Delete an alert rule and its history (admin)")
async def delete_alert_rule(request: Request, state: CollectorState, user: User) -> Any:
    _admin(user, "delete alert rules")
    await _run(state.store.alerts.delete_alert_rule, request.path_params["rule_id"])
    return {"deleted": request.path_params["rule_id"]}


@_endpoint("POST", "/api/0/alerts/{rule_id:id}/test/", "Send a test notification of a rule (admin)")
async def test_alert_rule(request: Request, state: CollectorState, user: User) -> Any:
    _admin(user, "send test notifications")
    ids = await _run(state.store.alerts.queue_test_notification, request.path_params["rule_id"])
    state.outbox.wake()
    return 202, {"queued": ids}


@_endpoint(
    "GET",
    "/api/0/alerts/{rule_id:id}/history/",
    "The latest notifications of a rule: [{id, rule_id, issue_id, status, error, at, ...}]",
    (("limit", "entries, default 50"),),
)
async def alert_rule_history(request: Request, state: CollectorState, user: User) -> Any:
    rule_id = request.path_params["rule_id"]
    await _run(state.store.alerts.get_alert_rule, rule_id)
    history = await _run(state.store.alerts.alert_history, rule_id, _int(request, "limit", 50, 1, 500))
    return [n.to_json() for n in history]


@_endpoint("GET", "/api/0/projects/{project}/monitors/", "Cron monitors of a project")
async def list_monitors(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    monitors = await _run(state.store.monitors.list_monitors, project.id)
    return [monitor_json(m) for m in monitors]


@_endpoint(
    "GET",
    "/api/0/projects/{project}/monitors/{slug}/",
    "A cron monitor with its latest check-ins",
    (("limit", "check-ins, default 50"),),
)
async def get_monitor(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    monitor = await _run(state.store.monitors.get_monitor, project.id, request.path_params["slug"])
    checkins = await _run(state.store.monitors.list_checkins, monitor.id, _int(request, "limit", 50, 1, 500))
    return {**monitor_json(monitor), "checkins": [c.to_json() for c in checkins]}
