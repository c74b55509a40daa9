"""The releases page (release health) and the settings page (DSN, drops), over real HTTP."""

from __future__ import annotations

import time

import httpx

from .conftest import Collector, post_envelope, wait_for


def test_releases_page_shows_sessions_and_crash_free_rate(collector: Collector, web: httpx.Client) -> None:
    """Session aggregates sent for a release appear with their counts and crash-free rate."""
    project = collector.new_project("health")
    started = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime())
    post_envelope(
        collector,
        project,
        [
            (
                {"type": "sessions"},
                {
                    "aggregates": [{"started": started, "exited": 190, "errored": 6, "crashed": 4}],
                    "attrs": {"release": "api@4.2.0", "environment": "production"},
                },
            )
        ],
    )
    wait_for(lambda: collector.store.list_releases(project.id), 10)
    page = web.get(f"/projects/{project.id}/releases").text
    row = page.split("api@4.2.0</a>", 1)[1].split("</tr>", 1)[0]
    assert "98%" in row  # 4 crashed out of 200 sessions
    assert '<td class="num">200</td>' in row
    assert "api@4.2.0 · production" in page


def test_settings_page_shows_the_dsn_and_what_sdks_dropped(collector: Collector, web: httpx.Client) -> None:
    """The settings page shows the project's DSN and the drops SDKs reported in client reports."""
    project = collector.new_project("drops")
    post_envelope(
        collector,
        project,
        [
            (
                {"type": "client_report"},
                {
                    "timestamp": time.time(),
                    "discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 7}],
                },
            )
        ],
    )
    wait_for(lambda: collector.store.outcomes(project.id, source="client"), 10)
    page = web.get(f"/projects/{project.id}/settings").text
    assert collector.dsn(project) in page
    drops = page.split("Dropped by SDKs", 1)[1].split("</section>", 1)[0]
    assert "queue_overflow" in drops
    assert '<td class="num">7</td>' in drops
