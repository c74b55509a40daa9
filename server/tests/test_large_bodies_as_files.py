"""Large bodies kept as files beside a SQLite database (store/blob_files.py; issue 11, the attack
mix: committing a 15 MiB attachment envelope into SQLite held every small envelope's
acknowledgement behind it for 150-400 ms)."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tripwire_server.config import CollectorConfig
from tripwire_server.digest.processor import EnvelopeProcessor
from tripwire_server.queue_writer import IntakeWriter
from tripwire_server.store import IntakeRow, Store, open_store
from tripwire_server.store.blob_files import FILE_FROM

from .conftest import LiveServer, envelope, make_event

pytestmark = pytest.mark.reliability

MiB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
    s.migrate()
    s.accounts.create_project("p")
    yield s
    s.close()


def _files(tmp_path: Path) -> set[str]:
    directory = tmp_path / "tripwire.sqlite3-files"
    return set(os.listdir(directory)) if directory.exists() else set()


def _attachment_envelope(size: int) -> tuple[str, bytes]:
    event = make_event()
    body = envelope(
        ("event", event),
        ("attachment", os.urandom(size)),
        header={"event_id": event["event_id"]},
    )
    return event["event_id"], body


def _processor() -> EnvelopeProcessor:
    return EnvelopeProcessor(CollectorConfig().limits)


def test_a_large_envelope_does_not_delay_a_small_ones_acknowledgement(store: Store) -> None:
    """A small envelope sent while a 15 MiB one is being acknowledged is acknowledged within
    100 ms (median of 3), not after the large one's commit (150-400 ms when it went into SQLite);
    both are durable when acknowledged."""

    async def run() -> tuple[list[float], list[float]]:
        writer = IntakeWriter(store.queue)
        await writer.start()
        small_waits, large_waits = [], []
        for _ in range(3):
            large = asyncio.create_task(
                writer.submit(IntakeRow(1, time.time(), "envelope", os.urandom(15 * MiB), None))
            )
            started = time.monotonic()
            await asyncio.sleep(0.02)  # the large one is being written by now
            sent = time.monotonic()
            await writer.submit(IntakeRow(1, time.time(), "envelope", b"x" * 4000, None))
            small_waits.append(time.monotonic() - sent)
            await large
            large_waits.append(time.monotonic() - started)
        await writer.stop()
        return small_waits, large_waits

    small_waits, large_waits = asyncio.run(run())
    assert statistics.median(small_waits) < 0.100, (small_waits, large_waits)
    assert store.queue.queue_depth() == 6


def test_a_large_envelope_is_queued_as_a_file_and_digested_from_it(store: Store, tmp_path: Path) -> None:
    """The queue row names a synced file; the digest reads it, keeps the large attachment in a
    file of its own and removes the envelope's file; the attachment reads back whole."""
    event_id, body = _attachment_envelope(2 * MiB)
    name = store.queue.keep_as_file(body)
    assert name is not None and _files(tmp_path) == {name}
    assert store.queue.keep_as_file(b"x" * (FILE_FROM - 1)) is None  # small bodies stay in their rows
    store.queue.enqueue([IntakeRow(1, time.time(), "envelope", b"", None, name, len(body))])
    assert store.queue.digest_batch(10, _processor()) == 1
    [attachment] = store.issues.list_attachments(1, event_id)
    meta, data = store.issues.get_attachment_data(1, attachment.id)
    assert meta.size == 2 * MiB and data == body[-2 * MiB - 1 : -1]
    [kept] = _files(tmp_path)
    assert kept != name  # the envelope's file went with its queue row
    assert store.queue.attachment_usage(1).stored_bytes == 2 * MiB


def test_a_digest_batch_counts_the_bytes_of_queued_files(store: Store) -> None:
    """A batch holds no more than ``max_batch_bytes`` of bodies, those in files included (their
    rows' bodies are empty): three 2 MiB envelopes with a 3 MiB batch limit are three batches."""
    for _ in range(3):
        _event_id, body = _attachment_envelope(2 * MiB)
        name = store.queue.keep_as_file(body)
        store.queue.enqueue([IntakeRow(1, time.time(), "envelope", b"", None, name, len(body))])
    processor = EnvelopeProcessor(CollectorConfig().limits, max_batch_bytes=3 * MiB)
    assert [store.queue.digest_batch(10, processor) for _ in range(4)] == [1, 1, 1, 0]


def test_retention_removes_attachment_files(store: Store, tmp_path: Path) -> None:
    """Events past retention take their attachments' files with them (and give the bytes back
    to the budget)."""
    event_id, body = _attachment_envelope(FILE_FROM)
    store.queue.enqueue([IntakeRow(1, time.time(), "envelope", body, None)])  # in the row: read as is
    assert store.queue.digest_batch(10, _processor()) == 1
    assert len(store.issues.list_attachments(1, event_id)) == 1 and len(_files(tmp_path)) == 1
    store.retention.apply_retention(default_days=1, default_max_events=0, now=time.time() + 2 * 86400)
    assert store.issues.list_attachments(1, event_id) == []
    assert _files(tmp_path) == set()
    assert store.queue.attachment_usage(1).stored_bytes == 0


def test_attachments_over_budget_or_duplicate_leave_no_file(store: Store, tmp_path: Path) -> None:
    """An attachment the digest drops (its event already stored, or over the budget) was written
    to a file before the transaction decided: the file is removed."""
    event_id, body = _attachment_envelope(FILE_FROM)
    store.queue.enqueue([IntakeRow(1, time.time(), "envelope", body, None) for _ in range(2)])
    store.accounts.update_project(1, attachment_bytes_total=FILE_FROM + 10)
    assert store.queue.digest_batch(1, _processor()) == 1
    assert store.queue.digest_batch(1, _processor()) == 1  # the same event again: a duplicate
    assert len(store.issues.list_attachments(1, event_id)) == 1 and len(_files(tmp_path)) == 1
    _other, second = _attachment_envelope(FILE_FROM)
    store.queue.enqueue([IntakeRow(1, time.time(), "envelope", second, None)])
    assert store.queue.digest_batch(1, _processor()) == 1  # over the total budget: dropped
    assert len(_files(tmp_path)) == 1


def _counting_file_writes(store: Store) -> list[int]:
    """The sizes of the files the store writes from now on (queued bodies and attachments)."""
    files = store.queue.db.files
    assert files is not None
    write, sizes = files.write, []

    def counting(data: bytes) -> str:
        sizes.append(len(data))
        return write(data)

    files.write = counting  # type: ignore[method-assign]
    return sizes


def test_an_attachment_over_the_budget_is_never_written_to_a_file(store: Store, tmp_path: Path) -> None:
    """With room for three of a batch's five large attachments this hour, the digest writes (and
    syncs) the three that fit to files, not the two it then drops; and with the hour used up, a
    later batch writes none."""
    store.accounts.update_project(1, attachment_bytes_per_hour=3 * FILE_FROM)
    bodies = [_attachment_envelope(FILE_FROM) for _ in range(5)]
    store.queue.enqueue([IntakeRow(1, time.time(), "envelope", body, None) for _, body in bodies])
    writes = _counting_file_writes(store)
    assert store.queue.digest_batch(10, _processor()) == 5
    assert sum(len(store.issues.list_attachments(1, event_id)) for event_id, _ in bodies) == 3
    assert writes == [FILE_FROM] * 3 and len(_files(tmp_path)) == 3
    later = [_attachment_envelope(FILE_FROM) for _ in range(2)]
    store.queue.enqueue([IntakeRow(1, time.time(), "envelope", body, None) for _, body in later])
    assert store.queue.digest_batch(10, _processor()) == 2
    assert writes == [FILE_FROM] * 3 and len(_files(tmp_path)) == 3
    assert store.queue.attachment_usage(1).hour_bytes == 3 * FILE_FROM


def test_an_attachment_that_finds_room_after_the_look_ahead_is_stored_in_its_row(
    store: Store, tmp_path: Path
) -> None:
    """The look-ahead reads the budget without a lock: when room appears before the transaction
    (here the budget is raised in between), the attachments it did not write are stored in their
    rows, whole, instead of being dropped."""
    store.accounts.update_project(1, attachment_bytes_per_hour=FILE_FROM)
    payloads = [os.urandom(FILE_FROM) for _ in range(3)]
    events = [make_event() for _ in payloads]
    store.queue.enqueue(
        [
            IntakeRow(
                1,
                time.time(),
                "envelope",
                envelope(("event", event), ("attachment", payload), header={"event_id": event["event_id"]}),
                None,
            )
            for event, payload in zip(events, payloads, strict=True)
        ]
    )
    writes = _counting_file_writes(store)
    look_ahead = store.queue._attachments_to_files

    def then_more_room(*args: Any) -> list[str]:
        written = look_ahead(*args)
        store.accounts.update_project(1, attachment_bytes_per_hour=10 * FILE_FROM)
        return written

    store.queue._attachments_to_files = then_more_room  # type: ignore[method-assign, assignment]
    assert store.queue.digest_batch(10, _processor()) == 3
    assert writes == [FILE_FROM]  # only the first fitted when the look-ahead read the budget
    for event, payload in zip(events, payloads, strict=True):
        [attachment] = store.issues.list_attachments(1, event["event_id"])
        assert store.issues.get_attachment_data(1, attachment.id)[1] == payload
    assert store.queue.attachment_usage(1).hour_bytes == 3 * FILE_FROM


def test_a_crash_between_file_and_row_leaves_nothing_behind(store: Store, tmp_path: Path) -> None:
    """A file whose row never committed (the process died in between) is swept once it is old
    enough that no writer can still commit a row naming it; files that rows name are kept."""
    queued = store.queue.keep_as_file(b"q" * FILE_FROM)
    orphan = store.queue.keep_as_file(b"o" * FILE_FROM)
    assert queued is not None and orphan is not None
    store.queue.enqueue([IntakeRow(1, time.time(), "envelope", b"", None, queued, FILE_FROM)])
    # An unfinished temporary file (died while writing) is swept too.
    (tmp_path / "tripwire.sqlite3-files" / "0123abcd.blob.tmp").write_bytes(b"partial")
    assert store.queue.sweep_files() == 0  # young files may still be about to be committed
    assert store.queue.sweep_files(age=0) == 2
    assert _files(tmp_path) == {queued}
    old = time.time() - 3600
    os.utime(tmp_path / "tripwire.sqlite3-files" / queued, (old, old))
    store.retention.apply_retention(default_days=0, default_max_events=0, now=time.time())  # sweeps too
    assert _files(tmp_path) == {queued}


def test_a_failed_digest_transaction_removes_its_attachment_files(store: Store, tmp_path: Path) -> None:
    """Attachment files written for a batch whose transaction fails are removed; the envelope
    stays queued (with its own file) and is digested again."""
    event_id, body = _attachment_envelope(FILE_FROM)
    name = store.queue.keep_as_file(body)
    store.queue.enqueue([IntakeRow(1, time.time(), "envelope", b"", None, name, len(body))])
    write_results = store.queue._write_results

    def failing(*args: object) -> set[str]:
        raise ConnectionError("the disk went away")

    store.queue._write_results = failing  # type: ignore[method-assign, assignment]
    with pytest.raises(ConnectionError):
        store.queue.digest_batch(10, _processor())
    assert _files(tmp_path) == {name} and store.queue.queue_depth() == 1
    store.queue._write_results = write_results  # type: ignore[method-assign]
    assert store.queue.digest_batch(10, _processor()) == 1
    assert len(store.issues.list_attachments(1, event_id)) == 1 and len(_files(tmp_path)) == 1


def test_downloads_return_the_bytes_of_a_large_attachment(tmp_path: Path) -> None:
    """Over HTTP: a 2 MiB attachment envelope is acknowledged, digested, and downloaded whole."""
    live = LiveServer(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
    try:
        event_id, body = _attachment_envelope(2 * MiB)
        assert live.post_envelope(body).status_code == 200
        live.wait_digested()
        [attachment] = live.api(f"/api/0/projects/{live.project.name}/events/{event_id}/attachments/")
        response = live.http.get(
            f"/api/0/projects/{live.project.name}/attachments/{attachment['id']}/",
            headers={"Authorization": f"Bearer {live.token}"},
        )
        assert response.status_code == 200 and response.content == body[-2 * MiB - 1 : -1]
        assert len(_files(tmp_path)) == 1  # the attachment's; the envelope's went with its row
    finally:
        live.stop()
