"""Alert rules and cron monitors in a real headless Chromium (forms, buttons, CSP)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Collector, post_envelope, wait_for
from .test_browser import _login, browser  # noqa: F401 - the module's Chromium fixture

pytestmark = pytest.mark.browser


def test_create_a_rule_press_send_test_notification_and_see_the_monitors(
    browser: Any,  # noqa: F811 - the imported fixture
    collector: Collector,
) -> None:
    """In a browser: the form creates a rule, the button queues a test, the nav reaches Monitors."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    project = collector.new_project("browser-alerts")
    item = {
        "monitor_slug": "nightly",
        "status": "ok",
        "monitor_config": {"schedule": {"type": "crontab", "value": "0 3 * * *"}},
    }
    post_envelope(collector, project, [({"type": "check_in"}, item)])
    wait_for(lambda: collector.store.monitors.list_monitors(project.id), 10)

    _login(browser, collector, f"/projects/{project.id}/alerts")
    browser.find_element(By.NAME, "name").send_keys("pager")
    Select(browser.find_element(By.NAME, "on")).select_by_value("regression")
    browser.find_element(By.NAME, "email").send_keys("oncall@example.com")
    browser.find_element(By.CSS_SELECTOR, ".alert-form button[type=submit]").click()
    wait_for(lambda: "/alerts/" in browser.current_url, 10)
    assert "pager" in browser.find_element(By.TAG_NAME, "h1").text

    browser.find_element(By.XPATH, "//button[text()='Send test notification']").click()
    wait_for(lambda: browser.current_url.endswith("?tested=1"), 10)

    def failed_shown() -> bool:
        browser.refresh()
        return "e-mail is not configured" in browser.page_source

    wait_for(failed_shown, 10)

    browser.find_element(By.LINK_TEXT, "Monitors").click()
    wait_for(lambda: browser.current_url.endswith("/monitors"), 10)
    assert "nightly" in browser.page_source and browser.find_elements(By.CSS_SELECTOR, ".timeline .run")
    errors = [
        e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]
    ]
    assert errors == []  # nothing blocked by the Content-Security-Policy, no script errors
