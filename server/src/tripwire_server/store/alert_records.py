"""Records and the storage interface of alert rules, their notifications, and cron monitors.

:class:`~.base.Store` includes :class:`AlertStore` and :class:`MonitorStore`; the SQL lives in
``_alerts.py`` and ``_monitors.py``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from ..alerts.rules import Filters, RuleSpec


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


class AlertStore(abc.ABC):
    """Alert rules, their per-subject state and the notification outbox."""

    @abc.abstractmethod
    def create_alert_rule(self, project_id: int, spec: RuleSpec) -> AlertRule:
        """Store a validated rule (a secret is generated when the spec has none)."""

    @abc.abstractmethod
    def list_alert_rules(self, project_id: int | None = None) -> list[AlertRule]:
        """Rules of one project (or of all), oldest first."""

    @abc.abstractmethod
    def get_alert_rule(self, rule_id: int) -> AlertRule:
        """A rule by id. NotFound if missing."""

    @abc.abstractmethod
    def delete_alert_rule(self, rule_id: int) -> None:
        """Delete a rule with its state and history. NotFound if missing."""

    @abc.abstractmethod
    def queue_test_notification(self, rule_id: int) -> list[str]:
        """Put a test message of the rule in the outbox (one per target); return their ids."""

    @abc.abstractmethod
    def alert_history(self, rule_id: int, limit: int = 50) -> list[Notification]:
        """The rule's latest notifications, newest first."""

    @abc.abstractmethod
    def get_notification(self, uid: str) -> Notification:
        """A notification by its id. NotFound if missing."""

    @abc.abstractmethod
    def claim_delivery(self, now: float, lease: float) -> Delivery | None:
        """Lease the next due message for ``lease`` seconds (None when nothing is due)."""

    @abc.abstractmethod
    def settle_delivery(
        self, delivery: Delivery, *, ok: bool, error: str | None, retry_at: float | None, now: float
    ) -> None:
        """Record an attempt: sent, retried at ``retry_at``, or failed for good (``retry_at`` None)."""

    @abc.abstractmethod
    def next_delivery_at(self) -> float | None:
        """When the earliest pending message is due (None: nothing pending)."""

    @abc.abstractmethod
    def prune_alerts(self, now: float) -> None:
        """Forget old counters and history beyond the last entries of each rule."""


class MonitorStore(abc.ABC):
    """Cron monitors and their check-ins."""

    @abc.abstractmethod
    def list_monitors(self, project_id: int) -> list[Monitor]:
        """Monitors of a project, by slug."""

    @abc.abstractmethod
    def get_monitor(self, project_id: int, slug: str) -> Monitor:
        """A monitor by slug. NotFound if missing."""

    @abc.abstractmethod
    def list_checkins(self, monitor_id: int, limit: int = 50) -> list[CheckIn]:
        """The monitor's latest check-ins, newest first."""

    @abc.abstractmethod
    def monitor_tick(self, now: float) -> int:
        """Mark missed check-ins and timed-out runs as of ``now``; return how many were marked.

        Runs in one process at a time (an advisory lock on PostgreSQL): others skip the tick.
        """
