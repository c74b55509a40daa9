"""What performance tracing costs a request, in-process, side by side with sentry-sdk and OpenTelemetry.

The endpoint does what the issue names: one outgoing HTTP call (http.client, to a loopback server in
a process of its own, so that parsing the propagation headers is not counted as the measured
process's cost: that server is not the user's app) and two sqlite3 queries. The Starlette
app is called directly (no sockets); each (variant, round) runs in a fresh interpreter, variants
alternate, figures are medians.

    python bench/tracing_bench.py [--rounds 3] [--n 3000] [--no-callgrind] [--windows 4] [--window-n 200]

Variants:
    bare                 Starlette, no SDK
    tripwire-off         tripwire.init(dsn) + TripwireMiddleware, no tracing option
    tripwire-unsampled   the same with traces_sample_rate=0.0
    tripwire-traced      the same with traces_sample_rate=1.0 (a transaction with 3 spans per request)
    tripwire-traced-curl the same, its Sentry reporter sending with http_client="pycurl" (libcurl)
    sentry-traced        sentry_sdk.init(dsn, traces_sample_rate=1.0) (its Starlette, stdlib and
                         sqlite-less defaults: the http.client span is its own)
    otel                 OpenTelemetry's ASGI middleware, BatchSpanProcessor to an in-memory exporter
    tripwire-traced-unsent  (diagnostic, ask for it with --variants) tripwire-traced whose
                         transactions are built and encoded but never sent: what the HTTP request
                         per transaction costs is the difference
    tripwire-traced-dropped (diagnostic) tripwire-traced whose finished transactions are dropped
                         at the worker's door: the caller's own tracing work, with no background work
    floor-thread         (diagnostic) tripwire-off, plus the least that one HTTP request per request
                         can cost in the same process: a thread that writes a ready-made, gzipped
                         transaction envelope to a kept-alive socket and reads the answer, handed
                         the bytes through a C queue. No tracing, building, encoding or parsing:
                         what any in-process SDK that sends one request per transaction pays at
                         least (the Sentry protocol allows one transaction per envelope)
    floor-process        (diagnostic) the same, the request made by another process that reads
                         the ready-made bytes from a pipe (a local relay): what is left of that
                         floor once no thread of the app's process does the sending

Columns: *loop CPU* is ``time.thread_time()`` of the event loop's thread per request (what the
request costs the caller; time spent waiting for the GIL is not CPU time, so it is not in it, while
the thread's CPU spent handing the GIL over is); *background CPU* is the process's CPU outside that
thread per request (tripwire's worker and sender: building, encoding, gzip, sending; sentry-sdk's
and OTel's threads).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.sink import Sink

from _harness import ROOT, alternating, machine_line, median, table, write_section

VARIANTS = (
    "bare",
    "tripwire-off",
    "tripwire-unsampled",
    "tripwire-traced",
    "tripwire-traced-curl",
    "sentry-traced",
    "otel",
)

CHILD = r"""
import asyncio, json, os, sys, time
variant, sink_url, upstream, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
windows = int(sys.argv[5]) if len(sys.argv) > 5 else 0
port = sink_url.rsplit(":", 1)[1]
dsn = f"http://publickey@127.0.0.1:{port}/1"
exporter = None
if variant == "sentry-traced":
    import sentry_sdk
    sentry_sdk.init(dsn=dsn, release="bench@1", traces_sample_rate=1.0)
elif variant.startswith("tripwire"):
    import tripwire
    extra = {"tripwire-unsampled": {"traces_sample_rate": 0.0},
             "tripwire-traced": {"traces_sample_rate": 1.0},
             "tripwire-traced-unsent": {"traces_sample_rate": 1.0},
             "tripwire-traced-dropped": {"traces_sample_rate": 1.0}}.get(variant, {})
    if variant == "tripwire-traced-curl":
        from tripwire.reporters.sentry import SentryReporter
        tripwire.init(release="bench@1", traces_sample_rate=1.0,
                      reporters=[SentryReporter(dsn, http_client="pycurl")])
    else:
        tripwire.init(dsn, release="bench@1", **extra)
    if variant == "tripwire-traced-unsent":
        # Diagnostic: transactions built and encoded, never handed to the sender (no HTTP request).
        from tripwire.reporters.sentry import SentryReporter
        _submit = SentryReporter.submit
        SentryReporter.submit = lambda self, p: p.kind == "transaction" or _submit(self, p)
    if variant == "tripwire-traced-dropped":
        # Diagnostic: the caller does all its tracing work; finished transactions are dropped at the
        # worker's door (the worker thread never builds, encodes or sends one).
        from tripwire._globals import client as _client
        _worker_submit = _client._worker.submit
        def _submit_all_but_transactions(job, **kw):
            return type(job).__name__ == "Transaction" or _worker_submit(job, **kw)
        _client._worker.submit = _submit_all_but_transactions

hand_off = None
if variant.startswith("floor-"):
    # Diagnostic floors (see the module's docstring): a ready-made request, sent once per request.
    import gzip, tripwire
    tripwire.init(dsn, release="bench@1")
    spans = [{"span_id": "%016x" % i, "parent_span_id": "b" * 16, "trace_id": "a" * 32, "op": op,
              "description": desc, "start_timestamp": 1.0 + i, "timestamp": 2.0 + i, "status": "ok",
              "data": {"k": "v" * 40}} for i, (op, desc) in enumerate(
                  [("http.client", "GET http://127.0.0.1/data"), ("db", "SELECT a FROM t WHERE a = ?"),
                   ("db", "SELECT count(*) FROM t")])]
    event = {"type": "transaction", "transaction": "/work", "event_id": "c" * 32, "platform": "python",
             "start_timestamp": 1.0, "timestamp": 9.0, "release": "bench@1", "spans": spans,
             "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16, "op": "http.server",
                                    "status": "ok"}},
             "request": {"method": "GET", "url": "http://127.0.0.1:8000/work",
                         "headers": {"host": "127.0.0.1:8000", "user-agent": "bench"}}}
    item = json.dumps(event).encode()
    body = gzip.compress(b'{"event_id":"' + b"c" * 32 + b'"}\n{"type":"transaction","length":'
                         + str(len(item)).encode() + b"}\n" + item + b"\n")
    ready = (b"POST /api/1/envelope/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: application/x-sentry-envelope\r\nContent-Encoding: gzip\r\n"
             b"X-Sentry-Auth: Sentry sentry_version=7, sentry_key=publickey\r\n"
             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    relay = r'''
import os, socket, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
pipe = os.fdopen(0, "rb", buffering=0)
while True:
    data = b""
    while len(data) < size:
        chunk = pipe.read(size - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    sock.sendall(data)
    answer = b""
    while not answer.endswith(b"\r\n\r\n{}"):  # the sink's whole answer (its body is {})
        answer += sock.recv(65536)
'''
    if variant == "floor-thread":
        import queue, socket, threading
        outbox = queue.SimpleQueue()
        def send_all():
            sock = socket.create_connection(("127.0.0.1", int(port)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while (data := outbox.get()) is not None:
                sock.sendall(data)
                answer = b""
                while not answer.endswith(b"\r\n\r\n{}"):  # the sink's whole answer (its body is {})
                    answer += sock.recv(65536)
        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        hand_off = outbox.put
        def finish_floor(final):
            global sender
            outbox.put(None)
            sender.join()
            if not final:
                sender = threading.Thread(target=send_all, daemon=True)
                sender.start()
    else:
        import subprocess
        relay_proc = subprocess.Popen([sys.executable, "-c", relay, port, str(len(ready))],
                                      stdin=subprocess.PIPE)
        pipe_fd = relay_proc.stdin.fileno()
        hand_off = lambda data: os.write(pipe_fd, data)
        def relay_cpu():
            # The relay's CPU so far, in seconds (schedstat: nanoseconds on a CPU).
            with open(f"/proc/{relay_proc.pid}/schedstat") as stat:
                return int(stat.read().split()[0]) / 1e9
        def finish_floor(final):
            if final:
                relay_proc.stdin.close()
                relay_proc.wait()

import sqlite3, urllib.request
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

db = sqlite3.connect(":memory:", check_same_thread=False)
db.execute("CREATE TABLE t (a INTEGER)")
db.execute("INSERT INTO t VALUES (1)")

async def work(request):
    with urllib.request.urlopen(upstream) as response:
        response.read()
    db.execute("SELECT a FROM t WHERE a = ?", (1,)).fetchone()
    db.execute("SELECT count(*) FROM t").fetchone()
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/work", work)])
if variant.startswith(("tripwire", "floor-")):
    from tripwire.asgi import TripwireMiddleware
    app = TripwireMiddleware(app)
elif variant == "otel":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    app = OpenTelemetryMiddleware(app)
if hand_off is not None:
    # The floors: after each request, its ready-made transaction goes out.
    inner = app
    async def app(scope, receive, send):
        await inner(scope, receive, send)
        hand_off(ready)

def scope():
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "root_path": "", "query_string": b"", "path": "/work", "raw_path": b"/work",
            "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

async def send(message):
    pass

def flush(final=False):
    if variant.startswith("floor-"):
        finish_floor(final)
    if variant.startswith(("tripwire", "floor-")):
        import tripwire
        tripwire.flush(30)
    elif variant == "sentry-traced":
        import sentry_sdk
        sentry_sdk.flush(30)
    elif variant == "otel":
        from opentelemetry import trace
        trace.get_tracer_provider().force_flush()

async def main():
    for _ in range(100):
        await app(scope(), receive, send)
    await asyncio.to_thread(flush)
    if windows:
        # What start-up and warm-up left on the heap is frozen: a full collection of it landing in
        # one window and not another would be most of the spread between windows. The requests'
        # own garbage is still collected, in the window that made it.
        import gc
        gc.freeze()
        # Under callgrind --dump-before=getppid: each getppid() closes a part, so each window of n
        # requests is a part of its own (start-up, warm-up and exit are parts apart).
        for _ in range(windows):
            os.getppid()
            for _ in range(n):
                await app(scope(), receive, send)
        os.getppid()
        await asyncio.to_thread(flush)
        return {}
    relay = variant == "floor-process"
    t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    r0 = relay_cpu() if relay else 0.0
    for _ in range(n):
        await app(scope(), receive, send)
    loop_cpu = time.thread_time() - c0
    wall = time.perf_counter() - t0
    if relay:
        # Let the relay catch up before reading its CPU (what is left in the pipe is not counted).
        await asyncio.sleep(0.5)
        r1 = relay_cpu()
    await asyncio.to_thread(flush, True)
    total = time.process_time() - p0 + (r1 - r0 if relay else 0.0)
    return dict(wall_us=wall / n * 1e6, loop_cpu_us=loop_cpu / n * 1e6,
                background_us=(total - loop_cpu) / n * 1e6)

result = asyncio.run(main())
print(json.dumps(result))
"""


UPSTREAM = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        # One write: the answer arrives in one segment, so the caller's reads do not vary with
        # timing (send_response + end_headers + write would be two, read in one or two recvs).
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Upstream:
    """The loopback server the endpoint calls: answers 200 "ok" (HTTP/1.0, one request a connection).

    Its own process: it is not the app being measured, and neither the sink's work (in this
    process) nor the app's GIL may slow its answers down.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{port}/data"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


#: ``before:<variant>`` runs a variant on the source tree given with ``--before-src`` (e.g. ``git
#: archive <rev> src | tar -x -C /tmp/tw-before``), alternated with the current one in the same run.
BEFORE = "before:"
before_src: str | None = None


def variant_source(variant: str) -> tuple[str, str]:
    """(the variant's name for the child, the ``src`` directory it runs on)."""
    if variant.startswith(BEFORE):
        assert before_src is not None, "before: variants need --before-src"
        return variant[len(BEFORE) :], before_src
    return variant, str(ROOT / "src")


def run_child(
    variant: str, sink: Sink, upstream: Upstream, n: int, prefix: list[str] | None = None, windows: int = 0
) -> str:
    name, src = variant_source(variant)
    env = dict(os.environ, PYTHONPATH=src, PYTHONHASHSEED="0")
    out = subprocess.run(
        [*(prefix or []), sys.executable, "-c", CHILD, name, sink.url, upstream.url, str(n), str(windows)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{out.stderr[-3000:]}")
    return out.stdout + out.stderr


def instructions_per_request(
    variant: str, sink: Sink, upstream: Upstream, n: int, windows: int
) -> list[float]:
    """Instructions (valgrind callgrind, all threads) per request, for each of ``windows`` windows of
    ``n`` requests in one warmed-up process.

    Each window is a callgrind part of its own (``--dump-before=getppid``, called by the child
    between windows), so start-up, warm-up and exit are not in it, and the spread between windows
    says how precise the figure is (the cyclic GC and the background threads' timers fall in some
    windows and not others).
    """
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp) / "cg.out"
        run_child(
            variant,
            sink,
            upstream,
            n,
            ["valgrind", "--tool=callgrind", "--dump-before=getppid", f"--callgrind-out-file={out_file}"],
            windows=windows,
        )
        # Part 1 is start-up and warm-up (up to the first getppid); parts 2.. are the windows.
        counts = []
        for part in range(2, windows + 2):
            text = Path(f"{out_file}.{part}").read_text(encoding="utf-8", errors="replace")
            match = re.search(r"^summary: (\d+)", text, re.MULTILINE)
            if match is None:
                raise RuntimeError(f"no callgrind summary in part {part} for {variant}")
            counts.append(int(match.group(1)) / n)
    return counts


#: The variants counted with callgrind (sentry-sdk and OTel under valgrind would take too long).
CALLGRIND = ("bare", "tripwire-off", "tripwire-unsampled", "tripwire-traced")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--dry-run", action="store_true", help="print the table, leave RESULTS.md alone")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--windows", type=int, default=4, help="callgrind: windows per variant")
    parser.add_argument("--window-n", type=int, default=200, help="callgrind: requests per window")
    parser.add_argument(
        "--before-src", help="also run the tripwire variants on this src, as before:<variant>"
    )
    args = parser.parse_args()
    variants = args.variants.split(",")
    if args.before_src:
        global before_src
        before_src = args.before_src
        variants += [BEFORE + v for v in variants if v.startswith("tripwire") and not v.endswith("-curl")]
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    upstream = Upstream()
    try:
        with Sink() as sink:
            for r, variant in alternating(variants, args.rounds):
                out = run_child(variant, sink, upstream, args.n)
                # The result is the child's last JSON line (an SDK may log to stderr after it).
                last = next(line for line in reversed(out.splitlines()) if line.startswith('{"wall_us"'))
                res = json.loads(last)
                results[variant].append(res)
                print(f"round {r} {variant}: {res}", file=sys.stderr)
            windows: dict[str, list[float]] = {}
            if not args.no_callgrind and shutil.which("valgrind"):
                for v in variants:
                    if variant_source(v)[0] in (
                        "bare",
                        "tripwire-off",
                        "tripwire-unsampled",
                        "tripwire-traced",
                    ):
                        windows[v] = instructions_per_request(v, sink, upstream, args.window_n, args.windows)
                        print(f"callgrind {v}: {[round(x) for x in windows[v]]}", file=sys.stderr)
    finally:
        upstream.close()

    def med(variant: str, key: str) -> float:
        return median(x[key] for x in results[variant])

    def added(variant: str, base: str) -> float:
        """Loop CPU over ``base``: the median of the differences within each round. The machine's
        speed drifts between rounds (on a shared VM by a third or more), and the variants of one
        round ran back to back, so a difference within a round is steadier than one of medians."""
        pairs = zip(results[variant], results[base], strict=True)
        return median(x["loop_cpu_us"] - y["loop_cpu_us"] for x, y in pairs)

    instr = {v: median(counts) for v, counts in windows.items()}
    bare_wall = med("bare", "wall_us")
    rows = []
    for v in variants:
        rows.append(
            [
                v,
                med(v, "wall_us"),
                f"{bare_wall / med(v, 'wall_us'):.2f}",
                med(v, "loop_cpu_us"),
                f"{added(v, 'bare'):+.1f}",
                med(v, "background_us"),
                f"{instr[v]:,.0f} ({min(windows[v]):,.0f}–{max(windows[v]):,.0f})" if v in instr else "–",
            ]
        )
    summary = ""
    if "tripwire-traced" in results and "tripwire-off" in results:
        traced = added("tripwire-traced", "tripwire-off")
        summary = (
            f"\n\nTracing at 100% (3 spans) costs tripwire {traced:+.1f} µs of loop CPU per request "
            "over tripwire without tracing."
        )
        if "sentry-traced" in results:
            ratio = added("sentry-traced", "bare") / max(traced, 0.01)
            summary += f" sentry-sdk's added loop CPU is {ratio:.0f}x tripwire's tracing cost."
    body = (
        f"`bench/tracing_bench.py --rounds {args.rounds} --n {args.n}` — {machine_line()}. Starlette "
        "endpoint making one outgoing http.client call to a loopback server and two sqlite3 queries, "
        "called in-process; one fresh interpreter per variant and round, variants alternated, medians; "
        "*added loop CPU* is the median of the differences to bare within each round. SDKs report to a "
        "loopback sink.\n\n"
        + table(
            [
                "variant",
                "µs/req (wall)",
                "×bare",
                "loop CPU µs/req",
                "added loop CPU µs",
                "background CPU µs/req (worker: build, encode, gzip, send)",
                f"instructions/req (callgrind, {args.windows} windows of {args.window_n}: median (range))",
            ],
            rows,
        )
        + summary
    )
    if "tripwire-unsampled" in instr and "tripwire-off" in instr:
        body += (
            f" Tracing configured but unsampled: {instr['tripwire-unsampled'] - instr['tripwire-off']:+,.0f} "
            "instructions per request over tracing off (between windows: "
            f"{min(windows['tripwire-unsampled']) - max(windows['tripwire-off']):+,.0f} to "
            f"{max(windows['tripwire-unsampled']) - min(windows['tripwire-off']):+,.0f})."
        )
    body += (
        "\n\nTargets (issue 13): unsampled ≤ +1,000 instructions/request over tracing off; traced ≤ 15 µs "
        "of added loop CPU and at least 20x less than sentry-sdk's."
    )
    if not args.dry_run:
        write_section("Tracing", body)
    print(body)


if __name__ == "__main__":
    main()
