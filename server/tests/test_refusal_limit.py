"""A client that keeps being refused is held off, by address, while other clients are served
(issue 11, the attack mix); and the digest process yields the CPUs to ingest.

The live tests run a real uvicorn on 127.0.0.1 and come from other loopback addresses (Linux routes
all of 127.0.0.0/8 to lo): 127.0.0.1 itself is a trusted proxy by default, as in uvicorn.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tripwire_server.config import Limits
from tripwire_server.refusal_limit import RefusalLimiter
from tripwire_server.store import open_store

from .conftest import LiveServer, ServeProcess, envelope, make_event, wait_until
from .rawhttp import RawClient, request_head

pytestmark = pytest.mark.reliability

ATTACKER = "127.0.0.2"
BYSTANDER = "127.0.0.3"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the decision, without a network ----------------------------------------------------------------


def test_an_address_is_blocked_after_its_burst_and_let_in_as_its_bucket_refills() -> None:
    """Past ``burst`` refusals an address is blocked; 1/rate seconds later it may try again."""
    clock = FakeClock()
    limiter = RefusalLimiter(2, 3, clock=clock)
    for _ in range(3):
        assert not limiter.blocked(ATTACKER)
        limiter.charge(ATTACKER)
    assert limiter.blocked(ATTACKER)
    assert not limiter.blocked(BYSTANDER)
    assert limiter.retry_after(ATTACKER) == 1
    clock.now += 0.6  # 1.2 tokens back at 2 per second
    assert not limiter.blocked(ATTACKER)
    limiter.charge(ATTACKER)
    assert limiter.blocked(ATTACKER)


def test_trusted_proxies_and_non_ip_clients_are_never_blocked() -> None:
    """A trusted proxy speaks for many clients, and an in-process client has no address: neither
    is charged."""
    limiter = RefusalLimiter(1, 1, trusted="127.0.0.1,10.0.0.0/8")
    for host in ("127.0.0.1", "10.1.2.3", "testclient", None):
        for _ in range(5):
            limiter.charge(host)
        assert not limiter.blocked(host), host
    assert limiter.tracked() == 0


def test_ipv6_clients_are_limited_per_64_block() -> None:
    """Addresses of one /64 (one host's usual allocation) share a bucket; another /64 does not."""
    limiter = RefusalLimiter(1, 2)
    limiter.charge("2001:db8:1:2::1")
    limiter.charge("2001:db8:1:2::ffff")
    assert limiter.blocked("2001:db8:1:2:aaaa::9")
    assert not limiter.blocked("2001:db8:1:3::1")


def test_a_zero_rate_turns_the_limit_off() -> None:
    """refusal_rate=0: nothing is remembered, nothing is ever blocked."""
    limiter = RefusalLimiter(0, 100)
    for _ in range(500):
        limiter.charge(ATTACKER)
    assert not limiter.blocked(ATTACKER)
    assert limiter.tracked() == 0


def test_the_addresses_remembered_are_bounded() -> None:
    """A flood of distinct addresses never grows the table past max_tracked."""
    clock = FakeClock()
    limiter = RefusalLimiter(1, 1, max_tracked=100, clock=clock)
    for n in range(5000):
        limiter.charge(f"198.18.{n // 256}.{n % 256}")
        clock.now += 0.001
    assert limiter.tracked() <= 100
    assert limiter.blocked("198.18.19.135")  # the newest are kept


def test_held_connections_per_address_are_capped() -> None:
    """At most max_held connections of one address are held; the rest are cut."""
    limiter = RefusalLimiter(1, 1, max_held=2)
    assert limiter.take_hold(ATTACKER) and limiter.take_hold(ATTACKER)
    assert not limiter.take_hold(ATTACKER)
    limiter.release_hold(ATTACKER)
    assert limiter.take_hold(ATTACKER)
    assert limiter.held(ATTACKER) == 2


# -- against the served collector -----------------------------------------------------------------


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A collector that holds an address off after 3 refusals (1 more per second), for 0.8 s."""
    limits = Limits(refusal_rate=1, refusal_burst=3, refusal_hold=0.8, refusal_max_held=4)
    live = LiveServer(f"sqlite:///{tmp_path / 'db.sqlite3'}", limits=limits)
    yield live
    live.stop()


def _bad_key_head(server: LiveServer, length: int, extra: dict[str, str] | None = None) -> bytes:
    headers = {"X-Sentry-Auth": "Sentry sentry_key=" + "0" * 32, **(extra or {})}
    return request_head(f"/api/{server.project.id}/envelope/", length=length, headers=headers)


def _good_request(server: LiveServer, extra: dict[str, str] | None = None) -> bytes:
    body = envelope(("event", make_event()))
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={server.key}", **(extra or {})}
    head = request_head(f"/api/{server.project.id}/envelope/", length=len(body), headers=headers)
    return head + body


def _refuse_until_blocked(server: LiveServer, source: str) -> None:
    """Three requests with a made-up key, each refused (403) without its body being read, and
    each connection closed by the server."""
    for _ in range(3):
        client = RawClient(server.port, source=source)
        client.send(_bad_key_head(server, 100_000))  # the body never comes: it is not awaited
        status, raw = client.response(timeout=3)
        assert status == 403, raw
        assert b"connection: close" in raw.lower()
        assert client.closed_by_server(2)
        client.close()


def test_an_address_refused_too_often_is_held_off_while_another_is_served(
    limited_server: LiveServer,
) -> None:
    """After its burst of refusals, an attacker's next connection waits unread for the hold, then
    gets 429 with Retry-After; meanwhile a client from another address is acknowledged at once."""
    _refuse_until_blocked(limited_server, ATTACKER)
    held = RawClient(limited_server.port, source=ATTACKER)
    started = time.monotonic()
    held.send(_bad_key_head(limited_server, 100_000) + b"x" * 1000)

    bystander = RawClient(limited_server.port, source=BYSTANDER)
    bystander.send(_good_request(limited_server))
    status, raw = bystander.response(timeout=3)
    assert status == 200, raw
    assert time.monotonic() - started < 0.6  # served while the attacker's connection waits
    bystander.close()

    status, raw = held.response(timeout=3)
    elapsed = time.monotonic() - started
    held.close()
    assert status == 429, raw
    assert b"retry-after: 1" in raw.lower()
    assert 0.7 < elapsed < 2.5
    counts = limited_server.http.get("/api/0/health/").json()["refusals"]
    assert counts["client_blocked"] >= 1
    # Held, not charged: one second later the address is let in again (and refused on its merits).
    time.sleep(1.1)
    again = RawClient(limited_server.port, source=ATTACKER)
    again.send(_bad_key_head(limited_server, 0))
    status, raw = again.response(timeout=3)
    again.close()
    assert status == 403, raw


def test_a_held_client_that_gives_up_frees_its_place(limited_server: LiveServer) -> None:
    """A held connection the client closes stops counting against the address's held cap."""
    _refuse_until_blocked(limited_server, ATTACKER)
    limiter = limited_server.state.refusal_limiter
    for _ in range(3):
        client = RawClient(limited_server.port, source=ATTACKER)
        client.send(b"POST / HTTP/1.1\r\n")
        wait_until(lambda: limiter.held(ATTACKER) == 1, timeout=2)
        client.close()
        wait_until(lambda: limiter.held(ATTACKER) == 0, timeout=2)


def test_connections_past_the_held_cap_are_cut_at_once(limited_server: LiveServer) -> None:
    """With refusal_max_held (4) connections of an address held, a fifth is cut without an answer."""
    _refuse_until_blocked(limited_server, ATTACKER)
    held = [RawClient(limited_server.port, source=ATTACKER) for _ in range(4)]
    limiter = limited_server.state.refusal_limiter
    wait_until(lambda: limiter.held(ATTACKER) == 4, timeout=2)
    fifth = RawClient(limited_server.port, source=ATTACKER)
    fifth.send(_bad_key_head(limited_server, 0))
    status, _ = fifth.response(timeout=0.5)
    fifth.close()
    assert status == 0  # closed (reset) without a response, long before the 0.8 s hold
    for client in held:
        client.close()


def test_behind_a_trusted_proxy_the_forwarded_address_is_held_off(limited_server: LiveServer) -> None:
    """Through a trusted proxy (127.0.0.1), the client named in X-Forwarded-For is refused at once
    once over its limit, connection closed and body unread; another forwarded client is served,
    and so is the proxy's next connection."""
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(3):
        client = RawClient(limited_server.port)
        client.send(_bad_key_head(limited_server, 0, attacker))
        status, raw = client.response(timeout=3)
        assert status == 403, raw
        client.close()
    client = RawClient(limited_server.port)
    started = time.monotonic()
    client.send(_bad_key_head(limited_server, 100_000, attacker))
    status, raw = client.response(timeout=3)
    assert status == 429, raw
    assert time.monotonic() - started < 0.5  # not held: the proxy's connection serves others too
    assert b"connection: close" in raw.lower()
    client.close()
    other = RawClient(limited_server.port)
    other.send(_good_request(limited_server, {"X-Forwarded-For": "203.0.113.8"}))
    status, raw = other.response(timeout=3)
    other.close()
    assert status == 200, raw


# -- the digest process ---------------------------------------------------------------------------


def _niceness(pid: int) -> int:
    # Field 19 of /proc/PID/stat; the command name (field 2) may hold spaces, so count from ")".
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


@pytest.mark.slow  # a real `tripwire serve` and its spawned child: 3-6 s on a busy machine
def test_the_digest_process_runs_at_a_lower_cpu_priority_than_the_server(tmp_path: Path) -> None:
    """`tripwire serve` lowers its digest child's priority by 10 (os.nice), and it still digests."""
    served = ServeProcess("--data-dir", str(tmp_path))
    try:
        pid = int(served.info["pid"])
        children = wait_until(lambda: _children(pid), timeout=10)
        # The child lowers its priority as it starts: give it the moment that takes.
        wait_until(lambda: any(_niceness(c) == min(19, _niceness(pid) + 10) for c in children), timeout=10)
        project_id = served.dsn.rsplit("/", 1)[1]
        response = httpx.post(
            f"{served.url}/api/{project_id}/envelope/",
            content=envelope(("event", make_event())),
            headers={"X-Sentry-Auth": f"Sentry sentry_key={served.key}"},
        )
        assert response.status_code == 200
        store = open_store(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
        try:
            wait_until(lambda: store.issues.count_events() == 1, timeout=10)
        finally:
            store.close()
    finally:
        served.stop()
