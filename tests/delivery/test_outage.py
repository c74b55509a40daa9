"""A backend that goes away and comes back: nothing captured meanwhile is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tripwire
from tests.support.clock import FastClock
from tests.support.figures import record
from tests.support.sink import Sink
from tripwire.reporters.sentry import SentryReporter

from .conftest import free_port, raise_and_capture

ROOT = Path(__file__).resolve().parents[2]


def _all_given(ids: list[str | None]) -> list[str]:
    """The event ids, narrowed to str: every capture here is kept, so each returned its id."""
    given = [i for i in ids if i is not None]
    assert len(given) == len(ids), ids
    return given


@pytest.mark.slow
@pytest.mark.reliability
def test_every_event_arrives_after_a_5_second_outage() -> None:
    """Events captured before and during a 5 s outage (kept-alive connection cut) all arrive afterwards."""
    sink = Sink().start()
    port = sink.port
    # Back-offs on a fast clock: the outage is real, waiting out up to 10 s of backoff after it is not.
    tripwire.init(reporters=[SentryReporter(sink.dsn, clock=FastClock())], send_client_reports=False)
    ids = raise_and_capture(5)
    assert tripwire.flush(10)
    sink.stop()
    down_since = time.monotonic()
    while time.monotonic() - down_since < 5:
        ids += raise_and_capture(5)
        time.sleep(0.5)
    with Sink(port=port) as back:
        assert tripwire.flush(30)
        arrived = {e["event_id"] for e in sink.events + back.events}
    assert arrived == set(ids)
    assert len(ids) >= 50
    assert tripwire.stats()["dropped"] == {}
    record(
        "transport",
        "events lost through a 5 s outage (kept-alive connection cut)",
        f"0 of {len(ids)}",
        "tests/delivery/test_outage.py",
    )


def test_spool_keeps_events_on_disk_while_the_backend_is_down(tmp_path: Path) -> None:
    """With spool_dir, undeliverable envelopes are written to disk, so flush() returns quickly."""
    port = free_port()
    reporter = SentryReporter(f"http://k@127.0.0.1:{port}/1", spool_dir=str(tmp_path), clock=FastClock())
    tripwire.init(reporters=[reporter], send_client_reports=False)
    raise_and_capture(10)
    started = time.monotonic()
    assert tripwire.flush(10)
    assert time.monotonic() - started < 5
    stats = tripwire.stats()
    assert stats["spooled"] == {"sentry": 10}
    assert stats["pending"] == {"sentry": 0}
    files = list(tmp_path.glob("sentry-*/*.twp"))
    assert len(files) == 10
    with Sink(port=port) as sink:
        assert sink.wait_until(lambda: len(sink.events) == 10, 20)
        assert tripwire.flush(10)
    assert list(tmp_path.glob("sentry-*/*.twp")) == []


_CAPTURE_WHILE_DOWN = """
import json, sys, tripwire
tripwire.init(sys.argv[1], spool_dir=sys.argv[2], send_client_reports=False)
ids = []
for i in range(7):
    try:
        raise KeyError(f"lost? {i}")
    except KeyError:
        ids.append(tripwire.capture_exception())
print(json.dumps(ids))
# No flush, no close: the atexit hook has to put them on disk.
"""

_DELIVER_SPOOL = """
import sys, tripwire
tripwire.init(sys.argv[1], spool_dir=sys.argv[2], send_client_reports=False)
ok = tripwire.flush(20)
print(tripwire.stats()["sent"], ok)
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )


@pytest.mark.slow
def test_spooled_events_survive_a_restart_of_the_process(tmp_path: Path) -> None:
    """A process that captures while the backend is down and exits; the next one delivers its events."""
    port = free_port()
    dsn = f"http://k@127.0.0.1:{port}/1"
    first = _run(_CAPTURE_WHILE_DOWN, dsn, str(tmp_path))
    ids = json.loads(first.stdout)
    # The atexit hook itself prints nothing; the only line is the one warning about the outage.
    assert [line.split(" (")[0] for line in first.stderr.splitlines()] == [
        f"tripwire: sentry could not deliver to http://127.0.0.1:{port}/api/1/envelope/"
    ]
    assert len(list(tmp_path.glob("sentry-*/*.twp"))) == 7
    with Sink(port=port) as sink:
        second = _run(_DELIVER_SPOOL, dsn, str(tmp_path))
        assert second.stdout.strip() == "{'sentry': 7} True"
        assert sorted(e["event_id"] for e in sink.events) == sorted(ids)
    assert list(tmp_path.glob("sentry-*/*.twp")) == []


def test_a_full_spool_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    """When the spool reaches spool_max_bytes the oldest files go first, each counted as queue_full."""
    port = free_port()
    reporter = SentryReporter(
        f"http://k@127.0.0.1:{port}/1", spool_dir=str(tmp_path), spool_max_bytes=6000, clock=FastClock()
    )
    tripwire.init(
        reporters=[reporter],
        send_client_reports=False,
        include_local_variables=False,
        include_source_context=False,
    )
    ids = _all_given(raise_and_capture(30))
    assert tripwire.flush(10)
    files = sorted(tmp_path.glob("sentry-*/*.twp"))
    assert 0 < len(files) < 30
    assert sum(f.stat().st_size for f in files) <= 6000
    dropped = tripwire.stats()["dropped"]
    assert dropped == {"queue_full": 30 - len(files)}
    with Sink(port=port) as sink:
        assert sink.wait_until(lambda: len(sink.events) == len(files), 20)
        # The newest survived.
        assert sorted(e["event_id"] for e in sink.events) == sorted(ids[-len(files) :])


def test_an_unusable_spool_keeps_events_in_memory(tmp_path: Path) -> None:
    """If the spool directory cannot be written, events wait in memory instead and still arrive."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool directory should be")
    port = free_port()
    reporter = SentryReporter(f"http://k@127.0.0.1:{port}/1", spool_dir=str(blocker), clock=FastClock())
    tripwire.init(reporters=[reporter], send_client_reports=False)
    ids = _all_given(raise_and_capture(5))
    assert tripwire.flush(0.2) is False  # nothing on disk, nothing delivered yet
    assert tripwire.stats()["pending"] == {"sentry": 5}
    with Sink(port=port) as sink:
        assert tripwire.flush(20)
        assert sorted(e["event_id"] for e in sink.events) == sorted(ids)
    assert tripwire.stats()["dropped"] == {}


def test_a_file_claimed_by_a_dead_process_is_sent_again(tmp_path: Path, sink: Sink) -> None:
    """A spool file a crashed process was sending (claimed, never finished) is taken back and sent."""
    from tripwire.delivery.spool import CLAIM, Spool

    reporter = SentryReporter(sink.dsn)
    payload = reporter.encode_event({"event_id": "d" * 32, "level": "error", "platform": "python"})
    assert payload is not None
    spool = Spool(str(tmp_path / reporter.spool_key()), 1 << 20)
    assert spool.write(payload.to_spool(), payload.body)
    (path,) = (tmp_path / reporter.spool_key()).glob("*.twp")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    path.rename(f"{path}{CLAIM}{int(dead.stdout)}")
    tripwire.init(sink.dsn, spool_dir=str(tmp_path), send_client_reports=False)
    assert tripwire.flush(10)
    assert [e["event_id"] for e in sink.events] == ["d" * 32]
    assert list(tmp_path.rglob("*.twp*")) == []


def test_a_spooled_payload_the_server_keeps_failing_on_is_given_up(tmp_path: Path, sink: Sink) -> None:
    """Attempts are stored with a spooled payload, so a poison payload is dropped, not retried forever."""
    from tests.support.sink import Answer

    sink.answer = Answer(status=500)
    reporter = SentryReporter(sink.dsn, spool_dir=str(tmp_path), max_attempts=3, clock=FastClock())
    tripwire.init(reporters=[reporter], send_client_reports=False)
    raise_and_capture(1)
    assert sink.wait_until(lambda: len(sink.attempts) == 3, 10)
    assert tripwire.flush(5)
    assert [status for _, _, status in sink.attempts] == [500, 500, 500]
    assert tripwire.stats()["dropped"] == {"rejected": 1}
    assert list(tmp_path.rglob("*.twp*")) == []


def test_an_unreadable_spool_file_is_dropped_and_counted(tmp_path: Path, sink: Sink) -> None:
    """A corrupt file in the spool (cut short by a crash of an old version, say) does not stop the
    good ones from being sent, and its loss is counted as internal_error, not silent."""
    from tripwire.delivery.spool import SUFFIX, Spool

    reporter = SentryReporter(sink.dsn)
    payload = reporter.encode_event({"event_id": "e" * 32, "level": "error", "platform": "python"})
    assert payload is not None
    directory = tmp_path / reporter.spool_key()
    assert Spool(str(directory), 1 << 20).write(payload.to_spool(), payload.body)
    (directory / f"00000000000000000001-1-000001{SUFFIX}").write_bytes(b'{"url": "x"}\nnot zlib')
    tripwire.init(sink.dsn, spool_dir=str(tmp_path), send_client_reports=False)
    assert tripwire.flush(10)
    assert [e["event_id"] for e in sink.events] == ["e" * 32]
    assert tripwire.stats()["dropped"] == {"internal_error": 1}
    assert list(tmp_path.rglob("*.twp*")) == []
