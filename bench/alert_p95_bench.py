"""What a ``p95`` alert rule adds to the digest of transactions: instructions (valgrind callgrind)
per digested transaction, with no rule and with a rule over a 10-minute, a 60-minute and a
one-day window.

Each variant runs twice under callgrind in a fresh SQLite database: once up to the point where the
transactions are queued (migrations, a rollup pre-fill of the last day for the 20 names, 1,000
queued envelopes of performance_bench.py's 10-span transactions) and once digesting them too, in
batches of 200; the difference over 1,000 is the digest's cost per transaction. The pre-fill
gives the rules a full window of stored rows to merge (20 names × 1,440 minute rows and 24 hour
rows), as a busy project would have.

    python bench/alert_p95_bench.py                 # all variants, prints a Markdown table
    git archive main server/src | tar -x -C /tmp/main
    python bench/alert_p95_bench.py --main-src /tmp/main/server/src   # + "main": no p95 hook at all
    python bench/alert_p95_bench.py --one p95-60m   # one variant, without valgrind (a smoke run)
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from performance_bench import NAMES, ROLLUP_INSERT, make_body, make_transaction
from tripwire_server.alerts.rules import RuleSpec
from tripwire_server.performance import histogram
from tripwire_server.store import open_store

COUNT = 1000
BATCH = 200
#: Rules of each variant: None (no rule) or the p95 rule's window in minutes.
VARIANTS = {"none": None, "p95-10m": 10, "p95-60m": 60, "p95-1440m": 1440}


def run(variant: str, digest: bool, data_dir: Path) -> None:
    """Set up one database; digest its queue when ``digest``."""
    from tripwire_server.config import CollectorConfig
    from tripwire_server.digest.worker import Digester
    from tripwire_server.store.base import IntakeRow

    url = f"sqlite:///{data_dir / 'bench.sqlite3'}"
    store = open_store(url, sqlite_synchronous="NORMAL")
    try:
        store.migrate()
        project = store.accounts.create_project("shop")
        window = VARIANTS[variant]
        if window is not None:
            # Rules go nowhere here: the outbox worker is not running.
            spec = RuleSpec(
                trigger="p95", email="oncall@example.com", above_ms=10_000.0, window_minutes=window
            )
            store.alerts.create_alert_rule(project.id, spec)
        now = time.time()
        rng = random.Random(7)
        hist = histogram.encode(histogram.of(rng.lognormvariate(4.4, 0.6) for _ in range(200)))
        rows = [
            (project.id, res, float(int(now // res) * res) - k * res, "production", "shop@1.2.3",
             f"GET /api/resource_{n}/{{id}}", "http.server", 200, 0, 16_000.0, hist)
            for res, back in ((60, 1440), (3600, 24))
            for k in range(1, back)
            for n in range(NAMES)
        ]  # fmt: skip
        with store.db.tx() as c:
            c.many(ROLLUP_INSERT, rows)
        bodies = [make_body(make_transaction(i, rng, now + i * 0.0001)) for i in range(COUNT)]
        store.queue.enqueue([IntakeRow(project.id, now, "envelope:gzip", b, None) for b in bodies])
        if digest:
            processor = Digester(store.queue, store.retention, CollectorConfig(database_url=url)).processor
            done = 0
            while n := store.queue.digest_batch(BATCH, processor):
                done += n
            assert done == COUNT, done
    finally:
        store.close()


def instructions(variant: str, digest: bool, source: str | None = None) -> int:
    """Instructions of one run; ``source``: the collector's source to import instead (PYTHONPATH)."""
    env = {**os.environ, "PYTHONPATH": source} if source else None
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            sys.executable, __file__, "--one", variant, "--data-dir", tmp,
        ] + (["--digest"] if digest else [])  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    match = re.search(r"Collected : (\d+)", done.stderr)
    assert match, done.stderr
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--one", choices=sorted(VARIANTS))
    parser.add_argument("--digest", action="store_true")
    parser.add_argument("--data-dir")
    parser.add_argument("--main-src", help="another checkout's server/src, measured without a rule as 'main'")
    args = parser.parse_args()
    if args.one:
        if args.data_dir:
            run(args.one, args.digest, Path(args.data_dir))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                run(args.one, True, Path(tmp))
        return
    print(f"load average {os.getloadavg()[0]:.1f} at the start")
    base = None
    print("| variant | instructions / digested transaction | vs no rule |")
    print("|---|---|---|")
    runs = [(v, None) for v in VARIANTS]
    if args.main_src:
        runs.insert(1, ("none", args.main_src))
    for variant, source in runs:
        per_tx = (instructions(variant, True, source) - instructions(variant, False, source)) / COUNT
        base = per_tx if base is None else base
        label = f"{variant} (main)" if source else variant
        print(f"| {label} | {per_tx:,.0f} | {(per_tx - base) / base * 100:+.1f} % |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
