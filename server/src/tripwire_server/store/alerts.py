"""Alert rules, their state and the notification outbox: the repository of alerts.

Rules are evaluated inside the digest's write transaction (store/digest_alerts.py,
store/latency_alerts.py, and the cron monitors), and queue through :meth:`Alerts.notify`, so a
notification exists exactly when the change that caused it (a new issue, a regression, counted
events or sessions) is committed: a crash loses neither, and never keeps one without the other.
The outbox worker (:mod:`tripwire_server.alerts.outbox`) then claims due messages with a lease.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..alerts import rules as R
from .alert_records import AlertRule, Delivery, Notification
from .base import NotFound
from .database import Cursor, Database
from .outcomes import upsert_outcomes

if TYPE_CHECKING:
    pass

_RULE_COLUMNS = (
    "id, project_id, name, on_trigger, threshold, window_minutes, below, min_sessions, once,"
    " filters, webhook_url, format, email, secret, cooldown, digest, created_at, above_ms, percentile,"
    " min_count"
)
_NOTIFICATION_COLUMNS = (
    "id, uid, rule_id, issue_id, target, on_trigger, status, count, attempts, error, created_at,"
    " sent_at, message"
)
#: Notifications of one rule merged into one message at most.
MAX_BATCH = 50
#: History entries kept per rule (older sent, failed and suppressed ones are pruned).
HISTORY_PER_RULE = 500
#: The state subject that spaces a rule's messages (``digest``).
_RULE_SLOT = "*"
#: Errors of our own code (not of the database) while evaluating inside the digest transaction.
_PYTHON_ERRORS = (ValueError, TypeError, LookupError, ArithmeticError, AttributeError)

log = logging.getLogger("tripwire_server")


def _rule(row: Sequence[Any]) -> AlertRule:
    return AlertRule(
        id=row[0],
        project_id=row[1],
        name=row[2],
        trigger=row[3],
        threshold=row[4],
        window_minutes=row[5],
        below=row[6],
        min_sessions=row[7],
        once=bool(row[8]),
        filters=R.Filters.from_json(json.loads(row[9])),
        webhook_url=row[10],
        format=row[11],
        email=row[12],
        secret=row[13],
        cooldown=float(row[14]),
        digest=float(row[15]),
        created_at=row[16],
        above_ms=row[17],
        percentile=None if row[18] is None else int(row[18]),
        min_count=row[19],
    )


def _notification(row: Sequence[Any]) -> Notification:
    return Notification(
        id=row[0],
        uid=row[1],
        rule_id=row[2],
        issue_id=row[3],
        target=row[4],
        trigger=row[5],
        status=row[6],
        count=int(row[7]),
        attempts=int(row[8]),
        error=row[9],
        at=row[10],
        sent_at=row[11],
        message=json.loads(row[12]),
    )


def _targets(rule: AlertRule) -> list[str]:
    return [t for t, on in (("webhook", rule.webhook_url), ("email", rule.email)) if on]


class Alerts:
    """Alert rules, the outbox, and the evaluation of rules inside the digest's transaction.

    The triggers on a digest batch (store/digest_alerts.py), the ``p95`` trigger
    (store/latency_alerts.py) and cron monitors (store/monitors.py) evaluate their own rules and
    queue through :meth:`notify`, with the cooldowns and digests of every rule.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        #: The clock of rule evaluation and the outbox; tests replace it.
        self.clock: Callable[[], float] = time.time

    @property
    def _skip_locked(self) -> str:
        return " FOR UPDATE SKIP LOCKED" if self.db.backend == "postgresql" else ""

    # -- rules -------------------------------------------------------------------------------

    def create_alert_rule(self, project_id: int, spec: R.RuleSpec) -> AlertRule:
        """Store a validated rule (a secret is generated when the spec has none)."""
        spec = R.validate(spec)
        secret = spec.secret or secrets.token_urlsafe(24)
        with self.db.tx() as c:
            if c.one("SELECT id FROM projects WHERE id = ?", (project_id,)) is None:
                raise NotFound(f"no project {project_id}")
            row = c.one(
                "INSERT INTO alert_rules (project_id, name, on_trigger, threshold, window_minutes,"
                " below, min_sessions, once, filters, webhook_url, format, email, secret, cooldown,"
                " digest, created_at, above_ms, percentile, min_count)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                f" RETURNING {_RULE_COLUMNS}",
                (
                    project_id,
                    spec.name[:200] or spec.trigger,
                    spec.trigger,
                    spec.threshold,
                    spec.window_minutes,
                    spec.below,
                    spec.min_sessions,
                    int(spec.once),
                    json.dumps(spec.filters.to_json()),
                    spec.webhook_url,
                    spec.format,
                    spec.email,
                    secret,
                    spec.cooldown,
                    spec.digest,
                    time.time(),
                    spec.above_ms,
                    spec.percentile,
                    spec.min_count,
                ),
            )
        return _rule(row)

    def list_alert_rules(self, project_id: int | None = None) -> list[AlertRule]:
        """Rules of one project (or of all), oldest first."""
        with self.db.tx(write=False) as c:
            if project_id is None:
                rows = c.all(f"SELECT {_RULE_COLUMNS} FROM alert_rules ORDER BY id")
            else:
                rows = c.all(
                    f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE project_id = ? ORDER BY id", (project_id,)
                )
        return [_rule(r) for r in rows]

    def get_alert_rule(self, rule_id: int) -> AlertRule:
        """A rule by id. NotFound if missing."""
        with self.db.tx(write=False) as c:
            row = c.one(f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE id = ?", (rule_id,))
        if row is None:
            raise NotFound(f"no alert rule {rule_id}")
        return _rule(row)

    def delete_alert_rule(self, rule_id: int) -> None:
        """Delete a rule with its state and history. NotFound if missing."""
        with self.db.tx() as c:
            # Children first: SQLite only cascades with foreign keys on, and not every connection
            # that ever touched the file had them on.
            for table in ("alert_outbox", "alert_state", "alert_counts", "alert_users"):
                c.ex(f"DELETE FROM {table} WHERE rule_id = ?", (rule_id,))
            if c.one("DELETE FROM alert_rules WHERE id = ? RETURNING id", (rule_id,)) is None:
                raise NotFound(f"no alert rule {rule_id}")

    def queue_test_notification(self, rule_id: int) -> list[str]:
        """Put a test message of the rule in the outbox (one per target); return their ids."""
        rule = self.get_alert_rule(rule_id)
        now = self.clock()
        item = {
            "trigger": "test",
            "subject": "test",
            "title": "Test notification: this alert rule reaches you",
        }
        uids = []
        with self.db.tx() as c:
            for target in _targets(rule):
                uid = uuid.uuid4().hex
                # Its own batch: a test message is never merged into a real one.
                c.ex(
                    "INSERT INTO alert_outbox (uid, rule_id, project_id, issue_id, target, on_trigger,"
                    " subject, message, status, next_attempt, batch, created_at)"
                    " VALUES (?, ?, ?, NULL, ?, 'test', 'test', ?, 'pending', ?, ?, ?)",
                    (uid, rule.id, rule.project_id, target, json.dumps(item), now, uid, now),
                )
                uids.append(uid)
        return uids

    def alert_history(self, rule_id: int, limit: int = 50) -> list[Notification]:
        """The rule's latest notifications, newest first."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT {_NOTIFICATION_COLUMNS} FROM alert_outbox WHERE rule_id = ?"
                " ORDER BY id DESC LIMIT ?",
                (rule_id, max(0, limit)),
            )
        return [_notification(r) for r in rows]

    def get_notification(self, uid: str) -> Notification:
        """A notification by its id. NotFound if missing."""
        with self.db.tx(write=False) as c:
            row = c.one(f"SELECT {_NOTIFICATION_COLUMNS} FROM alert_outbox WHERE uid = ?", (uid,))
        if row is None:
            raise NotFound(f"no notification {uid}")
        return _notification(row)

    # -- the outbox --------------------------------------------------------------------------

    def claim_delivery(self, now: float, lease: float) -> Delivery | None:
        """Lease the next due message for ``lease`` seconds (None when nothing is due)."""
        due = "status = 'pending' AND next_attempt <= ? AND (lease_until IS NULL OR lease_until < ?)"
        with self.db.tx() as c:
            lead = c.one(
                f"SELECT id, uid, rule_id, target, batch FROM alert_outbox WHERE {due}"
                f" ORDER BY next_attempt, id LIMIT 1{self._skip_locked}",
                (now, now),
            )
            if lead is None:
                return None
            _id, uid, rule_id, target, batch = lead
            if batch is None:
                # A digest: everything of this rule and target that is due goes in one message.
                batch = uid
                ids = [
                    r[0]
                    for r in c.all(
                        f"SELECT id FROM alert_outbox WHERE {due} AND rule_id = ? AND target = ?"
                        f" AND batch IS NULL ORDER BY id LIMIT ?{self._skip_locked}",
                        (now, now, rule_id, target, MAX_BATCH),
                    )
                ]
                ids = sorted(set(ids) | {lead[0]})
                marks = ",".join("?" * len(ids))
                c.ex(f"UPDATE alert_outbox SET batch = ? WHERE id IN ({marks})", [batch, *ids])
            c.ex(
                "UPDATE alert_outbox SET lease_until = ?, attempts = attempts + 1"
                " WHERE batch = ? AND status = 'pending'",
                (now + lease, batch),
            )
            rows = c.all(
                "SELECT id, message, attempts FROM alert_outbox WHERE batch = ? AND status = 'pending'"
                " ORDER BY id",
                (batch,),
            )
            rule_row = c.one(f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE id = ?", (rule_id,))
            project = c.one(
                "SELECT p.name FROM projects p JOIN alert_rules r ON r.project_id = p.id WHERE r.id = ?",
                (rule_id,),
            )
        return Delivery(
            uid=batch,
            rule=_rule(rule_row),
            target=target,
            project_name=project[0] if project else "",
            messages=[json.loads(r[1]) for r in rows],
            row_ids=[r[0] for r in rows],
            attempts=max(int(r[2]) for r in rows),
        )

    def settle_delivery(
        self, delivery: Delivery, *, ok: bool, error: str | None, retry_at: float | None, now: float
    ) -> None:
        """Record an attempt: sent, retried at ``retry_at``, or failed for good (``retry_at`` None)."""
        error = None if error is None else error[:1000]
        with self.db.tx() as c:
            if ok:
                c.ex(
                    "UPDATE alert_outbox SET status = 'sent', sent_at = ?, lease_until = NULL, error = NULL"
                    " WHERE batch = ? AND status = 'pending'",
                    (now, delivery.uid),
                )
            elif retry_at is not None:
                c.ex(
                    "UPDATE alert_outbox SET error = ?, lease_until = NULL, next_attempt = ?"
                    " WHERE batch = ? AND status = 'pending'",
                    (error, retry_at, delivery.uid),
                )
            else:
                c.ex(
                    "UPDATE alert_outbox SET status = 'failed', error = ?, lease_until = NULL"
                    " WHERE batch = ? AND status = 'pending'",
                    (error, delivery.uid),
                )

    def next_delivery_at(self) -> float | None:
        """When the earliest pending message is due (None: nothing pending)."""
        with self.db.tx(write=False) as c:
            row = c.one(
                "SELECT MIN(CASE WHEN lease_until IS NULL OR lease_until < next_attempt THEN next_attempt"
                " ELSE lease_until END) FROM alert_outbox WHERE status = 'pending'"
            )
        return None if row is None or row[0] is None else float(row[0])

    def prune_alerts(self, now: float) -> None:
        """Forget counters older than a day and history beyond the last entries of each rule."""
        with self.db.tx() as c:
            c.ex("DELETE FROM alert_counts WHERE minute < ?", (now - 86400,))
            c.ex("DELETE FROM alert_users WHERE last_seen < ?", (now - 86400,))
            for (rule_id,) in c.all("SELECT id FROM alert_rules"):
                row = c.one(
                    "SELECT id FROM alert_outbox WHERE rule_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                    (rule_id, HISTORY_PER_RULE),
                )
                if row is not None:
                    c.ex(
                        "DELETE FROM alert_outbox WHERE rule_id = ? AND id <= ? AND status <> 'pending'",
                        (rule_id, row[0]),
                    )

    # -- evaluation, inside the digest's transaction ------------------------------------------

    def rules_for(self, c: Cursor, project_ids: Iterable[int], triggers: Iterable[str]) -> list[AlertRule]:
        projects = sorted(set(project_ids))
        kinds = sorted(set(triggers))
        if not projects or not kinds:
            return []
        pm = ",".join("?" * len(projects))
        tm = ",".join("?" * len(kinds))
        rows = c.all(
            f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE project_id IN ({pm}) AND on_trigger IN ({tm})"
            " ORDER BY id",
            [*projects, *kinds],
        )
        out = []
        for row in rows:
            try:
                out.append(_rule(row))
            except _PYTHON_ERRORS:
                self._evaluation_failed(c, row[1], row[0])
        return out

    def _evaluation_failed(self, c: Cursor, project_id: int, rule_id: int) -> None:
        """A defect in a rule (or its evaluation) must not stall the digest, nor send envelopes to
        dead_letters: it is logged and counted. Database errors propagate; the batch is retried."""
        log.exception("alert rule %s could not be evaluated", rule_id)
        hour = float(int(self.clock() // 3600) * 3600)
        upsert_outcomes(c, [(project_id, hour, "intake", "alert", "evaluation_failed", 1)])

    def guarded(self, c: Cursor, rule: AlertRule, evaluate: Callable[..., None], *args: Any) -> None:
        """``evaluate(c, rule, *args)``; a defect in it is counted, not raised into the digest."""
        try:
            evaluate(c, rule, *args)
        except _PYTHON_ERRORS:
            self._evaluation_failed(c, rule.project_id, rule.id)

    def _state_for_update(self, c: Cursor, rule_id: int, subject: str) -> Any:
        c.ex(
            "INSERT INTO alert_state (rule_id, subject, last_sent, fired) VALUES (?, ?, NULL, 0)"
            " ON CONFLICT (rule_id, subject) DO NOTHING",
            (rule_id, subject),
        )
        lock = " FOR UPDATE" if self.db.backend == "postgresql" else ""
        return c.one(
            f"SELECT last_sent, fired, breached FROM alert_state WHERE rule_id = ? AND subject = ?{lock}",
            (rule_id, subject),
        )

    def lock_states(self, c: Cursor, rule_id: int, subject: str) -> tuple[Any, Any]:
        """Lock the rule's slot row, then the subject's: two PostgreSQL digesters evaluating the
        same rule queue one notification between them, in the same lock order (no deadlock)."""
        return self._state_for_update(c, rule_id, _RULE_SLOT), self._state_for_update(c, rule_id, subject)

    def notify(
        self,
        c: Cursor,
        rule: AlertRule,
        issue_id: int | None,
        item: dict[str, Any],
        now: float,
        *,
        times: int = 1,
    ) -> bool:
        """Queue a notification about ``item["subject"]``, or count it as suppressed (cooldown).

        ``times``: how many notifications this stands for (events of one digest batch that each
        found the rule firing), so the suppressed count does not depend on how events were batched.
        True when a message was queued.
        """
        subject = str(item["subject"])
        slot_row, state = self.lock_states(c, rule.id, subject)
        last_sent, fired = state[0], int(state[1])
        if rule.once and fired > 0:
            return False  # "first time over" only: not a suppressed message, nothing to say
        message = json.dumps({"trigger": rule.trigger, **item})
        if last_sent is not None and R.in_cooldown(last_sent, now, rule.cooldown):
            self._count_suppressed(c, rule, issue_id, subject, message, last_sent, now, times)
            return False
        c.ex(
            "UPDATE alert_state SET last_sent = ?, fired = fired + 1 WHERE rule_id = ? AND subject = ?",
            (now, rule.id, subject),
        )
        self.enqueue(c, rule, issue_id, subject, message, slot_row[0], now)
        if times > 1:  # the rest of the batch's firings fall in the cooldown this message starts
            self._count_suppressed(c, rule, issue_id, subject, message, now, now, times - 1)
        return True

    def enqueue(
        self,
        c: Cursor,
        rule: AlertRule,
        issue_id: int | None,
        subject: str,
        message: str,
        last_slot: float | None,
        now: float,
    ) -> None:
        """Write the outbox rows of one notification (one per target) in the rule's next digest slot;
        the caller holds the lock on the rule's slot row (``last_slot`` is what it read)."""
        slot = R.next_slot(last_slot, now, rule.digest)
        c.ex(
            "UPDATE alert_state SET last_sent = ? WHERE rule_id = ? AND subject = ?",
            (slot, rule.id, _RULE_SLOT),
        )
        for target in _targets(rule):
            c.ex(
                "INSERT INTO alert_outbox (uid, rule_id, project_id, issue_id, target, on_trigger,"
                " subject, message, status, next_attempt, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    uuid.uuid4().hex,
                    rule.id,
                    rule.project_id,
                    issue_id,
                    target,
                    rule.trigger,
                    subject,
                    message,
                    slot,
                    now,
                ),
            )

    @staticmethod
    def _count_suppressed(
        c: Cursor,
        rule: AlertRule,
        issue_id: int | None,
        subject: str,
        message: str,
        last_sent: float,
        now: float,
        times: int,
    ) -> None:
        """Add ``times`` held-back notifications to the cooldown's one history entry."""
        row = c.one(
            "SELECT id FROM alert_outbox WHERE rule_id = ? AND subject = ? AND status = 'suppressed'"
            " AND created_at >= ? ORDER BY id DESC LIMIT 1",
            (rule.id, subject, last_sent),
        )
        if row is not None:
            c.ex("UPDATE alert_outbox SET count = count + ? WHERE id = ?", (times, row[0]))
            return
        c.ex(
            "INSERT INTO alert_outbox (uid, rule_id, project_id, issue_id, target, on_trigger,"
            " subject, message, status, next_attempt, error, created_at, count)"
            " VALUES (?, ?, ?, ?, 'none', ?, ?, ?, 'suppressed', ?, ?, ?, ?)",
            (
                uuid.uuid4().hex,
                rule.id,
                rule.project_id,
                issue_id,
                rule.trigger,
                subject,
                message,
                now,
                f"cooldown: notified {now - last_sent:.0f}s ago (cooldown {rule.cooldown:.0f}s)",
                now,
                times,
            ),
        )
