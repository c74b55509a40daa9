"""``tripwire demo`` is traced: within a minute a newcomer sees the Performance page, a
transaction summary, a trace, an N+1 query issue and errors that link to their traces."""

from __future__ import annotations

import re
import signal

import httpx
import pytest

from .conftest import csrf_of, wait_for
from .test_demo import DemoProcess, demo  # noqa: F401 - the demo subprocess fixture


@pytest.mark.slow
def test_the_demo_fills_the_performance_page_a_summary_and_a_trace_within_a_minute(
    demo: DemoProcess,  # noqa: F811 - the imported fixture
) -> None:
    """Performance lists the shop's routes; /products has a summary with db time and a sampled
    trace whose waterfall shows its queries; the N+1 issue is listed; an error links to its trace."""
    url = demo.field("Dashboard")
    assert re.search(r"^\s+Tracing:\s+on", demo.output, re.M)
    with httpx.Client(base_url=url, timeout=10) as client:
        form = client.get("/login")
        data = {"csrf_token": csrf_of(form.text), "username": "admin", "password": "demo-password-123"}
        assert client.post("/login", data={**data, "next": "/"}).status_code == 303

        def listed() -> str | None:
            page = client.get("/projects/1/performance", params={"since": "1h"}).text
            return page if "GET /products" in page and "POST /checkout/{order_id}" in page else None

        wait_for(listed, 60, interval=0.5)
        summary = client.get(
            "/projects/1/performance/summary", params={"transaction": "GET /products", "since": "1h"}
        ).text
        assert ">db<" in summary
        trace_id = re.findall(r'href="/traces/([0-9a-f]{32})"', summary)[0]
        trace = client.get(f"/traces/{trace_id}").text
        assert trace.count("SELECT stock FROM inventory WHERE product_id") >= 6
        issues = wait_for(lambda: (p := client.get("/projects/1/issues").text) and "N+1 Query" in p and p, 30)
        assert "SELECT stock FROM inventory WHERE product_id = ?" in issues
        error_issue = re.search(
            r'href="/issues/(\d+)"[^>]*>[^<]*<span class="etype">ZeroDivisionError', issues
        )
        assert error_issue, "the ZeroDivisionError issue is listed"
        page = client.get(f"/issues/{error_issue.group(1)}").text
        linked = re.search(r'href="/traces/([0-9a-f]{32})">View trace', page)
        assert linked
        assert "GET /cart/average" in client.get(f"/traces/{linked.group(1)}").text
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(30) == 0
    assert "Traceback" not in demo.output
