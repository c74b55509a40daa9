"""The tripwire SDK reports to the tripwire collector, and everything shows in the JSON API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.figures import record

from .conftest import LiveServer, wait_until

CLIENT = Path(__file__).with_name("tripwire_client.py")


def test_tripwire_sdk_reports_are_visible_through_the_api(server: LiveServer) -> None:
    """Exceptions, messages, breadcrumbs, users, tags, contexts and sessions from tripwire arrive."""
    out = subprocess.run(
        [sys.executable, str(CLIENT), server.dsn], capture_output=True, text=True, timeout=60, check=True
    )
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    assert ids["exception"] and ids["message"]
    wait_until(lambda: server.store.issues.count_events() >= 2)
    server.wait_digested()

    exc = server.api(f"/api/0/events/{ids['exception']}/")
    data = exc["data"]
    assert "order 77 has no customer" in exc["title"]
    assert data["release"] == "shop@2.0.0" and data["environment"] == "staging"
    assert data["user"]["id"] == "user-7"
    assert data["tags"]["region"] == "us-east"
    assert data["contexts"]["account"] == {"plan": "pro", "seats": 12}
    assert any(c.get("message") == "added item sku-9" for c in data["breadcrumbs"]["values"])
    assert data["exception"]["values"][-1]["stacktrace"]["frames"][-1]["function"] == "checkout"

    msg = server.api(f"/api/0/events/{ids['message']}/")
    assert msg["level"] == "warning" and msg["title"] == "inventory low: 3 left"

    def release() -> dict[str, object] | None:
        rows = server.api("/api/0/projects/default/releases/")
        return rows[0] if rows and rows[0]["sessions"] >= 2 else None

    rel = wait_until(release)
    assert rel["version"] == "shop@2.0.0"
    assert rel["sessions_crashed"] == 1 and rel["sessions_errored"] == 1


STORM = """
import sys, time, tripwire
tripwire.init(sys.argv[1], repeat_limit=60)

def charge(n):
    raise ConnectionError(f"payment gateway down (attempt {n})")

def fail(n):
    try:
        charge(n)
    except ConnectionError:
        tripwire.capture_exception()

for n in range(200):
    fail(n)
time.sleep(1.2)  # 60 per minute: one more full event per second
fail(200)
coalesced = tripwire.stats()["dropped"].get("repeat_limit", 0)
tripwire.close(10)
print(coalesced)
"""


def test_an_error_storm_is_counted_in_full_on_the_issue(server: LiveServer) -> None:
    """201 occurrences under repeat_limit=60: ~61 events are stored, and the issue counts all 201."""
    out = subprocess.run(
        [sys.executable, "-c", STORM, server.dsn], capture_output=True, text=True, timeout=60, check=True
    )
    coalesced = int(out.stdout.strip().splitlines()[-1])
    sent = 201 - coalesced
    assert 61 <= sent <= 63 and coalesced > 0
    wait_until(lambda: server.store.issues.count_events() >= sent)
    server.wait_digested()
    issues = server.api("/api/0/projects/default/issues/")["issues"]
    assert len(issues) == 1
    latest = server.api(f"/api/0/issues/{issues[0]['id']}/events/latest/")
    assert latest["data"]["contexts"]["repeats"]["coalesced"] == coalesced
    assert issues[0]["event_count"] == 201
    events = server.api(f"/api/0/issues/{issues[0]['id']}/events/?limit=1000")
    assert len(events) == sent


BURST = """
import sys, tripwire
tripwire.init(sys.argv[1], release="shop@3.1.0")

def charge(n):
    raise ConnectionError(f"payment gateway down (attempt {n})")

import time
started = time.monotonic()
for n in range(10_000):
    try:
        charge(n)
    except ConnectionError:
        tripwire.capture_exception()
burst = time.monotonic() - started
print(tripwire.flush(10), flush=True)
print(burst, flush=True)
sys.stdin.read()  # alive, close() not called, until the test is done
"""


@pytest.mark.reliability
def test_a_burst_of_10000_errors_shows_10000_on_the_issue_after_flush(server: LiveServer) -> None:
    """10,000 identical errors and flush(): the issue, its hours and its release count 10,000 within 10 s,
    while the process lives on and close() has not run (no later event of that error comes)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", BURST, server.dsn],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "True"
        flushed = time.monotonic()
        burst_seconds = float(proc.stdout.readline())

        def counted() -> int | None:
            issues = server.api("/api/0/projects/default/issues/")["issues"]
            return issues[0]["event_count"] if issues and issues[0]["event_count"] >= 10_000 else None

        assert wait_until(counted, timeout=10.0) == 10_000
        visible_after = time.monotonic() - flushed
        issue = server.api("/api/0/projects/default/issues/")["issues"][0]
        events = server.api(f"/api/0/issues/{issue['id']}/events/?limit=1000")
        # The budget (60 a minute, a token bucket refilling one a second while the burst runs: a
        # loaded machine makes the burst last seconds), plus the one that carries the coalesced count.
        assert len(events) <= 60 + int(burst_seconds) + 2
        hourly = server.api(f"/api/0/issues/{issue['id']}/hourly/?hours=2")
        assert sum(h["count"] for h in hourly) == 10_000
        releases = server.api("/api/0/projects/default/releases/")
        assert [(r["version"], r["event_count"]) for r in releases] == [("shop@3.1.0", 10_000)]
        backend = server.store.backend
        record(
            "transport",
            f"identical errors in one burst, counted on the issue after flush(), {backend}",
            10_000,
            f"{len(events)} events stored (repeat_limit=60); occurrences lost: 0",
        )
        record(
            "transport",
            f"seconds from flush() to the full count on the issue, {backend}",
            round(visible_after, 2),
            "required: within 10 s, process alive, close() not called",
        )
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
