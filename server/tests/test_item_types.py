"""Every item type is stored or refused honestly: refusals carry a rate-limit header for exactly
their category (never errors), are counted by ``item_count`` and shown on the Settings page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.coverage_env import without_coverage
from tripwire_server import item_types

from .conftest import LiveServer, envelope, make_event, wait_until

REFUSED_CLIENT = Path(__file__).with_name("sdk_refused_client.py")
_ITEMS = "application/vnd.sentry.items"


def _stats(server: LiveServer) -> dict[tuple[str, str], int]:
    rows = server.api("/api/0/projects/default/stats/")
    return {(r["category"], r["reason"]): r["quantity"] for r in rows}


def _item(kind: str, payload: dict[str, object], **headers: object) -> bytes:
    data = json.dumps(payload).encode()
    return json.dumps({"type": kind, "length": len(data), **headers}).encode() + b"\n" + data + b"\n"


def test_no_error_category_can_be_refused() -> None:
    """The table refuses no item type under the error or default category, and the header for no
    categories is never produced (an empty category list means *everything* to an SDK)."""
    errors = [t for t in item_types.all_types() if t.category in ("error", "default")]
    assert errors  # not vacuous: the table has error and default types
    assert all(t.stored for t in errors)
    assert item_types.refusal_header([]) is None
    assert item_types.refusal_header(["error", "default"]) is None
    assert item_types.refusal_header(["log_item", "profile"]) == "3600:log_item;profile:project:not_stored"
    with pytest.raises(ValueError):
        item_types.register("weird", "error", stored=False, home="nowhere")


def test_a_refused_item_next_to_an_event_gets_a_header_for_its_category_only(
    sqlite_server: LiveServer,
) -> None:
    """An envelope with an error and a replay event: 200, the error is stored, and the answer asks
    the SDK to hold back exactly the ``replay`` category; the replay is counted as not stored."""
    event = make_event()
    body = envelope(("event", event), ("replay_event", {"replay_id": "r"}))
    response = sqlite_server.post_envelope(body)
    assert response.status_code == 200
    assert response.headers["X-Sentry-Rate-Limits"] == "3600:replay:project:not_stored"
    assert "x-sentry-rate-limits" in response.headers["Access-Control-Expose-Headers"]
    sqlite_server.wait_digested()
    assert sqlite_server.store.issues.get_event(event["event_id"]).title == "ValueError: boom"
    stats = _stats(sqlite_server)
    assert stats[("replay_event", "not_stored")] == 1
    assert ("replay_event", "unknown_type") not in stats


def test_an_envelope_of_only_events_gets_no_rate_limit_header(sqlite_server: LiveServer) -> None:
    """Errors never get a refusal header."""
    response = sqlite_server.post_envelope(envelope(("event", make_event())))
    assert response.status_code == 200
    assert "X-Sentry-Rate-Limits" not in response.headers


def test_span_and_log_items_count_by_item_count(sqlite_server: LiveServer) -> None:
    """A span item of 4 spans is queued (spans are stored: docs/performance.md) and its 4 spans
    without ids are counted; a log item of 5 records is stored and counted 5."""
    records = [{"timestamp": 1.0, "level": "info", "body": f"r{n}", "attributes": {}} for n in range(5)]
    spans = _item("span", {"items": [{}] * 4}, item_count=4, content_type=f"{_ITEMS}.span.v2+json")
    logs = _item("log", {"items": records}, item_count=5, content_type=f"{_ITEMS}.log+json")
    response = sqlite_server.post_envelope(b"{}\n" + spans + logs)
    assert response.status_code == 200
    assert "X-Sentry-Rate-Limits" not in response.headers
    sqlite_server.wait_digested()
    stats = _stats(sqlite_server)
    assert stats[("span", "no_segment")] == 4
    assert stats[("log", "accepted")] == 5


def test_only_refused_items_are_counted_without_being_queued(sqlite_server: LiveServer) -> None:
    """An envelope of a metrics item and a replay only is answered 200 with both categories in the
    header, counted at once and never queued."""
    body = b"{}\n" + _item("trace_metric", {"items": []}) + _item("replay_event", {"replay_id": "r"})
    response = sqlite_server.post_envelope(body)
    assert response.status_code == 200
    assert response.headers["X-Sentry-Rate-Limits"] == "3600:replay;trace_metric:project:not_stored"
    assert sqlite_server.store.queue.queue_depth() == 0
    stats = wait_until(lambda: (s := _stats(sqlite_server)).get(("replay_event", "not_stored")) and s)
    assert stats[("trace_metric", "not_stored")] == 1


def test_sentry_sdk_holds_back_a_refused_category_and_reports_the_drops(
    sqlite_server: LiveServer,
) -> None:
    """sentry-sdk's own transport, after its first metrics item, holds back ``trace_metric`` (and
    nothing else), counts the items it then drops in a client report, and its errors still arrive;
    the Settings page says what arrives without being stored."""
    out = subprocess.run(
        [sys.executable, str(REFUSED_CLIENT), sqlite_server.dsn],
        env=without_coverage(),  # sentry-sdk only: nothing of ours to measure
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["held_back"] == ["trace_metric"]
    sqlite_server.wait_digested()
    assert sqlite_server.store.issues.get_event(result["error"]).title == "after the metrics"
    wait_until(lambda: _stats(sqlite_server).get(("trace_metric", "not_stored")) == 1)

    def client_drops() -> list[dict[str, object]]:
        reports = sqlite_server.api("/api/0/projects/default/client-reports/")
        return [r for r in reports if r["category"] == "trace_metric"]

    drops = wait_until(client_drops)
    assert drops == [{"category": "trace_metric", "reason": "ratelimit_backoff", "quantity": 3}]
    page = _settings_page(sqlite_server)
    assert "Receiving 1 <code>trace_metric</code> item/day that is not stored (no metrics)" in page


def _settings_page(server: LiveServer) -> str:
    admin = server.store.accounts.get_user("admin")
    token = server.store.accounts.create_web_session(admin.id)
    cookie = {"Cookie": f"tripwire_session={token}"}
    response = server.http.get(f"/projects/{server.project.id}/settings", headers=cookie)
    assert response.status_code == 200, response.text[:300]
    return response.text
