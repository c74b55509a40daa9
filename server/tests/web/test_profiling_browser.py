"""Flame graphs in a real headless Chromium: a Starlette app profiled by the official sentry-sdk
reports to the collector; from the transaction summary to the slow function's flame graph, a
zoom by click, and hostile function names that show as text and never run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ..profiling.services import CLIENTS, HOSTILE_NAME, SLOW_FUNCTION, ProfiledService
from .conftest import Collector, wait_for
from .test_browser import _login, browser  # noqa: F401 - the module's Chromium fixture
from .test_performance_browser import _no_console_errors

pytestmark = [pytest.mark.browser, pytest.mark.slow]


# The official sentry-sdk's profiler and tripwire's own: both must end in a flame graph a browser renders.
@pytest.fixture(scope="module", params=[c for c in CLIENTS if c in ("sentry", "tripwire")])
def profiled(collector: Collector, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A project whose app was profiled by one client: /crunch three times, /hostile once."""
    project = collector.new_project(f"browser-prof-{request.param}")
    service = ProfiledService(request.param, collector.dsn(project))
    try:
        for path in ("/crunch", "/crunch", "/crunch", "/hostile"):
            assert service.get(path).status_code == 200
    finally:
        service.stop()
    wait_for(lambda: len(collector.store.profiles.list_profiles(project.id)) >= 4, 20)
    yield project


def test_from_the_transaction_summary_to_the_slow_functions_flame_graph(
    browser: Any,  # noqa: F811 - the imported fixture
    collector: Collector,
    profiled: Any,
) -> None:
    """Click a sample's "flame graph": the SVG draws the slow function's frame with its name;
    clicking the frame zooms in so it spans the whole width; nothing is blocked by the CSP."""
    from selenium.webdriver.common.by import By

    _login(browser, collector, f"/projects/{profiled.id}/performance/summary?transaction=/crunch&since=1h")
    browser.find_element(By.CSS_SELECTOR, "a.profile-link").click()
    wait_for(lambda: f"/projects/{profiled.id}/profiles/" in browser.current_url, 10)
    labels = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "svg.flamegraph text"), 10)
    slow = [t for t in labels if t.text.startswith(SLOW_FUNCTION)]
    assert slow, [t.text for t in labels]
    svg = browser.find_element(By.CSS_SELECTOR, "svg.flamegraph")
    assert svg.size["width"] > 600 and svg.size["height"] > 50  # drawn, not collapsed
    frame = browser.find_element(
        By.XPATH, f"//*[local-name()='a'][.//*[local-name()='text' and starts-with(., '{SLOW_FUNCTION}')]]"
    )
    before = float(frame.find_element(By.CSS_SELECTOR, "rect").get_attribute("width"))
    frame.find_element(By.CSS_SELECTOR, "rect").click()
    wait_for(lambda: "focus=" in browser.current_url, 10)
    top = browser.find_element(By.CSS_SELECTOR, "svg.flamegraph rect")
    assert float(top.get_attribute("width")) == 1200.0 >= before
    assert browser.find_element(By.CSS_SELECTOR, "svg.flamegraph text").text.startswith(SLOW_FUNCTION)
    assert _no_console_errors(browser) == []


def test_a_hostile_function_name_shows_as_text_in_the_flame_graph(
    browser: Any,  # noqa: F811 - the imported fixture
    collector: Collector,
    profiled: Any,
) -> None:
    """The profile of /hostile names its hot frame with markup: the page shows the text (in the
    frame's tooltip and label) and no injected element or script runs."""
    from selenium.webdriver.common.by import By

    (info,) = collector.store.profiles.list_profiles(profiled.id, "/hostile")
    _login(browser, collector, f"/projects/{profiled.id}/profiles/{info.profile_id}")
    titles = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "svg.flamegraph rect title"), 10)
    assert any(t.get_attribute("textContent").startswith(HOSTILE_NAME) for t in titles)
    assert browser.find_elements(By.CSS_SELECTOR, "img[src=x]") == []
    assert browser.execute_script("return window.__xss === undefined")
    assert _no_console_errors(browser) == []
