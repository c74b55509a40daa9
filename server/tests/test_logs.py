"""Structured logs: sentry-sdk's ``enable_logs`` records are stored with level, attributes and
trace id, searchable (API, page, CLI), shown on the page of an error of the same trace, and kept
within a retention of their own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.coverage_env import without_coverage
from tests.support.figures import record
from tripwire_server.store import logs as logs_store

from .conftest import LiveServer, envelope, wait_until

CLIENT = Path(__file__).with_name("sdk_logs_client.py")


def _send(server: LiveServer) -> str:
    out = subprocess.run(
        [sys.executable, str(CLIENT), server.dsn],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=without_coverage(),  # sentry-sdk only: nothing of ours to measure
    )
    error_id: str = json.loads(out.stdout.strip().splitlines()[-1])["error"]
    return error_id


def _logs(server: LiveServer, **params: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = server.api("/api/0/projects/default/logs/", params=params)
    return rows


def test_sentry_sdk_logs_are_stored_searchable_and_shown_with_their_error(server: LiveServer) -> None:
    """Six records arrive with level, body, attributes and the trace id of the error sent after
    them; level, text and attribute search find the right ones; the error's page lists them."""
    error_id = _send(server)
    server.wait_digested()
    rows = wait_until(lambda: (r := _logs(server)) and len(r) == 6 and r)
    warning = rows[0]
    assert (warning["level"], warning["body"]) == ("warn", "stock low for sku-9")
    assert warning["attributes"]["warehouse"] == "south"
    assert warning["attributes"]["sentry.release"] == "shop@4.0.0"
    error = server.api(f"/api/0/events/{error_id}/")
    trace_id = error["data"]["contexts"]["trace"]["trace_id"]
    assert {r["trace_id"] for r in rows} == {trace_id}

    assert [r["body"] for r in _logs(server, level="warn")] == ["stock low for sku-9"]
    assert [r["body"] for r in _logs(server, query="ORDER 3")] == ["order 3 paid"]
    assert len(_logs(server, attribute="warehouse=north")) == 5
    assert _logs(server, attribute="warehouse=nor") == []

    admin = server.store.accounts.get_user("admin")
    cookie = {"Cookie": f"tripwire_session={server.store.accounts.create_web_session(admin.id)}"}
    page = server.http.get(f"/issues/{error['issue_id']}/events/{error_id}", headers=cookie).text
    assert "Logs of this trace" in page and "stock low for sku-9" in page and "order 0 paid" in page
    listing = server.http.get(
        f"/projects/{server.project.id}/logs", params={"attr": "warehouse=south"}, headers=cookie
    )
    assert listing.status_code == 200
    assert "stock low for sku-9" in listing.text and "order 0 paid" not in listing.text


def test_cli_searches_logs_as_json(sqlite_server: LiveServer) -> None:
    """``tripwire logs --project P --level L --query Q --json`` prints the matching records."""
    _send(sqlite_server)
    sqlite_server.wait_digested()
    url = sqlite_server.config.database_url
    assert url is not None
    out = subprocess.run(
        [sys.executable, "-m", "tripwire_server", "logs", "--project", "default", "--database-url", url]
        + ["--level", "info", "--query", "order 4", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (row,) = json.loads(out.stdout)
    assert (row["level"], row["body"], row["attributes"]["warehouse"]) == ("info", "order 4 paid", "north")


def test_log_markup_is_escaped_on_the_page(sqlite_server: LiveServer) -> None:
    """A log body with markup shows as text on the logs page."""
    item = {"items": [{"timestamp": time.time(), "level": "error", "body": "<img src=x onerror=alert(1)>"}]}
    sqlite_server.post_envelope(envelope(("log", item)))
    sqlite_server.wait_digested()
    admin = sqlite_server.store.accounts.get_user("admin")
    cookie = {"Cookie": f"tripwire_session={sqlite_server.store.accounts.create_web_session(admin.id)}"}
    page = sqlite_server.http.get(f"/projects/{sqlite_server.project.id}/logs", headers=cookie).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page


@pytest.mark.reliability
def test_logs_have_a_bounded_retention_of_their_own(sqlite_server: LiveServer, monkeypatch: Any) -> None:
    """Records past the per-project cap are deleted oldest first at the next digest, and records
    older than the log retention are deleted by the retention sweep (events are untouched)."""
    monkeypatch.setattr(logs_store, "MAX_LOGS_PER_PROJECT", 3)
    now = time.time()
    records = [{"timestamp": now - 1, "level": "info", "body": f"r{n}"} for n in range(5)]
    sqlite_server.post_envelope(envelope(("log", {"items": records})))
    sqlite_server.wait_digested()
    assert [r["body"] for r in _logs(sqlite_server)] == ["r4", "r3", "r2"]
    later = now + (logs_store.LOG_RETENTION_DAYS + 1) * 86400
    sqlite_server.store.retention.apply_retention(default_days=0, default_max_events=0, now=later)
    assert _logs(sqlite_server) == []
    record(
        "attacks",
        "log records a DSN holder can make one project keep",
        f"{logs_store.MAX_LOGS_PER_PROJECT:,}",
        f"oldest deleted after each digest batch; none older than {logs_store.LOG_RETENTION_DAYS} days",
    )
