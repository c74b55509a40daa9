"""Attachments cannot fill the disk or the digest's memory: a per-project budget (bytes per hour
and stored in total), duplicates dropped, digest batches bounded by bytes; every drop counted."""

from __future__ import annotations

import functools
import gzip
import json
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.attackers import deflated_mib_of_zeros
from tests.support.figures import record
from tripwire_server.config import Limits
from tripwire_server.digest.processor import EnvelopeProcessor
from tripwire_server.store import IntakeRow, Store, open_store
from tripwire_server.store.digest_records import AttachmentBudget

from .conftest import LiveServer, ServeProcess, away_from_boundary, envelope, make_event, wait_until
from .rawhttp import RawClient, request_head

KiB = 1024
MiB = 1024 * KiB
UNLIMITED = AttachmentBudget(per_hour=0, total=0)


def with_attachments(event: dict[str, Any] | None, *sizes: int, event_id: str | None = None) -> bytes:
    """An envelope of ``event`` (if any) and one attachment item of each size."""
    items: list[tuple[str, Any]] = [("event", event)] if event is not None else []
    items += [("attachment", bytes([65 + i % 26]) * size) for i, size in enumerate(sizes)]
    header = {"event_id": event_id or (event or {}).get("event_id")}
    return envelope(*items, header=header)


def intake_counts(store: Store, project_id: int) -> dict[tuple[str, str], int]:
    return {(o.category, o.reason): o.quantity for o in store.releases.outcomes(project_id, source="intake")}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(database_url)
    s.migrate()
    s.accounts.create_project("p")
    yield s
    s.close()


def enqueue(store: Store, *bodies: bytes, received_at: float | None = None) -> None:
    """Queue envelopes as acknowledged ones (as several collector processes, each within its own
    view of the budget, would), gzip'd as SDKs send them."""
    now = time.time() if received_at is None else received_at
    store.queue.enqueue([IntakeRow(1, now, "envelope:gzip", gzip.compress(b, 1), None) for b in bodies])


def drain(store: Store, processor: EnvelopeProcessor) -> list[int]:
    sizes = []
    while store.queue.queue_depth():
        sizes.append(store.queue.digest_batch(200, processor))
    return sizes


def stored_sizes(store: Store, event_id: str) -> list[int]:
    return [a.size for a in store.issues.list_attachments(1, event_id)]


def test_a_digest_batch_holds_a_bounded_number_of_bytes_not_200_envelopes(store: Store) -> None:
    """Six envelopes of 3 MiB each are digested a few at a time under a 4 MiB batch budget, and
    every one of them is stored."""
    events = [make_event() for _ in range(6)]
    enqueue(store, *(with_attachments(e, 3 * MiB) for e in events))
    processor = EnvelopeProcessor(Limits(), attachment_budget=UNLIMITED, max_batch_bytes=4 * MiB)
    batches = drain(store, processor)
    assert max(batches) <= 2
    assert sum(batches) == 6
    assert all(stored_sizes(store, e["event_id"]) == [3 * MiB] for e in events)


def test_attachments_of_an_event_already_stored_are_dropped_and_counted(store: Store) -> None:
    """An envelope sent twice stores its attachment once; an attachment-only envelope for an
    event already stored is dropped too; both drops are counted as ``attachment``/``duplicate``."""
    event = make_event()
    body = with_attachments(event, 10 * KiB)
    processor = EnvelopeProcessor(Limits(), attachment_budget=UNLIMITED)
    enqueue(store, body)
    drain(store, processor)
    enqueue(store, body, body)  # a retried send, twice in one batch
    enqueue(store, with_attachments(None, 5 * KiB, event_id=event["event_id"]))
    drain(store, processor)
    assert stored_sizes(store, event["event_id"]) == [10 * KiB]
    counts = intake_counts(store, 1)
    assert counts[("attachment", "duplicate")] == 3
    assert counts[("attachment", "accepted")] == 1  # "accepted": stored, as for events


def test_attachments_over_the_hourly_budget_are_dropped_counted_and_their_events_kept(store: Store) -> None:
    """With 1 MiB an hour, the attachments past the first MiB of the hour are dropped and counted;
    every event is stored; the next hour has a fresh budget."""
    store.accounts.update_project(1, attachment_bytes_per_hour=1 * MiB)
    processor = EnvelopeProcessor(Limits(), attachment_budget=UNLIMITED)
    hour = float(int(time.time() // 3600) * 3600)
    events = [make_event() for _ in range(4)]
    enqueue(store, *(with_attachments(e, 400 * KiB) for e in events[:3]), received_at=hour + 10)
    enqueue(store, with_attachments(events[3], 400 * KiB), received_at=hour + 3600 + 10)
    drain(store, processor)
    assert [stored_sizes(store, e["event_id"]) for e in events] == [[400 * KiB], [400 * KiB], [], [400 * KiB]]
    assert store.issues.count_events(1) == 4
    assert intake_counts(store, 1)[("attachment", "over_budget")] == 1
    usage = store.queue.attachment_usage(1)
    assert (usage.hour, usage.hour_bytes, usage.stored_bytes) == (hour + 3600, 400 * KiB, 1200 * KiB)
    assert usage.hour_used_up(hour, 1 * MiB)  # an attachment was dropped in that hour
    assert not usage.hour_used_up(hour + 3600, 1 * MiB)


def test_attachments_over_the_total_budget_are_dropped_until_retention_frees_room(store: Store) -> None:
    """With 1 MiB stored at most, a third 400 KiB attachment is dropped; once retention deletes
    the events that held the others, attachments are stored again."""
    store.accounts.update_project(1, attachment_bytes_total=1 * MiB)
    processor = EnvelopeProcessor(Limits(), attachment_budget=UNLIMITED)
    old = time.time() - 10 * 86400
    first = [make_event(timestamp=old) for _ in range(3)]
    enqueue(store, *(with_attachments(e, 400 * KiB) for e in first), received_at=old)
    drain(store, processor)
    assert [stored_sizes(store, e["event_id"]) for e in first] == [[400 * KiB], [400 * KiB], []]
    assert store.queue.attachment_usage(1).stored_bytes == 800 * KiB
    assert store.queue.attachment_usage(1).total_used_up(1 * MiB)  # 224 KiB left, but one did not fit
    assert store.retention.apply_retention(default_days=5, default_max_events=0, now=time.time()) == 3
    assert store.queue.attachment_usage(1).stored_bytes == 0
    assert not store.queue.attachment_usage(1).total_used_up(1 * MiB)
    later = make_event()
    enqueue(store, with_attachments(later, 900 * KiB))
    drain(store, processor)
    assert stored_sizes(store, later["event_id"]) == [900 * KiB]


def test_the_collector_default_budget_applies_to_projects_without_their_own(store: Store) -> None:
    """A project without its own budget gets the collector's (here 1 MiB an hour)."""
    processor = EnvelopeProcessor(Limits(), attachment_budget=AttachmentBudget(per_hour=1 * MiB, total=0))
    events = [make_event() for _ in range(2)]
    enqueue(store, *(with_attachments(e, 700 * KiB) for e in events))
    drain(store, processor)
    assert [stored_sizes(store, e["event_id"]) for e in events] == [[700 * KiB], []]
    assert intake_counts(store, 1)[("attachment", "over_budget")] == 1


def test_ingest_refuses_attachments_with_a_rate_limit_once_the_budget_is_used_up(
    sqlite_server: LiveServer,
) -> None:
    """Once the hour's attachment budget is used up, an envelope carrying an attachment is answered
    429 with ``X-Sentry-Rate-Limits`` for the ``attachment`` category (so SDKs back off attachments
    only), counted; an envelope without attachments is still accepted."""
    away_from_boundary(3600)
    live = sqlite_server
    live.store.accounts.update_project(live.project.id, attachment_bytes_per_hour=1 * MiB)
    live.state.projects.invalidate()
    live.state.attachment_quota.refresh_interval = 0  # read the usage the digest stored at once
    first = make_event()
    assert live.post_envelope(with_attachments(first, 1 * MiB)).status_code == 200
    live.wait_digested()
    refused = live.post_envelope(with_attachments(make_event(), 10 * KiB, 10 * KiB))
    assert refused.status_code == 429
    retry, categories, scope, reason = refused.headers["X-Sentry-Rate-Limits"].split(":")[:4]
    assert (categories, scope, reason) == ("attachment", "project", "attachment_budget")
    assert 0 < int(retry) <= 3600
    assert int(refused.headers["Retry-After"]) == int(retry)
    assert live.post_envelope(envelope(("event", make_event()))).status_code == 200
    live.wait_digested()
    assert stored_sizes(live.store, first["event_id"]) == [1 * MiB]
    live.state.writer._flush_outcomes()
    assert intake_counts(live.store, live.project.id)[("attachment", "rate_limited")] == 2


def test_once_the_digest_dropped_an_attachment_ingest_refuses_attachments_for_the_hour(
    sqlite_server: LiveServer,
) -> None:
    """When an attachment did not fit in the hour's room (700 of 1024 KiB used, 400 KiB more
    sent), ingest refuses further attachments with 429 for the rest of the hour, however small."""
    away_from_boundary(3600)
    live = sqlite_server
    live.store.accounts.update_project(live.project.id, attachment_bytes_per_hour=1 * MiB)
    live.state.projects.invalidate()
    live.state.attachment_quota.refresh_interval = 0
    for size in (700 * KiB, 400 * KiB):
        assert live.post_envelope(with_attachments(make_event(), size)).status_code == 200
        live.wait_digested()
    assert live.store.queue.attachment_usage(live.project.id).hour_bytes == 700 * KiB
    refused = live.post_envelope(with_attachments(make_event(), 10))
    assert refused.status_code == 429
    assert ":attachment:project:attachment_budget" in refused.headers["X-Sentry-Rate-Limits"]


def test_a_large_upload_is_refused_at_its_first_attachment_header_once_the_budget_is_used_up(
    sqlite_server: LiveServer,
) -> None:
    """With the hour's attachment budget used up, a 15 MiB attachment upload is answered 429 and
    its connection closed after its first 64 KiB: the server does not read the rest to refuse it."""
    away_from_boundary(3600)
    live = sqlite_server
    live.store.accounts.update_project(live.project.id, attachment_bytes_per_hour=1 * MiB)
    live.state.projects.invalidate()
    live.state.attachment_quota.refresh_interval = 0
    assert live.post_envelope(with_attachments(make_event(), 1 * MiB)).status_code == 200
    live.wait_digested()
    head = request_head(
        f"/api/{live.project.id}/envelope/",
        length=15 * MiB + 100,
        headers={"X-Sentry-Auth": f"Sentry sentry_key={live.key}"},
    )
    client = RawClient(live.port)
    client.send(head + b'{}\n{"type": "attachment", "length": %d}\n' % (15 * MiB) + b"x" * (64 * KiB))
    status, raw = client.response(timeout=3)
    assert status == 429, raw
    assert b"connection: close" in raw.lower()
    assert client.closed_by_server(2)
    client.close()
    record("attacks", "attachment upload past a used-up budget: refused after", "64 KiB of 15 MiB")


def test_ingest_counts_what_it_accepted_so_a_lagging_digest_lets_no_flood_through(tmp_path: Path) -> None:
    """A flood of uploads is when the digest lags (here it does not run at all): ingest counts the
    attachment bytes it acknowledged this hour itself, so past the budget it answers 429 anyway."""
    away_from_boundary(3600)
    live = LiveServer(f"sqlite:///{tmp_path / 'db.sqlite3'}", run_digester=False)
    try:
        live.store.accounts.update_project(live.project.id, attachment_bytes_per_hour=1 * MiB)
        live.state.projects.invalidate()
        answers = [
            live.post_envelope(with_attachments(make_event(), 400 * KiB)).status_code for _ in range(4)
        ]
        assert answers == [200, 200, 200, 429]  # 1,200 KiB acknowledged: the hour's 1 MiB is used up
        assert live.store.queue.attachment_usage(live.project.id).hour_bytes == 0  # nothing digested yet
        assert live.post_envelope(envelope(("event", make_event()))).status_code == 200
    finally:
        live.stop()


def test_the_budget_seen_at_ingest_is_the_one_stored_by_the_digest(sqlite_server: LiveServer) -> None:
    """Attachment bytes stored by the digest (here by another process, straight into the store)
    count against the project's budget at ingest too."""
    away_from_boundary(3600)
    live = sqlite_server
    live.store.accounts.update_project(live.project.id, attachment_bytes_total=1 * MiB)
    live.state.projects.invalidate()
    enqueue(live.store, with_attachments(make_event(), 1 * MiB))
    live.wait_digested()
    assert live.store.queue.attachment_usage(live.project.id).stored_bytes == 1 * MiB
    time.sleep(live.state.attachment_quota.refresh_interval)
    refused = live.post_envelope(with_attachments(make_event(), 10))
    assert refused.status_code == 429, refused.text
    assert ":attachment:project:attachment_budget" in refused.headers["X-Sentry-Rate-Limits"]


def test_project_budget_is_set_and_cleared_through_the_store(store: Store) -> None:
    """A project's budget overrides the default; -1 clears it back to the default."""
    p = store.accounts.update_project(1, attachment_bytes_per_hour=5 * MiB, attachment_bytes_total=50 * MiB)
    assert (p.attachment_bytes_per_hour, p.attachment_bytes_total) == (5 * MiB, 50 * MiB)
    p = store.accounts.update_project(1, attachment_bytes_per_hour=-1)
    assert (p.attachment_bytes_per_hour, p.attachment_bytes_total) == (None, 50 * MiB)


# -- the attack, against a real `tripwire serve` ---------------------------------------------------


def _disk_bytes(directory: Path) -> int:
    """Bytes the files under ``directory`` take on disk."""
    return sum(p.stat().st_blocks * 512 for p in directory.rglob("*") if p.is_file())


def _status_kib(pid: int, field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def _digest_child(pid: int) -> int:
    """The digest child process of a ``tripwire serve`` process."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    raise AssertionError(f"no digest child among {children}")


def _deflated(data: bytes) -> bytes:
    """``data`` as raw deflate blocks (level 9) ending on a full flush (see deflated_mib_of_zeros)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflate.compress(data) + deflate.flush(zlib.Z_FULL_FLUSH)


@functools.cache
def _bomb_tail() -> tuple[bytes, bytes]:
    """The part every bomb shares, after its event: five attachment items of 19 MiB of zeros, and
    the same as raw deflate blocks (level 9, the last one final). Each MiB of zeros is the same
    blocks, deflated once (tests/support/attackers.py): ~0.3 s of CPU less than deflating 95 MiB."""
    tail = envelope(("event", {}), *[("attachment", bytes(19 * MiB))] * 5)
    tail = tail[len(envelope(("event", {}))) :]
    item_head = tail[: tail.index(b"\n") + 1]  # the attachment's item header line
    assert tail == (item_head + bytes(19 * MiB) + b"\n") * 5
    item = _deflated(item_head) + deflated_mib_of_zeros() * 19 + _deflated(b"\n")
    final = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # an empty last block
    return tail, item * 5 + final


def _bomb(event: dict[str, Any]) -> bytes:
    """An event with five attachments of 19 MiB of zeros, gzip'd: about 95 KiB on the wire. The
    same bytes as ``gzip.compress(envelope(("event", event), *attachments), 9)`` once inflated; the
    zeros are deflated once for all bombs (a tenth of the CPU): the event's own deflate blocks end
    on a full flush, so the shared blocks can follow them."""
    tail, tail_deflated = _bomb_tail()
    head = envelope(("event", event))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head_deflated = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    trailer = struct.pack("<II", zlib.crc32(tail, zlib.crc32(head)), (len(head) + len(tail)) & 0xFFFFFFFF)
    # The gzip header: deflate, no flags, no mtime, "maximum compression", unknown OS (RFC 1952).
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head_deflated + tail_deflated + trailer


def test_a_bomb_inflates_to_its_envelope() -> None:
    """(The helper above:) a bomb inflates to exactly the envelope it stands for."""
    event = make_event()
    expected = envelope(("event", event), *[("attachment", bytes(19 * MiB))] * 5)
    assert gzip.decompress(_bomb(event)) == expected


def _digest_peak_of_bombs_queued_at_once(data: Path, bombs: list[bytes]) -> tuple[int, int]:
    """The bombs acknowledged all at once (by several collector processes, or before the budget
    was lowered) and digested by a fresh server: its digest child's RSS before them and its peak
    (bytes). The digest must take them a few at a time."""
    serve = ServeProcess("--data-dir", str(data), "--digest-niceness", "0")
    try:
        child = _digest_child(serve.proc.pid)
        idle_rss = _status_kib(child, "VmRSS") * KiB
        store = open_store(f"sqlite:///{data / 'tripwire.sqlite3'}")
        try:
            # The budget lowered to 1 MiB an hour: every 19 MiB attachment is over it, as in an hour
            # another collector used up (the digest still inflates and parses every envelope).
            store.accounts.update_project(1, attachment_bytes_per_hour=1 * MiB)
            store.queue.enqueue([IntakeRow(1, time.time(), "envelope:gzip", b, None) for b in bombs])
            wait_until(lambda: store.queue.queue_depth() == 0, timeout=120)
        finally:
            store.close()
        peak = _status_kib(child, "VmHWM") * KiB
    finally:
        serve.stop()
    return idle_rss, peak


@pytest.mark.slow
@pytest.mark.reliability
def test_gzip_bombed_attachments_neither_fill_the_disk_nor_the_digests_memory(tmp_path: Path) -> None:
    """10 envelopes of 5 x 19 MiB gzip'd attachments (950 MiB once inflated) grow the data dir by
    less than 300 MB, and the digest child's memory by less than 600 MB, even when all ten wait
    in the queue at once."""
    data = tmp_path / "data"
    bombs = [_bomb(make_event()) for _ in range(10)]
    assert max(len(b) for b in bombs) < 200 * KiB
    # The ten bombs queued at once go to a server of their own (its own data dir), beside the one
    # that receives them over HTTP below: the two share nothing, and each measures its own
    # processes (VmHWM), so they run at the same time rather than one after the other.
    with ThreadPoolExecutor(1) as pool:
        queued_at_once = pool.submit(_digest_peak_of_bombs_queued_at_once, tmp_path / "queued", bombs)
        # Ingest refuses bodies inflating past 200:1 by default; this test is about what the budget
        # and the digest do with what gets past the door, so let them in.
        # The digest child at the server's CPU priority, not 10 steps below it: this test measures
        # its memory, not its priority, and on a machine busy with the rest of the suite a niced
        # digest gets a few percent of a core (26 s of wall for 9 s of CPU in a 4-worker run).
        serve = ServeProcess("--data-dir", str(data), "--max-inflate-ratio", "0", "--digest-niceness", "0")
        try:
            first_child = _digest_child(serve.proc.pid)
            first_idle_rss = _status_kib(first_child, "VmRSS") * KiB
            server_idle = _status_kib(serve.proc.pid, "VmRSS") * KiB
            before = _disk_bytes(data)
            statuses = []
            with httpx.Client(timeout=60) as client:
                for body in bombs:
                    response = client.post(
                        f"{serve.url}/api/1/envelope/",
                        content=body,
                        headers={
                            "X-Sentry-Auth": f"Sentry sentry_key={serve.key}",
                            "Content-Encoding": "gzip",
                        },
                    )
                    statuses.append(response.status_code)
            store = open_store(f"sqlite:///{data / 'tripwire.sqlite3'}")
            try:
                wait_until(lambda: store.queue.queue_depth() == 0, timeout=120)
            finally:
                store.close()
            grown = _disk_bytes(data) - before
            server_growth = _status_kib(serve.proc.pid, "VmHWM") * KiB - server_idle
            live_growth = _status_kib(first_child, "VmHWM") * KiB - first_idle_rss
        finally:
            # Ingest stores its intake counters once a second and the last ones as it stops: read
            # them once it has stopped rather than after a fixed wait.
            serve.stop()
        idle_rss, peak = queued_at_once.result()
    store = open_store(f"sqlite:///{data / 'tripwire.sqlite3'}")
    try:
        counts = intake_counts(store, 1)
        stored = store.queue.attachment_usage(1).stored_bytes
    finally:
        store.close()
    assert statuses.count(200) >= 1
    assert set(statuses) <= {200, 429}
    assert stored <= 100 * MiB  # the default budget: 100 MiB an hour
    assert counts[("attachment", "accepted")] * 19 * MiB == stored
    assert counts.get(("attachment", "over_budget"), 0) + counts.get(("attachment", "accepted"), 0) == 5 * (
        statuses.count(200)
    )
    # A refusal at the first attachment header counts the attachments seen before it (the rest of
    # the upload is never read): every refused envelope is counted, at least once, at most five.
    refused = statuses.count(429)
    assert refused <= counts.get(("attachment", "rate_limited"), 0) <= 5 * refused
    assert grown < 300 * 1000 * 1000
    assert live_growth < 600 * 1000 * 1000
    growth = peak - idle_rss
    record(
        "attacks",
        "data dir growth, 10 x 95 KiB gzip'd envelopes of 5 x 19 MiB attachments",
        f"{grown / 1e6:.0f} MB",
        "limit 300 MB; 950 MiB sent once inflated",
    )
    record(
        "attacks",
        "of those 10 envelopes: answered 200 / 429",
        f"{statuses.count(200)} / {statuses.count(429)}",
        "429 carries X-Sentry-Rate-Limits for the attachment category",
    )
    record(
        "attacks",
        "attachment bytes stored under the default budget",
        f"{stored / MiB:.0f} MiB",
        "100 MiB per hour, 1 GiB in total per project",
    )
    record(
        "attacks",
        "serve process (ingest) memory growth receiving them",
        f"{server_growth / 1e6:.0f} MB",
        "ingest inflates each body to check it (up to 100 MiB)",
    )
    record(
        "attacks",
        "digest child memory growth digesting them as they arrive",
        f"{live_growth / 1e6:.0f} MB",
        "limit 600 MB",
    )
    record(
        "attacks",
        "digest child memory growth digesting 10 such envelopes queued at once",
        f"{growth / 1e6:.0f} MB",
        "limit 600 MB; a batch holds at most 32 MiB + one envelope",
    )
    assert growth < 600 * 1000 * 1000


_SDK_SCRIPT = """
import json, sys
import sentry_sdk
sentry_sdk.init(dsn=sys.argv[1], default_integrations=False, auto_session_tracking=False)
ids = []
for n in range(3):
    with sentry_sdk.new_scope() as scope:
        scope.add_attachment(bytes=b"log line\\n" * 100, filename="app.log")
        ids.append(sentry_sdk.capture_message(f"attempt {n}"))
    sentry_sdk.flush(10)
sentry_sdk.get_client().close(10)
print(json.dumps(ids), flush=True)
"""


def test_sentry_sdk_backs_off_attachments_only_when_the_budget_is_used_up(sqlite_server: LiveServer) -> None:
    """With the budget used up, the official sentry-sdk gets one 429, then sends its events without
    attachments (stored), and reports the attachments it dropped in a client report."""
    away_from_boundary(3600)
    live = sqlite_server
    live.store.accounts.update_project(live.project.id, attachment_bytes_per_hour=1 * MiB)
    live.state.projects.invalidate()
    live.state.attachment_quota.refresh_interval = 0
    assert live.post_envelope(with_attachments(make_event(), 1 * MiB)).status_code == 200
    live.wait_digested()
    out = subprocess.run(
        [sys.executable, "-c", _SDK_SCRIPT, live.dsn], capture_output=True, text=True, timeout=60, check=True
    )
    first, *later = json.loads(out.stdout.strip().splitlines()[-1])
    live.wait_digested()
    live.state.writer._flush_outcomes()
    for event_id in later:
        assert live.store.issues.get_event(event_id).event_id == event_id
        assert live.store.issues.list_attachments(live.project.id, event_id) == []
    assert live.store.issues.count_events(live.project.id) == 3  # the budget filler and the two later ones
    client = {
        (o.category, o.reason): o.quantity
        for o in live.store.releases.outcomes(live.project.id, source="client")
    }
    assert client[("attachment", "ratelimit_backoff")] == 2 * 900  # SDKs count attachments in bytes
    assert intake_counts(live.store, live.project.id)[("attachment", "rate_limited")] == 1


def test_migration_4_counts_the_attachments_already_stored(database_url: str) -> None:
    """Upgrading a database that holds attachments starts each project's budget from the bytes
    those attachments take, so the budget holds from the first digest after the upgrade."""
    from tripwire_server.store.migrations import migrations

    store = open_store(database_url)
    try:
        with store.db.tx() as c:
            c.ex("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            for version, statements in migrations(store.backend)[:3]:
                for statement in statements:
                    c.ex(statement)
                c.ex(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )
            c.ex(
                "INSERT INTO projects (name, public_key, created_at) VALUES ('old', 'k', ?)",
                (time.time(),),
            )
            for size in (1000, 2500):
                c.ex(
                    "INSERT INTO attachments (project_id, event_id, filename, content_type,"
                    " attachment_type, size, data, received_at) VALUES (1, ?, 'a', 'b', 'c', ?, ?, ?)",
                    ("ab" * 16, size, b"x" * size, time.time()),
                )
        assert store.migrate()[0] == 4  # (and the later migrations)
        assert store.queue.attachment_usage(1).stored_bytes == 3500
        assert store.accounts.get_project(1).attachment_bytes_total is None
    finally:
        store.close()


def test_a_refusal_asks_sdks_to_wait_until_the_hour_ends_or_an_hour_for_the_total(store: Store) -> None:
    """Retry-After is the time left in the hour when the hourly budget is used up, and an hour when
    the total is; an envelope without attachments is never refused."""
    import asyncio

    from tripwire_server.attachment_quota import AttachmentQuota
    from tripwire_server.bodies import decode_stored
    from tripwire_server.config import CollectorConfig

    hour = float(int(time.time() // 3600) * 3600)
    enqueue(store, with_attachments(make_event(), 2 * KiB), received_at=hour + 5)
    drain(store, EnvelopeProcessor(Limits(), attachment_budget=UNLIMITED))
    counted: list[tuple[int, str, str, int]] = []
    quota = AttachmentQuota(
        store.queue,
        CollectorConfig(),
        count=lambda *args: counted.append(args),
        decode=decode_stored,
        clock=lambda: hour + 3000.5,
    )
    with_one = with_attachments(make_event(), 10)
    store.accounts.update_project(1, attachment_bytes_per_hour=2 * KiB)
    refusal = asyncio.run(quota.check(store.accounts.get_project(1), with_one, "envelope"))
    assert refusal is not None and refusal.retry == 600
    assert refusal.headers["Retry-After"] == "600"
    assert (
        asyncio.run(quota.check(store.accounts.get_project(1), envelope(("event", make_event())), "envelope"))
        is None
    )
    store.accounts.update_project(1, attachment_bytes_per_hour=0, attachment_bytes_total=2 * KiB)
    refusal = asyncio.run(
        quota.check(store.accounts.get_project(1), gzip.compress(with_one), "envelope:gzip")
    )
    assert refusal is not None and refusal.retry == 3600
    assert counted == [(1, "attachment", "rate_limited", 1)] * 2


def test_the_hourly_budget_is_set_through_the_api_and_ingest_holds_to_it(sqlite_server: LiveServer) -> None:
    """PATCH /api/0/projects/P/ sets the attachment budget (in bytes; -1: the default again, bad
    values 400): with 1 KiB per hour, a second 2 KiB attachment this hour is refused with 429."""
    away_from_boundary(3600)
    server = sqlite_server
    patched = server.api("/api/0/projects/default/", "PATCH", json={"attachment_bytes_per_hour": 1024})
    assert patched["attachment_bytes_per_hour"] == 1024
    assert server.post_envelope(with_attachments(make_event(), 2 * KiB)).status_code == 200
    refused = server.post_envelope(with_attachments(make_event(), 2 * KiB))
    assert refused.status_code == 429, refused.text
    assert "attachment" in refused.headers["X-Sentry-Rate-Limits"]
    assert server.post_envelope(envelope(("event", make_event()))).status_code == 200  # no attachment
    for bad in ("many", 2**51, -2, True):
        response = server.http.patch(
            "/api/0/projects/default/",
            json={"attachment_bytes_total": bad},
            headers={"Authorization": f"Bearer {server.token}"},
        )
        assert response.status_code == 400, bad
    changes = {"attachment_bytes_per_hour": -1, "attachment_bytes_total": 0}
    reset = server.api("/api/0/projects/default/", "PATCH", json=changes)
    assert (reset["attachment_bytes_per_hour"], reset["attachment_bytes_total"]) == (None, 0)


def test_the_budget_is_set_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tripwire project set --attachment-bytes-per-hour/--attachment-bytes-total stores the budget;
    -1 goes back to the server default."""
    from tripwire_server import cli

    base = ("--data-dir", str(tmp_path), "--json")
    assert cli.main(["project", "create", "svc", *base]) == 0
    capsys.readouterr()
    args = ["project", "set", "svc", "--attachment-bytes-per-hour", str(5 * MiB)]
    assert cli.main([*args, "--attachment-bytes-total", "0", *base]) == 0
    changed = json.loads(capsys.readouterr().out)
    assert (changed["attachment_bytes_per_hour"], changed["attachment_bytes_total"]) == (5 * MiB, 0)
    assert cli.main(["project", "set", "svc", "--attachment-bytes-per-hour", "-1", *base]) == 0
    reset = json.loads(capsys.readouterr().out)
    assert (reset["attachment_bytes_per_hour"], reset["attachment_bytes_total"]) == (None, 0)
    store = open_store(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
    try:
        assert store.accounts.get_project("svc").attachment_bytes_total == 0
    finally:
        store.close()
