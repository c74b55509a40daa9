"""The profiler never hurts the app: absent when unset, survives failures, forks, and stays bounded."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import tripwire
import tripwire._profiler
import tripwire._profiling
from tests.profiling.apps import slow_checksum
from tests.profiling.support import leaf_counts
from tripwire.reporters.capture import CapturedEvents, CaptureReporter

ROOT = Path(__file__).resolve().parents[2]

_UNSET_SCRIPT = """
import json, sys, threading, tripwire
tripwire.init("http://key@127.0.0.1:9/1", traces_sample_rate=1.0)
with tripwire.start_span(op="task", name="job"):
    sum(range(100000))
loaded = sorted(m for m in sys.modules if m.startswith("tripwire._profil"))
print(json.dumps({"loaded": loaded, "threads": [t.name for t in threading.enumerate()],
                  "profiler": tripwire.get_client().profiler is not None}))
tripwire.close(0)
"""


def _capture(**options: Any) -> CapturedEvents:
    captured = CapturedEvents()
    tripwire.init(reporters=[CaptureReporter(captured)], traces_sample_rate=1.0, **options)
    return captured


def _wait_profiles(captured: CapturedEvents, count: int = 1) -> list[dict[str, Any]]:
    tripwire.flush(5)
    return captured.profiles


def test_nothing_is_loaded_or_started_when_profiling_is_unset() -> None:
    """Without a profiling option no profiler module is imported and no profiler thread exists."""
    out = subprocess.run(
        [sys.executable, "-c", _UNSET_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    state = json.loads(out.stdout.strip().splitlines()[-1])
    assert state == {"loaded": [], "threads": state["threads"], "profiler": False}
    assert "tripwire-profiler" not in state["threads"]


def test_profiler_survives_exceptions_inside_sampling(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When sampling itself fails (three ticks raise), the failure is logged once, the ticks are
    counted, and the profile still arrives with the slow function."""
    real = sys._current_frames
    failures = [3]

    def flaky() -> dict[int, Any]:
        if failures[0] > 0 and threading.current_thread().name == "tripwire-profiler":
            failures[0] -= 1
            raise RuntimeError("frame table broke")
        return real()

    monkeypatch.setattr(sys, "_current_frames", flaky)
    captured = _capture(profiles_sample_rate=1.0)
    with caplog.at_level(logging.ERROR, logger="tripwire"):
        with tripwire.start_span(op="task", name="job"):
            slow_checksum(0.3)
        profiles = _wait_profiles(captured)
    assert len(profiles) == 1
    main = str(threading.get_ident())
    assert leaf_counts(profiles[0], main).most_common(1)[0][0] == "slow_checksum"
    assert [r for r in caplog.records if "profiler sample failed" in r.getMessage()].__len__() == 1
    client = tripwire.get_client()
    assert client is not None and client.profiler.sampler.failed_ticks == 3
    assert client.profiler.sampler.running


def test_threads_ending_mid_sample_do_not_break_the_profile() -> None:
    """Hundreds of short threads that start and end while the sampler walks their stacks leave the
    sampler running and the profile whole."""
    captured = _capture(profiles_sample_rate=1.0, profiler_frequency=500)
    with tripwire.start_span(op="task", name="churn"):
        for _ in range(10):
            threads = [threading.Thread(target=slow_checksum, args=(0.002,)) for _ in range(30)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    profiles = _wait_profiles(captured)
    assert len(profiles) == 1
    client = tripwire.get_client()
    assert client is not None and client.profiler.sampler.failed_ticks == 0
    assert client.profiler.sampler.running
    body = profiles[0]["profile"]
    assert len(body["thread_metadata"]) > 2  # the short threads were sampled too
    assert all(0 <= s["stack_id"] < len(body["stacks"]) for s in body["samples"])


def test_forked_child_starts_clean_and_profiles_on_its_own() -> None:
    """A child forked while a profile records has no profiler thread and none of the parent's
    samples; its own transaction is profiled (the thread restarts), and the parent's profile is whole."""
    captured = _capture(profiles_sample_rate=1.0)
    with tripwire.start_span(op="task", name="parent"):
        slow_checksum(0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, 3.12+
            pid = os.fork()
        if pid == 0:  # the child
            signal.alarm(10)
            code = 1
            try:
                client = tripwire.get_client()
                assert client is not None
                sampler = client.profiler.sampler
                clean = not sampler.running and sampler._recordings == ()
                del captured.profiles[:]

                def job() -> None:
                    with tripwire.start_span(op="task", name="child"):
                        slow_checksum(0.2)

                contextvars.Context().run(job)  # a transaction of its own, not a span of the parent's
                tripwire.flush(5)
                mine = [p for p in captured.profiles if p["transaction"]["name"] == "child"]
                ok = clean and len(mine) == 1 and sampler.running
                ok = (
                    ok
                    and leaf_counts(mine[0], str(threading.get_ident())).most_common(1)[0][0]
                    == "slow_checksum"
                )
                code = 0 if ok else 1
            finally:
                os._exit(code)
        slow_checksum(0.1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    profiles = _wait_profiles(captured)
    assert [p["transaction"]["name"] for p in profiles] == ["parent"]
    assert leaf_counts(profiles[0], str(threading.get_ident())).most_common(1)[0][0] == "slow_checksum"


def test_a_full_profile_stops_growing_and_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile that reaches its sample cap keeps the samples it has, takes no more, and the
    cut is counted in stats()."""
    monkeypatch.setattr(tripwire._profiler, "MAX_TICKS", 20)
    captured = _capture(profiles_sample_rate=1.0, profiler_frequency=400)
    with tripwire.start_span(op="task", name="long"):
        slow_checksum(0.6)  # 20 ticks even at a quarter of the asked rate (a loaded machine)
    profiles = _wait_profiles(captured)
    timestamps = {s["elapsed_since_start_ns"] for s in profiles[0]["profile"]["samples"]}
    assert len(timestamps) == 20
    drops = tripwire.stats()["dropped_by"]
    assert {"reason": "max_samples", "category": "profile", "reporter": None, "quantity": 1} in drops


def test_a_full_chunk_is_cut_early_and_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """In continuous mode a chunk that reaches the cap is sent and a new one begins: no sample lost."""
    monkeypatch.setattr(tripwire._profiler, "MAX_TICKS", 20)
    monkeypatch.setattr(tripwire._profiling, "MAX_TICKS", 20)
    captured = _capture(profile_session_sample_rate=1.0, profiler_frequency=400)
    tripwire.start_profiler()
    client = tripwire.get_client()
    assert client is not None
    profiler = client.profiler
    first = profiler._chunk
    deadline = time.monotonic() + 4
    # Work until the first chunk was cut and the next has samples of its own (the sampler's pace
    # depends on the machine's load).
    while time.monotonic() < deadline:
        slow_checksum(0.05)
        current = profiler._chunk
        if current is not first and current is not None and len(current.recording.ticks) >= 5:
            break
    tripwire.stop_profiler()
    tripwire.flush(5)
    chunks = captured.profile_chunks
    sizes = [len({s["timestamp"] for s in c["profile"]["samples"]}) for c in chunks]
    assert len(chunks) >= 2 and sizes[0] == 20 and max(sizes) <= 20, sizes
    assert "max_samples" not in tripwire.stats()["dropped"]


def test_the_apps_exception_is_unchanged_inside_a_profiled_transaction() -> None:
    """An exception raised in a profiled transaction reaches the caller as it was raised."""
    captured = _capture(profiles_sample_rate=1.0)
    error = ValueError("mine")
    with pytest.raises(ValueError) as raised, tripwire.start_span(op="task", name="failing"):
        slow_checksum(0.05)
        raise error
    assert raised.value is error
    tripwire.flush(5)
    assert captured.transactions[0]["contexts"]["trace"]["status"] == "internal_error"
