"""``tripwire demo`` as a user runs it: a subprocess whose dashboard shows the demo's issues."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import csrf_of, issue_ids, wait_for

EXPECTED = [
    "ZeroDivisionError",
    "KeyError",
    "CheckoutError",
    "ExceptionGroup",
    "ValueError",  # logged with log.exception()
    "stock level of",  # logged with log.error()
    r"\b500\b",  # the handled path's response, reported by failed_status_codes
]


class DemoProcess:
    """``python -m tripwire_server demo`` with its output collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tripwire_server", "demo", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def field(self, label: str) -> str:
        """The value printed after ``label:`` in the banner."""
        match = wait_for(lambda: re.search(rf"^\s+{label}:\s+(\S+)", self.output, re.M), 60)
        return str(match.group(1))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    process = DemoProcess(
        "--exit-after",
        "120",
        "--interval",
        "0.2",
        "--data-dir",
        str(tmp_path),
        env={"TRIPWIRE_ADMIN_PASSWORD": "demo-password-123"},
    )
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_demo_fills_the_dashboard_and_stops_cleanly_on_ctrl_c(demo: DemoProcess) -> None:
    """The demo prints the dashboard URL and login; logged in, the dashboard lists an issue for each
    kind of failure the demo raises, with users and release; Ctrl-C stops it with status 0."""
    url = demo.field("Dashboard")
    assert re.search(r"^\s+Login:\s+admin / demo-password-123$", demo.output, re.M)
    with httpx.Client(base_url=url, timeout=10) as client:
        form = client.get("/login")
        response = client.post(
            "/login",
            data={
                "csrf_token": csrf_of(form.text),
                "username": "admin",
                "password": "demo-password-123",
                "next": "/",
            },
        )
        assert response.status_code == 303

        def all_issues_listed() -> str | None:
            page = client.get("/projects/1/issues").text
            titles = [
                re.sub(r"<[^>]+>", "", t) for t in re.findall(r'class="issue-title"[^>]*>(.*?)</a>', page)
            ]
            found = all(any(re.search(pattern, title) for title in titles) for pattern in EXPECTED)
            return page if found else None

        page = wait_for(all_issues_listed, 60, interval=0.5)
        ids = issue_ids(page)
        assert len(ids) >= len(EXPECTED)
        assert "demo@1.0.0" in page
        checkout = next(i for i in ids if "CheckoutError" in page.split(f'href="/issues/{i}"', 1)[1][:200])
        issue_page = client.get(f"/issues/{checkout}").text
        assert "PaymentGatewayError" in issue_page  # the cause, in the latest event
        assert re.search(r"(ada|grace|linus)@example.com", issue_page)
        assert "tripwire_server.demo" in issue_page  # in-app frames of the demo shop
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(30) == 0
    assert "Stopped." in demo.output
    assert "Traceback" not in demo.output


@pytest.mark.slow
def test_demo_exits_by_itself_after_exit_after(tmp_path: Path) -> None:
    """``--exit-after`` ends the demo on its own with status 0, and a fresh temporary data dir is
    removed on exit."""
    started = time.monotonic()
    process = DemoProcess("--exit-after", "2")
    try:
        assert process.proc.wait(60) == 0
    finally:
        process.stop()
    process._reader.join(5)
    assert time.monotonic() - started < 60
    assert "Dashboard:" in process.output and "Stopped." in process.output
    assert "deleted on exit" in process.output
