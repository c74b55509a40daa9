"""The official JavaScript SDKs in Node report to a real collector: @sentry/node (errors, messages
with synthetic exceptions, feedback, logs) and @bugsnag/js (errors and sessions)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import LiveServer, wait_until
from .js_support import node, record_fixture


def _stats(server: LiveServer) -> dict[tuple[str, str], int]:
    return {(r["category"], r["reason"]): r["quantity"] for r in server.api("/api/0/projects/default/stats/")}


@pytest.mark.slow  # a Node.js process running @sentry/node (> 5 s serially here)
def test_sentry_node_errors_messages_feedback_and_logs(sqlite_server: LiveServer) -> None:
    """@sentry/node: the error is an issue with in-app frames; captureMessage's synthetic exception
    is titled and grouped by the message; captureFeedback is on the error's issue; its logs are
    stored with their attributes and the error's trace id."""
    ids = json.loads(node("sentry_node.mjs", sqlite_server.dsn))
    sqlite_server.wait_digested()
    error = sqlite_server.api(f"/api/0/events/{ids['error']}/")
    assert error["title"] == "TypeError: card of order 7 expired"
    frames = error["data"]["exception"]["values"][-1]["stacktrace"]["frames"]
    assert [f["function"] for f in frames if f.get("in_app")][-1] == "chargeCard"
    message = sqlite_server.api(f"/api/0/events/{ids['message']}/")
    assert message["title"] == "inventory sync took 9000 ms"
    assert message["data"]["exception"]["values"][-1]["mechanism"]["synthetic"] is True
    issue = sqlite_server.api(f"/api/0/issues/{message['issue_id']}/")
    assert issue["grouping_explanation"]["strategy"] == "message"
    feedback = sqlite_server.api(f"/api/0/issues/{error['issue_id']}/feedback/")
    assert [(f["message"], f["email"], f["name"]) for f in feedback] == [
        ("The card form said expired, but it is not", "lin@example.com", "Lin")
    ]
    record_fixture("node_capture_exception", error["data"])
    record_fixture("node_capture_message", message["data"])
    assert _stats(sqlite_server)[("log", "accepted")] == 5
    logs = sqlite_server.api("/api/0/projects/default/logs/", params={"attribute": "warehouse=north"})
    assert sorted(r["body"] for r in logs) == [f"order {n} shipped" for n in range(5)]
    assert {r["trace_id"] for r in logs} == {error["data"]["contexts"]["trace"]["trace_id"]}


def test_bugsnag_js_in_node_reports_errors_and_sessions(server: LiveServer) -> None:
    """@bugsnag/js with ``endpoints`` at the collector: the error is an issue with its user and
    release, and the session it happened in counts as errored in release health."""
    assert json.loads(node("bugsnag_node.mjs", server.url, server.key)) == {"delivered": True}

    def issue() -> dict[str, Any] | None:
        issues = server.api("/api/0/projects/default/issues/")["issues"]
        return issues[0] if issues else None

    found = wait_until(issue)
    assert found["title"] == "RangeError: profile 42 not found"
    event = server.api(f"/api/0/issues/{found['id']}/events/latest/")["data"]
    assert event["platform"] == "node"
    assert event["user"] == {"id": "u-42", "email": "kim@example.com", "username": "Kim"}
    assert event["release"] == "api@9.1.0"
    assert event["sdk"]["name"] == "Bugsnag Node"

    def health() -> dict[str, Any] | None:
        releases = server.api("/api/0/projects/default/releases/")
        return releases[0] if releases and releases[0]["sessions"] == 1 else None

    release = wait_until(health)
    assert (release["sessions"], release["sessions_errored"], release["sessions_healthy"]) == (1, 1, 0)
