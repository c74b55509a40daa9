"""The dashboard's alert rule and cron monitor pages."""

from __future__ import annotations

import re
import uuid

import httpx

from .conftest import Collector, csrf_of, login, post_envelope, wait_for


def _create(web: httpx.Client, project_id: int, **fields: str) -> httpx.Response:
    page = web.get(f"/projects/{project_id}/alerts")
    return web.post(f"/projects/{project_id}/alerts", data={"csrf_token": csrf_of(page.text), **fields})


def test_an_admin_creates_a_rule_tests_it_and_sees_the_outcome_in_its_history(
    collector: Collector, web: httpx.Client
) -> None:
    """The form creates the rule; the test button queues a message whose failure shows with its error."""
    project = collector.new_project("alerts")
    response = _create(web, project.id, name="oncall mail", on="new-issue", email="oncall@example.com")
    assert response.status_code == 303
    rule_page = response.headers["location"]
    assert re.fullmatch(rf"/projects/{project.id}/alerts/\d+", rule_page)
    listing = web.get(f"/projects/{project.id}/alerts").text
    assert "oncall mail" in listing and "oncall@example.com" in listing
    page = web.get(rule_page)
    assert page.status_code == 200 and "Send test notification" in page.text
    pressed = web.post(rule_page + "/test", data={"csrf_token": csrf_of(page.text)})
    assert pressed.status_code == 303 and pressed.headers["location"].endswith("?tested=1")
    # No SMTP server is configured here: the message fails for good, and says why.
    failed = wait_for(lambda: "e-mail is not configured" in web.get(rule_page).text, 10)
    assert failed
    assert "notify-failed" in web.get(rule_page).text


def test_an_invalid_rule_is_refused_with_the_reason_escaped(collector: Collector, web: httpx.Client) -> None:
    """Missing thresholds and private webhooks are refused (400); what was typed comes back escaped."""
    project = collector.new_project("alerts-bad")
    response = _create(web, project.id, name="<b>x</b>", on="frequency", email="a@example.com")
    assert response.status_code == 400 and "--threshold" in response.text
    assert "&lt;b&gt;x&lt;/b&gt;" in response.text and "<b>x</b>" not in response.text
    response = _create(web, project.id, on="new-issue", webhook="http://169.254.169.254/latest")
    assert response.status_code == 400 and "not a public address" in response.text
    assert collector.store.alerts.list_alert_rules(project.id) == []


def test_only_admins_create_test_or_delete_rules(collector: Collector, web: httpx.Client) -> None:
    """A non-admin sees the rules but gets 403 for every change; the admin's delete removes the rule."""
    project = collector.new_project("alerts-perm")
    secret_url = "https://hooks.example.com/services/T000/B000/SECRETPART"
    created = _create(web, project.id, on="regression", email="a@example.com", webhook=secret_url)
    rule_page = created.headers["location"]
    name = f"viewer-{uuid.uuid4().hex[:8]}"
    viewer_user = collector.store.accounts.create_user(name, "viewer password 123")
    # A member: other users do not see the project at all (404).
    collector.store.accounts.add_project_member(project.id, viewer_user.id)
    with httpx.Client(base_url=collector.url, timeout=10) as viewer:
        assert login(viewer, name, "viewer password 123").status_code == 303
        page = viewer.get(rule_page)
        assert page.status_code == 200 and "Send test notification" not in page.text
        assert "SECRETPART" not in page.text and "https://hooks.example.com/…" in page.text
        token = csrf_of(page.text)
        for path in (rule_page + "/test", rule_page + "/delete"):
            assert viewer.post(path, data={"csrf_token": token}).status_code == 403
        listing = viewer.get(f"/projects/{project.id}/alerts")
        assert listing.status_code == 200 and "New rule" not in listing.text
        assert "SECRETPART" not in listing.text
        assert "SECRETPART" in web.get(rule_page).text  # admins see it (and the signing secret)
        assert (
            viewer.post(
                f"/projects/{project.id}/alerts",
                data={"csrf_token": token, "on": "new-issue", "email": "b@c.de"},
            ).status_code
            == 403
        )
    page = web.get(rule_page)
    assert web.post(rule_page + "/delete", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    assert collector.store.alerts.list_alert_rules(project.id) == []


def test_the_monitors_page_shows_status_schedule_and_a_timeline_of_runs(
    collector: Collector, web: httpx.Client
) -> None:
    """Monitors list their status, schedule, next expected run and last runs; the detail lists check-ins."""
    project = collector.new_project("crons")
    config = {"schedule": {"type": "crontab", "value": "*/15 * * * *"}, "checkin_margin": 2}
    for status in ("in_progress", "ok", "error"):
        item = {"monitor_slug": "sync-job", "status": status, "monitor_config": config, "duration": 1.5}
        post_envelope(collector, project, [({"type": "check_in"}, item)])
    wait_for(
        lambda: (
            len(collector.store.monitors.list_monitors(project.id)) == 1
            and collector.store.monitors.list_monitors(project.id)[0].status == "error"
        )
    )
    page = web.get(f"/projects/{project.id}/monitors").text
    assert "sync-job" in page and "*/15 * * * *" in page and "monitor-error" in page
    assert page.count('class="run ') == 3
    assert f'href="/projects/{project.id}/monitors"' in page  # in the project navigation
    detail = web.get(f"/projects/{project.id}/monitors/sync-job")
    assert detail.status_code == 200 and "1.5 s" in detail.text and "failures of this monitor" in detail.text
    assert web.get(f"/projects/{project.id}/monitors/nope").status_code == 404
    issue_id = collector.store.monitors.list_monitors(project.id)[0].issue_id
    issue_page = web.get(f"/issues/{issue_id}")
    assert issue_page.status_code == 200 and "Cron monitor sync-job: failed" in issue_page.text


def test_an_admin_creates_a_p95_rule_and_the_pages_say_what_it_watches(
    collector: Collector, web: httpx.Client
) -> None:
    """The form takes the limit, window, percentile, minimum count and transaction; list and rule
    pages show them (the name escaped)."""
    project = collector.new_project("alerts-p95")
    response = _create(
        web, project.id, name="slow pay", on="p95", email="oncall@example.com", above_ms="750",
        window="15", percentile="p99", transaction="POST /<pay>",
    )  # fmt: skip
    assert response.status_code == 303, response.text
    (rule,) = collector.store.alerts.list_alert_rules(project.id)
    assert (rule.trigger, rule.above_ms, rule.window_minutes, rule.percentile, rule.min_count) == (
        "p95", 750.0, 15, 99, 100
    )  # fmt: skip
    assert rule.filters.transaction == "POST /<pay>"
    listing = web.get(f"/projects/{project.id}/alerts").text
    assert "p99 of POST /&lt;pay&gt; over 750.0 ms / 15 min (at least 100)" in listing
    page = web.get(response.headers["location"]).text
    assert "p99 over 750.0 ms in 15 min, from 100 transactions; only POST /&lt;pay&gt;" in page
    refused = _create(web, project.id, on="p95", email="oncall@example.com", window="15")
    assert refused.status_code == 400 and "--above-ms" in refused.text
