"""The BugSnag protocol: the official ``bugsnag`` package reports to ``tripwire serve`` (notify at
``/``, sessions at ``/sessions``) and its errors and sessions land in the same issues and release
health as Sentry's; BugSnag bodies sent to the Sentry endpoints are refused with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.coverage_env import without_coverage

from .conftest import LiveServer, envelope, wait_until

CLIENT = Path(__file__).with_name("bugsnag_client.py")


def _run_client(server: LiveServer) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(CLIENT), server.url, server.key],
        env=without_coverage(),  # bugsnag only: nothing of ours to measure
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    payload: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return payload


def test_bugsnag_python_errors_and_sessions_become_issues_and_release_health(server: LiveServer) -> None:
    """Errors from the bugsnag package become issues with their type, message, frames, release,
    environment and user; its sessions count towards the release's crash-free rate."""
    _run_client(server)

    def issues() -> list[dict[str, Any]] | None:
        found = server.api("/api/0/projects/default/issues/")["issues"]
        return found if len(found) == 2 else None

    by_title = {i["title"]: i for i in wait_until(issues)}
    crash_title = "KeyError: 'order 1234 has no card'"
    assert set(by_title) == {crash_title, "RuntimeError: card declined for order 7"}
    crash = server.api(f"/api/0/issues/{by_title[crash_title]['id']}/")
    event = server.api(f"/api/0/issues/{crash['id']}/events/latest/")["data"]
    assert event["release"] == "shop@2.0.0" and event["environment"] == "staging"
    assert event["user"]["email"] == "ada@example.com"
    assert event["platform"] == "python"
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames[-1]["function"] == "charge"
    assert frames[-1]["context_line"].strip() == 'raise KeyError(f"order {order_id} has no card")'
    assert event["exception"]["values"][-1]["mechanism"]["handled"] is False
    warning = server.api(f"/api/0/issues/{by_title['RuntimeError: card declined for order 7']['id']}/")
    assert warning["level"] == "warning"

    def release() -> dict[str, Any] | None:
        releases = server.api("/api/0/projects/default/releases/")
        return releases[0] if releases and releases[0]["sessions"] == 3 else None

    health = wait_until(release)
    assert health["version"] == "shop@2.0.0"
    assert (health["sessions_crashed"], health["sessions_errored"], health["sessions_healthy"]) == (1, 1, 1)
    assert abs(health["crash_free_rate"] - 2 / 3) < 1e-9


def test_bugsnag_endpoints_refuse_a_wrong_key_and_a_foreign_body(sqlite_server: LiveServer) -> None:
    """Notify without a key is 401, with an unknown key 403, and a body without events 400, each
    with an X-Sentry-Error that says why; a dashboard GET / is still the dashboard."""
    http = sqlite_server.http
    assert http.post("/", json={"events": [{}]}).status_code == 401
    wrong = http.post("/", json={"events": [{}]}, headers={"Bugsnag-Api-Key": "nope"})
    assert wrong.status_code == 403 and "Bugsnag-Api-Key" in wrong.headers["X-Sentry-Error"]
    empty = http.post("/", json={"hello": 1}, headers={"Bugsnag-Api-Key": sqlite_server.key})
    assert empty.status_code == 400 and "no events" in empty.headers["X-Sentry-Error"]
    assert http.get("/", follow_redirects=False).status_code in (302, 303, 307)


def test_bugsnag_payloads_on_sentry_endpoints_are_refused_not_stored(sqlite_server: LiveServer) -> None:
    """A real BugSnag notify body posted to /store/ or /envelope/ is a 400 whose X-Sentry-Error
    names BugSnag, and no junk "<no message>" issue appears."""
    payload = _run_client(sqlite_server)
    body = json.dumps(payload).encode()
    store = sqlite_server.http.post(
        f"/api/{sqlite_server.project.id}/store/",
        content=body,
        headers={"X-Sentry-Auth": f"Sentry sentry_key={sqlite_server.key}"},
    )
    assert store.status_code == 400
    assert "BugSnag" in store.headers["X-Sentry-Error"]
    env = sqlite_server.post_envelope(body)
    assert env.status_code == 400
    assert "BugSnag" in env.headers["X-Sentry-Error"]
    other = sqlite_server.http.post(
        f"/api/{sqlite_server.project.id}/store/",
        json={"hello": "world"},
        headers={"X-Sentry-Auth": f"Sentry sentry_key={sqlite_server.key}"},
    )
    assert other.status_code == 400 and "not a Sentry event" in other.headers["X-Sentry-Error"]
    event_like = sqlite_server.post_envelope(envelope(("event", {"notifier": {}, "events": []})))
    assert event_like.status_code == 400
    sqlite_server.wait_digested()
    titles = {i["title"] for i in sqlite_server.api("/api/0/projects/default/issues/")["issues"]}
    assert "<no message>" not in titles
