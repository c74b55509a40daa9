"""Large envelopes yield the ingest queue's writer to small ones (issue 11, the attack mix: a few
15 MiB uploads a second stalled every other client's acknowledgement behind their commits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tripwire_server.intake import IntakeWriter
from tripwire_server.store import IntakeRow, Store, open_store

pytestmark = pytest.mark.reliability

MiB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'q.sqlite3'}")
    s.migrate()
    s.create_project("p")
    yield s
    s.close()


def _recording(store: Store) -> list[tuple[float, float, list[int]]]:
    """Record each commit of ``store``'s queue: (start, end, body sizes)."""
    commits: list[tuple[float, float, list[int]]] = []
    enqueue = store.enqueue

    def recorded(rows: list[IntakeRow]) -> None:
        started = time.monotonic()
        enqueue(rows)
        commits.append((started, time.monotonic(), [len(r.body) for r in rows]))

    store.enqueue = recorded  # type: ignore[method-assign]
    return commits


def _row(size: int) -> IntakeRow:
    return IntakeRow(1, time.time(), "envelope", b"x" * size, None)


async def _run(store: Store, *, small_traffic: bool) -> None:
    writer = IntakeWriter(store, large_row=1 * MiB, large_yield=10.0)
    await writer.start()
    stop = asyncio.Event()

    async def small_client() -> None:
        while not stop.is_set():
            await writer.submit(_row(4000))
            await asyncio.sleep(0.002)

    clients = [asyncio.create_task(small_client()) for _ in range(4)] if small_traffic else []
    await asyncio.sleep(0.05 if small_traffic else 0)
    await asyncio.gather(writer.submit(_row(2 * MiB)), writer.submit(_row(2 * MiB)))
    stop.set()
    await asyncio.gather(*clients)
    await writer.stop()


def test_a_large_envelope_waits_while_small_ones_keep_coming(store: Store) -> None:
    """With small envelopes arriving, each large one is committed on its own and the second waits
    10 times as long as the first's commit took, small ones being committed meanwhile; all are
    stored."""
    commits = _recording(store)
    asyncio.run(_run(store, small_traffic=True))
    large = [(start, end) for start, end, sizes in commits if max(sizes) >= MiB]
    assert len(large) == 2
    assert all(len(sizes) == 1 for _, _, sizes in commits if max(sizes) >= MiB)
    (_, first_end), (second_start, _) = large
    first_took = large[0][1] - large[0][0]
    assert second_start - first_end >= 10 * first_took * 0.95
    between = [c for c in commits if first_end <= c[0] < second_start]
    assert between and all(max(sizes) < MiB for _, _, sizes in between)
    assert store.queue_depth() == sum(len(sizes) for _, _, sizes in commits)


def test_without_small_traffic_large_envelopes_go_back_to_back(store: Store) -> None:
    """Alone, two large envelopes are committed one after the other, without a pause."""
    commits = _recording(store)
    asyncio.run(_run(store, small_traffic=False))
    assert [sizes for _, _, sizes in commits] == [[2 * MiB], [2 * MiB]]
    first_took = commits[0][1] - commits[0][0]
    assert commits[1][0] - commits[0][1] < max(0.2, 5 * first_took)
    assert store.queue_depth() == 2

