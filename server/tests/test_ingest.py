"""The Sentry ingest protocol at the door: auth, encodings, limits, quotas, CORS, items."""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import brotli
import pytest

from tripwire_server.config import KiB, Limits, MiB

from .conftest import LiveServer, away_from_boundary, envelope, gzipped, make_event, wait_until


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A collector with small limits, so that limit tests send little data."""
    limits = Limits(
        max_envelope_compressed=256 * KiB,
        max_envelope_size=1 * MiB,
        max_event_size=64 * KiB,
        max_store_compressed=32 * KiB,
    )
    live = LiveServer(f"sqlite:///{tmp_path / 'db.sqlite3'}", limits=limits)
    yield live
    live.stop()


def _stats(server: LiveServer) -> dict[tuple[str, str], int]:
    rows = server.api("/api/0/projects/default/stats/")
    return {(r["category"], r["reason"]): r["quantity"] for r in rows}


def test_envelope_is_acknowledged_with_its_event_id_and_stored(sqlite_server: LiveServer) -> None:
    """A valid envelope gets 200 with the event id, and the event becomes queryable."""
    event = make_event()
    response = sqlite_server.post_envelope(envelope(("event", event)))
    assert response.status_code == 200
    assert response.json() == {"id": event["event_id"]}
    sqlite_server.wait_digested()
    assert sqlite_server.api(f"/api/0/events/{event['event_id']}/")["event_id"] == event["event_id"]


def test_missing_key_is_401_and_unknown_key_is_403(sqlite_server: LiveServer) -> None:
    """No key at all is 401; a key that matches no project is 403."""
    body = envelope(("event", make_event()))
    no_auth = sqlite_server.http.post("/api/1/envelope/", content=body)
    assert no_auth.status_code == 401
    assert "authentication" in no_auth.json()["detail"]
    wrong = sqlite_server.post_envelope(body, key="0" * 32)
    assert wrong.status_code == 403


def test_key_of_another_project_is_403(sqlite_server: LiveServer) -> None:
    """A valid key used on another project's URL is refused."""
    other = sqlite_server.store.accounts.create_project("other")
    response = sqlite_server.post_envelope(envelope(("event", make_event())), project_id=other.id)
    assert response.status_code == 403
    assert f"project {other.id}" in response.json()["detail"]


def test_query_string_key_and_envelope_dsn_header_authenticate(sqlite_server: LiveServer) -> None:
    """?sentry_key= and a bare envelope with a dsn header (tunnels) are both accepted."""
    first, second = make_event(), make_event()
    by_query = sqlite_server.http.post(
        f"/api/1/envelope/?sentry_key={sqlite_server.key}&sentry_version=7",
        content=envelope(("event", first)),
    )
    assert by_query.status_code == 200
    by_dsn = sqlite_server.http.post(
        "/api/1/envelope/", content=envelope(("event", second), header={"dsn": sqlite_server.dsn})
    )
    assert by_dsn.status_code == 200
    sqlite_server.wait_digested()
    assert sqlite_server.store.issues.count_events() == 2


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json\n", "envelope header is not valid JSON"),
        (b'{}\n{"type":"event","length":500}\n{"a":1}\n', "truncated"),
        (b'{}\n{"length":3}\n{}\n', "has no type"),
        (b'{}\n{"type":"event"}\n{broken\n', "not JSON"),
        (b"", "empty envelope"),
    ],
)
def test_malformed_envelopes_get_400_with_a_reason(
    sqlite_server: LiveServer, body: bytes, fragment: str
) -> None:
    """Malformed envelopes are refused with 400 and a message saying what is wrong."""
    response = sqlite_server.post_envelope(body)
    assert response.status_code == 400
    assert fragment in response.json()["detail"]
    assert fragment in response.headers["x-sentry-error"]


def test_oversized_body_is_413_whether_declared_or_streamed(small_server: LiveServer) -> None:
    """A body over the limit is refused with 413, with or without a Content-Length."""
    big = envelope(("attachment", b"x" * (300 * KiB)))
    assert small_server.post_envelope(big).status_code == 413

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 16 * KiB):
            yield big[start : start + 16 * KiB]

    streamed = small_server.post_envelope(chunks())
    assert streamed.status_code == 413


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_decompression_bombs_are_413(small_server: LiveServer, encoding: str) -> None:
    """A small compressed body that inflates past the decompressed limit is refused with 413."""
    inflated = b"{}\n" + b'{"type":"attachment"}\n' + b"0" * (50 * MiB)
    compress: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzipped,
        "deflate": zlib.compress,
        # (Quality 5: the same ~100 bytes as the default 11 in a fifteenth of the CPU, 0.05 s.)
        "br": lambda data: bytes(brotli.compress(data, quality=5)),
    }
    body = compress[encoding](inflated)
    assert len(body) < 256 * KiB  # it passes the compressed limit...
    response = small_server.post_envelope(body, headers={"Content-Encoding": encoding})
    assert response.status_code == 413  # ...and is stopped while inflating
    assert "decompressed" in response.json()["detail"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity"])
def test_compressed_envelopes_are_accepted(sqlite_server: LiveServer, encoding: str) -> None:
    """gzip, deflate and br bodies are decompressed and stored."""
    event = make_event()
    raw = envelope(("event", event))
    body = {"gzip": gzipped, "deflate": zlib.compress, "br": brotli.compress, "identity": bytes}[encoding](
        raw
    )
    response = sqlite_server.post_envelope(body, headers={"Content-Encoding": encoding})
    assert response.status_code == 200, response.text
    sqlite_server.wait_digested()
    assert sqlite_server.store.issues.get_event(event["event_id"]).event_id == event["event_id"]


def test_oversized_event_item_is_413(small_server: LiveServer) -> None:
    """An event item over the event size limit is refused with 413."""
    event = make_event(extra={"blob": "x" * (100 * KiB)})
    response = small_server.post_envelope(envelope(("event", event)))
    assert response.status_code == 413


def test_quota_answers_429_with_integer_retry_after_and_rate_limit_header(
    sqlite_server: LiveServer,
) -> None:
    """Over the per-project quota: 429, integer Retry-After, X-Sentry-Rate-Limits; counted."""
    away_from_boundary(60)  # all requests in one quota window
    sqlite_server.store.accounts.update_project(sqlite_server.project.id, quota_per_minute=2)
    sqlite_server.state.projects.invalidate()
    codes = [sqlite_server.post_envelope(envelope(("event", make_event()))).status_code for _ in range(2)]
    assert codes == [200, 200]
    limited = sqlite_server.post_envelope(envelope(("event", make_event())))
    assert limited.status_code == 429
    retry = limited.headers["retry-after"]
    assert retry.isdigit() and 1 <= int(retry) <= 60
    rate = limited.headers["x-sentry-rate-limits"]
    seconds, categories, scope, *_ = rate.split(":")
    assert seconds == retry and "error" in categories.split(";") and scope == "project"
    # Sessions are not events: they still get in while events are limited.
    session = {"sid": uuid.uuid4().hex, "init": True, "status": "exited", "attrs": {"release": "1"}}
    assert sqlite_server.post_envelope(envelope(("session", session))).status_code == 200
    wait_until(lambda: _stats(sqlite_server).get(("error", "rate_limited")) == 1)


def test_cors_preflight_and_headers(sqlite_server: LiveServer) -> None:
    """Browsers may post from any origin: the preflight allows it and responses carry CORS headers."""
    preflight = sqlite_server.http.options(
        "/api/1/envelope/",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-sentry-auth",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "x-sentry-auth" in preflight.headers["access-control-allow-headers"]
    response = sqlite_server.post_envelope(
        envelope(("event", make_event())), headers={"Origin": "https://shop.example"}
    )
    assert response.headers["access-control-allow-origin"] == "*"
    assert "x-sentry-rate-limits" in response.headers["access-control-expose-headers"]


def test_store_endpoint_accepts_a_json_event(sqlite_server: LiveServer) -> None:
    """The legacy /store/ endpoint takes one JSON event (gzip too) and returns its id."""
    event = make_event()
    response = sqlite_server.http.post(
        "/api/1/store/",
        content=gzipped(json.dumps(event).encode()),
        headers={
            "X-Sentry-Auth": f"Sentry sentry_key={sqlite_server.key}",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 200
    assert response.json()["id"] == event["event_id"]
    sqlite_server.wait_digested()
    assert sqlite_server.store.issues.get_event(event["event_id"]).title == "ValueError: boom"


def test_many_items_unknown_types_and_duplicates_are_counted(sqlite_server: LiveServer) -> None:
    """Several events per envelope are stored, unknown items are counted, duplicates dropped."""
    a, b = make_event(value="first"), make_event(value="second")
    body = envelope(
        ("event", a),
        ("event", b),
        ("made_up_type", {"x": 1}),
        ("attachment", b"log line\n"),
        (
            "client_report",
            {"discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 3}]},
        ),
        lengths=True,
    )
    assert sqlite_server.post_envelope(body).status_code == 200
    assert sqlite_server.post_envelope(envelope(("event", a))).status_code == 200  # a resend
    sqlite_server.wait_digested()
    assert sqlite_server.store.issues.count_events() == 2
    stats = _stats(sqlite_server)
    assert stats[("event", "accepted")] == 2
    assert stats[("event", "duplicate")] == 1
    assert stats[("made_up_type", "unknown_type")] == 1
    assert stats[("attachment", "accepted")] == 1
    reports = sqlite_server.api("/api/0/projects/default/client-reports/")
    assert reports == [{"category": "error", "reason": "queue_overflow", "quantity": 3}]


def test_items_without_length_are_parsed_to_the_newline(sqlite_server: LiveServer) -> None:
    """Item payloads without a length header run to the end of their line."""
    event = make_event()
    response = sqlite_server.post_envelope(envelope(("event", event), lengths=False))
    assert response.status_code == 200
    sqlite_server.wait_digested()
    assert sqlite_server.store.issues.count_events() == 1


def test_oversized_fields_are_trimmed_not_rejected(sqlite_server: LiveServer) -> None:
    """Long tag values, messages and stack traces are trimmed like Relay does."""
    frames = [("app.deep", f"level_{i}", i) for i in range(80)]
    event = make_event(
        value="v" * 20_000,
        frames=frames,
        tags={"long": "t" * 500},
        logentry={"message": "m" * 10_000},
    )
    assert sqlite_server.post_envelope(envelope(("event", event))).status_code == 200
    sqlite_server.wait_digested()
    data = sqlite_server.api(f"/api/0/events/{event['event_id']}/")["data"]
    assert len(data["tags"]["long"]) == 200
    assert len(data["logentry"]["message"]) == 8192
    exc = data["exception"]["values"][-1]
    assert len(exc["value"]) == 8192
    assert len(exc["stacktrace"]["frames"]) == 50
    assert exc["stacktrace"]["frames"][-1]["function"] == "level_79"  # the crash frame is kept


def test_odd_but_valid_json_is_stored(sqlite_server: LiveServer) -> None:
    """Lone surrogates and NaN timestamps (valid for Python's json) do not lose the event."""
    event_id = uuid.uuid4().hex
    payload = (
        '{"event_id": "' + event_id + '", "timestamp": NaN, "message": "bad \\ud800 text",'
        ' "tags": {"k": "\\udfff"}}'
    ).encode()
    body = b'{"event_id": "%s"}\n{"type": "event"}\n%s\n' % (event_id.encode(), payload)
    assert sqlite_server.post_envelope(body).status_code == 200
    sqlite_server.wait_digested()
    stored = sqlite_server.api(f"/api/0/events/{event_id}/")
    assert stored["title"] == "bad ? text"
    assert stored["data"]["tags"] == {"k": "?"}
    assert stored["timestamp"] > 1.7e9  # NaN replaced by the arrival time


def test_header_values_built_from_input_cannot_split_headers() -> None:
    """Text from a request that goes into a response header loses CR, LF and non-ASCII."""
    from tripwire_server.ingest.request import header_safe

    assert header_safe("bad\r\nSet-Cookie: a=b\u00e9") == "bad??Set-Cookie: a=b?"
    assert len(header_safe("x" * 1000)) == 200
