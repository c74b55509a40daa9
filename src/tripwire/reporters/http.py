"""The HTTP reporters' sender (Sentry, BugSnag, or your own): the delivery parts, composed.

Each :class:`HttpReporter` owns one :class:`~tripwire.delivery.worker.Worker` (a bounded outbox and one
sender thread), so a slow or dead backend delays nobody but itself: the client's worker hands over an
encoded :class:`Payload` and moves on. The sender posts through
:class:`~tripwire.delivery.connections.ConnectionPool` (``http.client``, kept-alive, with an explicit
timeout, gzip-compressed); :func:`~tripwire.delivery.policy.classify` says what the answer means
(sent, retry, or drop and count), :func:`~tripwire.delivery.policy.backoff` how long to wait, and
:class:`~tripwire.delivery.ratelimits.RateLimits` which categories the backend asked to hold back. A
payload in a limited category that arrives while the limit lasts is dropped and counted as
``rate_limited``, as the Sentry protocol asks.

With a spool directory, payloads that cannot be delivered now go to disk (bounded in bytes, oldest
out first) and are sent when the backend answers again, also by a later process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from .._forksafe import reset_after_fork
from .._log import logger
from .._references import resolve
from .._stats import DropCounter
from .._types import Event, SessionBatch
from ..delivery import policy
from ..delivery.clock import MONOTONIC, Clock
from ..delivery.connections import ConnectionPool
from ..delivery.outbox import Outbox
from ..delivery.ratelimits import RateLimits
from ..delivery.worker import Worker
from .base import Reporter

if TYPE_CHECKING:
    from .._options import Options
    from ..delivery.spool import Spool


DEFAULT_MAX_OUTBOX_BYTES = 32 * 1024 * 1024
#: ``http_client=``: the standard library's http.client, or libcurl through the optional pycurl
#: (the exchange outside the GIL: see delivery/curl.py).
HTTP_CLIENTS = ("http.client", "pycurl")
DEFAULT_MAX_OUTBOX_ITEMS = 10_000
# What the sender does besides sending a payload from the outbox (see HttpReporter._pick).
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
        """The payload a spool file holds; ``ValueError`` if its metadata makes no sense."""
        try:
            return cls._from_spool(meta, body, claim)
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ValueError(f"unusable spool metadata: {exc}") from None

    @classmethod
    def _from_spool(cls, meta: Mapping[str, Any], body: bytes, claim: str) -> Payload:
        categories = {str(k): int(v) for k, v in dict(meta.get("categories") or {"error": 1}).items()}
        return cls(
            url=str(meta.get("url", "")),
            body=body,
            categories=categories,
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
    ``spool_max_bytes``) when the reporter is attached to a client. ``clock`` is the time base of
    backoff and rate-limit windows (tests inject a faster one).
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
        http_client: str = "http.client",
        clock: Clock = MONOTONIC,
        extras: Callable[[Event, Reporter], Mapping[str, Any] | None] | str | None = None,
    ) -> None:
        #: Per-reporter extras (asphalt's ``ExtrasProvider``): ``extras(event, reporter)`` returns data
        #: for this backend only, added to the event's ``extra`` before it is encoded.
        self.extras = resolve(extras, f"reporters[{name or self.name}].extras")
        if self.extras is not None and not callable(self.extras):
            raise ConfigurationError(f"reporters[{name or self.name}].extras: expected a callable")
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
        if http_client not in HTTP_CLIENTS:
            raise ConfigurationError(
                f"reporters[{name or self.name}].http_client: {http_client!r} is not one of {HTTP_CLIENTS}"
            )
        if http_client == "pycurl":
            from importlib.util import find_spec

            if find_spec("pycurl") is None:
                raise ConfigurationError(
                    f'reporters[{name or self.name}].http_client="pycurl" needs pycurl (pip install pycurl)'
                )
        #: What sends the requests: "http.client" (standard library) or "pycurl" (libcurl, optional).
        self.http_client = http_client
        if compress is not None:
            self.compress = compress
        if name is not None:
            self.name = name
        self.clock = clock
        self.stats = DropCounter()
        self.limits = RateLimits(clock)
        self._spool: Spool | None = None
        self._spool_ready = False
        self._closed = False
        self._worker = Worker(
            self._handle,
            Outbox(max_outbox_items, max_outbox_bytes, size=_body_size),
            name=f"tripwire-{self.name}",
            on_drop=self._evicted,
            pick=self._pick,
            clock=clock,
            on_stop=self._close_connections,
        )
        self._reset_sender()
        reset_after_fork(self)

    def _reset_sender(self) -> None:
        # Read by _pick under the worker's condition, written by the sender thread under it.
        self._failures = 0
        self._retry_at = 0.0
        self._spool_paused_until = 0.0
        self._spill_blocked_until = 0.0
        self._idle_since = self.clock.now()
        #: The sender thread's connections (only that thread uses them).
        self._pool: ConnectionPool | None = None

    def _after_fork_in_child(self) -> None:
        # The parent's connections and backoff are the parent's; the child's sender starts afresh.
        if self._pool is not None:
            self._pool.abandon()
        self._reset_sender()

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
            self._worker.start()

    def _open_spool(self) -> None:
        if self._spool_ready:
            return
        self._spool_ready = True
        if not self.spool_dir:
            return
        from ..delivery.spool import Spool

        directory = os.path.join(self.spool_dir, self.spool_key())
        max_bytes = 64 * 1024 * 1024 if self.spool_max_bytes is None else self.spool_max_bytes
        self._spool = Spool(
            directory, max_bytes, on_evict=self._spool_evicted, on_corrupt=self._spool_corrupt
        )

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
        if self.extras is not None:
            event = self._with_extras(event)
        payload = self.encode_event(event)
        if payload is not None:
            self.submit(payload)

    def _with_extras(self, event: Event) -> Event:
        assert self.extras is not None
        try:
            added = self.extras(event, self)
        except Exception:
            logger.exception("tripwire: the extras hook of reporter %s failed; event sent without", self.name)
            return event
        if not added:
            return event
        # A copy: the other reporters get the event as it was.
        return {**event, "extra": {**(event.get("extra") or {}), **dict(added)}}

    def send_sessions(self, batch: SessionBatch) -> None:
        for payload in self.encode_sessions(batch):
            self.submit(payload)

    def submit(self, payload: Payload) -> bool:
        """Queue a payload for the sender thread; never blocks. False if it was dropped (counted)."""
        if self._closed:
            self._drop(payload, "queue_full")
            return False
        if self.limits.is_limited(payload.categories):
            self._drop(payload, "rate_limited")
            return False
        if self._worker.submit(payload, low_priority=payload.low_priority):
            return True
        # The outbox is full (of errors): the spool may still take it.
        unhealthy = self._retry_at > self.clock.now()
        if not self._to_spool(payload):
            self._drop(payload, "network_error" if unhealthy else "queue_full")
        return False

    def _evicted(self, payload: Payload) -> None:
        """A low-priority payload an error pushed out of the full outbox."""
        self._drop(payload, "queue_full")

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

    def _spool_corrupt(self) -> None:
        # An unreadable spool file held one payload of an unknown category.
        self.stats.record("internal_error", reporter=self.name)

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
    def _pick(self, outbox: Outbox, now: float) -> tuple[Any, float | None]:
        """The sender's next job (under the worker's condition): a payload, _FROM_SPOOL, _SPILL or
        _IDLE; or None and how long to wait."""
        spool = self._spool
        if self._retry_at > now:
            if spool is not None and outbox and self._spill_blocked_until <= now:
                return _SPILL, None
            return None, self._retry_at - now
        if spool is not None and self._spool_paused_until <= now and len(spool):
            return _FROM_SPOOL, None
        payload = outbox.take(self._sendable)
        if payload is not None:
            return payload, None
        if outbox:
            # Everything waiting is in a rate-limited category: wait for the first limit to end.
            soonest = min(self.limits.limited_until(p.categories) or now for p in outbox)
            return None, max(0.001, soonest - now)
        if spool is not None and len(spool) and self._spool_paused_until > now:
            return None, self._spool_paused_until - now
        if self.idle_interval is None:
            return None, None
        due = self._idle_since + self.idle_interval
        if now >= due:
            self._idle_since = now
            return _IDLE, None
        return None, due - now

    def _sendable(self, payload: Payload) -> bool:
        return not self.limits.limited_until(payload.categories)

    def _handle(self, job: Any) -> None:
        if job is _SPILL:
            self._spill()
        elif job is _IDLE:
            try:
                self.on_idle()
            except Exception:
                logger.exception("tripwire: %s failed in on_idle", self.name)
        elif job is _FROM_SPOOL:
            payload = self._claim_from_spool()
            if payload is not None:
                self._deliver(payload)
        else:
            self._deliver(job)

    def _close_connections(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _spill(self) -> None:
        """The backend is down: move the outbox to disk, where it survives a restart."""
        payloads: list[Payload] = self._worker.take_all()
        kept: list[Payload] = []
        try:
            for payload in payloads:
                if not self._to_spool(payload):
                    kept.append(payload)
        finally:
            if kept:
                # The disk refused (full, read-only, too big): keep them in memory, and do not try
                # again before the next attempt to send.
                with self._worker.cond:
                    self._spill_blocked_until = self._retry_at
                self._worker.put_back(kept, low_priority=_is_low_priority)
            self._worker.done(len(payloads))

    def _claim_from_spool(self) -> Payload | None:
        assert self._spool is not None
        claimed = self._spool.claim_oldest()
        if claimed is None:
            return None
        path, meta, body = claimed
        try:
            payload = Payload.from_spool(meta, body, path)
        except ValueError as exc:
            logger.warning("tripwire: dropping a spool file of %s with %s", self.name, exc)
            self._spool.release(path, delivered=True)
            self._spool_corrupt()
            return None
        until = self.limits.limited_until(payload.categories)
        if until:
            self._spool.release(path, delivered=False)
            with self._worker.cond:
                self._spool_paused_until = until
            return None
        return payload

    def _deliver(self, payload: Payload) -> None:
        """One attempt, and what follows from its outcome."""
        outcome = self._attempt(payload)
        self._settle(payload, outcome)

    def _attempt(self, payload: Payload) -> policy.Outcome:
        """Send once and classify the answer (see :mod:`tripwire.delivery.policy`)."""
        try:
            body, headers = self.render(payload)
        except Exception:
            logger.exception("tripwire: %s could not render a %s payload", self.name, payload.kind)
            return policy.Outcome(policy.DROP, "internal_error")
        if self.compress:
            import zlib  # here, on the sender thread: not a cost of import tripwire or init()

            # 16 + window bits: a gzip container. The window (and memory level) fit the body: the
            # compressor's state is allocated and cleared per body, which for a 1-4 KB transaction
            # costs ~85 µs at the full 32 KB window and ~12 µs at one the body's size (same output).
            bits = min(15, max(9, (len(body) - 1).bit_length()))
            packer = zlib.compressobj(self.compress_level, zlib.DEFLATED, 16 + bits, max(1, min(8, bits - 7)))
            body = packer.compress(body) + packer.flush()
            headers["Content-Encoding"] = "gzip"
        status, reply, error = 0, b"", None
        reply_headers: dict[str, str] = {}
        try:
            if self._pool is None:
                timeout = self.http_timeout if self.http_timeout is not None else 5.0
                if self.http_client == "pycurl":
                    from ..delivery.curl import CurlPool

                    self._pool = CurlPool(timeout, self.ca_file, self.proxy)
                else:
                    self._pool = ConnectionPool(timeout, self.ca_file, self.proxy)
            status, reply_headers, reply = self._pool.post(payload.url, body, headers)
        except Exception as exc:
            error = exc
        outcome = policy.classify(status, reply_headers, error)
        if outcome.uses_attempt:
            payload.attempts += 1
        if error is not None:
            what = f"cannot connect: {error}" if not outcome.uses_attempt else f"network error: {error!r}"
            self._log_failure(payload, what)
            return outcome
        self.limits.update(status, reply_headers)
        if outcome.action == policy.RETRY:
            self._log_failure(payload, f"HTTP {status}")
        elif outcome.action == policy.DROP:
            text = reply[:300].decode("utf-8", "replace")
            if outcome.reason == "too_large":
                logger.warning(
                    "tripwire: %s rejected a %s payload of %d bytes as too large (HTTP 413): %s",
                    self.name,
                    payload.kind,
                    len(body),
                    text,
                )
            else:
                logger.warning(
                    "tripwire: %s rejected a %s payload (HTTP %d): %s",
                    self.name,
                    payload.kind,
                    status,
                    text,
                )
        return outcome

    def _log_failure(self, payload: Payload, what: str) -> None:
        if self._failures == 0:
            logger.warning(
                "tripwire: %s could not deliver to %s (%s); will retry", self.name, payload.url, what
            )
        else:
            logger.debug("tripwire: %s delivery failed again (%s)", self.name, what)

    def _settle(self, payload: Payload, outcome: policy.Outcome) -> None:
        spool = self._spool
        if outcome.action == policy.SENT:
            if payload.claim is not None and spool is not None:
                spool.release(payload.claim, delivered=True)
            if payload.count_drops:
                self.stats.record_sent(self.name, sum(payload.categories.values()))
            with self._worker.cond:
                recovered = self._failures > 0
                self._failures = 0
                self._retry_at = 0.0
            if recovered:
                logger.info("tripwire: %s delivers again", self.name)
                if spool is not None:
                    spool.scan()  # other processes may have spooled meanwhile
            return
        if outcome.action == policy.DROP or payload.attempts >= self.max_attempts:
            if payload.claim is not None and spool is not None:
                spool.release(payload.claim, delivered=True)
            if outcome.action == policy.RETRY:
                logger.warning(
                    "tripwire: %s gave up on a %s payload after %d attempts",
                    self.name,
                    payload.kind,
                    payload.attempts,
                )
            self._drop(payload, outcome.reason)
            return
        if outcome.backs_off:
            with self._worker.cond:
                self._failures += 1
                delay = policy.backoff(self._failures, self.backoff_base, self.backoff_max)
                self._retry_at = self.clock.now() + delay
        if not self._to_spool(payload):
            if self._closed:
                self._drop(payload, self._leftover_reason(payload, outcome.backs_off))
            else:
                self._worker.put_back([payload], low_priority=_is_low_priority)

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Payloads queued or being sent (not counting the spool)."""
        return self._worker.pending

    @property
    def spooled(self) -> int:
        """Payloads waiting in the spool directory."""
        return len(self._spool) if self._spool is not None else 0

    def _spool_busy(self) -> bool:
        # Spooled payloads are safe on disk: wait for them only while the backend answers.
        spool = self._spool
        if spool is None:
            return False
        now = self.clock.now()
        return self._retry_at <= now and self._spool_paused_until <= now and len(spool) > 0

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything handed over is delivered, dropped, or (backend down) spooled."""
        if self._spool is not None and len(self._spool) and not self._closed:
            self._worker.start()
        return self._worker.flush(timeout, busy=self._spool_busy)

    def close(self, timeout: float | None) -> None:
        """Flush (up to ``timeout``), stop the sender; spool or count whatever is left."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        _flushed, left = self._worker.close(0, join=0.05)
        unhealthy = self._retry_at > self.clock.now()
        for payload in left:
            if not self._to_spool(payload):
                self._drop(payload, self._leftover_reason(payload, unhealthy))


def _body_size(payload: Payload) -> int:
    return len(payload.body)


def _is_low_priority(payload: Payload) -> bool:
    return payload.low_priority
