"""A 200 means stored: kill -9 during a burst loses nothing acknowledged; several processes on
one PostgreSQL digest every envelope exactly once."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.figures import record
from tripwire_server.store import IssueQuery, open_store

from .conftest import ServeProcess, envelope, gzipped, make_event, wait_until

ROUNDS = 3


def _send(
    url: str, key: str, stop: threading.Event, acked: list[list[str]], count: int, per_envelope: int = 1
) -> None:
    """Send up to ``count`` gzip'd envelopes of ``per_envelope`` events and a small attachment;
    note the event ids of each one answered 200 (the first one holds the attachment)."""
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            if stop.is_set():
                return
            events = [make_event(value="burst") for _ in range(per_envelope)]
            body = envelope(
                *[("event", e) for e in events],
                ("attachment", b"log tail"),
                header={"event_id": events[0]["event_id"]},
            )
            try:
                # Gzip, as SDKs send it: the queue keeps such bodies compressed.
                response = client.post(
                    f"{url}/api/1/envelope/",
                    content=gzipped(body),
                    headers={"X-Sentry-Auth": f"Sentry sentry_key={key}", "Content-Encoding": "gzip"},
                )
            except httpx.HTTPError:
                return  # the server is gone: this one was never acknowledged
            if response.status_code == 200:
                acked.append([e["event_id"] for e in events])


def _kill_collector(serve: ServeProcess) -> None:
    """SIGKILL the server and its digest child at once (as the OOM killer or a container stop
    would): no shutdown hook runs, no batch in hand is finished."""
    pid = serve.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    serve.kill()
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(child), signal.SIGKILL)


def _burst(
    serve: ServeProcess, acked: list[list[str]], count: int, per_envelope: int = 1, senders: int = 4
) -> list[threading.Thread]:
    """``senders`` threads each sending up to ``count`` envelopes."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=_send, args=(serve.url, serve.key, stop, acked, count, per_envelope))
        for _ in range(senders)
    ]
    for t in threads:
        t.start()
    return threads


@pytest.mark.slow
@pytest.mark.reliability
def test_kill_9_at_random_points_of_ingest_and_digest_stores_every_acknowledged_event_once(
    database_url: str,
) -> None:
    """Several rounds of SIGKILL of a real ``tripwire serve`` (and its digest child) at random
    moments while it ingests and while it digests a backlog: after a restart every event answered
    200 is stored, with its attachment, and nothing is stored or counted twice."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    acked: list[list[str]] = []
    kills = {"ingest": 0, "digest": 0}
    mid_digest = 0
    store = open_store(database_url)
    try:
        # 1. During digest: queue a backlog of several batches for all the rounds without digesting
        # (one --no-digest server, not one a round: each `tripwire serve` costs ~0.5 s of CPU), then
        # kill a digesting server at a random moment once its first batch is committed; the next
        # one digests again what the killed one had in hand. ~600 envelopes a round and batches of
        # 500: every round's server starts with a backlog of more than one batch. Eight senders:
        # on PostgreSQL four wait on the intake's commits (1800 envelopes in 3.3 s; eight: 2.5 s).
        serve = ServeProcess("--database-url", database_url, "--no-digest")
        for t in _burst(serve, acked, 75 * ROUNDS, per_envelope=10, senders=8):
            t.join(120)
        serve.stop()
        for _ in range(ROUNDS):
            backlog = store.queue.queue_depth()
            # The digest at the server's CPU priority, not 10 steps below it (the default): what a
            # kill interrupts does not depend on it, and on a machine busy with the rest of the
            # suite a niced digest gets a few percent of a core.
            serve = ServeProcess("--database-url", database_url, "--digest-niceness", "0", measured=False)

            def digesting(b: int = backlog) -> bool:
                return store.queue.queue_depth() < b

            wait_until(digesting, timeout=30, interval=0.005)
            time.sleep(rng.uniform(0, 0.2))
            _kill_collector(serve)
            kills["digest"] += 1
            mid_digest += store.queue.queue_depth() > 0
        # 2. During ingest (the digest runs alongside, also on what the kills above left queued):
        # kill after a random number of acks.
        for _ in range(ROUNDS):
            serve = ServeProcess("--database-url", database_url, measured=False)
            target = len(acked) + rng.randrange(20, 200)
            threads = _burst(serve, acked, 2000)

            def enough_acked(t: int = target) -> bool:
                return len(acked) >= t

            wait_until(enough_acked, timeout=30)
            _kill_collector(serve)
            kills["ingest"] += 1
            for t in threads:
                t.join(30)
        serve = ServeProcess("--database-url", database_url, "--digest-niceness", "0")
        try:
            wait_until(lambda: store.queue.queue_depth() == 0, timeout=120)
        finally:
            serve.stop()  # ingest stores its intake counters once a second, and the last ones as it stops
        sent = [event_id for envelope_ids in acked for event_id in envelope_ids]
        with store.db.tx(write=False) as c:
            stored = {row[0] for row in c.all("SELECT event_id FROM events")}
            attachments = dict(c.all("SELECT event_id, COUNT(*) FROM attachments GROUP BY event_id"))
        assert set(sent) <= stored, f"seed {seed}: {len(set(sent) - stored)} acknowledged events lost"
        total = store.issues.count_events()  # a 200 lost to the kill may still have been stored
        assert total == len(stored)
        (issue,) = store.issues.list_issues(1, IssueQuery())
        assert issue.event_count == total, f"seed {seed}"
        now = time.time()
        hourly = store.issues.hourly_counts(1, issue_id=issue.id, since=now - 86400, until=now + 3600)
        assert sum(h.count for h in hourly) == total, f"seed {seed}"
        outcomes = {(o.category, o.reason): o.quantity for o in store.releases.outcomes(1, source="intake")}
        assert outcomes[("event", "accepted")] == total
        assert all(attachments.get(ids[0]) == 1 for ids in acked), f"seed {seed}"
        assert set(attachments.values()) == {1}, f"seed {seed}: an attachment stored twice"
        assert store.queue.dead_letter_count() == 0
    finally:
        store.close()
    backend = store.backend
    kinds = f"{kills['ingest']} + {kills['digest']}"
    record(
        "crash-safety", f"kill -9 on {backend}: kills during ingest + during digest", kinds, f"seed {seed}"
    )
    record("crash-safety", f"kills that hit a digest with envelopes still queued, {backend}", mid_digest)
    record("crash-safety", f"events acknowledged, {backend}", len(sent))
    record("crash-safety", f"acknowledged events lost, {backend}", 0)
    record("crash-safety", f"events or attachments stored or counted twice, {backend}", 0)


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
        wait_until(lambda: store.queue.queue_depth() == 0, timeout=60)
        time.sleep(0.3)  # let any straggling transaction commit
        assert store.issues.count_events() == len(events)
        (issue,) = store.issues.list_issues(1, IssueQuery())
        assert issue.event_count == len(events)
        hourly = store.issues.hourly_counts(
            1, issue_id=issue.id, since=time.time() - 7200, until=time.time() + 3600
        )
        assert sum(h.count for h in hourly) == len(events)
        dup = {(o.category, o.reason): o.quantity for o in store.releases.outcomes(1, source="intake")}
        assert dup[("event", "duplicate")] == len(events)
    finally:
        store.close()
        a.stop()
        b.stop()


@pytest.mark.slow  # several `tripwire serve` processes at once (> 5 s serially here)
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
