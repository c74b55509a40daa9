"""The login throttle over real HTTP: per account and per address, a slot taken before the
password check, successes of other accounts never resetting it, and the address behind a proxy.

Password checks are counted by wrapping the real ``check_password`` (it still runs): what an
attacker gets is the number of scrypt checks against the target, not the number of 401s.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.support.figures import record
from tripwire_server import credentials
from tripwire_server.app import create_app
from tripwire_server.config import CollectorConfig
from tripwire_server.store import Store, open_store
from tripwire_server.web._auth import LoginThrottle

from .conftest import PASSWORD, Collector, csrf_of, running_collector, wait_for

pytestmark = pytest.mark.reliability


class CheckCounter:
    """Counts real scrypt checks per password tried (the target's guesses are all distinct)."""

    def __init__(self) -> None:
        self.checks: list[str] = []
        self._lock = threading.Lock()
        self._real = credentials.check_password

    def __call__(self, password: str, encoded: str) -> bool:
        with self._lock:
            self.checks.append(password)
        return self._real(password, encoded)

    def guesses(self) -> int:
        return sum(1 for p in self.checks if p.startswith("guess-"))


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> CheckCounter:
    counter = CheckCounter()
    monkeypatch.setattr(credentials, "check_password", counter)
    return counter


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Collector]:
    with running_collector(tmp_path, run_digester=False) as running:
        running.store.accounts.create_user("low", "low password 123")
        yield running


def _attempt(client: httpx.Client, username: str, password: str, address: str | None = None) -> int:
    headers = {"X-Forwarded-For": address} if address else {}
    form = client.get("/login")
    response = client.post(
        "/login",
        data={"csrf_token": csrf_of(form.text), "username": username, "password": password},
        headers=headers,
    )
    client.cookies.delete("tripwire_session")
    return response.status_code


# 20+ scrypt checks and a server start: seconds on a loaded machine.
@pytest.mark.slow
def test_another_accounts_success_never_resets_the_address_count(
    own: Collector, counted: CheckCounter
) -> None:
    """Logging in with one's own low-privilege account between guesses does not buy more admin
    guesses: at most 20 admin passwords are checked per address, then 429."""
    statuses = []
    with httpx.Client(base_url=own.url, timeout=30) as client:
        for i in range(57):
            if i % 5 == 4:
                _attempt(client, "low", "low password 123")
            statuses.append(_attempt(client, "admin", f"guess-{i}"))
    assert counted.guesses() <= 20
    assert statuses.count(429) >= 57 - 20
    record(
        "attacks",
        "admin guesses checked out of 57, interleaved with another account's logins",
        counted.guesses(),
    )


# 20+ scrypt checks and a server start: seconds on a loaded machine.
@pytest.mark.slow
def test_an_account_is_throttled_across_addresses(own: Collector, counted: CheckCounter) -> None:
    """Guesses spread over many client addresses still check at most 20 passwords of one account;
    the account's own correct password is refused while it is locked."""
    statuses = []
    with httpx.Client(base_url=own.url, timeout=30) as client:
        for i in range(30):
            statuses.append(_attempt(client, "admin", f"guess-{i}", address=f"10.1.0.{i + 1}"))
        locked = _attempt(client, "admin", PASSWORD, address="10.1.9.9")
    assert counted.guesses() <= 20
    assert statuses[-1] == 429
    assert locked == 429
    record("attacks", "password checks of one account from 30 addresses", counted.guesses())


# 20+ scrypt checks and a server start: seconds on a loaded machine.
@pytest.mark.slow
def test_the_address_behind_a_trusted_proxy_is_the_one_throttled(
    own: Collector, counted: CheckCounter
) -> None:
    """Behind a proxy the forwarded client address is counted: one address spraying many
    accounts is refused, while another client of the same proxy still logs in."""
    with httpx.Client(base_url=own.url, timeout=30) as client:
        statuses = [_attempt(client, f"user{i}", f"guess-{i}", address="10.2.0.1") for i in range(25)]
        other = _attempt(client, "low", "low password 123", address="10.2.0.2")
    assert statuses[:20] == [401] * 20
    assert set(statuses[20:]) == {429}
    assert counted.guesses() == 20
    assert other == 303


@pytest.mark.slow
def test_racing_wrong_logins_check_at_most_the_limit(own: Collector, counted: CheckCounter) -> None:
    """40 wrong logins sent at once from one address run at most 22 password checks: the slot is
    taken before the check, not counted after it."""
    with httpx.Client(base_url=own.url, timeout=60) as first:
        form = first.get("/login")
        csrf = csrf_of(form.text)
        cookie = first.cookies.get("tripwire_login_csrf") or ""
    barrier = threading.Barrier(40)
    statuses: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        with httpx.Client(base_url=own.url, timeout=60, cookies={"tripwire_login_csrf": cookie}) as client:
            barrier.wait()
            response = client.post(
                "/login", data={"csrf_token": csrf, "username": "admin", "password": f"guess-{i}"}
            )
            with lock:
                statuses.append(response.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(statuses) == 40
    assert counted.guesses() <= 22
    assert statuses.count(429) >= 40 - 22
    record("attacks", "password checks run by 40 racing wrong logins (limit 20)", counted.guesses())


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    opened.migrate()
    yield opened
    opened.close()


def test_failures_expire_after_the_window(store: Store) -> None:
    """A throttled address and account may try again once the window has passed, and the
    attempts that left the window are deleted (the table never holds more than one window); the
    user name typed is not stored."""
    now = [1000.0]
    throttle = LoginThrottle(store, limit=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        slot = throttle.acquire("1.2.3.4", "admin")
        assert slot is not None
        throttle.failed(slot)
    assert throttle.acquire("1.2.3.4", "admin") is None
    assert throttle.acquire("5.6.7.8", "Admin ") is None
    assert throttle.acquire("1.2.3.4", "someone") is None
    now[0] += 61
    assert throttle.acquire("1.2.3.4", "admin") is not None
    with store.db.tx(write=False) as c:
        assert c.one("SELECT COUNT(*) FROM login_attempts")[0] == 1
        # What was typed as the user name is kept only as a hash (it may be a mistyped password).
        assert c.one("SELECT COUNT(*) FROM login_attempts WHERE account LIKE ?", ("%admin%",))[0] == 0


def test_a_success_gives_back_only_its_own_slot(store: Store) -> None:
    """A right password frees the slot it used, so its owner can log in again and again, but the
    failures before it stay counted."""
    throttle = LoginThrottle(store, limit=3, window=60.0, clock=lambda: 1000.0)
    for _ in range(2):
        slot = throttle.acquire("1.2.3.4", "admin")
        assert slot is not None
        throttle.failed(slot)
    for _ in range(10):
        slot = throttle.acquire("1.2.3.4", "low")
        assert slot is not None
        throttle.succeeded(slot)
    last = throttle.acquire("1.2.3.4", "admin")
    assert last is not None
    throttle.failed(last)
    assert throttle.acquire("1.2.3.4", "admin") is None


def test_racing_attempts_take_at_most_the_limit_on_both_backends(store: Store) -> None:
    """40 threads taking slots at once for one address and account get exactly 20 of them: the
    count and the check are one atomic step (SQLite: the write lock; PostgreSQL: a lock per key)."""
    throttle = LoginThrottle(store, limit=20, window=600.0)
    barrier = threading.Barrier(40)
    granted: list[int] = []

    def one() -> None:
        barrier.wait()
        slot = throttle.acquire("10.9.9.9", "admin")
        if slot is not None:
            granted.append(slot)

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(granted) == 20
    record("attacks", f"slots granted to 40 racing attempts, limit 20 ({store.backend})", len(granted))


# 20+ scrypt checks and a server start: seconds on a loaded machine.
@pytest.mark.slow
def test_collectors_sharing_a_database_share_the_count(tmp_path: Path, counted: CheckCounter) -> None:
    """Two collector processes on one database (behind a load balancer) allow 20 guesses in all,
    not 20 each: the count lives in the database."""
    with (
        running_collector(tmp_path, run_digester=False) as first,
        running_collector(tmp_path, run_digester=False) as second,
        httpx.Client(base_url=first.url, timeout=30) as a,
        httpx.Client(base_url=second.url, timeout=30) as b,
    ):
        statuses = []
        for i in range(15):
            statuses.append(_attempt(a, "admin", f"guess-a{i}"))
            statuses.append(_attempt(b, "admin", f"guess-b{i}"))
    assert counted.guesses() <= 20
    assert statuses.count(429) >= 10
    record(
        "attacks", "password checks of one account through two collectors on one database", counted.guesses()
    )


# 20+ scrypt checks and a server start: seconds on a loaded machine.
@pytest.mark.slow
def test_a_client_that_is_not_a_trusted_proxy_cannot_pick_its_address(
    tmp_path: Path, counted: CheckCounter
) -> None:
    """When the peer is not a trusted proxy (--forwarded-allow-ips names another address), a
    forged X-Forwarded-For is ignored: every guess counts against the real address."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    app = create_app(CollectorConfig(data_dir=tmp_path, port=port, run_digester=False))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, forwarded_allow_ips="192.0.2.1")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 15)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            statuses = [
                _attempt(client, f"user{i}", f"guess-{i}", address=f"10.3.0.{i + 1}") for i in range(25)
            ]
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
    assert statuses[:20] == [401] * 20
    assert set(statuses[20:]) == {429}
    assert counted.guesses() == 20
