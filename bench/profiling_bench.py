"""CPU cost of profiling at 101 Hz: tripwire's profiler vs sentry-sdk's, on a CPU-bound and an I/O-bound
Starlette endpoint.

Each round runs one fresh interpreter per SDK (sentry-sdk patches Starlette for the whole process),
the SDKs in alternating order. Inside it, blocks of requests alternate between profiled and
unprofiled transactions (``profiles_sampler`` answers 1.0 or 0.0; tracing stays on for both), in
the order off/on, on/off, ...: the comparison is made in the same process, a few seconds apart,
which cancels most of the noise of a shared machine. Figures are medians over blocks, then over
rounds. The app is called in-process (no sockets); both SDKs deliver for real to a loopback sink in
this process. Children run under ``nice -n -10`` when allowed.

    python bench/profiling_bench.py [--rounds 5] [--blocks 6] [--requests 6] [--ms 50] [--work 200]

Each request of ``/work`` runs a fixed amount of pure-Python CPU work on the event loop's thread
(``--work`` rounds, ~50 ms); each request of ``/io`` awaits ``--ms`` of ``asyncio.sleep``. "CPU" is
the process CPU time (every thread: the sampler's and the SDK's workers too) from the first request
of a block to the end of a flush.

A second table times one sampling tick of each SDK alone (tripwire's ``Sampler._tick``, sentry-sdk's
``ThreadScheduler.make_sampler()`` function, each feeding one open transaction profile) over the same
parked threads, in alternating batches on one thread: the per-tick price without the app's noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.sink import Sink

from _harness import ROOT, alternating, machine_line, median, table, write_section

SDKS = ("tripwire", "sentry")

CHILD = r"""
import asyncio, json, sys, time
sys.path.insert(0, {root!r})
sdk, dsn = sys.argv[1], sys.argv[2]
blocks, requests, ms, work = (int(a) for a in sys.argv[3:7])
PROFILE = [0.0]
wrap = None
if sdk == "tripwire":
    import tripwire
    from tripwire.asgi import TripwireMiddleware
    tripwire.init(dsn, traces_sample_rate=1.0, include_local_variables=False,
                  profiles_sampler=lambda context: PROFILE[0])
    wrap = TripwireMiddleware
    flush = lambda: tripwire.flush(10)
else:
    import sentry_sdk
    sentry_sdk.init(dsn, traces_sample_rate=1.0, profiles_sampler=lambda context: PROFILE[0])
    flush = lambda: sentry_sdk.flush(10)
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

async def measure(path):
    s0 = sampler_cpu()
    c0, t0 = time.process_time(), time.perf_counter()
    await run(path, requests)
    await asyncio.to_thread(flush)
    return {{"cpu": time.process_time() - c0, "wall": time.perf_counter() - t0,
            "sampler": sampler_cpu() - s0}}

async def main():
    out = {{f"{{mode}} {{path}}": [] for mode in ("off", "on") for path in ("/work", "/io")}}
    for mode in (1.0, 0.0):
        PROFILE[0] = mode
        await run("/work", 3)
        await run("/io", 3)
    await asyncio.to_thread(flush)
    for block in range(blocks):
        for mode in (("off", "on") if block % 2 == 0 else ("on", "off")):
            PROFILE[0] = 1.0 if mode == "on" else 0.0
            for path in ("/work", "/io"):
                out[f"{{mode}} {{path}}"].append(await measure(path))
    return out

print(json.dumps(asyncio.run(main())))
"""


TICKS = r"""
import json, sys, threading, time
sys.path.insert(0, {root!r})
threads_n, depth, batches, per_batch = (int(a) for a in sys.argv[1:5])
stop = threading.Event()
def parked(n):
    if n:
        return parked(n - 1)
    stop.wait()
for _ in range(threads_n):
    threading.Thread(target=parked, args=(depth,), daemon=True).start()
time.sleep(0.2)

# tripwire: one Sampler tick feeding one open recording (no sampler thread: ticks are called here).
from tripwire._profiler import Recording, Sampler
sampler = Sampler(101)
sampler._recordings = (Recording(),)
def tripwire_tick():
    sampler._tick(-1)
    if len(sampler._recordings[0].ticks) > 5000:
        sampler._recordings = (Recording(),)

# sentry-sdk: its scheduler's sampling function feeding one active transaction profile.
from sentry_sdk.profiler.transaction_profiler import Profile, ThreadScheduler
from sentry_sdk.utils import nanosecond_time
scheduler = ThreadScheduler(101)
sample = scheduler.make_sampler()
def new_profile():
    profile = Profile(True, nanosecond_time(), scheduler=scheduler)
    profile.active = True
    scheduler.active_profiles = {{profile}}
    return profile
profile = new_profile()
def sentry_tick():
    global profile
    sample()
    if len(profile.samples) > 5000 * (threads_n + 1):
        profile = new_profile()

out = {{"tripwire": [], "sentry": []}}
for fn in (tripwire_tick, sentry_tick):
    for _ in range(200):
        fn()
for batch in range(batches):
    order = (("tripwire", tripwire_tick), ("sentry", sentry_tick))
    for name, fn in (order if batch % 2 == 0 else order[::-1]):
        t0 = time.thread_time()
        for _ in range(per_batch):
            fn()
        out[name].append((time.thread_time() - t0) / per_batch * 1e6)
stop.set()
print(json.dumps(out))
"""


def tick_costs(threads: int, depth: int) -> dict[str, float]:
    """Median CPU µs of one sampling tick of each SDK, same threads, alternating batches."""
    argv = [str(threads), str(depth), "10", "500"]
    out = subprocess.run(
        [*_nice(), sys.executable, "-c", TICKS.format(root=str(ROOT)), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return {name: float(median(values)) for name, values in figures.items()}


def _nice() -> list[str]:
    # Negative niceness needs root; without it the children simply run at the default priority.
    if shutil.which("nice") and os.geteuid() == 0:
        return ["nice", "-n", "-10"]
    return []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=6, help="profiled/unprofiled block pairs per round")
    parser.add_argument("--requests", type=int, default=6, help="requests per block and endpoint")
    parser.add_argument("--ms", type=int, default=50, help="sleep per /io request (ms)")
    parser.add_argument("--work", type=int, default=200, help="checksum rounds per /work request")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    script = CHILD.format(root=str(ROOT))
    rounds: dict[str, list[dict[str, list[dict[str, float]]]]] = {sdk: [] for sdk in SDKS}
    profiles = dict.fromkeys(SDKS, 0)
    with Sink() as sink:
        for r, sdk in alternating(SDKS, args.rounds):
            before = len(sink.items("profile"))
            argv = [sdk, sink.dsn, str(args.blocks), str(args.requests), str(args.ms), str(args.work)]
            out = subprocess.run(
                [*_nice(), sys.executable, "-c", script, *argv],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            rounds[sdk].append(json.loads(out.stdout.strip().splitlines()[-1]))
            profiles[sdk] += len(sink.items("profile")) - before
            print(f"round {r} {sdk} done", file=sys.stderr)

    def per_round(sdk: str, figure: Any) -> float:
        return float(median(figure(run) for run in rounds[sdk]))

    def spread(sdk: str, figure: Any) -> str:
        # The median over rounds, and the range of the rounds: how far to trust it on this machine.
        values = [figure(run) for run in rounds[sdk]]
        return f"{median(values):+.2f} % ({min(values):+.1f} … {max(values):+.1f})"

    def cpu_ms(run: dict[str, list[dict[str, float]]], key: str) -> float:
        return float(median(b["cpu"] for b in run[key])) / int(args.requests) * 1e3

    def work_cost(run: dict[str, list[dict[str, float]]]) -> float:
        # Block by block: each profiled block against the unprofiled block next to it.
        ratios = [
            on["cpu"] / off["cpu"] - 1 for on, off in zip(run["on /work"], run["off /work"], strict=True)
        ]
        return float(median(ratios)) * 100

    def io_cost(run: dict[str, list[dict[str, float]]]) -> float:
        shares = [
            (on["cpu"] - off["cpu"]) / on["wall"]
            for on, off in zip(run["on /io"], run["off /io"], strict=True)
        ]
        return float(median(shares)) * 100

    def sampler_share(run: dict[str, list[dict[str, float]]]) -> float:
        blocks = [b for key in ("on /work", "on /io") for b in run[key]]
        return sum(b["sampler"] for b in blocks) / sum(b["wall"] for b in blocks) * 100

    rows = []
    profiled = max(1, args.rounds) * (args.blocks * args.requests * 2 + 6)  # per SDK: warm-up 6
    for sdk in SDKS:
        rows.append(
            (
                sdk,
                per_round(sdk, lambda run: cpu_ms(run, "off /work")),
                spread(sdk, work_cost),
                per_round(sdk, lambda run: cpu_ms(run, "off /io")),
                spread(sdk, io_cost),
                f"{per_round(sdk, sampler_share):.2f} %",
                f"{profiles[sdk] / profiled:.2f}",
            )
        )
    priority = "children under `nice -n -10`" if _nice() else "default priority (nice not allowed)"
    command = (
        f"python bench/profiling_bench.py --rounds {args.rounds} --blocks {args.blocks} "
        f"--requests {args.requests} --ms {args.ms} --work {args.work}"
    )
    body = "\n".join(
        [
            f"`{command}` ({machine_line()}; {priority}; per round one process per SDK, in it "
            f"{args.blocks} pairs of profiled/unprofiled blocks alternating; medians over blocks, then "
            "rounds). Both profilers sample at 101 Hz; tracing is on in every block, so the difference "
            "is the profiler's alone.",
            "",
            table(
                [
                    "SDK",
                    "/work CPU ms/req, unprofiled",
                    "profiler cost, CPU-bound",
                    "/io CPU ms/req, unprofiled",
                    "profiler cost, I/O-bound (% of a core)",
                    "sampler thread CPU (% of a core)",
                    "profiles sent per profiled request",
                ],
                rows,
            ),
            "",
            f"`/work`: {args.work} rounds of pure-Python work per request (~50 ms of CPU); `/io`: "
            f"`asyncio.sleep({args.ms / 1000})` per request. Profiler cost, CPU-bound: the extra process "
            "CPU of a profiled block over the unprofiled block next to it (median of those pairs; the "
            "unprofiled columns are there for scale); in brackets the lowest and highest round. "
            "I/O-bound: the extra CPU of a "
            "profiled `/io` block as a share of one core over its wall time (the sampler wakes 101 times "
            "a second whatever the app does). Sampler thread CPU: the CPU clock of the profiler's own "
            "thread (`tripwire-profiler`, `sentry.profiler.ThreadScheduler`) over the profiled blocks' "
            "wall time; sentry-sdk's thread also wakes 101 times a second while nothing is profiled "
            "(tripwire's sleeps), which is in its unprofiled blocks too. Profiles sent per profiled "
            "request: `profile` items that reached the sink (both SDKs drop profiles with fewer than two "
            "samples).",
        ]
    )
    tick_rows = []
    for threads, depth in ((2, 10), (8, 30), (32, 60)):
        costs = tick_costs(threads, depth)
        tick_rows.append(
            (
                f"{threads} threads parked {depth} frames deep",
                costs["tripwire"],
                costs["sentry"],
                f"{costs['tripwire'] * 101 / 1e4:.2f} % / {costs['sentry'] * 101 / 1e4:.2f} %",
            )
        )
    body += "\n\n" + "\n".join(
        [
            "One sampling tick alone (the work each SDK's sampler thread does 101 times a second, called "
            "in a loop on one thread; 10 alternating batches of 500 ticks, median CPU µs per tick), "
            "feeding one open transaction profile:",
            "",
            table(["threads", "tripwire µs/tick", "sentry-sdk µs/tick", "at 101 Hz, % of a core"], tick_rows),
        ]
    )
    print(body)
    if not args.no_write:
        write_section("Profiling", body)


if __name__ == "__main__":
    main()
