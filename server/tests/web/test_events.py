"""The event page: exception chain, frames, source, locals, breadcrumbs, request, user, raw JSON."""

from __future__ import annotations

import builtins
import json
import uuid
from typing import Any

import httpx
import pytest

from tripwire_server.store import Project

from .conftest import Collector, post_envelope, sentry


def _event_page(collector: Collector, web: httpx.Client, project: Project) -> tuple[str, Any]:
    issue = collector.store.issues.list_issues(project.id)[0]
    event = collector.store.issues.latest_event(issue.id)
    assert event is not None
    response = web.get(f"/issues/{issue.id}/events/{event.event_id}")
    assert response.status_code == 200
    return response.text, event


def _load_order(order_id: str) -> dict[str, int]:
    inventory = {"sku-1": 3}
    return {"count": inventory[order_id]}


def _checkout(order_id: str) -> None:
    try:
        _load_order(order_id)
    except KeyError as exc:
        raise RuntimeError(f"checkout failed for {order_id}") from exc


def test_chained_exception_with_frames_locals_and_breadcrumbs(
    collector: Collector, web: httpx.Client
) -> None:
    """A chained exception shows the raised error first, its cause, app frames with source and locals,
    plus the user, tags and breadcrumbs sent by sentry-sdk."""
    project = collector.new_project("chain")
    with sentry(collector.dsn(project), release="shop@3.0.0", in_app_include=["server.tests"]) as sdk:
        sdk.set_user({"id": "user-77", "email": "ada@example.com"})
        sdk.set_tag("region", "eu-west")
        sdk.add_breadcrumb(category="db.query", message="SELECT * FROM orders WHERE id = 9", level="info")
        sdk.add_breadcrumb(category="payment", message="card declined", level="warning", data={"attempt": 2})
        try:
            _checkout("order-9")
        except RuntimeError:
            sdk.capture_exception()
    collector.wait_events(project, 1)
    page, event = _event_page(collector, web, project)
    runtime_at = page.index("RuntimeError")
    caused_at = page.index("Cause or context of the exception above")
    key_error_at = page.index('<span class="etype">KeyError</span>')
    assert runtime_at < caused_at < key_error_at  # raised exception first, then its cause
    assert "checkout failed for order-9" in page
    assert 'class="frame in-app culprit"' in page  # the innermost app frame is opened
    assert 'in <span class="function">_load_order</span>' in page
    assert "return {&#34;count&#34;: inventory[order_id]}" in page  # the failing source line
    assert '<li class="current">' in page
    assert "<th>inventory</th>" in page and "sku-1" in page  # local variables
    assert "SELECT * FROM orders WHERE id = 9" in page and "card declined" in page
    assert "&#34;attempt&#34;: 2" in page
    assert "user-77" in page and "ada@example.com" in page
    assert "eu-west" in page
    assert "shop@3.0.0" in page
    assert event.event_id in page


def test_exception_group_members_are_listed_under_the_group(collector: Collector, web: httpx.Client) -> None:
    """An ExceptionGroup shows the group, then each member exception, indented under it."""
    group_type = getattr(builtins, "ExceptionGroup", None)
    if group_type is None:
        pytest.skip("ExceptionGroup needs Python 3.11")
    project = collector.new_project("group")
    with sentry(collector.dsn(project)) as sdk:
        try:
            raise group_type("two jobs failed", [ValueError("job 1"), TypeError("job 2")])
        except group_type:
            sdk.capture_exception()
    collector.wait_events(project, 1)
    page, _ = _event_page(collector, web, project)
    assert "exception group" in page
    assert page.index("two jobs failed") < page.index("job 1")
    assert "job 2" in page
    assert 'class="block exception depth-1"' in page
    assert "In the exception group" in page


def test_request_section_shows_method_url_headers_and_body(collector: Collector, web: httpx.Client) -> None:
    """The request an event happened in is shown: method, URL, query, headers, cookies and body."""
    project = collector.new_project("request")
    event = {
        "event_id": uuid.uuid4().hex,
        "level": "error",
        "platform": "python",
        "exception": {"values": [{"type": "ValueError", "value": "bad quantity"}]},
        "request": {
            "method": "POST",
            "url": "https://shop.example/cart/add",
            "query_string": "item=42&qty=-1",
            "headers": {"User-Agent": "curl/8.0", "Content-Type": "application/json"},
            "cookies": "theme=dark; lang=en",
            "data": {"item": 42, "qty": -1},
        },
    }
    post_envelope(collector, project, [({"type": "event"}, event)])
    collector.wait_events(project, 1)
    page, _ = _event_page(collector, web, project)
    section = page.split("<h3>Request</h3>", 1)[1].split("</section>", 1)[0]
    assert '<span class="method">POST</span>' in section
    assert "https://shop.example/cart/add" in section
    assert "<th>qty</th><td><pre>-1</pre>" in section
    assert "curl/8.0" in section
    assert "<th>theme</th><td><pre>dark</pre>" in section
    assert "&#34;qty&#34;: -1" in section


def test_raw_json_is_a_download_of_the_stored_event(collector: Collector, web: httpx.Client) -> None:
    """The raw JSON link downloads exactly the stored payload, as an attachment, never as a page."""
    project = collector.new_project("raw")
    post_envelope(collector, project, [({"type": "event"}, {"message": "<b>raw</b>", "level": "info"})])
    collector.wait_events(project, 1)
    issue = collector.store.issues.list_issues(project.id)[0]
    event = collector.store.issues.latest_event(issue.id)
    assert event is not None
    response = web.get(f"/issues/{issue.id}/events/{event.event_id}/json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == f'attachment; filename="event-{event.event_id}.json"'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert json.loads(response.content) == event.data


def test_event_of_another_issue_is_not_shown_under_this_one(collector: Collector, web: httpx.Client) -> None:
    """An event id only opens under its own issue's URL."""
    project = collector.new_project("cross")
    post_envelope(collector, project, [({"type": "event"}, {"message": "first kind", "level": "error"})])
    post_envelope(collector, project, [({"type": "event"}, {"message": "second kind", "level": "error"})])
    collector.wait_events(project, 2)
    first, second = collector.store.issues.list_issues(project.id)
    event = collector.store.issues.latest_event(first.id)
    assert event is not None
    assert web.get(f"/issues/{first.id}/events/{event.event_id}").status_code == 200
    assert web.get(f"/issues/{second.id}/events/{event.event_id}").status_code == 404


def test_message_with_attached_stacktrace_shows_the_thread_frames(
    collector: Collector, web: httpx.Client
) -> None:
    """A message sent with ``attach_stacktrace`` shows the stack of the thread that logged it."""
    project = collector.new_project("thread")
    with sentry(collector.dsn(project), attach_stacktrace=True, in_app_include=["server.tests"]) as sdk:
        sdk.capture_message("nightly job took 93 minutes", level="warning")
    collector.wait_events(project, 1)
    page, _ = _event_page(collector, web, project)
    assert "nightly job took 93 minutes" in page
    assert '<span class="etype">Thread</span>' in page
    assert "test_message_with_attached_stacktrace_shows_the_thread_frames" in page


def test_event_page_links_to_newer_and_older_events(collector: Collector, web: httpx.Client) -> None:
    """From the issue's event list, each event page links to the next newer and older event."""
    project = collector.new_project("nav")
    for n in range(3):
        post_envelope(
            collector,
            project,
            [({"type": "event"}, {"message": "same thing", "level": "error", "extra": {"n": n}})],
        )
        collector.wait_events(project, n + 1)
    issue = collector.store.issues.list_issues(project.id)[0]
    newest, middle, oldest = (e.event_id for e in collector.store.issues.list_events(issue.id))
    issue_page = web.get(f"/issues/{issue.id}").text
    assert f"/events/{middle}?i=1" in issue_page
    page = web.get(f"/issues/{issue.id}/events/{middle}?i=1").text
    assert f'href="/issues/{issue.id}/events/{newest}?i=0" rel="prev"' in page
    assert f'href="/issues/{issue.id}/events/{oldest}?i=2" rel="next"' in page
    first = web.get(f"/issues/{issue.id}/events/{newest}?i=0").text
    assert 'rel="prev"' not in first and f"/events/{middle}?i=1" in first
    stale = web.get(f"/issues/{issue.id}/events/{middle}?i=7").text  # position no longer matches
    assert 'rel="prev"' not in stale and 'rel="next"' not in stale


def test_tripwire_sdk_chain_is_labelled_cause_and_group_members(
    collector: Collector, web: httpx.Client
) -> None:
    """With the tripwire SDK, which records how exceptions are linked, a ``raise ... from`` shows
    "Caused by" and ExceptionGroup members show their place in the group."""
    import tripwire

    group_type = getattr(builtins, "ExceptionGroup", None)
    if group_type is None:
        pytest.skip("ExceptionGroup needs Python 3.11")
    project = collector.new_project("tw-sdk")
    tripwire.init(collector.dsn(project), release="tw@1.0.0", in_app_include=["server.tests"])
    try:
        try:
            _checkout("order-3")
        except RuntimeError as exc:
            raise group_type("batch failed", [exc, ValueError("row 9")]) from None
    except Exception as exc:  # the group is what we report
        tripwire.capture_exception(exc)
    tripwire.flush(10)
    collector.wait_events(project, 1)
    page, _ = _event_page(collector, web, project)
    assert page.index("batch failed") < page.index("checkout failed for order-3")
    assert "In the exception group, exceptions[0]" in page
    assert "In the exception group, exceptions[1]" in page
    assert "Caused by" in page  # RuntimeError from KeyError
    assert 'class="block exception depth-1"' in page


def test_markdown_export_summarises_the_event_as_plain_text(collector: Collector, web: httpx.Client) -> None:
    """The Markdown view gives a pasteable summary: title, facts, a Python-style traceback per
    exception, breadcrumbs and the request, served as plain text."""
    project = collector.new_project("md")
    with sentry(collector.dsn(project), release="shop@5.0.0", in_app_include=["server.tests"]) as sdk:
        sdk.add_breadcrumb(category="auth", message="user | admin logged in", level="info")
        try:
            _checkout("order-``` 5")
        except RuntimeError:
            sdk.capture_exception()
    collector.wait_events(project, 1)
    issue = collector.store.issues.list_issues(project.id)[0]
    event = collector.store.issues.latest_event(issue.id)
    assert event is not None
    response = web.get(f"/issues/{issue.id}/events/{event.event_id}/md")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    text = response.text
    assert text.startswith("# RuntimeError: checkout failed for order-``` 5\n")
    assert "- Release: shop@5.0.0" in text
    assert "Traceback (most recent call last):" in text
    assert "in _load_order" in text and "KeyError: 'order-``` 5'" in text
    assert "````python" in text  # a longer fence than the backticks inside
    assert "| auth | info | user \\| admin logged in |" in text
    assert f"/issues/{issue.id}/events/{event.event_id}>" in text
