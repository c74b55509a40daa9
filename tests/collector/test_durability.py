"""A 200 means stored: kill -9 during a burst loses nothing acknowledged; several processes on
one PostgreSQL digest every envelope exactly once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tripwire.collector.store import IssueQuery, open_store

from .conftest import ServeProcess, envelope, gzipped, make_event, wait_until


def _burst(url: str, key: str, stop: threading.Event, acked: list[str], per_thread: int) -> None:
    with httpx.Client(timeout=10) as client:
        for _ in range(per_thread):
            if stop.is_set():
                return
            event = make_event(value="burst")
            try:
                # Gzip, as SDKs send it: the queue keeps such bodies compressed.
                response = client.post(
                    f"{url}/api/1/envelope/",
                    content=gzipped(envelope(("event", event))),
                    headers={"X-Sentry-Auth": f"Sentry sentry_key={key}", "Content-Encoding": "gzip"},
                )
            except httpx.HTTPError:
                return  # the server is gone: this one was never acknowledged
            if response.status_code == 200:
                acked.append(event["event_id"])


@pytest.mark.slow
def test_kill_9_during_a_burst_loses_no_acknowledged_envelope(database_url: str) -> None:
    """Every envelope answered 200 before a SIGKILL is stored after the restart."""
    first = ServeProcess("--database-url", database_url)
    acked: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_burst, args=(first.url, first.key, stop, acked, 2000)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 300, timeout=30)
    first.kill()  # SIGKILL: no shutdown hook runs
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 300

    second = ServeProcess("--database-url", database_url)
    store = open_store(database_url)
    try:
        wait_until(lambda: store.queue_depth() == 0, timeout=60)
        stored = {store.get_event(event_id).event_id for event_id in acked}
        assert stored == set(acked)
        (issue,) = store.list_issues(1, IssueQuery())
        assert issue.event_count == store.count_events() >= len(acked)
    finally:
        store.close()
        second.stop()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_on_one_postgresql_store_each_event_exactly_once(pg_url: str) -> None:
    """Two collectors share one PostgreSQL; every event is sent to both; each is stored once."""
    a = ServeProcess("--database-url", pg_url)
    b = ServeProcess("--database-url", pg_url)
    store = open_store(pg_url)
    try:
        events = [make_event(value=f"order {i} failed") for i in range(300)]
        local = threading.local()
        clients: list[httpx.Client] = []

        def send(event: dict[str, object]) -> list[int]:
            body = envelope(("event", event))
            codes = []
            if not hasattr(local, "client"):
                local.client = httpx.Client(timeout=10)
                clients.append(local.client)
            for server in (a, b):
                response = local.client.post(
                    f"{server.url}/api/1/envelope/",
                    content=body,
                    headers={"X-Sentry-Auth": f"Sentry sentry_key={server.key}"},
                )
                codes.append(response.status_code)
            return codes

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(send, events))
        for client in clients:
            client.close()
        assert all(codes == [200, 200] for codes in results)
        wait_until(lambda: store.queue_depth() == 0, timeout=60)
        time.sleep(0.3)  # let any straggling transaction commit
        assert store.count_events() == len(events)
        (issue,) = store.list_issues(1, IssueQuery())
        assert issue.event_count == len(events)
        hourly = store.hourly_counts(1, issue_id=issue.id, since=time.time() - 7200, until=time.time() + 3600)
        assert sum(h.count for h in hourly) == len(events)
        dup = {(o.category, o.reason): o.quantity for o in store.outcomes(1, source="intake")}
        assert dup[("event", "duplicate")] == len(events)
    finally:
        store.close()
        a.stop()
        b.stop()


@pytest.mark.postgres
def test_processes_starting_together_on_a_fresh_postgresql_all_come_up(pg_url: str) -> None:
    """Three collectors started at the same moment on an empty database share one schema,
    one default project and one admin."""
    from concurrent.futures import ThreadPoolExecutor as Pool

    with Pool(3) as pool:
        procs = list(pool.map(lambda _: ServeProcess("--database-url", pg_url), range(3)))
    try:
        assert len({p.dsn.split("@")[0] for p in procs}) == 1  # the same project key everywhere
        assert sum(1 for p in procs if p.info["admin_password"]) == 1
    finally:
        for p in procs:
            p.stop()
