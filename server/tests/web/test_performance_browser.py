"""The Performance page, a transaction summary and a trace in a real headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Collector, wait_for
from .test_browser import _login, browser  # noqa: F401 - the module's Chromium fixture
from .test_performance_pages import _report

pytestmark = pytest.mark.browser


def _no_console_errors(driver: Any) -> list[Any]:
    return [
        e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]
    ]


def test_from_the_performance_page_to_a_summary_to_a_trace_and_its_span_details(
    browser: Any,  # noqa: F811 - the imported fixture
    collector: Collector,
) -> None:
    """Click a transaction, then its slowest sample, then a span: its details open; hostile
    descriptions show as text and never run; nothing is blocked by the CSP."""
    from selenium.webdriver.common.by import By

    project, trace_id = _report(collector, "browser-perf")
    _login(browser, collector, f"/projects/{project.id}/performance?since=1h")  # type: ignore[attr-defined]
    rows = browser.find_elements(By.CSS_SELECTOR, "table.performance tbody tr")
    assert len(rows) == 2
    browser.find_element(By.LINK_TEXT, "p95").click()  # sort by p95 (descending)
    wait_for(lambda: "sort=p95_ms" in browser.current_url, 10)
    first = browser.find_element(By.CSS_SELECTOR, "table.performance tbody tr td a")
    assert first.text == "/orders/{id}"
    first.click()
    wait_for(lambda: "/performance/summary" in browser.current_url, 10)
    assert browser.find_elements(By.CSS_SELECTOR, "svg.linechart polyline")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.histogram rect")
    browser.find_element(By.CSS_SELECTOR, "table.samples tbody tr td a").click()
    wait_for(lambda: f"/traces/{trace_id}" in browser.current_url, 10)
    spans = browser.find_elements(By.CSS_SELECTOR, "details.span-row")
    assert len(spans) == 2
    detail = spans[1]
    assert not detail.get_attribute("open")
    detail.find_element(By.TAG_NAME, "summary").click()
    wait_for(lambda: detail.get_attribute("open"), 5)
    assert "<script>" in detail.find_element(By.CSS_SELECTOR, ".span-detail pre").text
    assert browser.execute_script("return window.__xss === undefined")
    assert browser.find_elements(By.CSS_SELECTOR, ".trace-errors a")
    assert _no_console_errors(browser) == []
