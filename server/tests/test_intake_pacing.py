"""Large envelopes yield the ingest queue's writer to small ones (issue 11, the attack mix: a few
15 MiB uploads a second stalled every other client's acknowledgement behind their commits).

This pacing serves stores that keep bodies in their rows (PostgreSQL); the SQLite store keeps
large bodies as files instead (test_large_bodies_as_files.py), so these tests switch that off to
exercise the pacing on a database that runs here in every test run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tripwire_server.queue_writer import IntakeWriter
from tripwire_server.store import IntakeRow, Store, open_store

pytestmark = pytest.mark.reliability

MiB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'q.sqlite3'}")
    s.db.file_from = None  # bodies in their rows, as on PostgreSQL
    s.migrate()
    s.accounts.create_project("p")
    yield s
    s.close()


def _recording(store: Store) -> list[tuple[float, float, list[int]]]:
    """Record each commit of ``store``'s queue: (start, end, body sizes)."""
    commits: list[tuple[float, float, list[int]]] = []
    enqueue = store.queue.enqueue

    def recorded(rows: Sequence[IntakeRow]) -> None:
        started = time.monotonic()
        enqueue(rows)
        commits.append((started, time.monotonic(), [len(r.body) for r in rows]))

    store.queue.enqueue = recorded  # type: ignore[method-assign]
    return commits


def _row(size: int) -> IntakeRow:
    return IntakeRow(1, time.time(), "envelope", b"x" * size, None)


async def _run(store: Store, *, small_traffic: bool) -> None:
    writer = IntakeWriter(store.queue, large_row=1 * MiB, large_yield=5.0)
    await writer.start()
    stop = asyncio.Event()

    async def small_client() -> None:
        while not stop.is_set():
            await writer.submit(_row(4000))
            await asyncio.sleep(0)  # at once: a loaded machine must not make the traffic pause

    clients = [asyncio.create_task(small_client()) for _ in range(4)] if small_traffic else []
    await asyncio.sleep(0.05 if small_traffic else 0)
    await asyncio.gather(writer.submit(_row(2 * MiB)), writer.submit(_row(2 * MiB)))
    stop.set()
    await asyncio.gather(*clients)
    await writer.stop()


def test_a_large_envelope_waits_while_small_ones_keep_coming(store: Store) -> None:
    """With small envelopes arriving, each large one is committed on its own and the second waits
    5 times as long as the first's commit took, small ones being committed meanwhile; all are
    stored."""
    commits = _recording(store)
    asyncio.run(_run(store, small_traffic=True))
    large = [(start, end) for start, end, sizes in commits if max(sizes) >= MiB]
    assert len(large) == 2
    assert all(len(sizes) == 1 for _, _, sizes in commits if max(sizes) >= MiB)
    (_, first_end), (second_start, _) = large
    first_took = large[0][1] - large[0][0]
    assert second_start - first_end >= 5 * first_took * 0.95
    between = [c for c in commits if first_end <= c[0] < second_start]
    assert between and all(max(sizes) < MiB for _, _, sizes in between)
    assert store.queue.queue_depth() == sum(len(sizes) for _, _, sizes in commits)


def test_without_small_traffic_large_envelopes_go_back_to_back(store: Store) -> None:
    """Alone, two large envelopes are committed one after the other, without a pause."""
    commits = _recording(store)
    asyncio.run(_run(store, small_traffic=False))
    assert [sizes for _, _, sizes in commits] == [[2 * MiB], [2 * MiB]]
    first_took = commits[0][1] - commits[0][0]
    assert commits[1][0] - commits[0][1] < max(0.2, 5 * first_took)
    assert store.queue.queue_depth() == 2


def _digest_calls(store: Store, tmp_path: Path, bodies: list[bytes]) -> list[tuple[float, float, int]]:
    """Digest ``bodies`` one per batch with a real Digester; each batch's (start, end, done)."""
    from tripwire_server.config import CollectorConfig
    from tripwire_server.digest.worker import Digester
    from tripwire_server.store.digest_records import Processor

    from .conftest import wait_until

    store.queue.enqueue([IntakeRow(1, time.time(), "envelope", b, None) for b in bodies])
    calls: list[tuple[float, float, int]] = []
    digest_batch = store.queue.digest_batch

    def recorded(limit: int, processor: Processor) -> int:
        started = time.monotonic()
        done = digest_batch(limit, processor)
        calls.append((started, time.monotonic(), done))
        return done

    store.queue.digest_batch = recorded  # type: ignore[method-assign]
    config = CollectorConfig(
        data_dir=tmp_path, digest_batch_size=1, retention_days=0, retention_max_events=0,
        attachment_bytes_per_hour=3 * MiB,
    )  # fmt: skip
    digester = Digester(store.queue, store.retention, config)
    digester.start()
    try:
        wait_until(lambda: store.queue.queue_depth() == 0, timeout=10)
    finally:
        digester.stop()
    return [c for c in calls if c[2]]


def test_the_digest_pauses_after_storing_large_attachments_only(store: Store, tmp_path: Path) -> None:
    """After a batch that stored 2 MiB of attachments the digester waits 4 times as long as the
    batch took; attachments dropped over the budget (3 MiB an hour) cause no pause."""
    from .conftest import envelope, make_event

    events = [make_event() for _ in range(4)]
    bodies = [
        envelope(("event", e), ("attachment", b"a" * (2 * MiB)), header={"event_id": e["event_id"]})
        for e in events
    ]
    calls = _digest_calls(store, tmp_path, bodies)
    assert len(calls) == 4
    (_, first_end, _), (second_start, second_end, _), (third_start, _, _) = calls[:3]
    assert second_start - first_end >= 4 * (first_end - calls[0][0]) * 0.95  # stored: paused
    assert third_start - second_end < max(0.5, 4 * (second_end - second_start))  # dropped: no pause
    stored = [len(store.issues.list_attachments(1, e["event_id"])) for e in events]
    assert stored == [1, 0, 0, 0]
