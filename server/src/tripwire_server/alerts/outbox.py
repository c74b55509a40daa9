"""The outbox worker: delivers queued notifications with retries and backoff, in the background.

Messages are claimed with a lease (``lease`` seconds): a worker that dies mid-send (kill -9)
leaves its claim to expire, and the message is sent again by the next worker — at least once, with
the same notification id, which receivers use to drop the repeat. Several collector processes may
run a worker each; a claim is exclusive (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock
on SQLite).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from ..store.alert_records import Delivery
from ..store.alerts import Alerts
from .senders import DeliveryError, post_webhook, render_email, render_webhook, send_email
from .settings import AlertSettings

log = logging.getLogger("tripwire_server")

BACKOFF_BASE = 2.0
BACKOFF_MAX = 600.0


def retry_delay(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from 2 s to 10 min, with jitter in [½, 1]."""
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return float(delay * (0.5 + rand() / 2))


class OutboxWorker:
    """Claims due messages, sends them, and records the outcome; a thread per collector process."""

    def __init__(
        self,
        alerts: Alerts,
        settings: AlertSettings,
        public_url: Callable[[], str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.alerts = alerts
        self.settings = settings
        self.public_url = public_url
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Sent, retried and failed messages of this worker (status endpoint, tests).
        self.sent = 0
        self.retried = 0
        self.failed = 0

    @property
    def lease(self) -> float:
        # Longer than one send can take (connect, send, read each have the timeout), so a live
        # worker never loses its claim to another.
        return self.settings.timeout * 4 + 5

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tripwire-alert-outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> bool:
        """Deliver one due message; False when nothing was due."""
        alerts = self.alerts
        now = self.clock()
        due = alerts.next_delivery_at()
        if due is None or due > now:
            return False
        delivery: Delivery | None = alerts.claim_delivery(now, self.lease)
        if delivery is None:
            return False
        try:
            self.send(delivery)
        except DeliveryError as exc:
            final = exc.permanent or delivery.attempts >= self.settings.max_attempts
            retry_at = None if final else self.clock() + retry_delay(delivery.attempts)
            alerts.settle_delivery(delivery, ok=False, error=str(exc), retry_at=retry_at, now=self.clock())
            if final:
                self.failed += 1
                log.warning("alert %s to %s failed for good: %s", delivery.uid, delivery.target, exc)
            else:
                self.retried += 1
            return True
        alerts.settle_delivery(delivery, ok=True, error=None, retry_at=None, now=self.clock())
        self.sent += 1
        return True

    def send(self, delivery: Delivery) -> None:
        url = self.public_url()
        if delivery.target == "webhook":
            body, headers = render_webhook(delivery, url)
            post_webhook(delivery.rule.webhook_url or "", body, headers, self.settings)
        elif delivery.target == "email":
            smtp = self.settings.smtp
            sender = smtp.sender if smtp else "tripwire@localhost"
            send_email(render_email(delivery, url, sender), smtp, self.settings.timeout)
        else:
            raise DeliveryError(f"unknown target {delivery.target!r}", permanent=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                # A database hiccup: the claim (if any) expires and the message is tried again.
                log.exception("alert outbox worker failed; retrying")
                busy = False
            if not busy:
                self._wake.wait(self.settings.poll_interval)
                self._wake.clear()
