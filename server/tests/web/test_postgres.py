"""The dashboard on PostgreSQL: the same pages and actions work when the store is the real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Collector, csrf_of, issue_ids, login, running_collector, sentry

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_collector(pg_url: str, tmp_path: Path) -> Iterator[Collector]:
    with running_collector(tmp_path, database_url=pg_url) as running:
        yield running


def test_dashboard_pages_and_resolve_on_postgresql(pg_collector: Collector) -> None:
    """On PostgreSQL, issues reported by sentry-sdk are listed, searchable, open with their event,
    and can be resolved from the issue page."""
    collector = pg_collector
    project = collector.store.accounts.get_project("default")
    with sentry(collector.dsn(project), release="pg@1.0.0", environment="staging") as sdk:
        sdk.set_tag("customer", "acme")
        try:
            {"present": 1}["missing-key"]
        except KeyError:
            sdk.capture_exception()
        sdk.capture_message("cache miss storm on node 4", level="warning")
    collector.wait_events(project, 2)
    with httpx.Client(base_url=collector.url, timeout=10) as web:
        assert login(web).status_code == 303
        listing = web.get(f"/projects/{project.id}/issues").text
        assert len(issue_ids(listing)) == 2
        found = web.get(f"/projects/{project.id}/issues", params={"query": "customer:acme KeyError"}).text
        (key_error,) = issue_ids(found)
        issue_page = web.get(f"/issues/{key_error}").text
        assert "missing-key" in issue_page and "Why grouped" in issue_page
        event = collector.store.issues.latest_event(key_error)
        assert event is not None
        assert web.get(f"/issues/{key_error}/events/{event.event_id}").status_code == 200
        for path in ("releases", "settings"):
            assert web.get(f"/projects/{project.id}/{path}").status_code == 200
        response = web.post(
            f"/issues/{key_error}/status", data={"action": "resolve", "csrf_token": csrf_of(issue_page)}
        )
        assert response.status_code == 303
        assert collector.store.issues.get_issue(key_error).status == "resolved"
        assert issue_ids(web.get(f"/projects/{project.id}/issues?status=resolved").text) == [key_error]
