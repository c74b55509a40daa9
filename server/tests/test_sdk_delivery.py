"""End to end: the Sentry reporter delivering to tripwire's own collector (real uvicorn, SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import tripwire
from tripwire._types import SessionBatch

from .conftest import LiveServer


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
    yield live
    live.stop()


def test_events_sessions_and_client_reports_reach_the_collector(collector: LiveServer) -> None:
    """Events become issues, session aggregates become release health, drops become client reports."""
    client = tripwire.init(
        collector.dsn, release="5.0", before_send=lambda e, h: e if e.get("exception") else None
    )
    for i in range(3):
        try:
            raise ConnectionError(f"upstream {i} refused")
        except ConnectionError:
            tripwire.capture_exception()
    tripwire.capture_message("dropped by before_send", "error")
    minute = datetime.now(timezone.utc).replace(second=0, microsecond=0).isoformat().replace("+00:00", "Z")
    client.submit_sessions(
        SessionBatch(
            aggregates=[
                {
                    "attrs": {"release": "5.0", "environment": "production"},
                    "aggregates": [{"started": minute, "exited": 4, "errored": 1}],
                }
            ]
        )
    )
    assert tripwire.flush(20)
    collector.wait_digested()
    (issue,) = collector.api("/api/0/projects/default/issues/")["issues"]
    assert issue["type"] == "ConnectionError"
    assert len(collector.api(f"/api/0/issues/{issue['id']}/events/")) == 3
    (bucket,) = collector.api("/api/0/projects/default/sessions/", params={"release": "5.0"})
    assert (bucket["started"], bucket["errored"]) == (5, 1)
    reports = collector.api("/api/0/projects/default/client-reports/")
    assert {"category": "error", "reason": "before_send", "quantity": 1} in reports
    assert tripwire.stats()["dropped"] == {"before_send": 1}
