"""User feedback: ``feedback`` items (tripwire.capture_feedback, Sentry's captureFeedback) and
legacy ``user_report`` items are stored, tied to their issue, shown on the issue page and the
project's Feedback page (escaped), and listed by the API and ``tripwire feedback``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import tripwire
from tripwire.testing import capture_events

from .conftest import LiveServer, envelope, make_event, wait_until

CLIENT = Path(__file__).with_name("feedback_client.py")


def _send(server: LiveServer) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, str(CLIENT), server.dsn], capture_output=True, text=True, timeout=60, check=True
    )
    ids: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    return ids


def _page(server: LiveServer, path: str) -> str:
    admin = server.store.accounts.get_user("admin")
    token = server.store.accounts.create_web_session(admin.id)
    response = server.http.get(path, headers={"Cookie": f"tripwire_session={token}"})
    assert response.status_code == 200, response.text[:300]
    return response.text


def test_feedback_from_the_sdks_is_stored_with_its_issue_and_shown(server: LiveServer) -> None:
    """Feedback about an error appears on its issue (API and page, HTML escaped), feedback about
    nothing only in the project's list, and a legacy user report is tied to its error too."""
    ids = _send(server)

    def all_feedback() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = server.api("/api/0/projects/default/feedback/")
        return rows if len(rows) == 3 else None

    rows = {r["message"]: r for r in wait_until(all_feedback)}
    server.wait_digested()
    about = rows["I clicked <b>Pay</b> & nothing happened"]
    assert (about["email"], about["name"], about["event_id"]) == ("ada@example.com", "Ada", ids["error"])
    assert about["source"] == "feedback"
    issue_id = server.api(f"/api/0/events/{ids['error']}/")["issue_id"]
    assert about["issue_id"] == issue_id
    assert rows["Love the new design"]["issue_id"] is None
    legacy = rows["Search is empty for 'shoes'"]
    assert (legacy["source"], legacy["name"], legacy["event_id"]) == (
        "user_report",
        "Grace",
        ids["legacy_error"],
    )
    assert legacy["issue_id"] == server.api(f"/api/0/events/{ids['legacy_error']}/")["issue_id"]

    on_issue = server.api(f"/api/0/issues/{issue_id}/feedback/")
    assert [f["message"] for f in on_issue] == ["I clicked <b>Pay</b> & nothing happened"]
    page = _page(server, f"/issues/{issue_id}")
    assert "I clicked &lt;b&gt;Pay&lt;/b&gt; &amp; nothing happened" in page
    assert "<b>Pay</b>" not in page
    listing = _page(server, f"/projects/{server.project.id}/feedback")
    assert "Love the new design" in listing and f'href="/issues/{issue_id}"' in listing


def test_feedback_before_its_event_finds_the_issue_later(sqlite_server: LiveServer) -> None:
    """Feedback that arrives before the error it names is tied to the issue once the error comes."""
    event = make_event()
    item = {
        "event_id": "ab" * 16,
        "contexts": {"feedback": {"message": "it broke", "associated_event_id": event["event_id"]}},
    }
    assert sqlite_server.post_envelope(envelope(("feedback", item))).status_code == 200
    sqlite_server.wait_digested()
    (row,) = sqlite_server.api("/api/0/projects/default/feedback/")
    assert row["issue_id"] is None
    assert sqlite_server.post_envelope(envelope(("event", event))).status_code == 200
    sqlite_server.wait_digested()
    (row,) = sqlite_server.api("/api/0/projects/default/feedback/")
    assert row["issue_id"] == sqlite_server.api(f"/api/0/events/{event['event_id']}/")["issue_id"]


def test_a_resent_feedback_is_stored_once_and_empty_feedback_is_counted_invalid(
    sqlite_server: LiveServer,
) -> None:
    """The same feedback item twice is one feedback; one without a message is counted, not stored."""
    item = {"event_id": "cd" * 16, "contexts": {"feedback": {"message": "twice"}}}
    for _ in range(2):
        assert sqlite_server.post_envelope(envelope(("feedback", item))).status_code == 200
    empty = {"event_id": "ef" * 16, "contexts": {"feedback": {"message": "  "}}}
    assert sqlite_server.post_envelope(envelope(("feedback", empty))).status_code == 200
    sqlite_server.wait_digested()
    assert [r["message"] for r in sqlite_server.api("/api/0/projects/default/feedback/")] == ["twice"]
    stats = {
        (r["category"], r["reason"]): r["quantity"]
        for r in sqlite_server.api("/api/0/projects/default/stats/")
    }
    assert stats[("feedback", "accepted")] == 2
    assert stats[("feedback", "invalid")] == 1


def test_cli_lists_feedback_as_json(sqlite_server: LiveServer) -> None:
    """``tripwire feedback --project P --json`` prints message, email, name, event_id, issue_id."""
    event = make_event()
    feedback = {
        "event_id": "12" * 16,
        "contexts": {
            "feedback": {
                "message": "slow page",
                "contact_email": "x@example.com",
                "name": "X",
                "associated_event_id": event["event_id"],
            }
        },
    }
    sqlite_server.post_envelope(envelope(("event", event), ("feedback", feedback)))
    sqlite_server.wait_digested()
    url = sqlite_server.config.database_url
    assert url is not None
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tripwire_server",
            "feedback",
            "--project",
            "default",
            "--database-url",
            url,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (row,) = json.loads(out.stdout)
    issue_id = sqlite_server.api(f"/api/0/events/{event['event_id']}/")["issue_id"]
    assert {k: row[k] for k in ("message", "email", "name", "event_id", "issue_id")} == {
        "message": "slow page",
        "email": "x@example.com",
        "name": "X",
        "event_id": event["event_id"],
        "issue_id": issue_id,
    }


def test_capture_feedback_never_raises_and_sends_a_feedback_event() -> None:
    """capture_feedback without init returns None; with a client it hands a feedback event (with
    contexts.feedback) to the reporters and never raises on odd input."""
    assert tripwire.capture_feedback("nobody listens") is None
    with capture_events() as events:
        fid = tripwire.capture_feedback("hello", email="a@b.c", name="A", associated_event_id="f" * 32)
        assert tripwire.capture_feedback("   ") is None
        tripwire.flush(5)
    assert fid is not None
    (sent,) = events.feedback
    assert sent["event_id"] == fid
    assert sent["contexts"]["feedback"] == {
        "message": "hello",
        "contact_email": "a@b.c",
        "name": "A",
        "associated_event_id": "f" * 32,
        "source": "api",
    }
