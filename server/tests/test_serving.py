"""Slow and greedy clients against the served collector (issue 11, M2), and what `serve` says.

Each test opens real sockets to a real uvicorn on 127.0.0.1 and misbehaves on purpose; limits are
set small so that a test takes a second or two, not the 30 s of the defaults.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.support.figures import record
from tripwire_server.cli import exposure_warning
from tripwire_server.config import KiB, Limits
from tripwire_server.serving import BodyPace

from .conftest import LiveServer, ServeProcess, envelope, make_event, wait_until
from .rawhttp import RawClient, request_head

pytestmark = pytest.mark.reliability


@pytest.fixture
def strict_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A collector with a 0.5 s header deadline, a 2 KiB/s body pace after 0.5 s, 8 connections."""
    limits = Limits(
        header_timeout=0.5,
        body_min_rate=2 * KiB,
        body_grace=0.5,
        max_connections=8,
        max_request_header_size=8 * KiB,
    )
    live = LiveServer(f"sqlite:///{tmp_path / 'db.sqlite3'}", limits=limits)
    yield live
    live.stop()


def _ingest_head(server: LiveServer, length: int) -> bytes:
    return request_head(
        f"/api/{server.project.id}/envelope/",
        length=length,
        headers={"X-Sentry-Auth": f"Sentry sentry_key={server.key}"},
    )


# -- the decision, without a network ----------------------------------------------------------------


def test_body_pace_allows_the_grace_then_the_minimum_rate() -> None:
    """A body may idle for the grace, then must average the minimum rate over the time waited."""
    pace = BodyPace(min_rate=1000, grace=10, now=0.0)
    pace.advance(9.0, reading=True)
    assert not pace.too_slow()
    pace.advance(11.0, reading=True)
    assert pace.too_slow()
    pace.received = 2000  # 2 s more of allowance
    assert not pace.too_slow()


def test_body_pace_does_not_count_time_the_server_was_not_reading() -> None:
    """While the server pauses reading (flow control), the client cannot be too slow."""
    pace = BodyPace(min_rate=1000, grace=1, now=0.0)
    pace.advance(100.0, reading=False)
    assert not pace.too_slow()
    pace.advance(102.0, reading=True)
    assert pace.too_slow()


def test_a_zero_minimum_rate_never_cuts_a_body() -> None:
    """body_min_rate=0 turns the pace check off."""
    pace = BodyPace(min_rate=0, grace=0, now=0.0)
    pace.advance(1e6, reading=True)
    assert not pace.too_slow()


# -- what plain uvicorn enforces ----------------------------------------------------------------------


def test_plain_uvicorn_keeps_a_connection_that_never_finishes_its_headers() -> None:
    """Why the collector has its own protocol class: uvicorn alone lets a header trickle live on
    (here past 0.75 s, three times its own keep-alive timeout)."""

    async def app(scope: dict[str, object], receive: object, send: object) -> None:  # pragma: no cover
        raise AssertionError("no request ever completes")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # uvicorn annotates timeout_keep_alive as int, but hands it to loop.call_later: any number of seconds.
    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_keep_alive=0.25,  # type: ignore[arg-type]
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        wait_until(lambda: server.started)
        client = RawClient(sock.getsockname()[1])
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\n")
        assert not client.closed_by_server(0.75)
        client.close()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# -- the collector's deadlines --------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    strict_server: LiveServer,
) -> None:
    """An idle new connection gets 408 and is closed once the header timeout has passed."""
    client = RawClient(strict_server.port)
    started = time.monotonic()
    status, _ = client.response(timeout=3)
    elapsed = time.monotonic() - started
    client.close()
    assert status == 408
    assert 0.4 < elapsed < 2.0
    record("attacks", "idle connection closed after (header timeout 0.5 s)", f"{elapsed:.2f} s")


def test_a_header_trickle_is_cut_at_the_header_timeout(strict_server: LiveServer) -> None:
    """Headers sent a byte every 50 ms never complete: the connection is closed after 0.5 s."""
    client = RawClient(strict_server.port)
    client.send(b"POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    while client.send(b"X") and time.monotonic() - started < 3:
        time.sleep(0.05)
    assert client.closed_by_server(2)
    elapsed = time.monotonic() - started
    client.close()
    assert elapsed < 2.0
    record("attacks", "header trickle closed after (header timeout 0.5 s)", f"{elapsed:.2f} s")


def test_the_header_timeout_applies_to_every_request_on_a_keep_alive_connection(
    strict_server: LiveServer,
) -> None:
    """After one good request, a second one whose headers never end is still cut off."""
    client = RawClient(strict_server.port)
    client.send(request_head("/api/0/health/", method="GET"))
    status, _ = client.response(timeout=3)
    assert status == 200
    client.send(b"GET /api/0/health/ HTTP/1.1\r\n")
    started = time.monotonic()
    while client.send(b"X") and time.monotonic() - started < 3:
        time.sleep(0.05)
    assert client.closed_by_server(2)
    client.close()
    assert time.monotonic() - started < 2.0


def test_oversized_request_headers_get_431(strict_server: LiveServer) -> None:
    """Request headers past max_request_header_size are refused with 431 and the connection ends."""
    client = RawClient(strict_server.port)
    client.send(b"GET /api/0/health/ HTTP/1.1\r\nHost: x\r\n")
    for i in range(40):
        if not client.send(f"X-Pad-{i}: {'a' * 1000}\r\n".encode()):
            break
    status, _ = client.response(timeout=3)
    client.close()
    assert status == 431


def test_a_body_slower_than_the_minimum_rate_is_cut_off(strict_server: LiveServer) -> None:
    """A body at 200 B/s, against a 2 KiB/s minimum after 0.5 s, gets 408 within 2 s."""
    client = RawClient(strict_server.port)
    client.send(_ingest_head(strict_server, 100 * KiB) + b'{}\n{"type": "attachment", "length": 90000}\n')
    started = time.monotonic()
    while client.send(b"a" * 20) and time.monotonic() - started < 4:
        time.sleep(0.1)
    status, _ = client.response(timeout=3)
    elapsed = time.monotonic() - started
    client.close()
    assert status in (0, 408)  # 408, or a reset if the client was mid-send when it was closed
    assert elapsed < 2.5
    record("attacks", "body trickle (200 B/s vs 2 KiB/s minimum) cut after", f"{elapsed:.2f} s")


def test_a_slow_but_steady_upload_is_accepted(strict_server: LiveServer) -> None:
    """A body at ~8 KiB/s, above the minimum rate, arrives whole and is acknowledged."""
    body = envelope(("event", make_event()), ("attachment", b"x" * (12 * KiB)))
    client = RawClient(strict_server.port)
    client.send(_ingest_head(strict_server, len(body)))
    for start in range(0, len(body), 1024):
        assert client.send(body[start : start + 1024])
        time.sleep(0.12)
    status, raw = client.response(timeout=5)
    client.close()
    assert status == 200, raw


def test_connections_past_the_limit_get_503_and_the_limit_frees_up(strict_server: LiveServer) -> None:
    """With max_connections open, a further request gets 503; once they go, requests pass again."""
    holders = [RawClient(strict_server.port) for _ in range(8)]
    wait_until(lambda: len(strict_server.server.server_state.connections) >= 8, timeout=3)
    refused = strict_server.http.get("/api/0/health/")
    assert refused.status_code == 503
    for client in holders:
        client.close()
    wait_until(lambda: len(strict_server.server.server_state.connections) <= 1, timeout=3)
    assert strict_server.http.get("/api/0/health/", headers={"Connection": "close"}).status_code == 200


# -- what `tripwire serve` says --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "warns"),
    [("0.0.0.0", True), ("::", True), ("10.1.2.3", True), ("127.0.0.1", False), ("::1", False)],
)
def test_serving_beyond_loopback_warns_about_plain_http(host: str, warns: bool) -> None:
    """Binding anything but loopback warns that it is plain HTTP and names TLS and a reverse proxy."""
    warning = exposure_warning(host)
    if warns:
        assert warning is not None and "TLS" in warning and "reverse proxy" in warning
    else:
        assert warning is None


def test_serve_never_echoes_an_admin_password_from_the_environment(tmp_path: Path) -> None:
    """TRIPWIRE_ADMIN_PASSWORD creates the admin, but the password is not printed (nor in --json)."""
    secret = "correct-horse-battery-staple-42"
    proc = ServeProcess("--data-dir", str(tmp_path), env={"TRIPWIRE_ADMIN_PASSWORD": secret})
    try:
        assert proc.info["admin_password"] is None
        assert secret not in json.dumps(proc.info)
        proc.log.seek(0)
        assert secret.encode() not in proc.log.read()
    finally:
        proc.stop()


def test_serve_takes_the_limits_from_its_flags(tmp_path: Path) -> None:
    """--header-timeout and friends reach the running server: an idle connection is closed at 0.3 s."""
    proc = ServeProcess("--data-dir", str(tmp_path), "--header-timeout", "0.3", "--max-connections", "50")
    try:
        port = int(proc.url.rsplit(":", 1)[1])
        client = RawClient(port)
        started = time.monotonic()
        status, _ = client.response(timeout=3)
        client.close()
        assert status == 408
        assert time.monotonic() - started < 1.5
    finally:
        proc.stop()


def test_every_serve_flag_is_documented() -> None:
    """Each option of `tripwire serve` appears in docs/collector.md, limits with their defaults."""
    import argparse

    from tripwire_server.cli import _LIMIT_FLAGS, build_parser

    docs = (Path(__file__).resolve().parents[2] / "docs" / "collector.md").read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    serve = sub.choices["serve"]
    flags = [opt for action in serve._actions for opt in action.option_strings if opt.startswith("--")]
    missing = [flag for flag in flags if flag not in docs and flag != "--help"]
    assert not missing, missing
    for flag, _field, _kind, _what in _LIMIT_FLAGS:
        assert f"`{flag}" in docs, flag


def test_oversized_headers_of_a_second_request_on_the_connection_get_431(strict_server: LiveServer) -> None:
    """The header size cap holds for every request on a keep-alive connection, not just the first."""
    client = RawClient(strict_server.port)
    client.send(request_head("/api/0/health/", method="GET"))
    status, _ = client.response(timeout=3)
    assert status == 200
    pad = "".join(f"X-Pad-{i}: {'a' * 1000}\r\n" for i in range(12))
    client.send(f"GET /api/0/health/ HTTP/1.1\r\nHost: x\r\n{pad}".encode())
    status, _ = client.response(timeout=3)
    client.close()
    assert status == 431
