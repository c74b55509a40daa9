"""How the collector is served: uvicorn, plus the deadlines uvicorn does not enforce.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and refuses requests past
``limit_concurrency`` with 503, but a connection that never finishes its headers, sends them
endlessly or trickles its body one byte at a time is kept for as long as the client likes. The
protocol class here adds, per connection:

- a header deadline: the request line and headers must be complete ``header_timeout`` seconds
  after the connection opens (or after the first byte of the next request on it), else 408;
- a header size cap: ``max_request_header_size`` bytes, else 431;
- a body pace: ``body_min_rate`` bytes per second on average after ``body_grace`` seconds, else
  408, counting only the time the server was ready to read (not time it spent pausing the client).

Both answers close the connection. The decision is :class:`BodyPace`, a pure object; the protocol
only feeds it bytes and times. Every refusal, uvicorn's 503 past ``limit_concurrency`` too, is
counted in the app's :class:`~tripwire_server.refusals.Refusals`.

A connection from an address that was refused too often
(:class:`~tripwire_server.refusal_limit.RefusalLimiter`) is held for ``refusal_hold`` seconds
without parsing a byte (what it sends is dropped; past 1 MiB it is cut), then answered 429 and
closed; past ``refusal_max_held`` such connections per address, it is cut at once. The 408 and
431 above are charged to the peer's address.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Limits
from .refusal_limit import RefusalLimiter
from .refusals import Refusals

_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


#: Bytes a held connection may send (read and dropped) before it is cut.
_HOLD_DISCARD = 1024 * 1024


def _too_many(retry_after: int) -> bytes:
    return (
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: %d\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        % retry_after
    )


class BodyPace:
    """Whether a request body arrives fast enough: ``received >= min_rate * (waited - grace)``.

    ``waited`` is the time the server was ready to read, fed with :meth:`advance`.
    """

    __slots__ = ("_last", "grace", "min_rate", "received", "waited")

    def __init__(self, min_rate: float, grace: float, now: float) -> None:
        self.min_rate = min_rate
        self.grace = grace
        self.received = 0
        self.waited = 0.0
        self._last = now

    def advance(self, now: float, *, reading: bool) -> None:
        """Time has passed until ``now``; it counts only if the server was ``reading``."""
        if reading:
            self.waited += now - self._last
        self._last = now

    def too_slow(self) -> bool:
        if self.min_rate <= 0:
            return False
        return self.waited > self.grace + self.received / self.min_rate


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines of the module docstring."""

    limits: Limits = Limits()
    refusals: Refusals = Refusals()
    limiter: RefusalLimiter = RefusalLimiter(0, 0)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._in_headers = True
        self._in_body = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._pace: BodyPace | None = None
        self._pace_timer: asyncio.TimerHandle | None = None
        self._held = False
        host = self.client[0] if self.client else None
        if self.limiter.blocked(host):
            self._hold(host)
            return
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._held:
            self._held = False
            self.limiter.release_hold(self.client[0] if self.client else None)
        super().connection_lost(exc)

    def _hold(self, host: str | None) -> None:
        """Keep a connection from an address refused too often, unparsed, then answer 429."""
        self.refusals.add("client_blocked")
        if not self.limiter.take_hold(host):
            # Enough of its connections wait already: this one costs only the accept.
            self.transport.abort()
            return
        self._held = True
        self._discarded = 0
        self._header_timer = self.loop.call_later(self.limiter.hold, self._release_hold)

    def _release_hold(self) -> None:
        self._header_timer = None
        host = self.client[0] if self.client else None
        self._refuse(_too_many(self.limiter.retry_after(host)), None, charge=False)

    def data_received(self, data: bytes) -> None:
        if self._held:
            # Read and dropped, never parsed: reading is what tells us when the client gives up
            # and closes (a paused socket would stay held until the timer).
            self._discarded += len(data)
            if self._discarded > _HOLD_DISCARD:
                self._cancel_timers()
                self.transport.abort()
            return
        # Outside a body every byte belongs to some request's line and headers (the first bytes
        # of the next request on a keep-alive connection too, before the parser says it began).
        if not self._in_body:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._in_headers and self._header_bytes > self.limits.max_request_header_size:
            self._refuse(_TOO_LARGE, "header_too_large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        if self._header_timer is None:
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            # The very test uvicorn makes next to answer 503: count what it refuses.
            self.refusals.add("over_connections")
        self._in_headers = False
        self._in_body = True
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        limits = self.limits
        if limits.body_min_rate > 0:
            self._pace = BodyPace(limits.body_min_rate, limits.body_grace, self.loop.time())
            self._pace_timer = self.loop.call_later(self._tick, self._check_pace)

    def on_body(self, body: bytes) -> None:
        if self._pace is not None:
            self._pace.received += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._stop_pace()
        super().on_message_complete()

    @property
    def _tick(self) -> float:
        return max(0.05, min(1.0, self.limits.body_grace / 4))

    def _arm_header_deadline(self) -> None:
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout, self._refuse, _TIMEOUT, "header_timeout"
        )

    def _check_pace(self) -> None:
        pace = self._pace
        if pace is None or self.transport.is_closing():
            return
        pace.advance(self.loop.time(), reading=not self.flow.read_paused)
        if pace.too_slow():
            self._refuse(_TIMEOUT, "body_timeout")
        else:
            self._pace_timer = self.loop.call_later(self._tick, self._check_pace)

    def _stop_pace(self) -> None:
        self._pace = None
        if self._pace_timer is not None:
            self._pace_timer.cancel()
            self._pace_timer = None

    def _cancel_timers(self) -> None:
        self._stop_pace()
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, response: bytes, reason: str | None, *, charge: bool = True) -> None:
        """Answer ``response`` (if no response is under way) and close; count it as ``reason``
        (None: counted already) and charge it to the client's address."""
        self._cancel_timers()
        if self.transport.is_closing():
            return
        if reason is not None:
            self.refusals.add(reason)
        if charge:
            self.limiter.charge(self.client[0] if self.client else None)
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            # Answer only where no response is under way; otherwise just cut the connection.
            self.transport.write(response)
        self.transport.close()


def protocol_class(
    limits: Limits, refusals: Refusals | None = None, limiter: RefusalLimiter | None = None
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give uvicorn for these limits, counting into ``refusals`` and
    charging refusals to client addresses in ``limiter``."""
    attrs = {
        "limits": limits,
        "refusals": refusals or Refusals(),
        "limiter": limiter or RefusalLimiter.from_limits(limits),
    }
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), attrs)


def uvicorn_config(app: Any, limits: Limits, **options: Any) -> uvicorn.Config:
    """A uvicorn configuration that serves ``app`` with ``limits`` enforced on every connection.

    Refusals are counted in the collector's own counters when ``app`` is the collector (so its
    health endpoint and Server page show them), and charged to client addresses in its refusal
    limiter (which trusts the proxies of ``forwarded_allow_ips``, as uvicorn does).
    """
    collector = getattr(getattr(app, "state", None), "collector", None)
    limiter = getattr(collector, "refusal_limiter", None) or RefusalLimiter.from_limits(limits)
    config = uvicorn.Config(
        app,
        http=protocol_class(limits, getattr(collector, "refusals", None), limiter),
        limit_concurrency=limits.max_connections or None,
        **options,
    )
    limiter.trust(config.forwarded_allow_ips)
    return config
