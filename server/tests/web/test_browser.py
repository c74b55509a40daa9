"""The dashboard in a real headless Chromium: log in, browse, resolve, and stay inert to hostile data."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, Collector, post_envelope, sentry, wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser(chromium: Any) -> Any:
    """The session's Chromium as a new module finds it: no cookies, a blank page, an empty console
    log (a console error another module provoked must not fail this one)."""
    chromium.get("about:blank")
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.get_log("browser")
    return chromium


def _login(driver: Any, collector: Collector, path: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(collector.url + path)
    assert "/login" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "/login" not in driver.current_url, 10)


HOSTILE_TAG = '<img src=x onerror="window.__xss=1">'
HOSTILE_MESSAGE = "<script>window.__xss=2</script>"


def test_log_in_open_an_issue_and_resolve_it(browser: Any, collector: Collector) -> None:
    """A user logs in, sees issues reported by sentry-sdk, opens one, resolves it; the injected
    markup in its tags and message shows as text and never runs."""
    from selenium.webdriver.common.by import By

    driver = browser
    project = collector.new_project("browser")
    with sentry(collector.dsn(project), release="web@1.0.0") as sdk:
        sdk.set_tag("evil", HOSTILE_TAG)
        try:
            {"present": 1}["customer-42"]
        except KeyError:
            sdk.capture_exception()
        sdk.capture_message(HOSTILE_MESSAGE, level="error")
    collector.wait_events(project, 2)

    _login(driver, collector, f"/projects/{project.id}/issues")
    assert driver.current_url.endswith(f"/projects/{project.id}/issues")
    titles = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "a.issue-title")]
    assert len(titles) == 2
    assert HOSTILE_MESSAGE in titles  # shown as text
    assert any(t.startswith("KeyError") for t in titles)

    link = next(
        a for a in driver.find_elements(By.CSS_SELECTOR, "a.issue-title") if a.text.startswith("KeyError")
    )
    link.click()
    wait_for(lambda: "/issues/" in driver.current_url)
    page_text = driver.find_element(By.TAG_NAME, "body").text
    assert "customer-42" in page_text
    assert HOSTILE_TAG in page_text
    assert driver.execute_script("return window.__xss === undefined")

    driver.find_element(By.CSS_SELECTOR, "button[value=resolve]").click()
    badge = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".issue-sub .status-resolved"))
    assert badge[0].text == "resolved"
    issue_id = int(driver.current_url.rstrip("/").rsplit("/", 1)[1])
    assert collector.store.issues.get_issue(issue_id).status == "resolved"

    driver.get(f"{collector.url}/projects/{project.id}/issues")
    titles = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "a.issue-title")]
    assert titles == [HOSTILE_MESSAGE]
    assert driver.execute_script("return window.__xss === undefined")


def test_event_page_in_the_browser_runs_no_injected_code(browser: Any, collector: Collector) -> None:
    """On the event page, markup in frames, locals, breadcrumbs and request data stays text, and
    the event's frames can be unfolded."""
    from selenium.webdriver.common.by import By

    from .test_escaping import hostile_event

    driver = browser
    project = collector.new_project("browser-event")
    event = hostile_event()
    post_envelope(collector, project, [({"type": "event"}, event)])
    collector.wait_events(project, 1)
    issue = collector.store.issues.list_issues(project.id)[0]
    _login(driver, collector, f"/issues/{issue.id}/events/{event['event_id']}")
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "<script>window.__xss=1</script>" in body
    assert driver.execute_script(
        "return window.__xss === undefined && document.querySelectorAll('main script, main img').length === 0"
    )
    frame = driver.find_element(By.CSS_SELECTOR, "li.frame.culprit details")
    assert frame.get_attribute("open") is not None
    assert "payload" in frame.text  # the locals table of the opened frame


def test_filters_apply_on_change_with_the_dashboard_script(browser: Any, collector: Collector) -> None:
    """Choosing a level in the filter drop-down reloads the list filtered (the small script runs
    under the Content-Security-Policy)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    project = collector.new_project("browser-filter")
    warning = {"message": f"warn {uuid.uuid4()}", "level": "warning"}
    post_envelope(collector, project, [({"type": "event"}, warning)])
    post_envelope(collector, project, [({"type": "event"}, {"message": "an error here", "level": "error"})])
    collector.wait_events(project, 2)
    _login(driver, collector, f"/projects/{project.id}/issues")
    assert len(driver.find_elements(By.CSS_SELECTOR, "a.issue-title")) == 2
    Select(driver.find_element(By.NAME, "level")).select_by_value("warning")
    wait_for(lambda: "level=warning" in driver.current_url)
    titles = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "a.issue-title")]
    assert len(titles) == 1 and titles[0].startswith("warn ")


def test_stylesheet_and_layout_render(browser: Any, collector: Collector, tmp_path: Path) -> None:
    """The dashboard's stylesheet is applied under the CSP and a page renders to a non-empty image."""
    from selenium.webdriver.common.by import By

    driver = browser
    _login(driver, collector, "/projects/1/settings")
    color = driver.find_element(By.CSS_SELECTOR, "header.topbar").value_of_css_property("background-color")
    assert color in ("rgba(29, 35, 48, 1)", "rgb(29, 35, 48)")  # dashboard.css was applied
    target = tmp_path / "settings.png"
    assert driver.save_screenshot(str(target))
    assert target.stat().st_size > 10_000


def test_dashboard_pages_cause_no_console_errors_or_csp_violations(
    browser: Any, collector: Collector
) -> None:
    """Every page of the dashboard loads without a console error: nothing of ours is blocked by the
    Content-Security-Policy (no inline script or style) and no resource is missing."""
    from selenium.webdriver.common.by import By

    driver = browser
    project = collector.new_project("browser-console")
    with sentry(collector.dsn(project), release="console@1.0.0") as sdk:
        sdk.add_breadcrumb(category="ui", message="clicked")
        try:
            {"present": 1}["nothing"]
        except KeyError:
            sdk.capture_exception()
    collector.wait_events(project, 1)
    _login(driver, collector, f"/projects/{project.id}/issues")
    driver.get_log("browser")  # drop what the login produced
    issue = collector.store.issues.list_issues(project.id)[0]
    event = collector.store.issues.latest_event(issue.id)
    assert event is not None
    for path in (
        f"/projects/{project.id}/issues",
        f"/issues/{issue.id}",
        f"/issues/{issue.id}/events/{event.event_id}",
        f"/projects/{project.id}/releases",
        f"/projects/{project.id}/settings",
    ):
        driver.get(collector.url + path)
        assert driver.find_element(By.CSS_SELECTOR, "main")
        problems = [
            entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")
        ]
        assert problems == [], (path, problems)
