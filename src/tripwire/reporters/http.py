"""The delivery machinery shared by the HTTP reporters (Sentry, BugSnag, or your own).

Each :class:`HttpReporter` owns a bounded outbox and one sender thread, so a slow or dead backend
delays nobody but itself: the client's worker hands over an encoded :class:`Payload` and moves on.

The sender posts with the standard library's ``http.client`` over kept-alive connections, with an
explicit timeout, gzip-compressed. What happens to a payload depends on the answer:

- 2xx: delivered.
- Network errors, 408, 429 and 5xx: kept and retried, after a jittered exponential backoff (or the
  time the backend named in ``Retry-After`` / ``X-Sentry-Rate-Limits``). Connection failures and
  502/503/504/408/429 never use up a payload's attempts; a payload that keeps failing after it reached
  the server (500, a reset mid-request) is dropped after ``max_attempts``.
- 400, 401, 403, 413 and other 4xx: dropped, counted (``too_large`` for 413, else ``rejected``) and
  logged. Retrying would only get the same answer.

Rate limits are tracked per data category; a payload in a limited category that arrives while the
limit lasts is dropped and counted as ``rate_limited``, as the Sentry protocol asks.

With a spool directory, payloads that cannot be delivered now go to disk (bounded in bytes, oldest
out first) and are sent when the backend answers again, also by a later process.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._http import ConnectionPool, Unreachable
from .._log import logger
from .._ratelimit import RateLimits
from .._stats import DropCounter
from .._types import Event, SessionBatch
from .base import Reporter

if TYPE_CHECKING:
    from .._options import Options
    from .._spool import Spool


DEFAULT_MAX_OUTBOX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_OUTBOX_ITEMS = 10_000
# Statuses that say "not now" rather than "not this payload": they never use up attempts.
_UNAVAILABLE = frozenset({408, 429, 502, 503, 504})

_SENT, _RETRY, _DROP = "sent", "retry", "drop"
_FROM_SPOOL = object()
_SPILL = object()
_IDLE = object()


class Payload:
    """One request body for a backend, encoded on the worker, sent by the reporter's thread.

    ``categories`` (``{"error": 1}``) drive rate limits and drop counts; ``meta`` is the reporter's
    own (kept in the spool too, so it must be JSON-serializable).
    """

    # A plain slotted class: ``dataclasses`` would pull ``inspect`` into ``tripwire.init()``.
    __slots__ = (
        "attempts",
        "body",
        "categories",
        "claim",
        "claimed_attempts",
        "count_drops",
        "kind",
        "low_priority",
        "meta",
        "url",
    )

    def __init__(
        self,
        url: str,
        body: bytes,
        categories: dict[str, int],
        kind: str = "event",
        low_priority: bool = False,
        count_drops: bool = True,
        meta: dict[str, Any] | None = None,
        attempts: int = 0,
        claim: str | None = None,
        claimed_attempts: int = 0,
    ) -> None:
        self.url = url
        self.body = body
        self.categories = categories
        self.kind = kind
        self.low_priority = low_priority
        #: False for reports about the SDK itself (their loss is not reported, to avoid loops).
        self.count_drops = count_drops
        self.meta: dict[str, Any] = meta if meta is not None else {}
        self.attempts = attempts
        #: The spool file this payload was read from (claimed), and its attempts as stored there.
        self.claim = claim
        self.claimed_attempts = claimed_attempts

    def to_spool(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "categories": self.categories,
            "kind": self.kind,
            "low_priority": self.low_priority,
            "count_drops": self.count_drops,
            "meta": self.meta,
            "attempts": self.attempts,
        }

    @classmethod
    def from_spool(cls, meta: Mapping[str, Any], body: bytes, claim: str) -> Payload:
        return cls(
            url=str(meta.get("url", "")),
            body=body,
            categories=dict(meta.get("categories") or {"error": 1}),
            kind=str(meta.get("kind", "event")),
            low_priority=bool(meta.get("low_priority", False)),
            count_drops=bool(meta.get("count_drops", True)),
            meta=dict(meta.get("meta") or {}),
            attempts=int(meta.get("attempts") or 0),
            claim=claim,
            claimed_attempts=int(meta.get("attempts") or 0),
        )


class HttpReporter(Reporter):
    """Base of reporters that POST to an HTTP backend. Subclasses implement :meth:`encode_event`
    (and optionally :meth:`encode_sessions`, :meth:`render`, :meth:`spool_key`).

    Options left as None are taken from the client's options (``http_timeout``, ``spool_dir``,
    ``spool_max_bytes``) when the reporter is attached to a client.
    """

    name = "http"
    #: Send bodies gzip-compressed (``Content-Encoding: gzip``).
    compress = True
    #: gzip level. Measured on ASGI error events (12-24 KB of JSON): level 1 takes ~65 µs and level 6
    #: ~130-250 µs of CPU for an output only ~10-20% larger; that CPU is taken from the application
    #: (same GIL), the bytes go to a collector that is usually close by.
    compress_level = 1
    #: While there is nothing to send, call :meth:`on_idle` on the sender thread this often (s).
    idle_interval: float | None = None

    def __init__(
        self,
        *,
        http_timeout: float | None = None,
        spool_dir: str | None = None,
        spool_max_bytes: int | None = None,
        max_outbox_bytes: int = DEFAULT_MAX_OUTBOX_BYTES,
        max_outbox_items: int = DEFAULT_MAX_OUTBOX_ITEMS,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        max_attempts: int = 5,
        compress: bool | None = None,
        name: str | None = None,
        ca_file: str | None = None,
        proxy: str | None = None,
    ) -> None:
        self.http_timeout = http_timeout
        self.spool_dir = spool_dir
        self.spool_max_bytes = spool_max_bytes
        self.max_outbox_bytes = max_outbox_bytes
        self.max_outbox_items = max_outbox_items
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_attempts = max_attempts
        self.ca_file = ca_file
        self.proxy = proxy
        if compress is not None:
            self.compress = compress
        if name is not None:
            self.name = name
        self.stats = DropCounter()
        self.limits = RateLimits()
        self._spool: Spool | None = None
        self._spool_ready = False
        self._closed = False
        self._reset_state()

    def _reset_state(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._outbox: deque[Payload] = deque()
        self._outbox_bytes = 0
        self._inflight = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._failures = 0
        self._retry_at = 0.0
        self._spool_paused_until = 0.0
        self._spill_blocked_until = 0.0
        self._pool: ConnectionPool | None = None
        self._pid = os.getpid()
        # In a forked child, locks the parent's sender held at fork time would stay locked forever.
        self.limits._lock = threading.Lock()
        spool = getattr(self, "_spool", None)
        if spool is not None:
            spool._lock = threading.Lock()

    # -- configuration ---------------------------------------------------------------------------
    def configure(self, options: Options) -> None:
        if self.http_timeout is None:
            self.http_timeout = options.http_timeout
        if self.spool_dir is None:
            self.spool_dir = options.spool_dir
        if self.spool_max_bytes is None:
            self.spool_max_bytes = options.spool_max_bytes

    def bind(self, stats: DropCounter) -> None:
        super().bind(stats)
        self._open_spool()
        if self._spool is not None and len(self._spool):
            # Left over from an earlier run: start sending it now, not at the first new event.
            self._ensure_thread()

    def _open_spool(self) -> None:
        if self._spool_ready:
            return
        self._spool_ready = True
        if not self.spool_dir:
            return
        from .._spool import Spool

        directory = os.path.join(self.spool_dir, self.spool_key())
        max_bytes = 64 * 1024 * 1024 if self.spool_max_bytes is None else self.spool_max_bytes
        self._spool = Spool(directory, max_bytes, on_evict=self._spool_evicted)

    def spool_key(self) -> str:
        """The spool subdirectory of this reporter: the same for the same backend across restarts."""
        return self.name

    # -- what subclasses provide -------------------------------------------------------------------
    def encode_event(self, event: Event) -> Payload | None:
        """Encode one event for the backend (runs on the client's worker)."""
        raise NotImplementedError

    def encode_sessions(self, batch: SessionBatch) -> list[Payload]:
        """Encode release-health data; none by default."""
        return []

    def render(self, payload: Payload) -> tuple[bytes, dict[str, str]]:
        """The body and headers to send, built at send time (so time stamps are fresh)."""
        return payload.body, {"Content-Type": "application/json"}

    def on_idle(self) -> None:
        """Called on the sender thread every ``idle_interval`` seconds while nothing is sent."""

    # -- the worker's side -------------------------------------------------------------------------
    def send_event(self, event: Event) -> None:
        payload = self.encode_event(event)
        if payload is not None:
            self.submit(payload)

    def send_sessions(self, batch: SessionBatch) -> None:
        for payload in self.encode_sessions(batch):
            self.submit(payload)

    def submit(self, payload: Payload) -> bool:
        """Queue a payload for the sender thread; never blocks. False if it was dropped (counted)."""
        if self._pid != os.getpid():
            self._reset_state()
        if self._closed:
            self._drop(payload, "queue_full")
            return False
        if self.limits.is_limited(payload.categories):
            self._drop(payload, "rate_limited")
            return False
        evicted: Payload | None = None
        overflow = False
        with self._cond:
            size = len(payload.body)
            full = (
                len(self._outbox) >= self.max_outbox_items
                or self._outbox_bytes + size > self.max_outbox_bytes
            )
            if full and not payload.low_priority:
                evicted = self._evict_low_locked()
                full = evicted is None
            if full:
                overflow = True
            else:
                self._outbox.append(payload)
                self._outbox_bytes += size
                self._cond.notify_all()
            unhealthy = self._retry_at > time.monotonic()
        if evicted is not None:
            self._drop(evicted, "queue_full")
        if overflow:
            if not self._to_spool(payload):
                self._drop(payload, "network_error" if unhealthy else "queue_full")
            return False
        if not self._ensure_thread():
            self._drain_inline()
        return True

    def _evict_low_locked(self) -> Payload | None:
        for index, queued in enumerate(self._outbox):
            if queued.low_priority:
                del self._outbox[index]
                self._outbox_bytes -= len(queued.body)
                return queued
        return None

    def _ensure_thread(self) -> bool:
        with self._cond:
            if self._thread is not None:
                return True
            thread = threading.Thread(target=self._run, name=f"tripwire-{self.name}", daemon=True)
            self._thread = thread
        try:
            thread.start()
        except RuntimeError:
            # At interpreter shutdown (Python >= 3.12) no new thread may start.
            with self._cond:
                self._thread = None
            return False
        return True

    # -- drops -------------------------------------------------------------------------------------
    def _drop(self, payload: Payload, reason: str) -> None:
        if not payload.count_drops:
            return
        for category, quantity in payload.categories.items():
            self.stats.record(reason, category, quantity, reporter=self.name)

    def _leftover_reason(self, payload: Payload, unhealthy: bool) -> str:
        """Why a payload still waiting at close was not delivered."""
        if self.limits.is_limited(payload.categories):
            return "rate_limited"
        return "network_error" if unhealthy else "queue_full"

    def _spool_evicted(self, meta: dict[str, Any]) -> None:
        if meta.get("count_drops", True):
            for category, quantity in (meta.get("categories") or {"error": 1}).items():
                self.stats.record("queue_full", category, int(quantity), reporter=self.name)

    def _to_spool(self, payload: Payload) -> bool:
        if self._spool is None:
            return False
        if payload.claim is not None:
            if payload.attempts == payload.claimed_attempts:
                self._spool.release(payload.claim, delivered=False)  # unchanged: back in its place
                return True
            # It used up an attempt: store the count with it (at the back of the spool, so that a
            # payload the server keeps failing on does not hold up the others).
            self._spool.release(payload.claim, delivered=True)
            payload.claim = None
        return self._spool.write(payload.to_spool(), payload.body)

    # -- the sender thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                job = self._next()
                if job is None:
                    return
                if job is _SPILL:
                    self._spill()
                    continue
                if job is _IDLE:
                    try:
                        self.on_idle()
                    except Exception:
                        logger.exception("tripwire: %s failed in on_idle", self.name)
                    continue
                if job is _FROM_SPOOL:
                    payload = self._claim_from_spool()
                    if payload is None:
                        with self._cond:
                            self._inflight -= 1
                            self._cond.notify_all()
                        continue
                else:
                    payload = job
                outcome, reason, status = self._attempt(payload)
                self._settle(payload, outcome, reason, status)
        finally:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def _next(self) -> Any:
        """The next thing to do: a payload, _FROM_SPOOL, _SPILL, _IDLE, or None to stop."""
        with self._cond:
            while True:
                if self._stopping:
                    self._thread = None
                    return None
                now = time.monotonic()
                if self._retry_at > now:
                    if self._spool is not None and self._outbox and self._spill_blocked_until <= now:
                        return _SPILL
                    self._cond.wait(self._retry_at - now)
                    continue
                spool = self._spool
                if spool is not None and self._spool_paused_until <= now and len(spool):
                    self._inflight += 1
                    return _FROM_SPOOL
                soonest = 0.0
                for index, payload in enumerate(self._outbox):
                    until = self.limits.limited_until(payload.categories)
                    if not until:
                        del self._outbox[index]
                        self._outbox_bytes -= len(payload.body)
                        self._inflight += 1
                        return payload
                    soonest = until if not soonest else min(soonest, until)
                if soonest:
                    self._cond.wait(max(0.001, soonest - now))
                elif spool is not None and len(spool) and self._spool_paused_until > now:
                    self._cond.wait(self._spool_paused_until - now)
                elif self.idle_interval is None:
                    self._cond.wait()
                elif not self._cond.wait(self.idle_interval):
                    return _IDLE

    def _spill(self) -> None:
        """The backend is down: move the outbox to disk, where it survives a restart."""
        with self._cond:
            payloads = list(self._outbox)
            self._outbox.clear()
            self._outbox_bytes = 0
            self._inflight += len(payloads)
        kept: list[Payload] = []
        try:
            for payload in payloads:
                if not self._to_spool(payload):
                    kept.append(payload)
        finally:
            with self._cond:
                if kept:
                    # The disk refused (full, read-only, too big): keep them in memory, and do not
                    # try again before the next attempt to send.
                    self._outbox.extendleft(reversed(kept))
                    self._outbox_bytes += sum(len(p.body) for p in kept)
                    self._spill_blocked_until = self._retry_at
                self._inflight -= len(payloads)
                self._cond.notify_all()

    def _claim_from_spool(self) -> Payload | None:
        assert self._spool is not None
        claimed = self._spool.claim_oldest()
        if claimed is None:
            return None
        path, meta, body = claimed
        payload = Payload.from_spool(meta, body, path)
        until = self.limits.limited_until(payload.categories)
        if until:
            self._spool.release(path, delivered=False)
            with self._cond:
                self._spool_paused_until = until
            return None
        return payload

    def _attempt(self, payload: Payload) -> tuple[str, str, int]:
        """Send once: (outcome, drop reason, HTTP status or 0)."""
        try:
            body, headers = self.render(payload)
        except Exception:
            logger.exception("tripwire: %s could not render a %s payload", self.name, payload.kind)
            return _DROP, "internal_error", 0
        if self.compress:
            import zlib  # here, on the sender thread: not a cost of import tripwire or init()

            packer = zlib.compressobj(self.compress_level, zlib.DEFLATED, 31)  # 31: gzip container
            body = packer.compress(body) + packer.flush()
            headers["Content-Encoding"] = "gzip"
        try:
            if self._pool is None:
                timeout = self.http_timeout if self.http_timeout is not None else 5.0
                self._pool = ConnectionPool(timeout, self.ca_file, self.proxy)
            status, reply_headers, reply = self._pool.post(payload.url, body, headers)
        except Unreachable as exc:
            self._log_failure(payload, f"cannot connect: {exc}")
            return _RETRY, "network_error", 0
        except Exception as exc:
            payload.attempts += 1
            self._log_failure(payload, f"network error: {exc!r}")
            return _RETRY, "network_error", -1
        self.limits.update(status, reply_headers)
        if 200 <= status < 300:
            return _SENT, "", status
        if status in _UNAVAILABLE or status >= 500:
            if status not in _UNAVAILABLE:
                payload.attempts += 1
            self._log_failure(payload, f"HTTP {status}")
            return _RETRY, "network_error", status
        text = reply[:300].decode("utf-8", "replace")
        if status == 413:
            logger.warning(
                "tripwire: %s rejected a %s payload of %d bytes as too large (HTTP 413): %s",
                self.name, payload.kind, len(body), text,
            )
            return _DROP, "too_large", status
        logger.warning(
            "tripwire: %s rejected a %s payload (HTTP %d): %s", self.name, payload.kind, status, text
        )
        return _DROP, "rejected", status

    def _log_failure(self, payload: Payload, what: str) -> None:
        if self._failures == 0:
            logger.warning(
                "tripwire: %s could not deliver to %s (%s); will retry", self.name, payload.url, what
            )
        else:
            logger.debug("tripwire: %s delivery failed again (%s)", self.name, what)

    def _settle(self, payload: Payload, outcome: str, reason: str, status: int) -> None:
        spool = self._spool
        if outcome == _SENT:
            if payload.claim is not None and spool is not None:
                spool.release(payload.claim, delivered=True)
            if payload.count_drops:
                self.stats.record_sent(self.name, sum(payload.categories.values()))
            with self._cond:
                recovered = self._failures > 0
                self._failures = 0
                self._retry_at = 0.0
            if recovered:
                logger.info("tripwire: %s delivers again", self.name)
                if spool is not None:
                    spool.scan()  # other processes may have spooled meanwhile
        elif outcome == _DROP or payload.attempts >= self.max_attempts:
            if payload.claim is not None and spool is not None:
                spool.release(payload.claim, delivered=True)
            if outcome == _RETRY:
                logger.warning(
                    "tripwire: %s gave up on a %s payload after %d attempts",
                    self.name, payload.kind, payload.attempts,
                )
                reason = "rejected" if status > 0 else "network_error"
            self._drop(payload, reason)
        else:
            if status != 429:
                import random  # only once a backend fails: importing it costs 1.6 ms of CPU

                with self._cond:
                    self._failures += 1
                    delay = min(self.backoff_max, self.backoff_base * 2 ** (self._failures - 1))
                    delay *= random.uniform(0.5, 1.0)
                    self._retry_at = time.monotonic() + delay
            if not self._to_spool(payload):
                if self._closed:
                    self._drop(payload, self._leftover_reason(payload, status != 429))
                else:
                    with self._cond:
                        self._outbox.appendleft(payload)
                        self._outbox_bytes += len(payload.body)
        with self._cond:
            self._inflight -= 1
            self._cond.notify_all()

    # -- shutdown path without a thread ------------------------------------------------------------
    def _drain_inline(self) -> None:
        """Deliver on the calling thread: only when no thread can start (interpreter shutdown)."""
        while True:
            with self._cond:
                if not self._outbox:
                    return
                payload = self._outbox.popleft()
                self._outbox_bytes -= len(payload.body)
            outcome, reason, status = self._attempt(payload)
            if outcome == _SENT:
                self.stats.record_sent(self.name, sum(payload.categories.values()))
            elif outcome == _DROP or not self._to_spool(payload):
                self._drop(payload, reason)

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Payloads queued or being sent (not counting the spool)."""
        with self._cond:
            return len(self._outbox) + self._inflight

    @property
    def spooled(self) -> int:
        """Payloads waiting in the spool directory."""
        return len(self._spool) if self._spool is not None else 0

    def _busy_locked(self, now: float) -> bool:
        if self._outbox or self._inflight:
            return True
        spool = self._spool
        # Spooled payloads are safe on disk: wait for them only while the backend answers.
        return (
            spool is not None
            and self._retry_at <= now
            and self._spool_paused_until <= now
            and len(spool) > 0
        )

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything handed over is delivered, dropped, or (backend down) spooled."""
        if self._pid != os.getpid():
            self._reset_state()
        if self._spool is not None and len(self._spool) and not self._closed:
            self._ensure_thread()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                if not self._busy_locked(now):
                    return True
                if self._thread is None:
                    return False
                if deadline is None:
                    self._cond.wait(0.5)
                    continue
                if now >= deadline:
                    return False
                self._cond.wait(min(0.5, deadline - now))

    def close(self, timeout: float | None) -> None:
        """Flush (up to ``timeout``), stop the sender; spool or count whatever is left."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        with self._cond:
            self._stopping = True
            left = list(self._outbox)
            self._outbox.clear()
            self._outbox_bytes = 0
            unhealthy = self._retry_at > time.monotonic()
            thread = self._thread
            self._cond.notify_all()
        for payload in left:
            if not self._to_spool(payload):
                self._drop(payload, self._leftover_reason(payload, unhealthy))
        if thread is not None and thread is not threading.current_thread():
            thread.join(0.05)
