"""10,000 errors in a tight loop with default settings: every one arrives, memory stays bounded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.coverage_env import without_coverage
from tests.support.figures import record
from tests.support.sink import Sink

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, threading, time
import tripwire

def rss_mib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def handler(order_id):
    total = order_id * 3
    raise ValueError(f"order {order_id} failed at {total}")

tripwire.init(sys.argv[1], repeat_limit=None)  # every occurrence: a volume test, not a storm
before = rss_mib()
peak_threads = threading.active_count()
ids = []
start = time.perf_counter()
for i in range(10_000):
    try:
        handler(i)
    except ValueError:
        ids.append(tripwire.capture_exception())
loop = time.perf_counter() - start
after_loop = rss_mib()
peak_threads = max(peak_threads, threading.active_count())
ok = tripwire.flush(300)
flushed = time.perf_counter() - start
print(json.dumps({
    "ids": ids, "flush_ok": ok, "loop_s": loop, "total_s": flushed, "rss_before": before,
    "rss_after_loop": after_loop, "rss_after_flush": rss_mib(), "threads": peak_threads,
    "stats": tripwire.stats(),
}))
"""


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.timeout(400)
def test_ten_thousand_errors_all_arrive_with_bounded_memory() -> None:
    """All 10,000 captured exceptions reach the sink after flush; RSS grows by well under 300 MiB."""
    with Sink() as sink:
        # Not under coverage: this test measures the process's memory and pace, which coverage's
        # tracer and its data would distort (10 s more CPU in all), and the capture path it drives
        # is covered by other tests.
        env = {**without_coverage(), "PYTHONPATH": str(ROOT / "src")}
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(SCRIPT), sink.dsn],
            capture_output=True,
            text=True,
            timeout=360,
            env=env,
            check=True,
        )
        result = json.loads(done.stdout)
        arrived = [e["event_id"] for e in sink.events]
    growth = result["rss_after_loop"] - result["rss_before"]
    print(
        f"\n10,000 events: loop {result['loop_s']:.2f} s, flushed after {result['total_s']:.2f} s, "
        f"RSS +{growth:.1f} MiB after the loop, "
        f"+{result['rss_after_flush'] - result['rss_before']:.1f} MiB after flush, "
        f"{result['threads']} threads"
    )
    assert result["flush_ok"] is True
    assert None not in result["ids"]
    assert len(arrived) == 10_000
    assert sorted(arrived) == sorted(result["ids"])
    assert result["stats"]["dropped"] == {}
    assert result["stats"]["sent"] == {"sentry": 10_000}
    assert growth < 300
    # One worker and one sender: no thread per event.
    assert result["threads"] <= 3
    record(
        "transport",
        "events lost of 10,000 captured in a tight loop (default settings)",
        "0",
        f"RSS +{growth:.1f} MiB after the loop, {result['threads']} threads; tests/delivery/test_volume.py",
    )
