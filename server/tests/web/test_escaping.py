"""Event data is hostile: every value an SDK sends must reach the page as text, never as markup."""

from __future__ import annotations

import uuid

import httpx

from .conftest import Collector, issue_ids, post_envelope

SCRIPT = "<script>window.__xss=1</script>"
ATTRIBUTE = '"><svg onload=alert(1)>'
IMG = "<img src=x onerror=alert(2)>"


def hostile_event() -> dict[str, object]:
    """An event with markup in every field the dashboard shows."""
    frame = {
        "filename": f"app/{IMG}.py",
        "function": f"handler{SCRIPT}",
        "module": f"app.{ATTRIBUTE}",
        "lineno": 7,
        "in_app": True,
        "context_line": f"    raise ValueError('{SCRIPT}')",
        "pre_context": [f"# {IMG}"],
        "post_context": [f"# {ATTRIBUTE}"],
        "vars": {"payload": SCRIPT, IMG: ATTRIBUTE, "nested": {"html": IMG}},
    }
    return {
        "event_id": uuid.uuid4().hex,
        "level": "error",
        "platform": "python",
        "release": f"rel-{SCRIPT}",
        "environment": f"env{ATTRIBUTE}",
        "transaction": f"/path/{IMG}",
        "logentry": {"formatted": f"logged {SCRIPT}"},
        "exception": {
            "values": [
                {
                    "type": f"Evil{IMG}Error",
                    "value": f"value {SCRIPT} {ATTRIBUTE}",
                    "module": IMG,
                    "mechanism": {"type": SCRIPT, "handled": False},
                    "stacktrace": {"frames": [frame]},
                }
            ]
        },
        "tags": {"payload": SCRIPT, IMG: ATTRIBUTE},
        "user": {"id": SCRIPT, "email": f"{IMG}@example.com", "username": ATTRIBUTE},
        "breadcrumbs": {
            "values": [
                {
                    "category": IMG,
                    "message": SCRIPT,
                    "level": "error",
                    "data": {"html": ATTRIBUTE},
                    "timestamp": 1700000000.5,
                }
            ]
        },
        "request": {
            "method": "GET",
            "url": f"javascript:alert(1)//{SCRIPT}",
            "query_string": f"q={SCRIPT}",
            "headers": {"X-Evil": IMG},
            "cookies": {"c": ATTRIBUTE},
            "data": SCRIPT,
        },
        "contexts": {"browser": {"name": SCRIPT, "version": IMG}, IMG: {"type": "x", "k": ATTRIBUTE}},
        "extra": {"note": SCRIPT},
        "fingerprint": [f"evil-{uuid.uuid4().hex}"],
    }


def assert_inert(html: str) -> None:
    """No hostile markup survived; the escaped text is there instead."""
    assert "<script>window.__xss" not in html
    assert "<img" not in html
    assert "<svg onload" not in html
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html


def test_hostile_event_renders_escaped_on_every_page(collector: Collector, web: httpx.Client) -> None:
    """Markup in the message, exception, frames, locals, tags, user, breadcrumbs, request and
    contexts appears escaped on the issue list, the issue page and the event page."""
    project = collector.new_project("xss")
    event = hostile_event()
    post_envelope(collector, project, [({"type": "event"}, event)])
    collector.wait_events(project, 1)
    listing = web.get(f"/projects/{project.id}/issues")
    (issue_id,) = issue_ids(listing.text)
    assert "Evil&lt;img src=x onerror=alert(2)&gt;Error" in listing.text
    assert "<img" not in listing.text and "<script>window" not in listing.text

    issue_page = web.get(f"/issues/{issue_id}").text
    assert_inert(issue_page)
    event_page = web.get(f"/issues/{issue_id}/events/{event['event_id']}").text
    assert_inert(event_page)
    for escaped in ("&lt;img src=x onerror=alert(2)&gt;", "&#34;&gt;&lt;svg onload=alert(1)&gt;"):
        assert escaped in event_page
    # The request URL is text, never a link a click could follow.
    assert 'href="javascript:' not in event_page
    assert "javascript:alert(1)//&lt;script&gt;" in event_page

    search = web.get(f"/projects/{project.id}/issues", params={"query": f"payload:{SCRIPT}"})
    assert issue_ids(search.text) == [issue_id]
    assert "<script>window" not in search.text
    assert 'value="payload:&lt;script&gt;window.__xss=1&lt;/script&gt;"' in search.text


def test_hostile_project_name_is_escaped(collector: Collector, web: httpx.Client) -> None:
    """A project name with markup (chosen by whoever ran the CLI) is shown as text in the navigation."""
    project = collector.store.accounts.create_project(f"proj{SCRIPT}{uuid.uuid4().hex[:6]}")
    html = web.get(f"/projects/{project.id}/settings").text
    assert "<script>window" not in html
    assert "proj&lt;script&gt;window.__xss=1&lt;/script&gt;" in html


def test_no_template_turns_escaping_off() -> None:
    """No dashboard template marks anything safe or switches autoescape off."""
    from tripwire_server.web._render import ENV, TEMPLATES_DIR

    assert ENV.autoescape is True
    for template in TEMPLATES_DIR.glob("*.html"):
        text = template.read_text()
        assert "|safe" not in text.replace(" ", ""), template.name
        assert "autoescape" not in text, template.name
        assert "Markup" not in text, template.name


def test_static_files_are_not_sniffed(collector: Collector) -> None:
    """The stylesheet and script are served with their type and ``nosniff``."""
    css = httpx.get(f"{collector.url}/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff"
    js = httpx.get(f"{collector.url}/static/dashboard.js")
    assert "javascript" in js.headers["content-type"]
