"""The storage layer: migrations, users and tokens, attachments, retention, release ordering."""

from __future__ import annotations

import threading
import time

import pytest

from tripwire_server.store import NotFound, StoreError, open_store
from tripwire_server.store.migrations import migrations
from tripwire_server.versions import is_at_or_after

from .conftest import LiveServer, envelope, make_event


def test_migrations_are_versioned_idempotent_and_safe_in_parallel(database_url: str) -> None:
    """Several processes migrating one fresh database at once apply each migration exactly once."""
    stores = [open_store(database_url) for _ in range(3)]
    applied: list[list[int]] = []
    threads = [threading.Thread(target=lambda s=s: applied.append(s.migrate())) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        versions = [v for v, _ in migrations(stores[0].backend)]
        assert sorted(applied) == [[], [], versions]
        assert all(s.schema_version() == versions[-1] for s in stores)
        assert stores[0].migrate() == []
    finally:
        for s in stores:
            s.close()


def test_users_tokens_and_web_sessions(database_url: str) -> None:
    """Passwords verify only when right; tokens and sessions resolve to their user until revoked."""
    store = open_store(database_url)
    store.migrate()
    try:
        user = store.accounts.create_user("ada", "correct horse", is_admin=True)
        with pytest.raises(StoreError):
            store.accounts.create_user("ada", "again")
        assert store.accounts.verify_password("ada", "correct horse") == user
        assert store.accounts.verify_password("ada", "wrong") is None
        assert store.accounts.verify_password("nobody", "x") is None
        token = store.accounts.create_api_token(user.id, "ci")
        assert store.accounts.verify_api_token(token) == user
        assert store.accounts.verify_api_token(token + "x") is None
        session = store.accounts.create_web_session(user.id, ttl=60)
        assert store.accounts.get_web_session_user(session) == user
        store.accounts.set_password("ada", "new pw")  # logs web sessions out
        assert store.accounts.get_web_session_user(session) is None
        expired = store.accounts.create_web_session(user.id, ttl=-1)
        assert store.accounts.get_web_session_user(expired) is None
        with pytest.raises(NotFound):
            store.accounts.set_password("nobody", "x")
    finally:
        store.close()


def test_attachments_are_stored_and_downloadable(sqlite_server: LiveServer) -> None:
    """An attachment sent with an event is listed with the event and downloads byte for byte."""
    event = make_event()
    data = b"\x00\x01 log tail \xff" * 100
    body = envelope(("event", event), ("attachment", data))
    # Item headers carry the file name: rebuild the attachment header with it.
    body = body.replace(b'{"type": "attachment"', b'{"type": "attachment", "filename": "app.log"', 1)
    assert sqlite_server.post_envelope(body).status_code == 200
    sqlite_server.wait_digested()
    (meta,) = sqlite_server.api(f"/api/0/projects/default/events/{event['event_id']}/attachments/")
    assert (meta["filename"], meta["size"]) == ("app.log", len(data))
    response = sqlite_server.http.get(
        f"/api/0/projects/default/attachments/{meta['id']}/",
        headers={"Authorization": f"Bearer {sqlite_server.token}"},
    )
    assert response.content == data
    assert response.headers["content-disposition"] == 'attachment; filename="app.log"'


def test_retention_by_age_deletes_old_events_and_issues(database_url: str) -> None:
    """Events and issues older than the age limit are deleted; newer ones stay."""
    live = LiveServer(database_url, run_digester=True)
    try:
        old, new = make_event(value="old"), make_event(value="new", frames=[("app.x", "y", 1)])
        for event in (old, new):
            assert live.post_envelope(envelope(("event", event))).status_code == 200
        live.wait_digested()
        # Pretend the first event arrived 100 days ago (on PostgreSQL, into that day's partition).
        if live.store.backend == "postgresql":
            from tripwire_server.store.postgres import PostgresDatabase

            assert isinstance(live.store.db, PostgresDatabase)
            live.store.db.event_partitions.create_ahead(time.time() - 8640000)
        with live.store.db.tx() as c:
            c.ex(
                "UPDATE events SET received_at = received_at - 8640000 WHERE event_id = ?", (old["event_id"],)
            )
            c.ex("UPDATE issues SET last_seen = last_seen - 8640000 WHERE title = 'ValueError: old'")
        deleted = live.store.retention.apply_retention(default_days=90, default_max_events=0, now=time.time())
        assert deleted == 1
        assert [i.title for i in live.store.issues.list_issues(1)] == ["ValueError: new"]
        with pytest.raises(NotFound):
            live.store.issues.get_event(old["event_id"])
    finally:
        live.stop()


@pytest.mark.parametrize(
    ("release", "reference", "expected"),
    [
        ("1.0.1", "1.0", True),
        ("1.10", "1.9", True),
        ("1.9", "1.10", False),
        ("1.0rc1", "1.0", False),
        ("1.0", "1.0rc1", True),
        ("shop@2.0", "shop@1.5", True),
        ("other@9.0", "shop@1.5", False),
    ],
)
def test_release_ordering_for_regressions(release: str, reference: str, expected: bool) -> None:
    """Releases compare like versions, so "resolved in 1.10" is not undone by 1.9."""
    assert is_at_or_after(release, reference) is expected


def test_an_envelope_the_database_refuses_is_moved_aside_not_retried_forever(database_url: str) -> None:
    """One unstorable envelope goes to dead_letters (counted); the rest of its batch is stored."""
    from tripwire_server.config import Limits
    from tripwire_server.digest.processor import EnvelopeProcessor
    from tripwire_server.store import IntakeRow

    store = open_store(database_url)
    store.migrate()
    project = store.accounts.create_project("p")
    good, bad = make_event(value="fine"), make_event(value="poison")
    now = time.time()
    store.queue.enqueue(
        [
            IntakeRow(project.id, now, "envelope", envelope(("event", good)), None),
            IntakeRow(project.id, now, "envelope", envelope(("event", bad)), None),
        ]
    )

    class Breaking(EnvelopeProcessor):
        """Stands for any bug that makes a record the database refuses (here: no payload)."""

        def prepare(self, rows):  # type: ignore[no-untyped-def]
            results = super().prepare(rows)
            for result in results:
                for event in result.events:
                    if event.event_id == bad["event_id"]:
                        event.data = None  # type: ignore[assignment]
            return results

    try:
        assert store.queue.digest_batch(10, Breaking(Limits())) == 2
        assert store.queue.queue_depth() == 0
        assert store.issues.get_event(good["event_id"]).event_id == good["event_id"]
        with pytest.raises(NotFound):
            store.issues.get_event(bad["event_id"])
        assert store.queue.dead_letter_count() == 1
        counts = {
            (o.category, o.reason): o.quantity for o in store.releases.outcomes(project.id, source="intake")
        }
        assert counts[("envelope", "digest_failed")] == 1
    finally:
        store.close()
