"""The collector at its maximum for a long run, and under an attack mix alongside normal traffic.

A real `tripwire serve` subprocess (SQLite) and a loopback load generator (keep-alive raw HTTP/1.1,
every event unique, gzip like the SDKs). Bounded in count and in time.

1. **Sustained**: ``--connections`` clients send as fast as the collector answers for
   ``--duration`` seconds (or ``--max-events``). Reported: events acknowledged (HTTP 200, durably
   queued), errors, events stored once the queue is drained, lost = acknowledged - stored
   (must be 0), and the RSS of the server and its children (at 10 % of the run, at the end, peak).
2. **Attack mix**: the same normal traffic for ``--mix-duration`` seconds alone, then with
   attackers beside it (tests/support/attackers.py: gzip bombs without a key and with one,
   headers and bodies trickled a byte at a time, 15 MiB attachment envelopes at full speed), then
   alone again. Normal traffic must keep >= 80 % of its throughput (against the mean of the two
   quiet windows).

    python bench/load_bench.py                       # 10 minutes sustained, 30 s windows
    python bench/load_bench.py --duration 60         # a shorter run
    python bench/load_bench.py --smoke --json        # the test suite's ~20 s version, as JSON

3. **A/B of the attack mix** (``--ab DIR``): the mix against this tree's collector and against
   the one whose ``src/`` is ``DIR`` (for example ``git archive <commit> src | tar -x -C DIR``),
   alternating for ``--rounds`` rounds on a shared machine; the medians and each round's ratios.

``--postgres URL`` runs the attack mix (and its A/B) on PostgreSQL instead of SQLite: each
collector gets a fresh schema of that database, dropped after its run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import multiprocessing
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

# _harness puts the repository on sys.path.
from _harness import ROOT, alternating, machine_line, median, table, write_section
from tripwire_server.store import open_store

# isort: split
from tests.support.attackers import Attackers, bomb, rss_tree_mib

EVENT_TEMPLATE = json.dumps(
    {
        "event_id": "@@ID@@",
        "platform": "python",
        "level": "error",
        "release": "shop@2.3.1",
        "environment": "production",
        "tags": {"region": "eu-west"},
        "exception": {
            "values": [
                {
                    "type": "LoadError",
                    "value": "order failed",
                    "stacktrace": {
                        "frames": [
                            {
                                "module": f"app.mod_{n}",
                                "function": f"handler_{n}",
                                "lineno": 10 + n,
                                "filename": f"app/mod_{n}.py",
                                "in_app": True,
                                "context_line": f"    result = handler_{n + 1}(request, payload)",
                            }
                            for n in range(20)
                        ]
                    },
                }
            ]
        },
    }
).encode()


def make_body() -> tuple[bytes, str]:
    """A unique gzip envelope of one ~4 KB event, and its id (cheap: a template and gzip level 1)."""
    event_id = uuid.uuid4().hex
    payload = EVENT_TEMPLATE.replace(b"@@ID@@", event_id.encode())
    raw = b'{"event_id": "%s"}\n{"type": "event", "length": %d}\n%s\n' % (
        event_id.encode(),
        len(payload),
        payload,
    )
    return gzip.compress(raw, 1), event_id


class Load:
    """``connections`` keep-alive clients posting unique events until ``stop`` or ``max_events``."""

    def __init__(self, port: int, project: int, key: str, connections: int, max_events: int) -> None:
        self.port, self.project, self.key = port, project, key
        self.connections, self.max_events = connections, max_events
        self.sent = self.acked = self.errors = 0
        self.stop = threading.Event()
        self.window: list[float] = []  # acknowledgement times, for per-window throughput
        self.latencies: list[float] = []  # seconds from send to acknowledgement, as ``window``

    def run(self, duration: float) -> None:
        asyncio.run(self._run(time.monotonic() + duration))

    async def _run(self, deadline: float) -> None:
        await asyncio.gather(*(self._client(deadline) for _ in range(self.connections)))

    async def _client(self, deadline: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"POST /api/{self.project}/envelope/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: gzip\r\n"
            f"X-Sentry-Auth: Sentry sentry_version=7, sentry_key={self.key}\r\n"
        )
        try:
            while time.monotonic() < deadline and not self.stop.is_set() and self.sent < self.max_events:
                body, _ = make_body()
                self.sent += 1
                sent = time.monotonic()
                writer.write((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
                header = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in header.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if header.split(b" ", 2)[1] == b"200":
                    self.acked += 1
                    now = time.monotonic()
                    self.window.append(now)
                    self.latencies.append(now - sent)
                else:
                    self.errors += 1
        except (OSError, asyncio.IncompleteReadError):
            self.errors += 1
        finally:
            writer.close()

    def rate_between(self, start: float, end: float) -> float:
        return sum(1 for t in self.window if start <= t < end) / (end - start)

    def latency_ms_between(self, start: float, end: float, quantile: float) -> float:
        """The ``quantile`` of the acknowledgement latency (ms) of requests acknowledged then."""
        chosen = sorted(d for t, d in zip(self.window, self.latencies, strict=True) if start <= t < end)
        if not chosen:
            return 0.0
        return 1000 * chosen[min(len(chosen) - 1, int(quantile * len(chosen)))]


def serve(
    data_dir: str, src: str | None = None, extra: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """A ``tripwire serve`` subprocess; ``src``: another tree's ``src/`` to run instead of this one;
    ``extra``: more command-line arguments."""
    env = dict(os.environ)
    if src is not None:
        # PYTHONPATH comes before the editable install's path entry.
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tripwire_server",
            "serve",
            "--port",
            "0",
            "--json",
            "--data-dir",
            data_dir,
            "--retention-max-events",
            "0",
            "--retention-days",
            "0",
            *(extra or []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def sustained(duration: float, connections: int, max_events: int) -> dict[str, Any]:
    load_average = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as data_dir:
        proc, info = serve(data_dir)
        pid, port = int(info["pid"]), int(info["url"].rstrip("/").rsplit(":", 1)[1])
        key, project = info["dsn"].split("//", 1)[1].split("@", 1)[0], int(info["dsn"].rsplit("/", 1)[1])
        store = open_store(f"sqlite:///{Path(data_dir) / 'tripwire.sqlite3'}")
        try:
            time.sleep(0.5)
            before = store.issues.count_events()
            load = Load(port, project, key, connections, max_events)
            samples: list[tuple[float, float]] = []
            thread = threading.Thread(target=load.run, args=(duration,))
            started = time.monotonic()
            thread.start()
            while thread.is_alive():
                samples.append((time.monotonic() - started, rss_tree_mib(pid)))
                thread.join(1.0)
            elapsed = time.monotonic() - started
            drain_deadline = time.monotonic() + 600
            while store.queue.queue_depth() > 0 and time.monotonic() < drain_deadline:
                time.sleep(0.2)
            stored = store.issues.count_events() - before
            samples.append((time.monotonic() - started, rss_tree_mib(pid)))
        finally:
            store.close()
            proc.terminate()
            proc.wait(30)
    early = next((rss for t, rss in samples if t >= elapsed * 0.1), samples[0][1])
    return {
        "load": load_average,
        "seconds": elapsed,
        "sent": load.sent,
        "acked": load.acked,
        "acked_per_s": load.acked / elapsed,
        "errors": load.errors,
        "stored": stored,
        "lost": load.acked - stored,
        "rss_early_mib": early,
        "rss_end_mib": samples[-1][1],
        "rss_peak_mib": max(rss for _, rss in samples),
    }


#: kind -> (connections, attempts per second per connection; None: as fast as answered).
MIX: dict[str, tuple[int, float | None]] = {
    "bomb-keyless": (10, 20.0),
    "bomb-dsn": (10, 5.0),
    "bomb-key": (10, 5.0),
    "slow-headers": (20, None),
    "slow-body": (20, None),
    "big-attachment": (1, 1.0),
}


#: The attackers' own loopback address: a server tells attackers from its normal clients by their
#: address, as on the internet (the load generator's clients come from 127.0.0.1).
ATTACKER_ADDRESS = "127.0.0.2"


def _attack_process(
    mix: dict[str, tuple[int, float | None]], port: int, project: int, key: str, until: float, out: Any
) -> None:
    """Runs in its own process, so the attackers' CPU never slows the load generator's clients.
    Attacks until ``until`` (``time.monotonic()``: on Linux one clock for all processes), the end
    of the attacked window, however long this process took to start."""
    # Built before the clock starts (cached).
    for first in ({}, {"dsn": f"http://{key}@127.0.0.1:{port}/{project}"}):
        bomb(json.dumps(first).encode() + b"\n")
    groups = [
        Attackers(
            kind, n, port=port, project_id=project, key=key, pause=4.0, rate=rate, source=ATTACKER_ADDRESS
        ).start()
        for kind, (n, rate) in mix.items()
    ]
    cpu, started = time.process_time(), time.monotonic()
    time.sleep(max(0.0, until - started))
    for group in groups:
        group.stop()
    outcomes: dict[str, Any] = {group.kind: dict(group.outcomes) for group in groups}
    # On a shared machine the attackers' own CPU comes out of the server's: say how much.
    seconds = max(time.monotonic() - started, 1e-3)
    outcomes["attacker CPU s/s"] = round((time.process_time() - cpu) / seconds, 2)
    out.put(outcomes)


@contextlib.contextmanager
def fresh_schema(url: str | None) -> Iterator[list[str]]:
    """``tripwire serve`` arguments for a fresh schema of the PostgreSQL database ``url``
    (dropped afterwards); none for ``None`` (SQLite in the data directory)."""
    if url is None:
        yield []
        return
    import psycopg

    schema = f"tw_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            sep = "&" if "?" in url else "?"
            yield ["--database-url", f"{url}{sep}options={quote(f'-csearch_path={schema}')}"]
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def attack_mix(
    window: float,
    connections: int,
    src: str | None = None,
    extra: list[str] | None = None,
    postgres: str | None = None,
) -> dict[str, Any]:
    load_average = os.getloadavg()[0]
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as data_dir, fresh_schema(postgres) as database:
        proc, info = serve(data_dir, src, [*database, *(extra or [])])
        pid, port = int(info["pid"]), int(info["url"].rstrip("/").rsplit(":", 1)[1])
        key, project = info["dsn"].split("//", 1)[1].split("@", 1)[0], int(info["dsn"].rsplit("/", 1)[1])
        try:
            time.sleep(0.5)
            load = Load(port, project, key, connections, 10**9)
            outcomes = ctx.Queue()
            thread = threading.Thread(target=load.run, args=(3 * window,))
            t0 = time.monotonic()
            thread.start()
            time.sleep(window - 1.0)
            # A second to start and build its payloads, then it attacks to the end of the window.
            attack_until = time.monotonic() + 1.0 + window
            attackers = ctx.Process(
                target=_attack_process, args=(MIX, port, project, key, attack_until, outcomes)
            )
            attackers.start()
            time.sleep(1.0)
            t1 = time.monotonic()
            peak = rss_tree_mib(pid)
            while time.monotonic() < t1 + window:
                peak = max(peak, rss_tree_mib(pid))
                time.sleep(0.5)
            t2 = time.monotonic()
            attacks = outcomes.get(timeout=60)
            attackers.join(30)
            thread.join()
            t3 = time.monotonic()
        finally:
            proc.terminate()
            proc.wait(30)
    quiet = (load.rate_between(t0, t0 + window - 1.0) + load.rate_between(t2 + 1.0, t3)) / 2
    attacked = load.rate_between(t1, t2)
    return {
        "load": load_average,
        "window": window,
        "quiet_per_s": quiet,
        "attacked_per_s": attacked,
        "ratio": attacked / quiet if quiet else 0.0,
        # Where a stall shows even when the machine's load hides it in the throughput.
        "p99_ms_quiet": load.latency_ms_between(t0, t0 + window - 1.0, 0.99),
        "p99_ms_attacked": load.latency_ms_between(t1, t2, 0.99),
        "max_ms_attacked": load.latency_ms_between(t1, t2, 1.0),
        "errors": load.errors,
        "rss_peak_mib": peak,
        "attacks": attacks,
    }


def sustained_section(args: argparse.Namespace, load: dict[str, Any]) -> str:
    headers = ["seconds", "acknowledged", "ack/s", "errors", "stored", "lost"]
    headers += ["RSS at 10 % MiB", "RSS at end MiB", "RSS peak MiB"]
    keys = ["seconds", "acked", "acked_per_s", "errors", "stored", "lost"]
    keys += ["rss_early_mib", "rss_end_mib", "rss_peak_mib"]
    return (
        f"`bench/load_bench.py --only sustained --duration {args.duration:.0f} --connections"
        f" {args.connections}` — {machine_line()}, load average {load['load']:.1f} at the start. A real"
        " `tripwire serve` (SQLite, digest in its child process) and a loopback load generator of"
        " keep-alive clients sending unique ~4 KB gzip events as fast as they are answered; the"
        " machine is shared, so rates vary with other jobs. *lost* = acknowledged (HTTP 200) -"
        " stored once the queue is drained. *RSS* is the server and its"
        " children.\n\n" + table(headers, [[load[k] for k in keys]])
    )


def mix_section(args: argparse.Namespace, mix: dict[str, Any]) -> str:
    attackers = ", ".join(
        f"{n} × {kind}" + (f" at {rate:g}/s each" if rate else " (held open)")
        for kind, (n, rate) in MIX.items()
    )
    row = [
        mix["quiet_per_s"],
        mix["attacked_per_s"],
        f"{mix['ratio'] * 100:.0f} %",
        mix["errors"],
        mix["rss_peak_mib"],
        "; ".join(f"{k}: {v}" for k, v in mix["attacks"].items()),
    ]
    return (
        f"`bench/load_bench.py --only mix --mix-duration {args.mix_duration:.0f} --connections"
        f" {args.connections}` — {machine_line()}, load average {mix['load']:.1f} at the start. The same"
        " normal traffic alone, then beside attackers"
        f" ({attackers}; from a separate process), then alone again, {args.mix_duration:.0f} s each."
        " Target: normal traffic keeps ≥ 80 % of its quiet throughput (the mean of the two quiet"
        " windows). *attack requests*: what each attacker got back (*held*: still waiting when stopped).\n\n"
        + table(
            ["quiet ack/s", "under attack ack/s", "kept", "errors", "RSS peak MiB", "attack requests"], [row]
        )
    )


def attack_mix_ab(
    window: float,
    connections: int,
    old_src: str,
    rounds: int,
    old_args: list[str] | None = None,
    new_args: list[str] | None = None,
    postgres: str | None = None,
) -> dict[str, Any]:
    """The mix against the old tree and this one, alternating (old new, new old, ...); each
    ``tripwire serve`` gets its variant's extra arguments."""
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for _, variant in alternating(["old", "new"], rounds):
        if variant == "old":
            mix = attack_mix(window, connections, old_src, old_args, postgres)
        else:
            mix = attack_mix(window, connections, None, new_args, postgres)
        runs[variant].append(mix)
        line = (
            f"{variant}: kept {mix['ratio'] * 100:.0f} % (load {mix['load']:.1f}); ack p99 quiet"
            f" {mix['p99_ms_quiet']:.0f} ms, attacked {mix['p99_ms_attacked']:.0f} ms"
            f" (max {mix['max_ms_attacked']:.0f} ms)"
        )
        print(line, file=sys.stderr, flush=True)
    return {
        variant: {
            "ratios": [m["ratio"] for m in done],
            "median_ratio": median(m["ratio"] for m in done),
            "median_quiet_per_s": median(m["quiet_per_s"] for m in done),
            "median_attacked_per_s": median(m["attacked_per_s"] for m in done),
            "loads": [m["load"] for m in done],
            "p99_ms_quiet": [m["p99_ms_quiet"] for m in done],
            "p99_ms_attacked": [m["p99_ms_attacked"] for m in done],
            "max_ms_attacked": [m["max_ms_attacked"] for m in done],
            "attacks": done[-1]["attacks"],
        }
        for variant, done in runs.items()
    }


def ab_section(args: argparse.Namespace, ab: dict[str, Any]) -> str:
    rows = [
        [
            variant,
            f"{r['median_ratio'] * 100:.0f} %",
            " / ".join(f"{x * 100:.0f}" for x in r["ratios"]),
            r["median_quiet_per_s"],
            r["median_attacked_per_s"],
            f"{median(r['p99_ms_quiet']):.0f} / {median(r['p99_ms_attacked']):.0f}",
            " / ".join(f"{x:.0f}" for x in r["max_ms_attacked"]),
            " / ".join(f"{x:.1f}" for x in r["loads"]),
        ]
        for variant, r in ab.items()
    ]
    return (
        f"`bench/load_bench.py --ab OLD_SRC --rounds {args.rounds} --mix-duration {args.mix_duration:.0f}"
        f" --connections {args.connections}` — {machine_line()}. The attack mix above against the old"
        " collector and the new one, alternating (old new, new old, ...), on a machine shared with other"
        " jobs: *kept* is the median of the rounds, then each round's figure (%), the normal clients'"
        " acknowledgement latency (medians of the rounds' 99th percentiles; the slowest of each round)"
        " and the load average at the start of each round.\n\n"
        + table(
            [
                "collector",
                "kept (median)",
                "kept per round %",
                "quiet ack/s",
                "attacked ack/s",
                "ack p99 ms quiet / attacked",
                "slowest ack ms attacked, per round",
                "load",
            ],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of sustained load")
    parser.add_argument("--max-events", type=int, default=2_000_000, help="events sent at most")
    parser.add_argument("--mix-duration", type=float, default=30.0, help="seconds of each attack-mix window")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", choices=["sustained", "mix"], help="run one of the two parts")
    parser.add_argument("--smoke", action="store_true", help="the short version the test suite runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument("--ab", metavar="OLD_SRC", help="A/B the attack mix against another tree's src/")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the A/B (each runs both)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run the attack mix on this PostgreSQL database (a fresh schema each run)",
    )
    parser.add_argument(
        "--attackers", help="only these attacker kinds of the mix, comma-separated (to see what each costs)"
    )
    parser.add_argument(
        "--old-args", default="", help="extra `tripwire serve` arguments of the A/B's old side (one string)"
    )
    parser.add_argument(
        "--new-args", default="", help="extra `tripwire serve` arguments of this tree's server (one string)"
    )
    args = parser.parse_args()
    if args.attackers:
        kinds = args.attackers.split(",")
        unknown = sorted(set(kinds) - set(MIX))
        if unknown:
            parser.error(f"unknown attacker kinds {unknown}; known: {', '.join(MIX)}")
        for kind in list(MIX):
            if kind not in kinds:
                del MIX[kind]
    if args.smoke:
        args.duration, args.mix_duration, args.connections, args.no_write = 3.0, 3.5, 8, True
    results: dict[str, Any] = {}
    sections: list[tuple[str, str]] = []
    if args.ab:
        results["ab"] = attack_mix_ab(
            args.mix_duration,
            args.connections,
            args.ab,
            args.rounds,
            shlex.split(args.old_args),
            shlex.split(args.new_args),
            args.postgres,
        )
        title = "Collector under attack: A/B of the ingest changes"
        sections.append((title, ab_section(args, results["ab"])))
    elif args.only in (None, "sustained"):
        results["sustained"] = sustained(args.duration, args.connections, args.max_events)
        sections.append(("Collector under sustained load", sustained_section(args, results["sustained"])))
    if not args.ab and args.only in (None, "mix"):
        results["mix"] = attack_mix(
            args.mix_duration, args.connections, None, shlex.split(args.new_args), args.postgres
        )
        sections.append(("Collector under attack, beside normal traffic", mix_section(args, results["mix"])))
    if args.json:
        print(json.dumps(results))
    for title, body in sections:
        if not args.no_write:
            write_section(title, body)
        if not args.json:
            print(f"## {title}\n\n{body}\n")


if __name__ == "__main__":
    main()
