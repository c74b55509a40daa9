"""A reporter that keeps events in memory: what ``tripwire.testing`` uses."""

from __future__ import annotations

import threading
import time
from typing import Any

from .._types import Event, SessionBatch
from .base import Reporter


class CapturedEvents(list[Event]):
    """A list of captured events that can also wait for events still being built."""

    def __init__(self, transactions: bool = False) -> None:
        super().__init__()
        #: Performance transactions (``type: transaction``); with ``transactions=True`` they are also
        #: in the list itself, in the order they came with the errors.
        self.transactions: list[Event] = []
        self.include_transactions = transactions
        self.sessions: list[SessionBatch] = []
        #: Spans that finished after their transaction was sent (span v2 shape, see docs/tracing.md).
        self.spans: list[dict[str, Any]] = []
        #: Cron monitor check-ins (``tripwire.capture_checkin``, ``@tripwire.monitor(slug=...)``).
        self.checkins: list[dict[str, Any]] = []
        #: User feedback (``tripwire.capture_feedback``), as the Sentry ``feedback`` event.
        self.feedback: list[dict[str, Any]] = []
        #: Transaction profiles (the ``profile`` item each sampled, profiled transaction carries).
        self.profiles: list[dict[str, Any]] = []
        #: Continuous-profiling chunks (``profile_chunk`` items).
        self.profile_chunks: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def _add(self, event: Event) -> None:
        with self._cond:
            self.append(event)
            self._cond.notify_all()

    def _add_transaction(self, event: Event) -> None:
        with self._cond:
            self.transactions.append(event)
            if self.include_transactions:
                self.append(event)
            self._cond.notify_all()

    def _add_sessions(self, batch: SessionBatch) -> None:
        with self._cond:
            self.sessions.append(batch)
            self._cond.notify_all()

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` events arrived (True) or ``timeout`` passed (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True


class CaptureReporter(Reporter):
    """Append every event to :attr:`events` (a :class:`CapturedEvents`)."""

    name = "capture"

    def __init__(self, events: CapturedEvents | None = None, **_: Any) -> None:
        self.events = events if events is not None else CapturedEvents()

    def send_event(self, event: Event) -> None:
        self.events._add(event)

    accepts_profiles = True

    def send_transaction(
        self, transaction: Event, trace: dict[str, str] | None = None, profile: dict[str, Any] | None = None
    ) -> None:
        if profile is not None:
            with self.events._cond:
                self.events.profiles.append(profile)
        self.events._add_transaction(transaction)

    def send_profile_chunk(self, chunk: dict[str, Any]) -> None:
        with self.events._cond:
            self.events.profile_chunks.append(chunk)
            self.events._cond.notify_all()

    def send_sessions(self, batch: SessionBatch) -> None:
        self.events._add_sessions(batch)

    def send_spans(self, spans: list[dict[str, Any]]) -> None:
        with self.events._cond:
            self.events.spans.extend(spans)
            self.events._cond.notify_all()

    def send_checkin(self, checkin: dict[str, Any]) -> None:
        with self.events._cond:
            self.events.checkins.append(checkin)
            self.events._cond.notify_all()

    def send_feedback(self, feedback: dict[str, Any]) -> None:
        with self.events._cond:
            self.events.feedback.append(feedback)
            self.events._cond.notify_all()
