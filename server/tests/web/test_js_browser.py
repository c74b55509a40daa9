"""@sentry/browser in headless Chromium reports to a real collector: browser and OS contexts from
the User-Agent (searchable tags), a group that survives a rebuild of the minified bundle, SDK
frames out of the app's code, captureMessage titled by its message, and feedback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import LiveServer, wait_until
from ..js_support import JS_DIR, esbuild, record_fixture, static_server
from .test_browser import browser  # noqa: F401 - the headless Chromium fixture

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>shop</title></head><body>
<button id="checkout">Checkout</button>
<script>window.DSN = {dsn};</script>
<script src="sentry.bundle.min.js"></script>
<script src="{app}"></script>
<script>startApp();</script>
</body></html>
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The SDK bundle and two builds of the app (the second shifted and renamed by the minifier)."""
    root = tmp_path_factory.mktemp("site")
    esbuild(
        "browser_sdk.js",
        root / "sentry.bundle.min.js",
        "--bundle",
        "--minify",
        "--format=iife",
        "--global-name=Sentry",
    )
    # Bundles are named by a hash of their content, as bundlers do; the second build comes from
    # changed code above the bug (new lines and a new function), so lines, columns and the
    # minifier's names move.
    changed = root / "browser_app_changed.js"
    extra = "function trackClick(n) {\n  return n + 1;\n}\nwindow.trackClick = trackClick;\n"
    changed.write_text(extra + (JS_DIR / "browser_app.js").read_text())
    esbuild("browser_app.js", root / "app.4f2a9c1e.min.js", "--minify", "--format=iife")
    esbuild(str(changed), root / "app.b71d03aa.min.js", "--minify", "--format=iife")
    with static_server(root) as url:
        yield root, url


def _open(driver: Any, site: tuple[Path, str], server: LiveServer, app: str) -> None:
    root, url = site
    (root / f"{app}.html").write_text(PAGE.format(dsn=json.dumps(server.dsn), app=f"{app}.min.js"))
    driver.get(f"{url}/{app}.html")


def test_browser_sdk_events_get_browser_contexts_and_stable_groups(
    browser: Any,  # noqa: F811
    site: tuple[Path, str],
    sqlite_server: LiveServer,
) -> None:
    """An unhandled error from two builds of a minified bundle is one issue; its events carry
    browser and OS contexts parsed from the User-Agent and a ``browser`` tag that search finds;
    the SDK's own frames are not in-app; captureMessage is titled by its message; feedback is kept."""
    from selenium.webdriver.common.by import By

    for build in ("app.4f2a9c1e", "app.b71d03aa"):
        _open(browser, site, sqlite_server, build)
        browser.find_element(By.ID, "checkout").click()
    message_id = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; sendMessageAndFeedback().then(done);"
    )

    def issues() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = sqlite_server.api("/api/0/projects/default/issues/")["issues"]
        return found if sum(i["event_count"] for i in found) >= 3 else None

    by_title = {i["title"].split(" is not valid")[0]: i for i in wait_until(issues)}
    sqlite_server.wait_digested()
    coupon = next(i for t, i in by_title.items() if t.startswith("TypeError: coupon SPRING"))
    assert coupon["event_count"] == 2, by_title
    message = sqlite_server.api(f"/api/0/events/{message_id}/")
    assert message["title"] == "cart total 1234 does not match the server"

    event = sqlite_server.api(f"/api/0/issues/{coupon['id']}/events/latest/")["data"]
    user_agent = browser.execute_script("return navigator.userAgent")
    major = user_agent.split("Chrome/")[1].split(".")[0]
    assert event["contexts"]["browser"]["name"] == "HeadlessChrome"
    assert event["contexts"]["browser"]["version"].split(".")[0] == major
    assert event["contexts"]["os"]["name"] == "Linux"
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    bundle = [f for f in frames if "sentry.bundle" in f.get("filename", "")]
    assert bundle  # not vacuous: the SDK's wrapper frame is in the stack, and it is not the app's
    assert all(f.get("in_app") is False for f in bundle)
    found = sqlite_server.api(
        "/api/0/projects/default/issues/", params={"query": f'browser:"HeadlessChrome {major}"'}
    )
    assert {i["id"] for i in found["issues"]} >= {coupon["id"]}
    tags = {(t["key"], t["value"]) for t in sqlite_server.api(f"/api/0/issues/{coupon['id']}/")["tags"]}
    assert {
        ("browser", f"HeadlessChrome {major}"),
        ("browser.name", "HeadlessChrome"),
        ("os.name", "Linux"),
    } <= tags

    events = sqlite_server.api(f"/api/0/issues/{coupon['id']}/events/")
    for n, summary in enumerate(events):
        record_fixture(
            f"browser_unhandled_build_{n}", sqlite_server.api(f"/api/0/events/{summary['event_id']}/")["data"]
        )
    record_fixture("browser_capture_message", message["data"])
    (feedback,) = sqlite_server.api("/api/0/projects/default/feedback/")
    assert (feedback["message"], feedback["email"]) == ("Checkout is <broken>", "ana@example.com")
