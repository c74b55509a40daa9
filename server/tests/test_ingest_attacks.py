"""The attacks of the hardening review (issue 11), replayed against a real server over loopback.

Each test sends what an attacker holding no key (or only a public DSN key) can send, and checks
that the server refuses it early: before reading a body it has no reason to read, with a 4xx
rather than a 500, and without counting it against a project.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.figures import record
from tripwire_server.config import KiB, Limits, MiB
from tripwire_server.store import Project

from .conftest import LiveServer, envelope, make_event, wait_until
from .rawhttp import RawClient, request_head

pytestmark = pytest.mark.reliability


def _gzip_prefix(first_line: bytes, zeros: int) -> bytes:
    """The start of a gzip stream: ``first_line``, then ``zeros`` zero bytes, flushed, unfinished."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = comp.compress(first_line) + comp.flush(zlib.Z_SYNC_FLUSH)
    out += comp.compress(b"\0" * zeros) + comp.flush(zlib.Z_SYNC_FLUSH)
    return out


def test_keyless_store_request_is_refused_before_its_body_arrives(sqlite_server: LiveServer) -> None:
    """/store/ without a key is 401 at once, while its announced 150 KiB body is still unsent."""
    client = RawClient(sqlite_server.port)
    client.send(request_head("/api/1/store/", length=150 * KiB))
    status, _ = client.response(timeout=3)
    client.close()
    assert status == 401


def test_envelope_without_key_is_refused_after_its_first_line(sqlite_server: LiveServer) -> None:
    """An envelope with no key anywhere is 401 once its header line has arrived, not at its end."""
    client = RawClient(sqlite_server.port)
    client.send(request_head("/api/1/envelope/", length=5 * MiB))
    client.send(b'{"event_id": "' + b"a" * 32 + b'"}\n{"type": "attachment", "length": 5000000}\n')
    client.send(b"x" * 1000)
    status, _ = client.response(timeout=3)
    client.close()
    assert status == 401


def test_gzip_envelope_with_a_foreign_dsn_is_refused_before_the_rest_is_inflated(
    sqlite_server: LiveServer,
) -> None:
    """A gzip body whose dsn header names no project is 403 after its first line; the rest is
    never waited for (the client pauses mid-bomb)."""
    dsn = sqlite_server.dsn.replace(sqlite_server.key, "f" * 32)
    prefix = _gzip_prefix(json.dumps({"dsn": dsn}).encode() + b"\n", 4 * MiB)
    client = RawClient(sqlite_server.port)
    client.send(
        request_head("/api/1/envelope/", length=len(prefix) + 100_000, headers={"Content-Encoding": "gzip"})
    )
    client.send(prefix)
    status, _ = client.response(timeout=3)
    client.close()
    assert status == 403


def test_envelope_header_must_come_within_a_bounded_prefix(sqlite_server: LiveServer) -> None:
    """A keyless envelope whose first line never ends is refused within the header size limit."""
    client = RawClient(sqlite_server.port)
    client.send(request_head("/api/1/envelope/", length=5 * MiB))
    client.send(b'{"pad": "' + b"x" * (64 * KiB))
    status, _ = client.response(timeout=3)
    client.close()
    assert status == 400


@pytest.mark.parametrize("where", ["envelope header", "event", "event with NaN"])
def test_nesting_deeper_than_1024_is_400_not_500(sqlite_server: LiveServer, where: str) -> None:
    """JSON nested 1100 deep in the envelope header or an event is a 400, not a 500; also when a
    NaN makes the standard library parse it (since Python 3.12 json parses far deeper)."""
    deep = "[" * 1100 + ("NaN" if where.endswith("NaN") else "") + "]" * 1100
    if where == "envelope header":
        body = json.dumps({"dsn": sqlite_server.dsn}).encode()[:-1] + b', "x": ' + deep.encode() + b"}\n"
        body += b'{"type": "event"}\n{}\n'
    else:
        body = b'{}\n{"type": "event"}\n{"event_id": "' + b"a" * 32 + b'", "x": ' + deep.encode() + b"}\n"
    response = sqlite_server.post_envelope(body)
    assert response.status_code == 400
    assert "nest" in response.json()["detail"] or "recursion" in response.json()["detail"]


def test_unauthenticated_junk_is_not_counted_against_the_project(sqlite_server: LiveServer) -> None:
    """Junk without a key is refused and leaves the project's 'invalid' counter alone; the same
    junk with the project's key is counted."""
    # Legitimate traffic first, so the server knows the project when the junk arrives.
    assert sqlite_server.post_envelope(envelope(("event", make_event()))).status_code == 200
    for _ in range(3):
        assert sqlite_server.http.post("/api/1/envelope/", content=b"junk\n").status_code in (400, 401)
    assert sqlite_server.post_envelope(b"junk\n").status_code == 400

    def invalid() -> int | None:
        rows = sqlite_server.api("/api/0/projects/default/stats/")
        return sum(r["quantity"] for r in rows if r["reason"] == "invalid") or None

    assert wait_until(invalid) == 1


@pytest.fixture
def budget_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A collector whose bytes-in-flight budget holds two 300 KiB bodies, not three."""
    limits = Limits(max_bytes_in_flight=700 * KiB)
    live = LiveServer(f"sqlite:///{tmp_path / 'db.sqlite3'}", limits=limits)
    yield live
    live.stop()


def test_bytes_in_flight_over_the_budget_get_503_with_retry_after(budget_server: LiveServer) -> None:
    """Two paused 300 KiB uploads fill the budget: a third is refused with 503 and Retry-After;
    once they end, uploads are accepted again."""
    head = request_head(
        f"/api/{budget_server.project.id}/envelope/",
        length=1 * MiB,
        headers={"X-Sentry-Auth": f"Sentry sentry_key={budget_server.key}"},
    )
    first_line = b'{}\n{"type": "attachment", "length": 1000000}\n'
    holders = []
    for _ in range(2):
        client = RawClient(budget_server.port)
        client.send(head + first_line + b"a" * (300 * KiB))
        holders.append(client)
    wait_until(lambda: budget_server.state.budget.used >= 600 * KiB, timeout=5)
    third = RawClient(budget_server.port)
    third.send(head + first_line + b"a" * (300 * KiB))
    status, raw = third.response(timeout=5)
    third.close()
    assert status == 503
    assert b"retry-after:" in raw.lower()
    for client in holders:
        client.close()
    wait_until(lambda: budget_server.state.budget.used == 0, timeout=5)
    assert budget_server.post_envelope(envelope(("event", make_event()))).status_code == 200
    record("attacks", "bytes-in-flight budget: uploads past it answered 503 + Retry-After", "yes")


def test_one_project_cannot_take_the_whole_bytes_in_flight_budget(tmp_path: Path) -> None:
    """With a 700 KiB share per project of a 4 MiB budget, two paused 300 KiB uploads fill one
    project's share: its third upload gets 503, while another project's envelope is accepted."""
    limits = Limits(max_bytes_in_flight=4 * MiB, max_bytes_in_flight_per_project=700 * KiB)
    live = LiveServer(f"sqlite:///{tmp_path / 'db.sqlite3'}", limits=limits)
    try:
        other = live.store.accounts.create_project("other")
        live.state.projects.invalidate()
        head = request_head(
            f"/api/{live.project.id}/envelope/",
            length=1 * MiB,
            headers={"X-Sentry-Auth": f"Sentry sentry_key={live.key}"},
        )
        first_line = b'{}\n{"type": "attachment", "length": 1000000}\n'
        holders = []
        for _ in range(2):
            client = RawClient(live.port)
            client.send(head + first_line + b"a" * (300 * KiB))
            holders.append(client)
        wait_until(lambda: live.state.budget.used >= 600 * KiB, timeout=5)
        third = RawClient(live.port)
        third.send(head + first_line + b"a" * (300 * KiB))
        status, _ = third.response(timeout=5)
        third.close()
        assert status == 503
        accepted = live.post_envelope(
            envelope(("event", make_event())), project_id=other.id, key=other.public_key
        )
        assert accepted.status_code == 200, accepted.text
        for client in holders:
            client.close()
        wait_until(lambda: live.state.budget.used == 0 and not live.state.budget.by_owner, timeout=5)
    finally:
        live.stop()
    record("attacks", "a project past its bytes-in-flight share: 503, other projects served", "yes")


def test_a_pause_longer_than_the_header_timeout_closes_the_connection(tmp_path: Path) -> None:
    """A client that sends half its request headers and then trickles is cut off after the
    header timeout."""
    live = LiveServer(f"sqlite:///{tmp_path / 'db.sqlite3'}", limits=Limits(header_timeout=0.5))
    try:
        client = RawClient(live.port)
        client.send(b"POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        alive = True
        while alive and time.monotonic() - started < 3:
            alive = client.send(b"X")
            time.sleep(0.05)
        assert client.closed_by_server(2)
        assert time.monotonic() - started < 2.5
    finally:
        live.stop()


def test_a_body_that_inflates_past_the_ratio_is_refused_early(sqlite_server: LiveServer) -> None:
    """A gzip envelope inflating 1000:1 (20 MiB of zeros in ~20 KiB) is 413 once past 256 KiB at
    200:1; an ordinary compressed envelope with a 2 MiB attachment is accepted."""
    bomb = gzip.compress(b'{}\n{"type": "attachment"}\n' + b"\0" * (20 * MiB))
    response = sqlite_server.post_envelope(bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "times its compressed size" in response.json()["detail"]
    lines = b"".join(b"%d INFO request served in %d ms\n" % (i, i % 97) for i in range(80_000))
    ordinary = gzip.compress(envelope(("event", make_event()), ("attachment", lines[: 2 * MiB])))
    assert sqlite_server.post_envelope(ordinary, headers={"Content-Encoding": "gzip"}).status_code == 200


def test_a_flood_of_made_up_keys_reloads_the_projects_once_at_a_time(sqlite_server: LiveServer) -> None:
    """60 concurrent requests with unknown keys are all 403 and cause at most a few project
    reloads (one at a time, at most one a second), not one query each."""
    import threading

    calls = []
    real = sqlite_server.store.accounts.list_projects

    def counted() -> list[Project]:
        calls.append(time.monotonic())
        time.sleep(0.05)  # a slow database makes overlapping reloads likely
        return real()

    sqlite_server.store.accounts.list_projects = counted  # type: ignore[method-assign]
    time.sleep(1.1)  # past the once-a-second reload guard
    statuses: list[int] = []

    def attack(i: int) -> None:
        response = sqlite_server.post_envelope(envelope(("event", make_event())), key=f"{i:032x}")
        statuses.append(response.status_code)

    threads = [threading.Thread(target=attack, args=(i,)) for i in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [403] * 60
    assert len(calls) <= 3, len(calls)
