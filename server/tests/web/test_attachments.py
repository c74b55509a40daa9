"""Attachments on the event page: listed with size and type, downloaded as files (never rendered),
and text/JSON/log attachments previewed, escaped and bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.coverage_env import without_coverage
from tripwire_server.web import attachments

from ..conftest import LiveServer, envelope, make_event

CLIENT = Path(__file__).parent.parent / "attachments_client.py"


def _session(server: LiveServer) -> dict[str, str]:
    admin = server.store.accounts.get_user("admin")
    return {"Cookie": f"tripwire_session={server.store.accounts.create_web_session(admin.id)}"}


def test_sentry_sdk_attachments_are_listed_previewed_and_downloaded(sqlite_server: LiveServer) -> None:
    """Four attachments from sentry-sdk: all listed with size and type; the log and JSON are
    previewed with the markup escaped; every download is an octet-stream file with a sandbox CSP."""
    out = subprocess.run(
        [sys.executable, str(CLIENT), sqlite_server.dsn],
        env=without_coverage(),  # sentry-sdk only: nothing of ours to measure
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    event_id = json.loads(out.stdout.strip().splitlines()[-1])["event"]
    sqlite_server.wait_digested()
    issue_id = sqlite_server.api(f"/api/0/events/{event_id}/")["issue_id"]
    cookie = _session(sqlite_server)
    page = sqlite_server.http.get(f"/issues/{issue_id}/events/{event_id}", headers=cookie)
    assert page.status_code == 200
    html = page.text
    for name in ("app.log", "state.json", "page.html", "core.bin"):
        assert name in html
    assert "application/json" in html and "256 Bytes" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "&#34;total&#34;: 42" in html  # pretty-printed JSON (the template escapes quotes)
    listed = sqlite_server.api(f"/api/0/projects/default/events/{event_id}/attachments/")
    by_name = {a["filename"]: a for a in listed}
    for name, body in (
        ("page.html", b"<html><script>alert(document.cookie)</script></html>"),
        ("core.bin", bytes(range(256))),
    ):
        url = f"/issues/{issue_id}/events/{event_id}/attachments/{by_name[name]['id']}"
        assert url in html
        download = sqlite_server.http.get(url, headers=cookie)
        assert download.status_code == 200
        assert download.content == body
        assert download.headers["content-type"] == "application/octet-stream"
        assert download.headers["content-disposition"] == f'attachment; filename="{name}"'
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["content-security-policy"].startswith("sandbox")


def test_an_attachment_is_not_served_under_another_events_url(sqlite_server: LiveServer) -> None:
    """An attachment id under the URL of an event it does not belong to is a 404."""
    a, b = make_event(value="a"), make_event(value="b")
    sqlite_server.post_envelope(envelope(("event", a), ("attachment", b"secret of a")))
    sqlite_server.post_envelope(envelope(("event", b)))
    sqlite_server.wait_digested()
    (att,) = sqlite_server.api(f"/api/0/projects/default/events/{a['event_id']}/attachments/")
    issue_b = sqlite_server.api(f"/api/0/events/{b['event_id']}/")["issue_id"]
    url = f"/issues/{issue_b}/events/{b['event_id']}/attachments/{att['id']}"
    response = sqlite_server.http.get(url, headers=_session(sqlite_server))
    assert response.status_code == 404
    assert b"secret of a" not in response.content


def test_a_long_text_attachment_preview_is_cut() -> None:
    """The preview holds at most PREVIEW_CHARS characters and says it was cut."""
    text, truncated = attachments._preview(b"x" * (attachments.PREVIEW_CHARS + 10))
    assert len(text) == attachments.PREVIEW_CHARS and truncated
