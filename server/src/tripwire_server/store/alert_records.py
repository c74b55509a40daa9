"""Records of alert rules, their notifications, and cron monitors (the repositories are
:mod:`.alerts` and :mod:`.monitors`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..alerts.rules import Filters


@dataclasses.dataclass(frozen=True)
class AlertRule:
    """A stored alert rule."""

    id: int
    project_id: int
    name: str
    trigger: str
    threshold: int | None
    window_minutes: int | None
    below: float | None
    min_sessions: int | None
    once: bool
    filters: Filters
    webhook_url: str | None
    format: str
    email: str | None
    #: Signs webhook bodies (``X-Tripwire-Signature``); shown to admins only.
    secret: str
    cooldown: float
    digest: float
    created_at: float
    #: ``p95`` rules: the limit (ms), the percentile (95 ...) and the transactions a window needs.
    above_ms: float | None = None
    percentile: int | None = None
    min_count: int | None = None

    @property
    def webhook_display(self) -> str | None:
        """The webhook URL without its path: chat webhook URLs are secrets in their path."""
        if not self.webhook_url:
            return None
        scheme, _, rest = self.webhook_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/…"

    def to_json(self, *, with_secret: bool = False) -> dict[str, Any]:
        """The rule as JSON; without ``with_secret`` (non-admins) no secret and no full URL."""
        out = dataclasses.asdict(self)
        out["filters"] = self.filters.to_json()
        if not with_secret:
            out.pop("secret")
            out["webhook_url"] = self.webhook_display
        return out


@dataclasses.dataclass(frozen=True)
class Notification:
    """One entry of a rule's history: a message (to one target) or a run of suppressed ones."""

    id: int
    uid: str
    rule_id: int
    issue_id: int | None
    target: str
    trigger: str
    status: str
    #: Suppressed notifications are counted in one entry per cooldown.
    count: int
    attempts: int
    error: str | None
    at: float
    sent_at: float | None
    message: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.uid,
            "rule_id": self.rule_id,
            "issue_id": self.issue_id,
            "status": self.status,
            "error": self.error,
            "at": self.at,
            "target": self.target,
            "trigger": self.trigger,
            "count": self.count,
            "attempts": self.attempts,
            "sent_at": self.sent_at,
        }


@dataclasses.dataclass(frozen=True)
class Delivery:
    """A message claimed by the outbox worker: one or more notifications of one rule and target."""

    uid: str
    rule: AlertRule
    target: str
    project_name: str
    messages: list[dict[str, Any]]
    row_ids: list[int]
    attempts: int


@dataclasses.dataclass(frozen=True)
class Monitor:
    """A cron monitor, created or updated by check-ins that carry a ``monitor_config``."""

    id: int
    project_id: int
    slug: str
    #: ``{"type": "crontab", "value": "0 3 * * *"}`` or
    #: ``{"type": "interval", "value": 1, "unit": "minute"}``.
    schedule: dict[str, Any] | None
    timezone: str
    #: Minutes after the expected time before a missing check-in counts as missed.
    checkin_margin: float
    #: Minutes an ``in_progress`` run may take before it counts as timed out.
    max_runtime: float
    environment: str | None
    status: str
    last_checkin: float | None
    next_expected: float | None
    issue_id: int | None
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CheckIn:
    """One run of a monitor (or a missed one, recorded by the clock)."""

    id: int
    monitor_id: int
    check_in_id: str
    status: str
    duration: float | None
    environment: str | None
    release: str | None
    started_at: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
