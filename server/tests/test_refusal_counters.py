"""Refusals that belong to no project are counted per process and visible: in ``/api/0/health/``
and on the admin's Server section of Settings (issue 11, "nothing lost silently")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.figures import record
from tripwire_server.config import KiB, Limits, MiB

from .conftest import LiveServer, wait_until
from .rawhttp import RawClient, request_head
from .web.conftest import PASSWORD, login

pytestmark = pytest.mark.reliability


@pytest.fixture
def strict_server(tmp_path: Path) -> Iterator[LiveServer]:
    """Short deadlines, 8 connections, 8 KiB of headers, a 700 KiB bytes-in-flight budget."""
    limits = Limits(
        header_timeout=0.5,
        body_min_rate=2 * KiB,
        body_grace=0.5,
        max_connections=8,
        max_request_header_size=8 * KiB,
        max_bytes_in_flight=700 * KiB,
    )
    live = LiveServer(f"sqlite:///{tmp_path / 'db.sqlite3'}", limits=limits)
    yield live
    live.stop()


def refusals(server: LiveServer) -> dict[str, Any]:
    response = server.http.get("/api/0/health/", headers={"Connection": "close"})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    return dict(body["refusals"])


def test_health_starts_with_every_refusal_at_zero(strict_server: LiveServer) -> None:
    """A fresh process reports each refusal reason with a zero count, and its pid."""
    response = strict_server.http.get("/api/0/health/").json()
    assert set(response["refusals"]) == {
        "header_timeout",
        "body_timeout",
        "header_too_large",
        "over_connections",
        "over_capacity",
        "client_blocked",
    }
    assert not any(response["refusals"].values())
    assert isinstance(response["pid"], int)


def test_a_header_timeout_is_counted(strict_server: LiveServer) -> None:
    """A connection that never sends its headers is cut with 408 and counted as header_timeout."""
    client = RawClient(strict_server.port)
    status, _ = client.response(timeout=3)
    client.close()
    assert status == 408
    assert refusals(strict_server)["header_timeout"] == 1


def test_oversized_headers_are_counted(strict_server: LiveServer) -> None:
    """Headers past the cap get 431 and are counted as header_too_large."""
    client = RawClient(strict_server.port)
    client.send(b"GET /api/0/health/ HTTP/1.1\r\nHost: x\r\n")
    for i in range(40):
        if not client.send(f"X-Pad-{i}: {'a' * 1000}\r\n".encode()):
            break
    status, _ = client.response(timeout=3)
    client.close()
    assert status == 431
    assert refusals(strict_server)["header_too_large"] == 1


def test_a_body_trickle_is_counted(strict_server: LiveServer) -> None:
    """A body slower than the minimum rate is cut and counted as body_timeout."""
    client = RawClient(strict_server.port)
    head = request_head(
        f"/api/{strict_server.project.id}/envelope/",
        length=100 * KiB,
        headers={"X-Sentry-Auth": f"Sentry sentry_key={strict_server.key}"},
    )
    client.send(head + b'{}\n{"type": "attachment", "length": 90000}\n')
    started = time.monotonic()
    while client.send(b"a" * 20) and time.monotonic() - started < 4:
        time.sleep(0.1)
    client.close()
    assert wait_until(lambda: refusals(strict_server)["body_timeout"] == 1, timeout=3)


def test_requests_past_max_connections_are_counted(strict_server: LiveServer) -> None:
    """Each request answered 503 past max_connections is counted as over_connections."""
    holders = [RawClient(strict_server.port) for _ in range(8)]
    wait_until(lambda: len(strict_server.server.server_state.connections) >= 8, timeout=3)
    for _ in range(2):
        assert strict_server.http.get("/api/0/health/", headers={"Connection": "close"}).status_code == 503
    for client in holders:
        client.close()
    wait_until(lambda: len(strict_server.server.server_state.connections) <= 1, timeout=3)
    assert refusals(strict_server)["over_connections"] == 2


def test_a_keyless_request_refused_by_the_budget_is_counted(strict_server: LiveServer) -> None:
    """A request without a key in its headers that finds the bytes-in-flight budget full gets 503
    and is counted as over_capacity (it belongs to no project yet)."""
    keyed = request_head(
        f"/api/{strict_server.project.id}/envelope/",
        length=1 * MiB,
        headers={"X-Sentry-Auth": f"Sentry sentry_key={strict_server.key}"},
    )
    first_line = b'{}\n{"type": "attachment", "length": 1000000}\n'
    # Two bodies that hold the whole 700 KiB budget, to the byte: the keyless request must find no
    # room for the first piece of its body, whatever its size. (With room left, a first piece that
    # fit, when the server read the request before all of it had arrived, made the request known
    # by its DSN, then a 400 for the rest of it.) Paced fast enough for the 2 KiB/s minimum: the
    # budget, not the pace, must refuse.
    holders = []
    for _ in range(2):
        client = RawClient(strict_server.port)
        client.send(keyed + first_line + b"a" * (350 * KiB - len(first_line)))
        holders.append(client)
    wait_until(lambda: strict_server.state.budget.used == 700 * KiB, timeout=5)
    keyless = RawClient(strict_server.port)
    keyless.send(
        request_head(f"/api/{strict_server.project.id}/envelope/", length=1 * MiB)
        + b'{"dsn": "%s"}\n' % strict_server.dsn.encode()
        + b"a" * (300 * KiB)
    )
    status, _ = keyless.response(timeout=5)
    keyless.close()
    for client in holders:
        client.close()
    assert status == 503
    assert refusals(strict_server)["over_capacity"] == 1
    record("attacks", "refusals outside any project counted in /api/0/health/ (5 reasons)", "yes")


def test_the_admin_sees_the_refusal_counters_on_settings(strict_server: LiveServer) -> None:
    """An admin's Settings page shows this process's refusals; a member's page does not."""
    client = RawClient(strict_server.port)
    assert client.response(timeout=3)[0] == 408
    client.close()
    strict_server.store.accounts.set_password("admin", PASSWORD)
    path = f"/projects/{strict_server.project.id}/settings"
    with httpx.Client(base_url=strict_server.url, timeout=10) as web:
        assert login(web).status_code == 303
        page = web.get(path).text
    assert 'id="server-refusals"' in page
    assert '<td class="mono">header_timeout</td>' in page
    row = page.split('<td class="mono">header_timeout</td>', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">1</td>' in row
    member = strict_server.store.accounts.create_user("member", PASSWORD, is_admin=False)
    strict_server.store.accounts.add_project_member(strict_server.project.id, member.id)
    with httpx.Client(base_url=strict_server.url, timeout=10) as web:
        assert login(web, "member").status_code == 303
        page = web.get(path).text
    assert "Settings" in page
    assert 'id="server-refusals"' not in page
