"""Worker CPU per ASGI error event: what tripwire's background threads spend on one failing request.

The benchmark Starlette app (_asgi_variants.py) is driven in-process through TripwireMiddleware with
``/boom`` (raises ValueError through 15 frames, 14 of them Starlette's); the capture snapshots are
kept, and then every stage the worker and the sender run for an event is timed on one thread with
``time.thread_time`` (CPU only, so a busy machine changes the figures little):

    build     build_event: frames, source lines, locals, request data, scrubbing, size budget
    encode    the Sentry reporter's encode_event + render (the envelope)
    gzip      the reporter's compression, at its own level
    post      the HTTP exchange with a loopback sink (tests/support/sink.py) in another process

These run on threads that share the GIL with the application, so on a busy ASGI server every
microsecond here is taken from request handling. Variants (a fresh process each, alternated, medians
over rounds): tripwire at its defaults, with ``library_frame_locals=True``, and with
``include_local_variables=False``.

    python bench/event_cost_bench.py [--rounds 3] [--n 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ROOT, alternating, machine_line, median, table, write_section

VARIANTS = {
    "defaults (app-frame locals)": {},
    "library_frame_locals=True": {"library_frame_locals": True},
    "include_local_variables=False": {"include_local_variables": False},
}

SINK = r"""
import sys, time
sys.path.insert(0, {root!r})
from tests.support.sink import Sink
with Sink() as sink:
    print(sink.dsn, flush=True)
    sys.stdin.read()
"""

CHILD = r"""
import asyncio, json, sys, time, zlib
sys.path.insert(0, {bench!r})
import tripwire
from tripwire._event_builder import build_event
from tripwire.delivery.connections import ConnectionPool
from tripwire.asgi import TripwireMiddleware
from _asgi_variants import RELEASE, http_scope, receive, send, starlette_app

dsn, n, extra = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
tripwire.init(dsn, release=RELEASE, repeat_limit=None, **extra)  # every request snapshotted
client = tripwire.get_client()
items = []
client._enqueue = lambda item: items.append(item) or item.event_id  # keep the snapshots
app = TripwireMiddleware(starlette_app())
async def requests():
    for _ in range(n):
        try:
            await app(http_scope("/boom"), receive, send)
        except Exception:
            pass

asyncio.run(requests())
reporter = client.reporters[0]
pool = ConnectionPool(5.0, proxy="")

def once():
    total = [0.0, 0.0, 0.0, 0.0]
    for item in items:
        t0 = time.thread_time()
        event = build_event(item, client.options, client.scrubber)
        t1 = time.thread_time()
        payload = reporter.encode_event(event)
        body, headers = reporter.render(payload)
        t2 = time.thread_time()
        packer = zlib.compressobj(reporter.compress_level, zlib.DEFLATED, 31)
        packed = packer.compress(body) + packer.flush()
        t3 = time.thread_time()
        headers["Content-Encoding"] = "gzip"
        status = pool.post(payload.url, packed, headers)[0]
        t4 = time.thread_time()
        assert status == 200, status
        for i, d in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            total[i] += d
    return [t / len(items) * 1e6 for t in total], len(body), len(packed)

once()  # warm caches (source lines, paths), as a running server has them
times, raw, packed = once()
print(json.dumps(dict(build=times[0], encode=times[1], gzip=times[2], post=times[3], raw=raw, packed=packed)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=300, help="failing requests (events) per run")
    parser.add_argument("--dry-run", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args()

    sink = subprocess.Popen(
        [sys.executable, "-c", SINK.format(root=str(ROOT))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        dsn = sink.stdout.readline().strip()
        child = CHILD.format(bench=str(ROOT / "bench"))
        results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
        for rnd, name in alternating(list(VARIANTS), args.rounds):
            out = subprocess.run(
                [sys.executable, "-c", child, dsn, str(args.n), json.dumps(VARIANTS[name])],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"round {rnd} {name}: {result}", flush=True)
            results[name].append(result)
    finally:
        if sink.stdin is not None:
            sink.stdin.close()
        sink.wait(10)

    rows = []
    for name, runs in results.items():
        stages = [median(r[k] for r in runs) for k in ("build", "encode", "gzip", "post")]
        raw, packed = median(r["raw"] for r in runs) / 1000, median(r["packed"] for r in runs) / 1000
        rows.append(
            [
                name,
                *stages,
                sum(stages),
                f"{raw:.1f} KB / {packed:.1f} KB",
            ]
        )
    body = (
        f"`bench/event_cost_bench.py --rounds {args.rounds} --n {args.n}` — {machine_line()}. "
        "The benchmark Starlette app's `/boom` (15 frames, 14 of them Starlette's) driven in-process "
        "through TripwireMiddleware; then each stage the worker and the sender thread run for an event, "
        "timed with `time.thread_time` on one thread (CPU, µs per event); a fresh process per variant "
        "and round, alternated, medians. *post* is the HTTP exchange with a loopback sink in another "
        "process.\n\n"
        + table(
            ["variant", "build µs", "encode µs", "gzip µs", "post µs", "total µs", "envelope / gzipped"],
            rows,
        )
        + "\n\nThese threads share the GIL with the application: on a server where every request fails, "
        "each event's total is CPU taken from request handling (bare `/boom` costs the server about "
        "1 ms of CPU per request, see *ASGI over HTTP*). Before the worker-CPU work (commit 4e35dc7, same "
        "app and method): build 1,305 µs, encode 243 µs, gzip 295 µs (level 6), post 284 µs (http.client): "
        "2,127 µs per event."
    )
    print(body)
    if not args.dry_run:
        write_section("Worker CPU per ASGI error event", body)


if __name__ == "__main__":
    main()
