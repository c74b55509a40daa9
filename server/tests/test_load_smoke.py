"""A short run of bench/load_bench.py: sustained load and the attack mix, as the benchmark runs them.

The full benchmark (10 minutes, 30 s windows) writes bench/RESULTS.md; this ~20 s version proves
the same properties hold at small scale on every CI run: no errors, nothing acknowledged is lost,
memory stays flat, and attacks beside normal traffic neither fail it nor succeed themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.figures import record

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

ROOT = Path(__file__).resolve().parents[2]


def test_load_bench_smoke_loses_nothing_and_survives_the_attack_mix() -> None:
    """3 s at full load then 3 × 3.5 s of the attack mix: 0 errors, acknowledged == stored, RSS
    growth under 64 MiB, bombs never acknowledged, normal traffic keeps flowing under attack."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load_bench.py"), "--smoke", "--json"],
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    load, mix = result["sustained"], result["mix"]
    record(
        "load",
        "smoke: events acknowledged at full load in 3 s (lost: acknowledged - stored)",
        f"{load['acked']} ({load['lost']} lost)",
    )
    record(
        "load",
        "smoke: RSS of server + children at 10 % and at the end of the run",
        f"{load['rss_early_mib']:.0f} / {load['rss_end_mib']:.0f} MiB",
    )
    record(
        "load",
        "smoke: normal throughput kept under the attack mix (3.5 s windows)",
        f"{mix['ratio'] * 100:.0f} %",
        json.dumps(mix["attacks"]),
    )
    assert load["errors"] == 0 and load["acked"] > 0
    assert load["lost"] == 0
    assert load["rss_end_mib"] - load["rss_early_mib"] < 64
    assert mix["errors"] == 0
    for kind in ("bomb-keyless", "bomb-dsn", "bomb-key"):
        assert "200" not in mix["attacks"][kind], mix["attacks"]
    # A floor far below the benchmark's 80 % target: 3.5 s windows on a shared 2-core machine are
    # noisy; this catches a server that stalls under attack (the old one fell to ~10 %).
    assert mix["ratio"] > 0.25, mix
