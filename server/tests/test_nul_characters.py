"""U+0000 in any string of an envelope is stored, the same way on SQLite and PostgreSQL (PostgreSQL
text cannot hold it: the event was acknowledged, then dead-lettered)."""

from __future__ import annotations

import time

from tripwire_server.store import IssueQuery

from .conftest import LiveServer, envelope, make_event

NUL = "\x00"
MARK = "\ufffd"  # what a NUL becomes


def test_an_event_with_nul_in_every_kind_of_string_is_stored_alike_on_both_backends(
    server: LiveServer,
) -> None:
    """NUL in the message, exception, tags, extra keys and values, breadcrumbs, user, release and
    environment: the event is stored (not dead-lettered) with each NUL replaced by U+FFFD."""
    event = make_event(
        type_=f"Value{NUL}Error",
        value=f"bad{NUL}value",
        message=f"hello{NUL}world",
        tags={f"ta{NUL}g": f"va{NUL}lue"},
        extra={f"ke{NUL}y": f"da{NUL}ta", "nested": {"list": [f"x{NUL}y"]}},
        breadcrumbs={"values": [{"message": f"crumb{NUL}", "category": f"c{NUL}at", "data": {f"k{NUL}": 1}}]},
        user={"id": f"u{NUL}1"},
        release=f"app@1.0{NUL}",
        environment=f"prod{NUL}",
        fingerprint=[f"fp{NUL}"],
    )
    assert server.post_envelope(envelope(("event", event))).status_code == 200
    server.wait_digested()
    assert server.store.queue.dead_letter_count() == 0
    stored = server.store.issues.get_event(event["event_id"])
    data = stored.data
    assert data["logentry"]["formatted"] == f"hello{MARK}world"
    (exc,) = data["exception"]["values"]
    assert (exc["type"], exc["value"]) == (f"Value{MARK}Error", f"bad{MARK}value")
    assert data["tags"] == {f"ta{MARK}g": f"va{MARK}lue"}
    assert data["extra"] == {f"ke{MARK}y": f"da{MARK}ta", "nested": {"list": [f"x{MARK}y"]}}
    (crumb,) = data["breadcrumbs"]["values"]
    assert (crumb["message"], crumb["category"], crumb["data"]) == (
        f"crumb{MARK}",
        f"c{MARK}at",
        {f"k{MARK}": 1},
    )
    assert data["user"] == {"id": f"u{MARK}1"}
    assert (stored.release, stored.environment) == (f"app@1.0{MARK}", f"prod{MARK}")
    (issue,) = server.store.issues.list_issues(server.project.id, IssueQuery())
    assert issue.title == f"Value{MARK}Error: bad{MARK}value"
    tags = {(t.key, t.value) for t in server.store.issues.issue_tags(issue.id)}
    assert (f"ta{MARK}g", f"va{MARK}lue") in tags
    assert [r.version for r in server.store.releases.list_releases(server.project.id)] == [f"app@1.0{MARK}"]


def test_nul_in_sessions_client_reports_and_attachment_names_is_stored(server: LiveServer) -> None:
    """NUL in a session's release, a client report's category and an attachment's file name does not
    dead-letter the envelope: all three are stored with U+FFFD."""
    event = make_event()
    body = envelope(
        ("event", event),
        ("attachment", b"log"),
        ("session", {"sid": "s1", "init": True, "status": "exited", "attrs": {"release": f"r{NUL}1"}}),
        (
            "client_report",
            {
                "timestamp": time.time(),
                "discarded_events": [{"reason": f"q{NUL}", "category": f"e{NUL}", "quantity": 2}],
            },
        ),
    )
    body = body.replace(b'{"type": "attachment"', b'{"type": "attachment", "filename": "a\\u0000.log"', 1)
    assert server.post_envelope(body).status_code == 200
    server.wait_digested()
    assert server.store.queue.dead_letter_count() == 0
    (attachment,) = server.store.issues.list_attachments(server.project.id, event["event_id"])
    assert attachment.filename == f"a{MARK}.log"
    assert [b.release for b in server.store.releases.session_buckets(server.project.id)] == [f"r{MARK}1"]
    (report,) = server.store.releases.outcomes(server.project.id, source="client")
    assert (report.category, report.reason, report.quantity) == (f"e{MARK}", f"q{MARK}", 2)
