"""The alert triggers on what a digest batch stored: ``new-issue``, ``regression``, ``frequency``,
``users`` and ``crash-free``, evaluated inside the digest's write transaction.

The decisions are the pure functions of :mod:`tripwire_server.alerts.rules`; counters of a rule's
window (``alert_counts``, ``alert_users``) are kept here, and notifications queue through
:meth:`~.alerts.Alerts.notify` with the cooldowns and digests of every trigger (store/alerts.py).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ..alerts import rules as R
from .alert_records import AlertRule
from .alerts import Alerts

if TYPE_CHECKING:
    from .database import Cursor
    from .digest_records import DigestedEvent, EnvelopeResult
    from .digest_writer import DigestWriter


def _issue_item(issue_id: int, e: DigestedEvent) -> dict[str, Any]:
    # Only what the message needs: no event payload, no user data.
    return {
        "subject": f"issue:{issue_id}",
        "issue_id": issue_id,
        "title": e.title[:300],
        "culprit": e.culprit[:300],
        "level": e.level,
        "release": e.release,
        "environment": e.environment,
    }


def _matches(rule: AlertRule, e: DigestedEvent) -> bool:
    return rule.filters.matches(level=e.level, environment=e.environment, release=e.release, tags=e.tags)


def user_key(value: str) -> str:
    """A user tag as a short hash: user rules count people without keeping who they are."""
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:24]


class DigestAlerts:
    """The rules on a batch's issues, events and sessions, queued through :attr:`alerts`."""

    def __init__(self, alerts: Alerts) -> None:
        self.alerts = alerts

    def after_digest(self, c: Cursor, writer: DigestWriter, results: list[EnvelopeResult]) -> None:
        """Evaluate the rules on what this batch wrote; queue notifications."""
        stored = writer.stored
        sessions = [s for r in results for s in r.sessions]
        projects = {e.project_id for e, _ in stored} | {s.project_id for s in sessions}
        if not projects:
            return
        rules = self.alerts.rules_for(c, projects, R.ISSUE_TRIGGERS | {"crash-free"})
        if not rules:
            return
        now = self.alerts.clock()
        if any(r.trigger in ("frequency", "users") for r in rules):
            # Ignored issues are muted: their events count nowhere and alert no one.
            ignored = self._ignored(c, {issue_id for _, issue_id in stored})
            stored = [(e, i) for e, i in stored if i not in ignored]
        for rule in rules:
            self.alerts.guarded(c, rule, self._evaluate, writer, stored, sessions, now)

    def _evaluate(
        self,
        c: Cursor,
        rule: AlertRule,
        writer: DigestWriter,
        stored: list[tuple[DigestedEvent, int]],
        sessions: list[Any],
        now: float,
    ) -> None:
        if rule.trigger == "new-issue":
            for issue_id, e in sorted(writer.new_issues.items()):
                if e.project_id == rule.project_id and _matches(rule, e):
                    self.alerts.notify(c, rule, issue_id, _issue_item(issue_id, e), now)
        elif rule.trigger == "regression":
            for issue_id, e in sorted(writer.regressed.items()):
                if e.project_id == rule.project_id and _matches(rule, e):
                    self.alerts.notify(c, rule, issue_id, _issue_item(issue_id, e), now)
        elif rule.trigger == "frequency":
            self._frequency(c, rule, stored, now)
        elif rule.trigger == "users":
            self._users(c, rule, stored, now)
        elif rule.trigger == "crash-free":
            self._crash_free(c, rule, sessions, now)

    @staticmethod
    def _ignored(c: Cursor, issue_ids: set[int]) -> set[int]:
        ids = sorted(issue_ids)
        out: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                r[0]
                for r in c.all(f"SELECT id FROM issues WHERE id IN ({marks}) AND status = 'ignored'", chunk)
            )
        return out

    def _frequency(
        self, c: Cursor, rule: AlertRule, stored: list[tuple[DigestedEvent, int]], now: float
    ) -> None:
        buckets: dict[tuple[int, float], int] = {}
        latest: dict[int, DigestedEvent] = {}
        arrivals: dict[int, list[int]] = {}  # per issue, each event's occurrences in batch order
        for e, issue_id in stored:
            if e.project_id == rule.project_id and _matches(rule, e):
                key = (issue_id, R.minute(e.received_at))
                buckets[key] = buckets.get(key, 0) + e.occurrences
                latest[issue_id] = e
                arrivals.setdefault(issue_id, []).append(e.occurrences)
        if not buckets:
            return
        c.many(
            "INSERT INTO alert_counts (rule_id, issue_id, minute, count) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (rule_id, issue_id, minute)"
            " DO UPDATE SET count = alert_counts.count + excluded.count",
            [(rule.id, i, m, n) for (i, m), n in sorted(buckets.items())],
        )
        since = R.minute(now - (rule.window_minutes or 1) * 60 + 60)
        for issue_id, e in sorted(latest.items()):
            total = int(
                c.one(
                    "SELECT COALESCE(SUM(count), 0) FROM alert_counts"
                    " WHERE rule_id = ? AND issue_id = ? AND minute >= ?",
                    (rule.id, issue_id, since),
                )[0]
            )
            if R.over_threshold("frequency", total, rule.threshold or 0):
                item = {**_issue_item(issue_id, e), "count": total, "window_minutes": rule.window_minutes}
                fires = _arrivals_over(arrivals[issue_id], total, rule.threshold or 0)
                self.alerts.notify(c, rule, issue_id, item, now, times=fires)

    def _users(self, c: Cursor, rule: AlertRule, stored: list[tuple[DigestedEvent, int]], now: float) -> None:
        seen: dict[tuple[int, str], float] = {}
        latest: dict[int, DigestedEvent] = {}
        for e, issue_id in stored:
            if e.project_id != rule.project_id or not _matches(rule, e):
                continue
            for key, value in e.tags:
                if key == "user":
                    k = (issue_id, user_key(value))
                    seen[k] = max(seen.get(k, 0.0), e.received_at)
                    latest[issue_id] = e
        if not seen:
            return
        c.many(
            "INSERT INTO alert_users (rule_id, issue_id, user_key, last_seen) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (rule_id, issue_id, user_key) DO UPDATE SET last_seen = excluded.last_seen",
            [(rule.id, i, u, t) for (i, u), t in sorted(seen.items())],
        )
        since = now - (rule.window_minutes or 1) * 60
        for issue_id, e in sorted(latest.items()):
            users = int(
                c.one(
                    "SELECT COUNT(*) FROM alert_users WHERE rule_id = ? AND issue_id = ? AND last_seen >= ?",
                    (rule.id, issue_id, since),
                )[0]
            )
            if R.over_threshold("users", users, rule.threshold or 0):
                item = {**_issue_item(issue_id, e), "users": users, "window_minutes": rule.window_minutes}
                self.alerts.notify(c, rule, issue_id, item, now)

    def _crash_free(self, c: Cursor, rule: AlertRule, sessions: list[Any], now: float) -> None:
        f = rule.filters
        releases = sorted(
            {
                s.release
                for s in sessions
                if s.project_id == rule.project_id
                and (not f.release or s.release == f.release)
                and (not f.environment or s.environment == f.environment)
            }
        )
        for release in releases:
            sql = (
                "SELECT COALESCE(SUM(started), 0), COALESCE(SUM(crashed), 0) FROM session_counts"
                " WHERE project_id = ? AND release = ?"
            )
            params: list[Any] = [rule.project_id, release]
            if f.environment:
                sql += " AND environment = ?"
                params.append(f.environment)
            started, crashed = (int(x) for x in c.one(sql, params))
            if R.crash_free_breached(started, crashed, rule.below or 0.0, rule.min_sessions or 1):
                rate = max(0.0, 1.0 - crashed / started) * 100
                item = {
                    "subject": f"release:{release}",
                    "release": release,
                    "title": f"Release {release}: crash-free sessions {rate:.2f}% (below {rule.below:g}%)",
                    "crash_free_rate": round(rate, 4),
                    "sessions": started,
                    "crashed": crashed,
                }
                self.alerts.notify(c, rule, None, item, now)


def _arrivals_over(occurrences: list[int], total: int, threshold: int) -> int:
    """How many of a batch's events (their occurrences in order) arrived with the issue at or over
    ``threshold`` in the window, ``total`` being the window's count after the whole batch."""
    running = total - sum(occurrences)
    fired = 0
    for n in occurrences:
        running += n
        if running >= threshold:
            fired += 1
    return max(fired, 1)
