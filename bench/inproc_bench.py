"""ASGI request overhead in-process: the Starlette app called directly (no sockets), per SDK.

Each (variant, round) runs in a fresh interpreter, since sentry-sdk patches Starlette for the whole
process; variants alternate (A B C D, D C B A, ...); figures are medians over rounds. The SDKs deliver
for real to a loopback sink (tests/support/sink.py) in this process.

    python bench/inproc_bench.py [--rounds 3] [--n-ok 20000] [--n-boom 500]

Columns: µs per request on the happy path (/ok) and the failing path (/boom, which raises
ValueError through Starlette); "loop CPU" is the CPU time of the event-loop thread alone
(time.thread_time), i.e. what the request costs the loop, without the SDK's own threads.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# bench/ for the helpers, the repository root for tests.support.sink
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.sink import Sink

from _asgi_variants import VARIANTS, reported
from _harness import ROOT, alternating, machine_line, median, table, write_section

CHILD = r"""
import asyncio, json, sys, time
sys.path.insert(0, {bench!r})
from _asgi_variants import build, flush, http_scope, receive, send

variant, sink_url, n_ok, n_boom = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
app = build(variant, sink_url)
async def one(path):
    scope = http_scope(path)
    try:
        await app(scope, receive, send)
    except Exception:
        pass

async def loop(path, n):
    t0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(n):
        await one(path)
    return (time.perf_counter() - t0) / n * 1e6, (time.thread_time() - c0) / n * 1e6

async def main():
    if n_boom < 0:  # instruction counting: nothing but n_ok requests to /ok
        await loop("/ok", n_ok)
        return {{}}
    await loop("/ok", 500)
    await loop("/boom", 20)
    await asyncio.to_thread(flush, variant)  # warm-up events must not compete with the timed loops
    ok_wall, ok_cpu = await loop("/ok", n_ok)
    boom_wall, boom_cpu = await loop("/boom", n_boom)
    return dict(ok_us=ok_wall, ok_cpu_us=ok_cpu, boom_us=boom_wall, boom_cpu_us=boom_cpu)

result = asyncio.run(main())
flush(variant)
print(json.dumps(result))
"""


def run_child(variant: str, sink: Sink, n_ok: int, n_boom: int) -> dict[str, float]:
    code = CHILD.format(bench=str(Path(__file__).resolve().parent))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run(
        [sys.executable, "-c", code, variant, sink.url, str(n_ok), str(n_boom)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def instructions_per_request(variant: str, sink: Sink, small: int = 300, large: int = 1300) -> float:
    """Instructions (valgrind callgrind) one /ok request costs: two runs, the difference per request.

    Deterministic, unlike times on a shared machine (the hash seed is fixed for that).
    """
    code = CHILD.format(bench=str(Path(__file__).resolve().parent))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONHASHSEED="0")
    counts = []
    for n in (small, large):
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", code]
            + [variant, sink.url, str(n), "-1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=1200,
            check=True,
        )
        match = re.search(r"Collected : (\d+)", out.stderr)
        if match is None:
            raise RuntimeError(f"no callgrind total for {variant}:\n{out.stderr[-2000:]}")
        counts.append(int(match.group(1)))
    return (counts[1] - counts[0]) / (large - small)


def _accounted(runs: list[tuple[int, int]], failing: int) -> str:
    events = median(e for e, _ in runs)
    counted = median(c for _, c in runs)
    return f"{events:.0f} + {counted:.0f} / {failing}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-ok", type=int, default=20000)
    parser.add_argument("--n-boom", type=int, default=500)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--dry-run", action="store_true", help="print the table, leave RESULTS.md alone")
    parser.add_argument(
        "--no-callgrind", action="store_true", help="skip counting instructions per request with valgrind"
    )
    args = parser.parse_args()
    variants = args.variants.split(",")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    delivered: dict[str, list[tuple[int, int]]] = {v: [] for v in variants}
    with Sink() as sink:
        for r, variant in alternating(variants, args.rounds):
            events0, counted0 = reported(sink)
            res = run_child(variant, sink, args.n_ok, args.n_boom)
            target = events0 + counted0 + args.n_boom + 20
            sink.wait_until(lambda t=target: sum(reported(sink)) >= t, timeout=5)
            events, counted = reported(sink)
            delivered[variant].append((events - events0, counted - counted0))
            results[variant].append(res)
            print(f"round {r} {variant}: {res}", file=sys.stderr)

    def med(variant: str, key: str) -> float:
        return median(x[key] for x in results[variant])

    bare_ok, bare_boom = med("bare", "ok_us"), med("bare", "boom_us")
    bare_ok_cpu, bare_boom_cpu = med("bare", "ok_cpu_us"), med("bare", "boom_cpu_us")
    rows = []
    for v in variants:
        ok, boom = med(v, "ok_us"), med(v, "boom_us")
        ok_cpu, boom_cpu = med(v, "ok_cpu_us"), med(v, "boom_cpu_us")
        rows.append(
            [
                v,
                ok,
                f"{bare_ok / ok:.2f}",
                ok_cpu,
                f"{ok_cpu - bare_ok_cpu:+.1f}",
                boom,
                f"{bare_boom / boom:.2f}",
                boom_cpu,
                f"{boom_cpu - bare_boom_cpu:+.0f}",
                _accounted(delivered[v], args.n_boom + 20) if v != "bare" else "–",
            ]
        )
    body = (
        f"`bench/inproc_bench.py --rounds {args.rounds} --n-ok {args.n_ok} --n-boom {args.n_boom}` — "
        f"{machine_line()}. Trivial Starlette app called in-process (no sockets); one fresh interpreter "
        "per variant and round, variants alternated, medians. Each SDK reports to a loopback sink at "
        "defaults (sentry-sdk: its auto-enabled Starlette integration, tracing off; bugsnag: "
        "BugsnagMiddleware; tripwire: TripwireMiddleware), all with a release set (so all track "
        "sessions).\n\n"
        + table(
            [
                "variant",
                "/ok µs/req (wall)",
                "/ok ×bare",
                "/ok loop CPU µs/req",
                "/ok added loop CPU µs",
                "/boom µs/req (wall)",
                "/boom ×bare",
                "/boom loop CPU µs/req",
                "/boom added loop CPU µs",
                "events sent + occurrences counted / failing requests",
            ],
            rows,
        )
        + "\n\n*loop CPU* is `time.thread_time()` of the event loop's thread: what a request costs the "
        "loop itself, and the least noise-sensitive figure on a shared machine (wall times include other "
        "processes and, for tripwire, its worker thread's GIL share while it builds and sends the events "
        "in the background; sentry-sdk and bugsnag build events on the loop). *occurrences counted*: "
        "failing requests tripwire's repeat limit (60 full events per minute per error, the default) "
        "counted from its client reports instead of building and sending them; `tripwire-every-event` "
        "has `repeat_limit=None`; `tripwire-tracked` has `track_response_status=True` (every response's "
        "status watched, two more Python calls per request); `passthrough` is an empty pure-ASGI "
        "middleware, the floor any middleware layer costs.\n\n"
        "Targets: happy path under 3 µs added per request; failing path ≥ 0.8× bare."
    )
    if not args.no_callgrind and shutil.which("valgrind"):
        with Sink() as sink:
            instr = {v: instructions_per_request(v, sink) for v in variants}
        base = instr["bare"]
        body += (
            "\n\nInstructions per /ok request (valgrind callgrind, two runs of 300 and 1,300 requests, the "
        )
        body += "difference per request; deterministic, so it shows what noise hides):\n\n"
        body += table(
            ["variant", "instructions/request", "added", "×bare"],
            [[v, f"{instr[v]:,.0f}", f"{instr[v] - base:+,.0f}", f"{instr[v] / base:.2f}"] for v in variants],
        )
    if not args.dry_run:
        write_section("ASGI request overhead (in-process)", body)
    print(body)


if __name__ == "__main__":
    main()
