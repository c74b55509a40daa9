"""A real collector (uvicorn on a free 127.0.0.1 port, SQLite in a temp dir) for the dashboard tests,
plus helpers to log in and to report events with the official sentry-sdk."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tripwire_server.app import create_app
from tripwire_server.config import CollectorConfig
from tripwire_server.store import Project, Store

PASSWORD = "correct horse battery staple"


def wait_for(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {check}")
        time.sleep(interval)


@dataclass
class Collector:
    """A running collector."""

    url: str
    store: Store
    server: uvicorn.Server
    state: Any

    def new_project(self, name: str) -> Project:
        """A fresh project, so each test owns its issues."""
        project = self.store.accounts.create_project(f"{name}-{time.monotonic_ns()}")
        # Ingest caches DSN keys; make it see the new one at once.
        self.state.projects.invalidate()
        return project

    def dsn(self, project: Project) -> str:
        """The DSN of ``project`` on this collector."""
        return project.dsn(self.url)

    def wait_events(self, project: Project, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` events of ``project`` are digested and stored."""
        wait_for(lambda: self.store.issues.count_events(project.id) >= count, timeout)


@contextmanager
def running_collector(data_dir: Path, **config: Any) -> Iterator[Collector]:
    """A collector app served by uvicorn on a free 127.0.0.1 port, with the admin's password known."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    settings = CollectorConfig(data_dir=data_dir, port=port, sqlite_synchronous="NORMAL", **config)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 15)
        store: Store = app.state.collector.store
        store.accounts.set_password("admin", PASSWORD)
        yield Collector(f"http://127.0.0.1:{port}", store, server, app.state.collector)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="session")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """One collector for the whole session; tests isolate themselves with their own project."""
    with running_collector(tmp_path_factory.mktemp("collector")) as running:
        yield running


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: httpx.Client, username: str = "admin", password: str = PASSWORD) -> httpx.Response:
    """Log ``client`` in through the login form, like a browser would."""
    form = client.get("/login")
    return client.post(
        "/login",
        data={"csrf_token": csrf_of(form.text), "username": username, "password": password, "next": "/"},
    )


@pytest.fixture
def web(collector: Collector) -> Iterator[httpx.Client]:
    """An HTTP client logged in as the admin."""
    with httpx.Client(base_url=collector.url, timeout=10) as client:
        response = login(client)
        assert response.status_code == 303, response.text
        yield client


@contextmanager
def sentry(dsn: str, **options: Any) -> Iterator[Any]:
    """The official sentry-sdk reporting to ``dsn``; flushed and closed on exit."""
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        default_integrations=False,
        auto_enabling_integrations=False,
        include_local_variables=True,
        **options,
    )
    try:
        yield sentry_sdk
    finally:
        sentry_sdk.flush(10)
        sentry_sdk.get_client().close()
        # Disable it again without letting its default integrations patch threading (they are
        # process-global and would outlive this test).
        sentry_sdk.init(default_integrations=False, auto_enabling_integrations=False)


def post_envelope(collector: Collector, project: Project, items: list[tuple[dict[str, Any], Any]]) -> None:
    """Send one Sentry envelope of ``(item header, payload)`` pairs to the ingest endpoint."""
    import json

    lines = [json.dumps({"dsn": collector.dsn(project)}).encode()]
    for header, payload in items:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        lines.append(json.dumps({**header, "length": len(body)}).encode())
        lines.append(body)
    response = httpx.post(
        f"{collector.url}/api/{project.id}/envelope/?sentry_key={project.public_key}",
        content=b"\n".join(lines),
        headers={"Content-Type": "application/x-sentry-envelope"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def issue_ids(html: str) -> list[int]:
    """The issue ids linked from an issue list, in page order."""
    return [int(i) for i in re.findall(r'class="issue-title" href="/issues/(\d+)"', html)]


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the session: starting it costs seconds on a loaded machine; each
    module gets it through ``browser``, which clears what an earlier module left."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
