"""Continuous profiling: profile_chunk items, the manual and trace lifecycles, profiler_id on transactions."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tripwire
from tests.profiling.apps import slow_checksum
from tests.profiling.support import leaf_counts
from tests.support.sink import Sink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


def _profiler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tripwire-profiler"]


def test_manual_start_and_stop_send_chunks_every_interval(sink: Sink) -> None:
    """Between start_profiler() and stop_profiler() a chunk goes out every interval, all with one
    profiler id, each with the work done meanwhile; after stop nothing more is sent."""
    tripwire.init(sink.dsn, release="2.0", profile_session_sample_rate=1.0, profile_chunk_interval=0.3)
    assert _profiler_threads() == []  # nothing runs before start_profiler()
    tripwire.start_profiler()
    slow_checksum(0.8)
    tripwire.stop_profiler()
    tripwire.flush(5)
    chunks = sink.items("profile_chunk")
    assert len(chunks) >= 3, len(chunks)  # 0.8 s cut every 0.3 s, plus the rest at stop
    assert len({c["profiler_id"] for c in chunks}) == 1
    assert len({c["chunk_id"] for c in chunks}) == len(chunks)
    first = chunks[0]
    assert first["version"] == "2" and first["platform"] == "python" and first["release"] == "2.0"
    assert first["client_sdk"]["name"] == "tripwire.python"
    main = str(threading.get_ident())
    total = sum((leaf_counts(c, main) for c in chunks), start=leaf_counts(first, "none"))
    assert total.most_common(1)[0][0] == "slow_checksum", total
    stamps = [s["timestamp"] for c in chunks for s in c["profile"]["samples"]]
    assert stamps == sorted(stamps) and abs(stamps[0] - time.time()) < 30
    # The item header names the platform, as Sentry's rate limiter needs.
    headers = [h for r in sink.requests for h, _ in r.items if h.get("type") == "profile_chunk"]
    assert all(h.get("platform") == "python" for h in headers)
    count = len(sink.items("profile_chunk"))
    time.sleep(0.4)
    tripwire.flush(2)
    assert len(sink.items("profile_chunk")) == count


def test_trace_lifecycle_profiles_while_a_transaction_runs(sink: Sink) -> None:
    """profile_lifecycle="trace": the profiler runs while a sampled transaction is open, the
    transaction names its profiler_id, and the chunk is sent when the last transaction ends."""
    tripwire.init(
        sink.dsn, traces_sample_rate=1.0, profile_session_sample_rate=1.0, profile_lifecycle="trace"
    )
    with tripwire.start_span(op="task", name="nightly"):
        slow_checksum(0.3)
    tripwire.flush(5)
    txn = sink.items("transaction")[0]
    chunks = sink.items("profile_chunk")
    assert len(chunks) == 1
    assert txn["contexts"]["profile"]["profiler_id"] == chunks[0]["profiler_id"]
    assert not sink.items("profile")  # continuous mode sends no transaction profile
    assert leaf_counts(chunks[0], str(threading.get_ident())).most_common(1)[0][0] == "slow_checksum"
    # Idle now: a later transaction starts a new chunk of the same profiler.
    with tripwire.start_span(op="task", name="again"):
        # As long as the first: a chunk with no tick is not sent, and a loaded machine can leave a
        # 0.1 s transaction without one.
        slow_checksum(0.3)
    tripwire.flush(5)
    later = sink.items("profile_chunk")
    assert len(later) == 2 and later[1]["profiler_id"] == chunks[0]["profiler_id"]


def test_session_not_sampled_profiles_nothing(sink: Sink) -> None:
    """profile_session_sample_rate=0: start_profiler() starts nothing, nothing is sent, it is counted."""
    tripwire.init(sink.dsn, profile_session_sample_rate=0.0, profile_chunk_interval=0.1)
    tripwire.start_profiler()
    slow_checksum(0.2)
    tripwire.stop_profiler()
    tripwire.flush(2)
    assert sink.items("profile_chunk") == []
    assert _profiler_threads() == []
    assert tripwire.stats()["dropped"].get("sample_rate") == 1


def test_close_sends_the_open_chunk_and_stops_the_thread(sink: Sink) -> None:
    """close() while the profiler runs sends what it recorded and leaves no profiler thread behind."""
    tripwire.init(sink.dsn, profile_session_sample_rate=1.0)
    tripwire.start_profiler()
    slow_checksum(0.1)
    assert len(_profiler_threads()) == 1
    tripwire.close(5)
    assert _profiler_threads() == []
    assert len(sink.items("profile_chunk")) == 1


@pytest.mark.slow  # a sentry-sdk process: ~3 s to import, profile and flush
def test_chunk_has_the_shape_sentry_sdk_sends(sink: Sink) -> None:
    """Every key (and JSON type) of sentry-sdk's own profile_chunk is in ours."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "tests.profiling.sentry_profiled", sink.dsn, "continuous"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=30,
        capture_output=True,
    )
    assert sink.wait_until(lambda: bool(sink.items("profile_chunk")), 10)
    theirs = sink.items("profile_chunk")[0]
    their_txn = sink.items("transaction")[0]
    with sink._cond:
        sink.requests.clear()
    tripwire.init(sink.dsn, traces_sample_rate=1.0, profile_session_sample_rate=1.0, release="1.0")
    tripwire.start_profiler()
    with tripwire.start_span(op="task", name="continuous-job"):
        slow_checksum(0.2)
    tripwire.stop_profiler()
    tripwire.flush(5)
    ours = sink.items("profile_chunk")[0]

    def keys(value: Any, path: str = "") -> set[str]:
        if isinstance(value, dict):
            if path.endswith("thread_metadata"):
                value = {"*": next(iter(value.values()))}
            return {p for k, v in value.items() for p in {f"{path}.{k}"} | keys(v, f"{path}.{k}")}
        if isinstance(value, list) and value:
            return keys(value[0], path + "[]")
        return set()

    assert keys(theirs) - keys(ours) == set()
    assert type(ours["profile"]["samples"][0]["timestamp"]) is type(
        theirs["profile"]["samples"][0]["timestamp"]
    )
    # sentry-sdk links the transaction by contexts.profile.profiler_id; so do we.
    assert "profiler_id" in their_txn["contexts"]["profile"]
    assert sink.items("transaction")[0]["contexts"]["profile"]["profiler_id"] == ours["profiler_id"]


_EXIT_SCRIPT = """
import sys, tripwire
from tests.profiling.apps import slow_checksum
tripwire.init(sys.argv[1], profile_session_sample_rate=1.0)
tripwire.start_profiler()
slow_checksum(0.2)
# no stop_profiler(), no close(): the interpreter exits with the profiler running
"""


def test_a_running_profiler_sends_its_chunk_when_the_process_exits(sink: Sink) -> None:
    """A script that exits with the continuous profiler still running delivers what it recorded."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, sink.dsn], cwd=ROOT, env=env, check=True, timeout=30)
    assert sink.wait_until(lambda: bool(sink.items("profile_chunk")), 5)
    chunk = sink.items("profile_chunk")[0]
    names = chunk["profile"]["thread_metadata"]
    main = next(tid for tid, meta in names.items() if meta["name"] == "MainThread")
    assert leaf_counts(chunk, main).most_common(1)[0][0] == "slow_checksum"


def test_trace_lifecycle_runs_until_the_last_of_overlapping_transactions_ends(sink: Sink) -> None:
    """Two overlapping transactions on two threads: the profiler runs until the second one ends,
    so one chunk covers both, and both name the same profiler."""
    tripwire.init(
        sink.dsn, traces_sample_rate=1.0, profile_session_sample_rate=1.0, profile_lifecycle="trace"
    )
    first_done = threading.Event()

    def job(name: str, seconds: float) -> None:
        with tripwire.start_span(op="task", name=name):
            slow_checksum(seconds)
        if name == "short":
            first_done.set()

    long = threading.Thread(target=job, args=("long", 0.5))
    short = threading.Thread(target=job, args=("short", 0.1))
    long.start()
    short.start()
    assert first_done.wait(5)
    client = tripwire.get_client()
    assert client is not None and client.profiler._chunk is not None  # still running for "long"
    long.join(5)
    short.join(5)
    tripwire.flush(5)
    chunks = sink.items("profile_chunk")
    txns = sink.items("transaction")
    assert len(chunks) == 1 and len(txns) == 2
    assert {t["contexts"]["profile"]["profiler_id"] for t in txns} == {chunks[0]["profiler_id"]}
    assert client.profiler._chunk is None  # stopped after the last one
