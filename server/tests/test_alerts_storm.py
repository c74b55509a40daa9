"""An error storm produces a handful of notifications, and every one held back is counted."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.figures import record
from tripwire_server.alerts.settings import AlertSettings

from .alert_support import webhook_receiver
from .conftest import LiveServer, envelope, make_event, wait_until

STORM = 10_000
PER_ENVELOPE = 100


@pytest.mark.slow
@pytest.mark.reliability
def test_an_error_storm_of_10000_events_on_one_issue_sends_at_most_the_configured_notifications(
    tmp_path: Path,
) -> None:
    """10,000 events of one issue (many digest batches): one message per rule, the rest suppressed."""
    server = LiveServer(
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        alerts=AlertSettings(allow_webhook_hosts=("127.0.0.1",), poll_interval=0.02),
        digest_batch_size=5,
    )
    try:
        with webhook_receiver() as receiver:
            rules: list[dict[str, Any]] = [
                {"on": "new-issue"},
                {"on": "frequency", "threshold": 100, "window": 10},
                {"on": "users", "threshold": 50, "window": 10},
            ]
            ids = [
                server.api(
                    f"/api/0/projects/{server.project.id}/alerts/",
                    "POST",
                    json={**r, "webhook": receiver.url, "digest_seconds": 0},
                )["id"]
                for r in rules
            ]
            template = make_event(value="payment gateway down")
            for batch in range(STORM // PER_ENVELOPE):
                events = []
                for n in range(PER_ENVELOPE):
                    # A shallow copy: envelope() serializes it at once, and only these two change.
                    user = {"id": f"user-{(batch * PER_ENVELOPE + n) % 500}"}
                    events.append(("event", {**template, "event_id": uuid.uuid4().hex, "user": user}))
                assert server.post_envelope(envelope(*events)).status_code == 200
            server.wait_digested(timeout=120)
            assert server.store.issues.count_events() == STORM
            (issue,) = server.store.issues.list_issues(server.project.id)
            assert issue.event_count == STORM
            wait_until(lambda: len(receiver.received) >= 3, timeout=15)

            def settled() -> dict[int, list[dict[str, Any]]] | None:
                found = {i: server.api(f"/api/0/alerts/{i}/history/?limit=500") for i in ids}
                pending = [h for hs in found.values() for h in hs if h["status"] == "pending"]
                return None if pending else found

            history = wait_until(settled)
            assert all(h["status"] in ("sent", "suppressed") for hs in history.values() for h in hs)
            sent = [h for hs in history.values() for h in hs if h["status"] == "sent"]
            suppressed = sum(h["count"] for hs in history.values() for h in hs if h["status"] == "suppressed")
            assert len(receiver.received) == len(sent) == 3
            assert sorted(b["type"] for b in receiver.bodies()) == ["frequency", "new-issue", "users"]
            # Frequency and user rules stay over their threshold batch after batch: each of those
            # would-be messages is one entry's count, not a row (or a message) of its own. How many
            # batches the digest makes depends on its pace, so only "many" is asserted.
            assert suppressed >= 20
            assert len([h for hs in history.values() for h in hs if h["status"] == "suppressed"]) == 2
            record("load", "events in one error storm (one issue)", STORM)
            record("load", "notifications sent for it (3 rules)", len(receiver.received))
            record("load", "notifications suppressed by cooldown, counted", suppressed)
    finally:
        server.stop()


@pytest.mark.postgres
def test_two_collectors_digesting_one_issue_on_postgresql_send_one_notification_per_rule(pg_url: str) -> None:
    """Concurrent digesters share a rule's cooldown state: one new-issue and one frequency message."""
    settings = AlertSettings(allow_webhook_hosts=("127.0.0.1",), poll_interval=0.02)
    first = LiveServer(pg_url, alerts=settings, digest_batch_size=2)
    second = LiveServer(pg_url, alerts=settings, digest_batch_size=2)
    try:
        with webhook_receiver() as receiver:
            for on, extra in (("new-issue", {}), ("frequency", {"threshold": 1, "window": 10})):
                first.api(
                    f"/api/0/projects/{first.project.id}/alerts/",
                    "POST",
                    json={"on": on, "webhook": receiver.url, "digest_seconds": 0, **extra},
                )
            template = make_event(value="shared storm")
            for n in range(60):
                event = copy.deepcopy(template)
                event["event_id"] = uuid.uuid4().hex
                target = first if n % 2 else second
                assert target.post_envelope(envelope(("event", event))).status_code == 200
            first.wait_digested(timeout=60)
            second.wait_digested(timeout=60)
            assert first.store.issues.count_events() == 60
            wait_until(lambda: len(receiver.received) >= 2, timeout=15)
            assert sorted(b["type"] for b in receiver.bodies()) == ["frequency", "new-issue"]
    finally:
        second.stop()
        first.stop()
