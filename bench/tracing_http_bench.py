"""What performance tracing costs over HTTP: uvicorn under wrk, per SDK and tracing setting, side by side.

The endpoint is bench/tracing_bench.py's (one outgoing http.client call to a loopback server and two
sqlite3 queries); a fresh uvicorn process (uvloop, httptools) serves it per round and variant, wrk
drives it, variants alternate, figures are medians. The loopback server the endpoint calls runs in
a process of its own; the sink the SDKs report to runs in this one. Every process of the benchmark
(uvicorn, wrk, this one) runs under ``nice -n -10`` when allowed, so that other jobs of a shared
machine disturb it less.

    python bench/tracing_http_bench.py [--rounds 3] [--duration 5] [--conns 4]

"server CPU µs/req" is the uvicorn process's CPU time (all threads, from /proc) during the wrk run
divided by the requests wrk completed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.sink import Sink

import tracing_bench
from _harness import alternating, machine_line, median, table, write_section
from http_bench import _ms, cpu_seconds, free_port, stop, wait_ready
from tracing_bench import BEFORE, CHILD, VARIANTS, Upstream, variant_source

# The app of tracing_bench.py's child (everything before its in-process driver), served by uvicorn.
SERVER = (
    CHILD.split("def scope():", 1)[0].replace(
        "variant, sink_url, upstream, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])",
        "variant, sink_url, upstream, serve_port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])",
    )
    + """
import uvicorn
uvicorn.run(app, host="127.0.0.1", port=serve_port, loop="uvloop", http="httptools", log_level="warning",
            access_log=False, lifespan="off")
"""
)


def _nice() -> list[str]:
    # Raising priority needs root; without it the benchmark still runs, at normal priority.
    return ["nice", "-n", "-10"] if os.geteuid() == 0 else []


def wrk(url: str, duration: float, conns: int) -> dict[str, Any]:
    out = subprocess.run(
        [*_nice(), "wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
    }


def run_variant(variant: str, sink: Sink, upstream: Upstream, duration: float, conns: int) -> dict[str, Any]:
    port = free_port()
    name, src = variant_source(variant)
    env = dict(os.environ, PYTHONPATH=src)
    proc = subprocess.Popen(
        [*_nice(), sys.executable, "-c", SERVER, name, sink.url, upstream.url, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, proc, path="/work")
        wrk(f"http://127.0.0.1:{port}/work", 1, conns)  # warm-up
        cpu0 = cpu_seconds(proc.pid)
        result = wrk(f"http://127.0.0.1:{port}/work", duration, conns)
        result["cpu_us"] = (cpu_seconds(proc.pid) - cpu0) / max(result["requests"], 1) * 1e6
    finally:
        stop(proc)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--conns", type=int, default=4)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--dry-run", action="store_true", help="print the table, leave RESULTS.md alone")
    parser.add_argument(
        "--before-src", help="also run the tripwire variants on this src, as before:<variant>"
    )
    args = parser.parse_args()
    variants = args.variants.split(",")
    if args.before_src:
        tracing_bench.before_src = args.before_src
        variants += [BEFORE + v for v in variants if v.startswith("tripwire") and not v.endswith("-curl")]
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    upstream = Upstream()
    try:
        with Sink() as sink:
            for r, variant in alternating(variants, args.rounds):
                res = run_variant(variant, sink, upstream, args.duration, args.conns)
                results[variant].append(res)
                print(f"round {r} {variant}: {res}", file=sys.stderr)
    finally:
        upstream.close()

    def med(variant: str, key: str) -> float:
        return median(x[key] for x in results[variant])

    bare = med("bare", "rps") if "bare" in results else float("nan")
    rows = [
        [v, med(v, "rps"), f"{med(v, 'rps') / bare:.2f}"]
        + [med(v, "p50_ms"), med(v, "p99_ms"), med(v, "cpu_us")]
        for v in variants
    ]
    body = (
        f"`bench/tracing_http_bench.py --rounds {args.rounds} --duration {args.duration:g} --conns "
        f"{args.conns}` — {machine_line()}. uvicorn (uvloop, httptools) serving the endpoint of the "
        "in-process table above (one outgoing http.client call to a loopback server, two sqlite3 "
        "queries) under wrk; a fresh server per variant and round, variants alternated, medians; server "
        "and wrk under `nice -n -10`; the loopback server runs in a process of its own, the SDKs' sink in "
        "the benchmark's.\n\n"
        + table(["variant", "req/s", "×bare", "p50 ms", "p99 ms", "server CPU µs/req"], rows)
        + "\n\nTarget (issue 13): tripwire traced ≥ 0.85x bare (sentry-sdk about 0.3x)."
    )
    if not args.dry_run:
        write_section("Tracing over HTTP", body)
    print(body)


if __name__ == "__main__":
    main()
