"""A per-client-address limit on refusals: a client that keeps being refused is held off.

A real SDK that is refused (401, 413, 429 ...) backs off: it honours ``Retry-After`` and the rate
limit headers, or gives up. A hostile or broken client loops, and every refusal costs the server
an accept, a parse and an answer: CPU that acknowledged traffic then lacks (in the attack-mix
benchmark, ~10,000 refusals in 20 s took half of normal traffic's throughput).

Every refusal is charged to the client's address in a token bucket of ``burst`` refusals,
refilled at ``rate`` per second. While an address's bucket is empty, the address is *blocked*:

- a new connection from it is held without reading a byte for ``hold`` seconds (at most
  ``max_held`` at once per address; past that, cut at once), then answered 429 with
  ``Retry-After`` and closed: a client that loops pays that wait for every attempt, the server
  only keeps a socket open (:mod:`~tripwire_server.serving`);
- a request from it on a connection opened earlier, or forwarded by a trusted proxy, is answered
  429 at once, its body unread, and the connection closed (:mod:`~tripwire_server.ingest`).

These answers are counted (reason ``client_blocked``) but not charged, so the address is let in
again as soon as its bucket refills: a client that stops looping is served within ``1 / rate``
seconds.

The address is the peer's, or the one a trusted proxy (``--forwarded-allow-ips``) put in
``X-Forwarded-For``. A trusted proxy's own address is never charged or blocked: it speaks for many
clients, which are told apart by their forwarded addresses. Only IP addresses are limited (not a
Unix socket's peer or an in-process test client); IPv6 addresses count per /64, the block one
host usually has. At most ``max_tracked`` addresses are remembered: full buckets are forgotten
first, then the oldest entries.

Runs on the event loop only (no locks needed).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Iterable

from .config import Limits


def _parse_trusted(
    trusted: Iterable[str] | str,
) -> tuple[bool, list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """``(trust everyone, networks)`` from uvicorn's ``forwarded_allow_ips`` value."""
    items = [t.strip() for t in (trusted.split(",") if isinstance(trusted, str) else trusted)]
    if "*" in items:
        return True, []
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue  # a host name or a Unix socket path: never an IP peer
    return False, networks


class RefusalLimiter:
    """Refusals charged per client address; see the module docstring.

    ``rate`` <= 0 or ``burst`` <= 0 turns the limit off (nothing is ever blocked).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        hold: float = 10.0,
        max_held: int = 64,
        trusted: Iterable[str] | str = ("127.0.0.1", "::1"),
        max_tracked: int = 65_536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = float(rate)
        self.burst = int(burst)
        self.hold = hold
        self.max_held = max_held
        self.max_tracked = max_tracked
        self.clock = clock
        #: address key -> [tokens, time they were counted]
        self._buckets: dict[str, list[float]] = {}
        #: address key -> connections held now
        self._held: dict[str, int] = {}
        self._keys: dict[str, str | None] = {}
        self.trust(trusted)

    @classmethod
    def from_limits(cls, limits: Limits) -> RefusalLimiter:
        """The limit set by ``limits`` (``refusal_*``); trusted proxies are set when served."""
        return cls(
            limits.refusal_rate,
            limits.refusal_burst,
            hold=limits.refusal_hold,
            max_held=limits.refusal_max_held,
        )

    @property
    def enabled(self) -> bool:
        return self.rate > 0 and self.burst > 0

    def trust(self, trusted: Iterable[str] | str) -> None:
        """Set the proxies trusted to forward client addresses (never charged nor blocked)."""
        self._trust_all, self._trusted = _parse_trusted(trusted)
        self._keys.clear()

    def key(self, host: str | None) -> str | None:
        """The bucket of ``host``: None when it is not limited (not an IP, or a trusted proxy)."""
        if not host or not self.enabled:
            return None
        cached = self._keys.get(host, "")
        if cached != "":
            return cached
        key: str | None
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            key = None
        else:
            if self._trust_all or any(ip in net for net in self._trusted):
                key = None
            elif ip.version == 6:
                key = str(ipaddress.ip_network(f"{ip}/64", strict=False))
            else:
                key = host
        if len(self._keys) >= self.max_tracked:
            self._keys.clear()  # a cache only: rebuilt on demand
        self._keys[host] = key
        return key

    def _tokens(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(self.burst)
        return min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate)

    def charge(self, host: str | None) -> None:
        """One refusal answered to ``host``."""
        key = self.key(host)
        if key is None:
            return
        now = self.clock()
        tokens = self._tokens(key, now)
        if key not in self._buckets and len(self._buckets) >= self.max_tracked:
            self._forget(now)
        self._buckets[key] = [max(0.0, tokens - 1.0), now]

    def blocked(self, host: str | None) -> bool:
        """Whether ``host`` has been refused more than its bucket allows (its requests are not read)."""
        if not self._buckets:
            return False
        key = self.key(host)
        return key is not None and key in self._buckets and self._tokens(key, self.clock()) < 1.0

    def retry_after(self, host: str | None) -> int:
        """Whole seconds until ``host`` is let in again (at least 1)."""
        key = self.key(host)
        if key is None or not self.enabled:
            return 1
        missing = 1.0 - self._tokens(key, self.clock())
        return max(1, math.ceil(missing / self.rate))

    def take_hold(self, host: str | None) -> bool:
        """Count one more held connection of ``host``; False (nothing counted) when it holds
        ``max_held`` already (the caller cuts the connection instead)."""
        key = self.key(host)
        if key is None:
            return False
        held = self._held.get(key, 0)
        if held >= self.max_held:
            return False
        self._held[key] = held + 1
        return True

    def release_hold(self, host: str | None) -> None:
        """A held connection of ``host`` is gone."""
        key = self.key(host)
        if key is None or key not in self._held:
            return
        if self._held[key] <= 1:
            del self._held[key]
        else:
            self._held[key] -= 1

    def held(self, host: str | None) -> int:
        key = self.key(host)
        return self._held.get(key, 0) if key is not None else 0

    def tracked(self) -> int:
        """Addresses remembered now (bounded by ``max_tracked``)."""
        return len(self._buckets)

    def _forget(self, now: float) -> None:
        """Make room: drop the buckets that refilled, then the oldest tenth if still full."""
        full = [k for k in self._buckets if self._tokens(k, now) >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_tracked:
            for k in list(self._buckets)[: max(1, self.max_tracked // 10)]:
                del self._buckets[k]


__all__ = ["RefusalLimiter"]
