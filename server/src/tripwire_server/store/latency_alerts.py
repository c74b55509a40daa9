"""The ``p95`` alert trigger, evaluated inside the digest's write transaction.

The decision is pure (:mod:`tripwire_server.alerts.latency`); :class:`LatencyAlerts` finds the
rules of the projects whose transactions the batch stored, reads each rule's window from the minute
rollups (which :meth:`~.performance.Performance.write` has already merged in the same transaction),
and queues notifications through the outbox with the cooldowns and digests of every trigger
(store/alerts.py). Raw transactions are never read: a window costs at most one rollup row per
minute (or, for whole hours inside it, per hour) and transaction name, op, environment and release.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..alerts import latency
from ..alerts.rules import DEFAULT_PERCENTILE, default_min_count
from .alert_records import AlertRule
from .alerts import Alerts

if TYPE_CHECKING:
    from .database import Cursor
    from .digest_records import EnvelopeResult

#: (transaction name, environment, release) of a batch's transactions.
_Key = tuple[str, str, str]


class LatencyAlerts:
    """The ``p95`` trigger: evaluated after each digest batch, queued through :attr:`alerts`."""

    def __init__(self, alerts: Alerts) -> None:
        self.alerts = alerts

    def after_digest(self, c: Cursor, results: list[EnvelopeResult]) -> None:
        """Evaluate the ``p95`` rules of the projects this batch stored transactions for."""
        seen: dict[int, set[_Key]] = {}
        for result in results:
            for tx in result.transactions:
                seen.setdefault(tx.project_id, set()).add((tx.name, tx.environment, tx.release))
        if not seen:
            return
        rules = self.alerts.rules_for(c, seen, ("p95",))
        if not rules:
            return
        now = self.alerts.clock()
        for rule in rules:
            self.alerts.guarded(c, rule, self._latency_rule, seen[rule.project_id], now)

    def _latency_rule(self, c: Cursor, rule: AlertRule, keys: set[_Key], now: float) -> None:
        f = rule.filters
        # Only the names this batch brought can have changed; the others were judged before.
        names = sorted(
            {
                name
                for name, environment, release in keys
                if (not f.environment or environment == f.environment)
                and (not f.release or release == f.release)
                and (not f.transaction or name == f.transaction)
            }
        )
        if not names:
            return
        minutes = rule.window_minutes or 1
        percentile = rule.percentile or DEFAULT_PERCENTILE
        above_ms = float(rule.above_ms or 0.0)
        min_count = rule.min_count or default_min_count(percentile)
        windows = self._latency_rows(c, rule, names, latency.window_ranges(now, minutes))
        breached = {
            r[0]
            for r in c.all("SELECT subject FROM alert_state WHERE rule_id = ? AND breached = 1", (rule.id,))
        }
        for name in names:
            rows = windows.get(name)
            if not rows:
                continue
            counted = latency.tally(rows, above_ms)
            status = latency.state(counted, percentile=percentile, min_count=min_count)
            subject = latency.subject(name)
            if status == latency.UNKNOWN or (status == latency.RESOLVED and subject not in breached):
                continue  # nothing to say: only then is the window merged for its percentile
            item = latency.item(
                name,
                latency.merge(rows),
                status=status,
                percentile=percentile,
                above_ms=above_ms,
                window_minutes=minutes,
                environment=f.environment,
                release=f.release,
            )
            if status == latency.FIRING:
                if self.alerts.notify(c, rule, None, item, now):
                    c.ex(
                        "UPDATE alert_state SET breached = 1 WHERE rule_id = ? AND subject = ?",
                        (rule.id, subject),
                    )
            else:
                self._resolve(c, rule, subject, item, now)

    def _latency_rows(
        self, c: Cursor, rule: AlertRule, names: list[str], ranges: list[tuple[int, float, float | None]]
    ) -> dict[str, list[tuple[int, str]]]:
        """Each name's rollup rows ``(count, histogram)`` in ``ranges``
        (:func:`~..alerts.latency.window_ranges`), of every op."""
        f = rule.filters
        rows: dict[str, list[tuple[int, str]]] = {}
        for res, first, end in ranges:
            for start in range(0, len(names), 500):
                chunk = names[start : start + 500]
                sql = (
                    "SELECT name, count, histogram FROM perf_rollups WHERE project_id = ? AND res = ?"
                    f" AND bucket >= ? AND name IN ({','.join('?' * len(chunk))})"
                )
                params: list[Any] = [rule.project_id, res, first, *chunk]
                if end is not None:
                    sql += " AND bucket < ?"
                    params.append(end)
                for column, value in (("environment", f.environment), ("release", f.release)):
                    if value:
                        sql += f" AND {column} = ?"
                        params.append(value)
                for name, count, text in c.all(sql, params):
                    rows.setdefault(name, []).append((int(count), text))
        return rows

    def _resolve(self, c: Cursor, rule: AlertRule, subject: str, item: dict[str, Any], now: float) -> None:
        """Queue the resolved notice of a sent ``firing`` one (no cooldown: one per firing)."""
        slot_row, state = self.alerts.lock_states(c, rule.id, subject)
        if not int(state[2]):
            return  # another digester resolved it since we looked
        c.ex("UPDATE alert_state SET breached = 0 WHERE rule_id = ? AND subject = ?", (rule.id, subject))
        message = json.dumps({"trigger": rule.trigger, **item})
        self.alerts.enqueue(c, rule, None, subject, message, slot_row[0], now)
