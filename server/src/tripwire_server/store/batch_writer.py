"""Writes what one digested batch produced, for every concern, in the digest's transaction.

The queue deletes the batch's rows and hands what they produced here, in the same transaction:
events, issues and counters (:class:`~.digest_writer.DigestWriter`), then each repository's part
(check-ins, feedback, logs, performance, profiles) and last the alert rules, which see all of it.
A notification is committed exactly with the change that caused it.
"""

from __future__ import annotations

from .database import Cursor, Database
from .digest_alerts import DigestAlerts
from .digest_records import AttachmentBudget, EnvelopeResult
from .digest_writer import DigestWriter
from .feedback import UserFeedback
from .latency_alerts import LatencyAlerts
from .logs import Logs
from .monitors import Monitors
from .performance import Performance
from .profiles import Profiles


class BatchWriter:
    """The repositories a digest batch writes to, in the order it writes them."""

    def __init__(
        self,
        db: Database,
        *,
        digest_alerts: DigestAlerts,
        latency_alerts: LatencyAlerts,
        monitors: Monitors,
        feedback: UserFeedback,
        logs: Logs,
        performance: Performance,
        profiles: Profiles,
    ) -> None:
        self.db = db
        self.digest_alerts = digest_alerts
        self.latency_alerts = latency_alerts
        self.monitors = monitors
        self.feedback = feedback
        self.logs = logs
        self.performance = performance
        self.profiles = profiles

    def write(self, c: Cursor, results: list[EnvelopeResult], budget: AttachmentBudget) -> DigestWriter:
        """Write ``results`` in ``c``'s transaction; the writer of the events (what it stored)."""
        writer = DigestWriter(self.db, c, budget)
        writer.write(results)
        self.monitors.write_checkins(c, results)
        self.feedback.write(c, results)
        self.logs.write(c, results)
        self.performance.write(c, results, writer)
        self.profiles.write(c, results)
        # The p95 rules read the rollups the performance write merged just before.
        self.latency_alerts.after_digest(c, results)
        self.digest_alerts.after_digest(c, writer, results)
        return writer
