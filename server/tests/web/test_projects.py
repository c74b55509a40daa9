"""The releases page (release health) and the settings page (DSN, drops), over real HTTP."""

from __future__ import annotations

import time

import httpx

from ..conftest import away_from_boundary, envelope
from .conftest import PASSWORD, Collector, csrf_of, login, post_envelope, wait_for


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
    wait_for(lambda: collector.store.releases.list_releases(project.id), 10)
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
    wait_for(lambda: collector.store.releases.outcomes(project.id, source="client"), 10)
    page = web.get(f"/projects/{project.id}/settings").text
    assert collector.dsn(project) in page
    drops = page.split("Dropped by SDKs", 1)[1].split("</section>", 1)[0]
    assert "queue_overflow" in drops
    assert '<td class="num">7</td>' in drops


def _budget_section(page: str) -> str:
    return page.split("Attachment budget", 1)[1].split("</section>", 1)[0]


def test_settings_page_shows_the_attachment_budget_and_what_it_used(
    collector: Collector, web: httpx.Client
) -> None:
    """The settings page shows the project's attachment budget (the collector defaults) and the
    attachment bytes it stored this hour and in all."""
    away_from_boundary(3600, margin=15)  # "this hour" must be the hour the attachment was stored in
    project = collector.new_project("budget-shown")
    body = envelope(
        ("event", {"event_id": "ab" * 16, "message": "m"}), ("attachment", b"x" * 3 * 1024 * 1024)
    )
    response = httpx.post(
        f"{collector.url}/api/{project.id}/envelope/?sentry_key={project.public_key}",
        content=body,
        timeout=10,
    )
    assert response.status_code == 200
    wait_for(lambda: collector.store.queue.attachment_usage(project.id).stored_bytes, 10)
    section = _budget_section(web.get(f"/projects/{project.id}/settings").text)
    assert "100 MiB per hour" in section
    assert "1024 MiB in total" in section
    assert "3.0 MiB this hour, 3.0 MiB stored" in section


def test_an_admin_sets_and_clears_the_attachment_budget_on_the_settings_page(
    collector: Collector, web: httpx.Client
) -> None:
    """An admin's form sets the project's own budget (in MiB; 0: no limit); left empty, a field
    goes back to the collector default."""
    project = collector.new_project("budget-set")
    url = f"/projects/{project.id}/settings"
    form = {
        "csrf_token": csrf_of(web.get(url).text),
        "attachment_mib_per_hour": "5",
        "attachment_mib_total": "0",
    }
    response = web.post(url, data=form)
    assert response.status_code == 303
    changed = collector.store.accounts.get_project(project.id)
    assert (changed.attachment_bytes_per_hour, changed.attachment_bytes_total) == (5 * 1024 * 1024, 0)
    section = _budget_section(web.get(url).text)
    assert "5 MiB per hour" in section and "no limit in total" in section
    response = web.post(url, data={**form, "attachment_mib_per_hour": "", "attachment_mib_total": ""})
    assert response.status_code == 303
    cleared = collector.store.accounts.get_project(project.id)
    assert (cleared.attachment_bytes_per_hour, cleared.attachment_bytes_total) == (None, None)


def test_a_bad_attachment_budget_is_refused_with_the_reason(collector: Collector, web: httpx.Client) -> None:
    """A budget that is not a whole number of MiB from 0 up is refused (400) and nothing changes."""
    project = collector.new_project("budget-bad")
    url = f"/projects/{project.id}/settings"
    token = csrf_of(web.get(url).text)
    for value in ("-1", "lots", "1e9", str(10**12)):
        response = web.post(url, data={"csrf_token": token, "attachment_mib_per_hour": value})
        assert response.status_code == 400, value
        assert "whole number of MiB" in response.text
    assert collector.store.accounts.get_project(project.id).attachment_bytes_per_hour is None


def test_only_an_admin_may_change_the_attachment_budget(collector: Collector) -> None:
    """A user who is not an admin sees the budget without the form, and a POST is refused (403)."""
    project = collector.new_project("budget-user")
    name = f"viewer{time.monotonic_ns()}"
    viewer = collector.store.accounts.create_user(name, PASSWORD)
    # A member: other users do not see the project at all (404).
    collector.store.accounts.add_project_member(project.id, viewer.id)
    url = f"/projects/{project.id}/settings"
    with httpx.Client(base_url=collector.url, timeout=10) as client:
        assert login(client, name).status_code == 303
        page = client.get(url).text
        assert "Attachment budget" in page and 'name="attachment_mib_per_hour"' not in page
        response = client.post(url, data={"csrf_token": csrf_of(page), "attachment_mib_per_hour": "1"})
    assert response.status_code == 403
    assert collector.store.accounts.get_project(project.id).attachment_bytes_per_hour is None
