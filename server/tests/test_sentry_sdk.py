"""The official sentry-sdk reports to a real collector, and everything shows in the JSON API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.coverage_env import without_coverage

from .conftest import LiveServer, wait_until

CLIENT = Path(__file__).with_name("sdk_client.py")


def _report(dsn: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, str(CLIENT), dsn],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=without_coverage(),  # sentry-sdk only: nothing of ours to measure
    )
    reported: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    return reported


def test_sentry_sdk_reports_are_visible_through_the_api(server: LiveServer) -> None:
    """Exceptions, messages, breadcrumbs, users, tags and sessions sent by sentry-sdk are stored."""
    ids = _report(server.dsn)
    server.wait_digested()

    exc = server.api(f"/api/0/events/{ids['exception']}/")
    data = exc["data"]
    assert exc["title"].startswith("KeyError: ")
    assert "order 1234 has no customer" in exc["title"]
    assert data["release"] == "shop@1.4.0" and data["environment"] == "staging"
    assert data["user"]["id"] == "user-42" and data["user"]["email"] == "ada@example.com"
    assert data["tags"]["region"] == "eu-west"
    crumbs = data["breadcrumbs"]["values"]
    assert any(c.get("message") == "added item sku-7" and c.get("category") == "cart" for c in crumbs)
    frames = data["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames[-1]["function"] == "checkout"

    msg = server.api(f"/api/0/events/{ids['message']}/")
    assert msg["level"] == "warning"
    assert msg["data"]["logentry"]["formatted"] == "payment provider slow: 2500 ms"

    issues = server.api("/api/0/projects/default/issues/")["issues"]
    assert {i["title"] for i in issues} == {exc["title"], "payment provider slow: 2500 ms"}
    by_tag = server.api("/api/0/projects/default/issues/", params={"query": "region:eu-west user:id:user-42"})
    assert by_tag["total"] == 2

    def sessions_in() -> list[dict[str, object]] | None:
        releases = server.api("/api/0/projects/default/releases/")
        return releases if releases and releases[0]["sessions"] >= 3 else None

    (release,) = wait_until(sessions_in)
    assert release["version"] == "shop@1.4.0"
    assert release["event_count"] == 2
    assert (release["sessions"], release["sessions_errored"], release["sessions_crashed"]) == (3, 1, 1)
    assert release["sessions_healthy"] == 1
    assert abs(release["crash_free_rate"] - 2 / 3) < 1e-9
