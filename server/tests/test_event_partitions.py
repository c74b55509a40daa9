"""Error events on PostgreSQL in day partitions (migration 10): made ahead, dropped whole by
retention (no row deleted), read as before, and an existing database upgraded with its rows."""

from __future__ import annotations

import time
import zlib

import pytest

from tripwire_server.store import NotFound, Store, open_store
from tripwire_server.store.base import IntakeRow
from tripwire_server.store.event_partitions import AHEAD_DAYS, partition_name
from tripwire_server.store.migrations import migrations
from tripwire_server.store.postgres import PostgresDatabase

from .conftest import LiveServer, envelope, make_event

pytestmark = pytest.mark.postgres

DAY = 86400

# Any DELETE of an event row fails the statement: retention must get rid of them otherwise.
_NO_DELETE = [
    "CREATE FUNCTION refuse_event_delete() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN RAISE EXCEPTION 'event row deleted'; END $$",
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
    " FOR EACH ROW EXECUTE FUNCTION refuse_event_delete()",
]


def _partitions(store: Store) -> list[str]:
    assert isinstance(store.db, PostgresDatabase)
    return store.db.event_partitions.names()


def _day(ts: float) -> float:
    return float(int(ts // DAY) * DAY)


def test_partitions_exist_for_today_and_the_days_ahead(pg_url: str) -> None:
    """A fresh database has the event partitions of today and the next days before any event."""
    store = open_store(pg_url)
    try:
        store.migrate()
        today = _day(time.time())
        expected = {partition_name(today + k * DAY) for k in range(AHEAD_DAYS + 1)}
        assert expected <= set(_partitions(store))
    finally:
        store.close()


def test_retention_drops_old_day_partitions_without_deleting_rows(pg_url: str) -> None:
    """Events received 100 days ago go with their partition; today's stay; no row is deleted."""
    live = LiveServer(pg_url)
    try:
        now = time.time()
        old_time = now - 100 * DAY
        old, new = make_event(value="old"), make_event(value="new", frames=[("app.x", "y", 1)])
        # The old event is queued as if it had arrived 100 days ago (the digest files it by arrival).
        live.store.queue.enqueue(
            [IntakeRow(live.project.id, old_time, "envelope", envelope(("event", old)), None)]
        )
        live.state.digester.wake()
        assert live.post_envelope(envelope(("event", new))).status_code == 200
        live.wait_digested()
        assert partition_name(_day(old_time)) in _partitions(live.store)
        with live.store.db.tx() as c:
            for statement in _NO_DELETE:
                c.ex(statement)
        removed = live.store.retention.apply_retention(default_days=90, default_max_events=0, now=now)
        assert removed == 1
        partitions = _partitions(live.store)
        assert partition_name(_day(old_time)) not in partitions
        assert partition_name(_day(now)) in partitions
        with pytest.raises(NotFound):
            live.store.issues.get_event(old["event_id"])
        assert live.store.issues.get_event(new["event_id"]).event_id == new["event_id"]
    finally:
        live.stop()


def test_events_are_read_and_deduplicated_across_partitions(pg_url: str) -> None:
    """An issue's events from two days list newest first through the API; a resent event id is
    stored once and counted as a duplicate."""
    live = LiveServer(pg_url)
    try:
        now = time.time()
        first, second = make_event(value="twice"), make_event(value="twice")
        queued = IntakeRow(live.project.id, now - 3 * DAY, "envelope", envelope(("event", first)), None)
        live.store.queue.enqueue([queued])
        live.state.digester.wake()
        live.wait_digested()
        for event in (second, first):  # the first one again: an SDK's retry, days later
            assert live.post_envelope(envelope(("event", event))).status_code == 200
        live.wait_digested()
        (issue,) = live.api(f"/api/0/projects/{live.project.name}/issues/")["issues"]
        listed = live.api(f"/api/0/issues/{issue['id']}/events/")
        assert [e["event_id"] for e in listed] == [second["event_id"], first["event_id"]]
        assert live.api(f"/api/0/issues/{issue['id']}/events/latest/")["event_id"] == second["event_id"]
        assert live.api(f"/api/0/events/{first['event_id']}/")["event_id"] == first["event_id"]
        outcomes = live.store.releases.outcomes(live.project.id, source="intake")
        counts = {(r.category, r.reason): r.quantity for r in outcomes}
        assert counts[("event", "duplicate")] == 1
        assert live.store.issues.count_events(live.project.id) == 2
    finally:
        live.stop()


def test_a_database_from_before_migration_10_keeps_its_events(pg_url: str) -> None:
    """Events stored in the single table of migration 9 are all there after the upgrade, in their
    day partitions with their ids, and new events are numbered after them."""
    store = open_store(pg_url)
    now = time.time()
    try:
        with store.db.tx() as c:
            c.ex("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            for version, statements in migrations(store.backend):
                if version >= 10:
                    break
                for statement in statements:
                    c.ex(statement)
                c.ex("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, 0.0))
            c.ex(
                "INSERT INTO projects (name, public_key, created_at) VALUES (?, ?, ?)",
                ("default", "a" * 32, now),
            )
            c.ex(
                "INSERT INTO project_keys (public_key, project_id, created_at) VALUES (?, 1, ?)",
                ("a" * 32, now),
            )
            for n, age_days in enumerate((40, 2, 0)):
                c.ex(
                    "INSERT INTO events (id, project_id, event_id, issue_id, timestamp, received_at, level,"
                    " title, grouping_hash, data) VALUES (?, 1, ?, 7, ?, ?, 'error', ?, 'h', ?)",
                    (
                        100 + n,
                        f"{n:032x}",
                        now - age_days * DAY,
                        now - age_days * DAY,
                        f"old event {n}",
                        zlib.compress(b'{"message": "kept"}'),
                    ),
                )
        assert 10 in store.migrate()
        assert [e.id for e in store.issues.list_events(7)] == [102, 101, 100]
        assert store.issues.get_event(f"{0:032x}").title == "old event 0"
        partitions = _partitions(store)
        assert partition_name(_day(now - 40 * DAY)) in partitions
        with store.db.tx(write=False) as c:
            tables = {
                r[0] for r in c.all("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            }
        assert "events_v9" not in tables
    finally:
        store.close()
    live = LiveServer(pg_url)
    try:
        assert live.post_envelope(envelope(("event", make_event())), key="a" * 32).status_code == 200
        live.wait_digested()
        assert live.store.issues.count_events() == 4
        with live.store.db.tx(write=False) as c:
            assert c.one("SELECT MAX(id) FROM events")[0] == 103
    finally:
        live.stop()
