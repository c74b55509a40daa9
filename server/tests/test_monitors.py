"""Cron monitors: check-ins from the official sentry-sdk and from tripwire, the clock, the issue."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tripwire_server.alerts.settings import AlertSettings
from tripwire_server.monitors import MonitorClock, next_expected, parse_checkin
from tripwire_server.store._pg_locks import SCOPED_KEY

from .alert_support import webhook_receiver
from .conftest import LiveServer, PgSchemas, envelope, wait_until

#: The monitor clock's advisory lock as another process in the same schema takes it (psycopg placeholders).
CLOCK_KEY = SCOPED_KEY.replace("?", "%s")
CLOCK_LOCK = 0x7472_6D6F

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        alerts=AlertSettings(allow_webhook_hosts=("127.0.0.1",), poll_interval=0.02),
    )
    yield server
    server.stop()


def run(code: str, dsn: str) -> None:
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), dsn],
        check=True,
        timeout=60,
        capture_output=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )


def checkin(server: LiveServer, slug: str, status: str, **fields: Any) -> str:
    cid: str = fields.pop("check_in_id", uuid.uuid4().hex)
    item = {"check_in_id": cid, "monitor_slug": slug, "status": status, **fields}
    assert server.post_envelope(envelope(("check_in", item))).status_code == 200
    server.wait_digested()
    return cid


def monitors(server: LiveServer) -> dict[str, dict[str, Any]]:
    return {m["slug"]: m for m in server.api(f"/api/0/projects/{server.project.id}/monitors/")}


SENTRY_JOB = """
import sys, sentry_sdk
sentry_sdk.init(dsn=sys.argv[1], default_integrations=False, environment="prod", release="jobs@1")
config = {"schedule": {"type": "crontab", "value": "%s"}, "timezone": "Europe/Paris",
          "checkin_margin": 2, "max_runtime": 10}

@sentry_sdk.monitor(monitor_slug="nightly-export", monitor_config=config)
def job():
    return 1

job()
sentry_sdk.flush(10)
"""


def test_the_official_sentry_sdk_monitor_decorator_creates_and_updates_a_monitor(live: LiveServer) -> None:
    """sentry_sdk.monitor's check-ins create the monitor, close the run, and later update its config."""
    run(SENTRY_JOB % "0 3 * * *", live.dsn)
    wait_until(lambda: monitors(live).get("nightly-export", {}).get("status") == "ok")
    m = monitors(live)["nightly-export"]
    assert m["schedule"] == {"type": "crontab", "value": "0 3 * * *"}
    assert m["timezone"] == "Europe/Paris" and m["checkin_margin"] == 2 and m["max_runtime"] == 10
    assert m["environment"] == "prod"
    assert m["next_expected"] == next_expected(m["schedule"], "Europe/Paris", m["last_checkin"] - 1)
    detail = live.api(f"/api/0/projects/{live.project.id}/monitors/nightly-export/")
    (run_,) = detail["checkins"]
    assert run_["status"] == "ok" and run_["duration"] is not None and run_["release"] == "jobs@1"

    run(SENTRY_JOB % "30 4 * * 1", live.dsn)
    wait_until(
        lambda: len(live.api(f"/api/0/projects/{live.project.id}/monitors/nightly-export/")["checkins"]) == 2
    )
    assert monitors(live)["nightly-export"]["schedule"]["value"] == "30 4 * * 1"


TRIPWIRE_JOB = """
import sys, tripwire
tripwire.init(sys.argv[1], environment="prod")

@tripwire.monitor(slug="hourly-sync", schedule="0 * * * *", max_runtime=5)
def sync(fail):
    if fail:
        raise RuntimeError("upstream down")

for fail in %s:
    try:
        sync(fail)
    except RuntimeError:
        pass
tripwire.flush(10)
"""


def test_tripwire_monitor_opens_the_monitor_issue_on_error_and_resolves_it_on_ok(live: LiveServer) -> None:
    """An error check-in from @tripwire.monitor opens the monitor's issue; the next ok resolves it."""
    run(TRIPWIRE_JOB % "[True]", live.dsn)
    wait_until(lambda: monitors(live).get("hourly-sync", {}).get("status") == "error")
    m = monitors(live)["hourly-sync"]
    assert m["schedule"] == {"type": "crontab", "value": "0 * * * *"} and m["max_runtime"] == 5
    issue = live.api(f"/api/0/issues/{m['issue_id']}/")
    assert issue["title"] == "Cron monitor hourly-sync: failed" and issue["status"] == "unresolved"
    run(TRIPWIRE_JOB % "[False]", live.dsn)
    wait_until(lambda: monitors(live)["hourly-sync"]["status"] == "ok")
    assert live.api(f"/api/0/issues/{m['issue_id']}/")["status"] == "resolved"


def test_a_missed_check_in_is_marked_by_the_clock_and_alerts_the_cron_rule(live: LiveServer) -> None:
    """A 1-minute interval with 1 minute of margin is missed 2 minutes after the last run (injected clock)."""
    with webhook_receiver() as receiver:
        rule = live.api(
            f"/api/0/projects/{live.project.id}/alerts/",
            "POST",
            json={"on": "cron", "webhook": receiver.url, "digest_seconds": 0},
        )
        config = {"schedule": {"type": "interval", "value": 1, "unit": "minute"}, "checkin_margin": 1}
        checkin(live, "every-minute", "ok", monitor_config=config)
        m = monitors(live)["every-minute"]
        last = m["last_checkin"]
        assert m["next_expected"] == pytest.approx(last + 60, abs=0.001)
        now = [last + 119.0]
        clock = MonitorClock(
            live.store.monitors.monitor_tick, live.store.alerts.prune_alerts, clock=lambda: now[0]
        )
        live.state.outbox.clock = lambda: now[0]  # the outbox runs on the same (injected) time
        assert clock.tick() == 0 and monitors(live)["every-minute"]["status"] == "ok"
        now[0] = last + 121.0
        assert clock.tick() == 1
        m = monitors(live)["every-minute"]
        assert m["status"] == "missed" and m["next_expected"] == pytest.approx(last + 120, abs=0.001)
        assert clock.tick() == 0  # the same miss is never marked twice
        runs = live.api(f"/api/0/projects/{live.project.id}/monitors/every-minute/")["checkins"]
        assert [r["status"] for r in runs] == ["missed", "ok"]
        assert runs[0]["started_at"] == pytest.approx(last + 60, abs=0.001)
        wait_until(lambda: receiver.received, timeout=15)
        body = receiver.received[0].json()
        assert body["type"] == "cron" and body["items"][0]["monitor"] == "every-minute"
        assert body["items"][0]["status"] == "missed"
        assert (
            live.api(f"/api/0/issues/{m['issue_id']}/")["title"]
            == "Cron monitor every-minute: missed check-in"
        )
        # The receiver answered; the outcome is recorded right after.
        wait_until(
            lambda: [h["status"] for h in live.api(f"/api/0/alerts/{rule['id']}/history/")] == ["sent"]
        )


def test_a_run_that_never_finishes_times_out_after_max_runtime(live: LiveServer) -> None:
    """An in_progress check-in older than max_runtime minutes is marked timeout."""
    config = {"schedule": {"type": "crontab", "value": "0 0 1 1 *"}, "max_runtime": 2}
    cid = checkin(live, "slow-job", "in_progress", monitor_config=config)
    started = monitors(live)["slow-job"]["last_checkin"]
    assert live.store.monitors.monitor_tick(started + 119) == 0
    assert live.store.monitors.monitor_tick(started + 121) == 1
    assert monitors(live)["slow-job"]["status"] == "timeout"
    # A late "ok" for the timed-out run does not rewrite what the clock decided.
    checkin(live, "slow-job", "ok", check_in_id=cid, duration=300)
    runs = live.api(f"/api/0/projects/{live.project.id}/monitors/slow-job/")["checkins"]
    assert [r["status"] for r in runs] == ["timeout"]


def test_invalid_check_ins_are_counted_not_stored(live: LiveServer) -> None:
    """A check-in with an unknown status or schedule is dropped and counted as invalid."""
    checkin(live, "bad", "finished")
    checkin(live, "bad2", "ok", monitor_config={"schedule": {"type": "crontab", "value": "not cron"}})
    assert monitors(live) == {}
    stats = live.api(f"/api/0/projects/{live.project.id}/stats/")
    assert {"category": "check_in", "reason": "invalid", "quantity": 2} in stats


def test_parse_checkin_keeps_the_sentry_fields_and_never_trusts_a_future_timestamp() -> None:
    """Slugs are normalized, ids are UUIDs, margins are minutes, and the server clock bounds time."""
    row = parse_checkin(
        {
            "monitor_slug": "Nightly Export!",
            "status": "ok",
            "check_in_id": str(uuid.UUID(int=5)),
            "duration": 3,
            "timestamp": time.time() + 3600,
            "monitor_config": {"schedule": {"type": "interval", "value": 10, "unit": "minute"}},
        },
        project_id=1,
        received_at=1000.0,
    )
    assert row.slug == "nightly-export" and row.check_in_id == uuid.UUID(int=5).hex
    assert row.timestamp == 1000.0 and row.duration == 3.0
    assert row.config == {
        "schedule": {"type": "interval", "value": 10, "unit": "minute"},
        "timezone": "UTC",
        "checkin_margin": 1.0,
        "max_runtime": 30.0,
    }
    for bad in (
        {"monitor_slug": "x", "status": "ok", "monitor_config": {"timezone": "Mars/Base"}},
        {"status": "ok"},
    ):
        with pytest.raises(ValueError):
            parse_checkin(bad, project_id=1, received_at=1000.0)


def test_crontab_schedules_follow_their_timezone() -> None:
    """'0 3 * * *' in Europe/Paris is due at 02:00 UTC in winter."""
    jan_1_noon_utc = 1767268800.0  # 2026-01-01 12:00 UTC
    due = next_expected({"type": "crontab", "value": "0 3 * * *"}, "Europe/Paris", jan_1_noon_utc)
    assert due == jan_1_noon_utc + 14 * 3600  # 2026-01-02 02:00 UTC


@pytest.mark.postgres
def test_only_one_process_ticks_the_clock_on_postgresql(pg_url: str) -> None:
    """While another process holds the clock's lock, a tick marks nothing; after, it marks the miss."""
    import psycopg

    from tripwire_server.store import open_store

    server = LiveServer(pg_url, alerts=AlertSettings(poll_interval=0.02, clock_interval=3600))
    try:
        config = {"schedule": {"type": "interval", "value": 1, "unit": "minute"}, "checkin_margin": 1}
        checkin(server, "pg-job", "ok", monitor_config=config)
        last = monitors(server)["pg-job"]["last_checkin"]
        other = open_store(pg_url)
        with psycopg.connect(pg_url, autocommit=True) as holder:
            holder.execute(f"SELECT pg_advisory_lock({CLOCK_KEY})", (CLOCK_LOCK,))
            assert other.monitors.monitor_tick(last + 200) == 0
            assert server.store.monitors.monitor_tick(last + 200) == 0
            holder.execute(f"SELECT pg_advisory_unlock({CLOCK_KEY})", (CLOCK_LOCK,))
        assert other.monitors.monitor_tick(last + 200) == 1
        assert server.store.monitors.monitor_tick(last + 200) == 0
        other.close()
    finally:
        server.stop()


@pytest.mark.postgres
def test_a_collector_in_another_schema_does_not_hold_up_the_clock(pg_url: str, pg_schemas: PgSchemas) -> None:
    """Two collectors in two schemas of one database: one holding its clock lock does not stop the other."""
    import psycopg

    server = LiveServer(pg_url, alerts=AlertSettings(poll_interval=0.02, clock_interval=3600))
    neighbour = pg_schemas.new()
    try:
        config = {"schedule": {"type": "interval", "value": 1, "unit": "minute"}, "checkin_margin": 1}
        checkin(server, "pg-job", "ok", monitor_config=config)
        last = monitors(server)["pg-job"]["last_checkin"]
        with psycopg.connect(neighbour, autocommit=True) as holder:
            holder.execute(f"SELECT pg_advisory_lock({CLOCK_KEY})", (CLOCK_LOCK,))
            assert server.store.monitors.monitor_tick(last + 200) == 1
    finally:
        server.stop()
        pg_schemas.drop(neighbour)


def test_a_collector_down_for_ten_days_marks_one_miss_and_expects_the_next_run(live: LiveServer) -> None:
    """Ten days without a tick: one missed check-in, and the next expected run is the coming one."""
    config = {"schedule": {"type": "interval", "value": 1, "unit": "minute"}, "checkin_margin": 1}
    checkin(live, "minutely", "ok", monitor_config=config)
    last = monitors(live)["minutely"]["last_checkin"]
    now = last + 10 * 86400 + 30
    assert live.store.monitors.monitor_tick(now) == 1
    m = monitors(live)["minutely"]
    assert now - 60 < m["next_expected"] <= now + 60 and m["next_expected"] + 60 > now
    assert live.store.monitors.monitor_tick(now) == 0


def test_a_monitor_keeps_its_last_500_check_ins(live: LiveServer) -> None:
    """A DSN holder sending check-ins without end cannot grow a monitor's history without bound."""
    items = [("check_in", {"monitor_slug": "chatty", "status": "ok"}) for _ in range(520)]
    assert live.post_envelope(envelope(*items)).status_code == 200
    live.wait_digested()
    detail = live.api(f"/api/0/projects/{live.project.id}/monitors/chatty/?limit=500")
    assert len(detail["checkins"]) == 500
    (monitor,) = live.store.monitors.list_monitors(live.project.id)
    assert len(live.store.monitors.list_checkins(monitor.id, 1000)) == 500


def test_a_broken_rule_or_monitor_never_stalls_the_digest_and_is_counted(live: LiveServer) -> None:
    """A rule or monitor row that cannot be evaluated: the events are stored, nothing goes to
    dead_letters, and the failure is counted in the project's intake stats."""
    live.api(
        f"/api/0/projects/{live.project.id}/alerts/", "POST", json={"on": "new-issue", "email": "a@b.co"}
    )
    config = {"schedule": {"type": "interval", "value": 5, "unit": "minute"}}
    checkin(live, "etl", "ok", monitor_config=config)
    import sqlite3

    path = live.config.effective_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:  # damage both rows behind the collector's back
        db.execute("""UPDATE alert_rules SET filters = '{"level": "loud"}'""")
        db.execute("""UPDATE monitors SET schedule = '{"type": "crontab", "value": "not cron"}'""")
    from .conftest import make_event

    body = envelope(("event", make_event()), ("check_in", {"monitor_slug": "etl", "status": "ok"}))
    assert live.post_envelope(body).status_code == 200
    live.wait_digested()
    assert live.store.issues.count_events() == 1 and live.store.queue.dead_letter_count() == 0
    stats = live.api(f"/api/0/projects/{live.project.id}/stats/")
    assert {"category": "alert", "reason": "evaluation_failed", "quantity": 1} in stats
    assert {"category": "check_in", "reason": "failed", "quantity": 1} in stats


def test_one_damaged_monitor_does_not_stop_the_clock_for_the_others(live: LiveServer) -> None:
    """The clock skips (and stops watching) a monitor it cannot schedule, and marks the others."""
    config = {"schedule": {"type": "interval", "value": 1, "unit": "minute"}, "checkin_margin": 1}
    checkin(live, "broken", "ok", monitor_config=config)
    checkin(live, "healthy", "ok", monitor_config=config)
    import sqlite3

    path = live.config.effective_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute(
            """UPDATE monitors SET schedule = '{"type": "crontab", "value": "bad"}' WHERE slug = 'broken'"""
        )
    last = monitors(live)["healthy"]["last_checkin"]
    assert live.store.monitors.monitor_tick(last + 200) == 1
    found = monitors(live)
    assert found["healthy"]["status"] == "missed"
    assert found["broken"]["status"] == "ok" and found["broken"]["next_expected"] is None
