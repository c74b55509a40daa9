"""CPU cost of profiling at 101 Hz: tripwire's profiler vs sentry-sdk's, on a CPU-bound and an I/O-bound
Starlette endpoint, each against the same SDK with tracing only (profiling off) and a bare app.

Every (variant, round) runs in a fresh interpreter (sentry-sdk patches Starlette for the whole
process), variants alternate (A B C D E, E D C B A, ...), figures are medians over rounds. The app is
called in-process (no sockets: the socket layer would only add the same cost to every row); both SDKs
deliver for real to a loopback sink in this process. Children run under ``nice -n -10`` when allowed,
so the other jobs of a shared machine disturb them less.

    python bench/profiling_bench.py [--rounds 5] [--requests 30] [--ms 50] [--work 200]

Each request of ``/work`` runs a fixed amount of pure-Python CPU work on the event loop's thread
(``--work`` rounds, ~50 ms); each request of ``/io`` awaits ``--ms`` of ``asyncio.sleep``. "CPU" is
the process CPU time (every thread: the sampler's and the SDK's workers too) from the first request
to the end of a flush, per request.
"Profiler cost" is the CPU the profiler adds over the same SDK with tracing only: as a share of the
CPU-bound endpoint's CPU, and as a share of one core over the I/O-bound run's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.sink import Sink

from _harness import ROOT, alternating, machine_line, median, table, write_section

VARIANTS = ("bare", "tripwire", "tripwire+profiles", "sentry", "sentry+profiles")

CHILD = r"""
import asyncio, json, sys, time
sys.path.insert(0, {root!r})
variant, dsn = sys.argv[1], sys.argv[2]
requests, ms, work = (int(a) for a in sys.argv[3:6])
profiles = variant.endswith("+profiles")
wrap = None
if variant.startswith("tripwire"):
    import tripwire
    from tripwire.asgi import TripwireMiddleware
    extra = {{"profiles_sample_rate": 1.0}} if profiles else {{}}
    tripwire.init(dsn, traces_sample_rate=1.0, include_local_variables=False, **extra)
    wrap = TripwireMiddleware
    flush = lambda: tripwire.flush(10)
elif variant.startswith("sentry"):
    import sentry_sdk
    extra = {{"profiles_sample_rate": 1.0}} if profiles else {{}}
    sentry_sdk.init(dsn, traces_sample_rate=1.0, **extra)
    flush = lambda: sentry_sdk.flush(10)
else:
    flush = lambda: None
from tests.profiling.apps import starlette_app
app = starlette_app(wrap)

def scope(path, query):
    return {{"type": "http", "asgi": {{"version": "3.0"}}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "root_path": "", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}}

async def receive():
    return {{"type": "http.request", "body": b"", "more_body": False}}

async def send(message):
    pass

QUERY = {{"/work": f"rounds={{work}}", "/io": f"ms={{ms}}"}}

async def run(path, n):
    for _ in range(n):
        await app(scope(path, QUERY[path]), receive, send)

def sampler_cpu():
    # The CPU clock of the profiler's own thread (tripwire-profiler, sentry.profiler.ThreadScheduler).
    import threading
    for thread in threading.enumerate():
        if "profiler" in thread.name.lower():
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return 0.0

async def main():
    out = {{}}
    await run("/work", 3)
    await run("/io", 3)
    await asyncio.to_thread(flush)
    for path in ("/work", "/io"):
        s0 = sampler_cpu()
        c0, t0 = time.process_time(), time.perf_counter()
        await run(path, requests)
        await asyncio.to_thread(flush)
        out[path] = {{"cpu": time.process_time() - c0, "wall": time.perf_counter() - t0,
                     "sampler": sampler_cpu() - s0}}
    return out

print(json.dumps(asyncio.run(main())))
"""


def _nice() -> list[str]:
    # Negative niceness needs root; without it the children simply run at the default priority.
    if shutil.which("nice") and os.geteuid() == 0:
        return ["nice", "-n", "-10"]
    return []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--ms", type=int, default=50, help="sleep per /io request (ms)")
    parser.add_argument(
        "--work", type=int, default=200, help="checksum rounds per /work request (~0.25 ms each)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    script = CHILD.format(root=str(ROOT))
    results: dict[str, dict[str, list[dict[str, float]]]] = {v: {"/work": [], "/io": []} for v in VARIANTS}
    profiles: dict[str, int] = dict.fromkeys(VARIANTS, 0)
    with Sink() as sink:
        for r, variant in alternating(VARIANTS, args.rounds):
            before = len(sink.items("profile"))
            out = subprocess.run(
                [
                    *_nice(),
                    sys.executable,
                    "-c",
                    script,
                    variant,
                    sink.dsn,
                    str(args.requests),
                    str(args.ms),
                    str(args.work),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            )
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            for path in ("/work", "/io"):
                results[variant][path].append(figures[path])
            profiles[variant] += len(sink.items("profile")) - before
            print(f"round {r} {variant}: {figures}", file=sys.stderr)

    def cpu_per_request(variant: str, path: str) -> float:
        return median(f["cpu"] for f in results[variant][path]) / (args.requests) * 1e3

    def io_core_share(variant: str, base: str) -> float:
        extra = median(f["cpu"] for f in results[variant]["/io"]) - median(
            f["cpu"] for f in results[base]["/io"]
        )
        return extra / median(f["wall"] for f in results[variant]["/io"]) * 100

    rows = []
    for variant in VARIANTS:
        base = variant.removesuffix("+profiles")
        slow, io = cpu_per_request(variant, "/work"), cpu_per_request(variant, "/io")
        if variant.endswith("+profiles"):
            cost_cpu = (slow / cpu_per_request(base, "/work") - 1) * 100
            cost_io = io_core_share(variant, base)
            cost = (f"{cost_cpu:+.2f} %", f"{cost_io:+.2f} % of a core")
        else:
            cost = ("-", "-")
        per_round = (
            profiles[variant] / args.rounds / (2 * args.requests + 6) if variant.endswith("+profiles") else 0
        )
        sampler = median(
            sum(f["sampler"] for f in (w, i)) / (w["wall"] + i["wall"]) * 100
            for w, i in zip(results[variant]["/work"], results[variant]["/io"], strict=True)
        )
        rows.append((variant, slow, io, *cost, f"{sampler:.2f} %", f"{per_round:.2f}"))
    priority = "children under `nice -n -10`" if _nice() else "default priority (nice not allowed)"
    command = (
        f"python bench/profiling_bench.py --rounds {args.rounds} --requests {args.requests} "
        f"--ms {args.ms} --work {args.work}"
    )
    body = "\n".join(
        [
            f"`{command}` ({machine_line()}; {priority}; {args.rounds} alternating rounds, medians). "
            "Both profilers sample at 101 Hz, every transaction profiled (`profiles_sample_rate=1.0`); "
            "the `tripwire` / `sentry` rows are the same SDK with tracing only.",
            "",
            table(
                [
                    "variant",
                    f"CPU ms/request, /work ({args.work} rounds)",
                    f"CPU ms/request, /io ({args.ms} ms sleep)",
                    "profiler cost, CPU-bound",
                    "profiler cost, I/O-bound",
                    "sampler thread CPU, % of a core",
                    "profiles sent per request",
                ],
                rows,
            ),
            "",
            "Profiler cost, CPU-bound: the extra process CPU per `/work` request over the same SDK "
            "without profiling, as a share of it. I/O-bound: the extra CPU of the `/io` run as a share "
            "of one core over its wall time (the sampler wakes 101 times a second whatever the app "
            "does). Sampler thread CPU: the CPU clock of the profiler's own thread "
            "(`tripwire-profiler`, `sentry.profiler.ThreadScheduler`) over both runs' wall time: the "
            "least noisy figure here, since it does not depend on the app's CPU time; the building "
            "of payloads (tripwire: on its worker; sentry-sdk: on the request's thread) is in the "
            "other two columns only. Profiles sent per request: `profile` items that reached the sink "
            "per profiled request (both SDKs drop profiles with fewer than two samples).",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("Profiling", body)


if __name__ == "__main__":
    main()
