"""WSGI over HTTP: a Flask app under gunicorn (one gthread worker) driven by wrk, per SDK, side by side.

For every round and variant a fresh gunicorn serves the benchmark Flask app (see _wsgi_variants.py);
wrk drives ``/ok`` and then ``/boom`` (every request raises) with 8 connections. Variants alternate
(A B C D, D C B A, ...); figures are medians over rounds. The SDKs report to a loopback sink in this
process (tests/support/sink.py).

    python bench/wsgi_bench.py [--rounds 3] [--duration 5] [--conns 8] [--variants bare,tripwire,...]

"server CPU µs/req" is the CPU time of gunicorn's processes (master and worker, from /proc) during
the wrk run divided by the requests wrk completed. With valgrind installed, a last table counts the
instructions a server process spends per /ok request: waitress (its default 4 threads, in one process:
valgrind follows no fork) serving the same app, sent 300 and then 1,300 keep-alive requests; the
difference per request leaves startup out. Deterministic, unlike req/s on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.sink import Sink

from _harness import ROOT, alternating, machine_line, median, table, write_section
from _wsgi_variants import VARIANTS
from http_bench import cpu_seconds, free_port, stop, wait_ready, wrk

APP_MODULE = r"""
import os, sys
sys.path.insert(0, {bench!r})
from _wsgi_variants import build
app = build(os.environ["BENCH_VARIANT"], os.environ["BENCH_SINK"])
"""

# waitress with its default of 4 worker threads. With one thread, every request that arrives while
# that thread is still finishing the previous one makes waitress log "Task queue depth is 1" (under
# valgrind for about half of the requests, at random): a log record per request that no production
# server with idle threads writes, and whose random count decided single runs (bench/RESULTS.md).
WAITRESS = r"""
import sys
sys.path.insert(0, {bench!r})
from _wsgi_variants import build
from waitress import serve
variant, sink_url, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
serve(build(variant, sink_url), host="127.0.0.1", port=port, threads=4, _quiet=True)
"""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass
    return total


def run_variant(variant: str, sink: Sink, duration: float, conns: int, folder: Path) -> dict[str, Any]:
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(folder)]),
        BENCH_VARIANT=variant,
        BENCH_SINK=sink.url,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread", "--threads", "4"]
        + ["--bind", f"127.0.0.1:{port}", "--log-level", "critical", "--error-logfile", os.devnull]
        + ["bench_wsgi_app:app"],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    result: dict[str, Any] = {}
    try:
        wait_ready(port, proc)
        wrk(f"http://127.0.0.1:{port}/ok", 1, conns)  # warm-up
        pids = [proc.pid, *_children(proc.pid)]
        for path in ("ok", "boom"):
            cpu0 = _cpu(pids)
            res = wrk(f"http://127.0.0.1:{port}/{path}", duration, conns)
            res["cpu_us"] = (_cpu(pids) - cpu0) / max(res["requests"], 1) * 1e6
            result[path] = res
    finally:
        stop(proc, signal.SIGTERM)
    return result


def server_instructions(variant: str, sink: Sink, small: int = 300, large: int = 1300) -> tuple[float, float]:
    """Instructions per /ok request, and waitress's "Task queue depth" warnings per request.

    The warnings matter: waitress logs one whenever a request arrives while no worker thread is
    free. With one thread, under valgrind, that was about half of the requests, at random, in every
    variant: a log record each (~60k instructions to stderr), and with an SDK's logging integration
    also a breadcrumb. With waitress's default 4 threads it stays near 0; the count is kept so a
    run that drew warnings shows it.
    """
    code = WAITRESS.format(bench=str(Path(__file__).resolve().parent))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONHASHSEED="0")
    totals = []
    warnings = []
    for count in (small, large):
        port = free_port()
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", code]
            + [variant, sink.url, str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_ready(port, proc, timeout=300)
            with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
                request = b"GET /ok HTTP/1.1\r\nHost: bench\r\n\r\n"
                reader = conn.makefile("rb")
                for _ in range(count):
                    conn.sendall(request)
                    length = 0
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    reader.read(length)
        finally:
            # SIGTERM: callgrind writes its totals at once. After SIGINT waitress shuts down on its
            # own, which under valgrind on a loaded machine took more than 5 minutes at times.
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=300)
        match = re.search(r"Collected : (\d+)", err)
        if match is None:
            raise RuntimeError(f"no callgrind total for {variant}:\n{err[-2000:]}")
        totals.append(int(match.group(1)))
        warnings.append(err.count("Task queue depth"))
    return (totals[1] - totals[0]) / (large - small), (warnings[1] - warnings[0]) / (large - small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--dry-run", action="store_true", help="print the tables, leave RESULTS.md alone")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instructions per /ok request")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    variants = args.variants.split(",")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    import tempfile

    with Sink() as sink, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bench_wsgi_app.py").write_text(
            APP_MODULE.format(bench=str(Path(__file__).resolve().parent))
        )
        for _, variant in alternating(variants, args.rounds):
            runs[variant].append(run_variant(variant, sink, args.duration, args.conns, folder))
        instructions: dict[str, tuple[float, float]] = {}
        if not args.no_callgrind and shutil.which("valgrind"):
            for variant in variants:
                instructions[variant] = server_instructions(variant, sink)
    bare = runs.get("bare")
    rows = []
    for variant in variants:
        row: list[Any] = [variant]
        for path in ("ok", "boom"):
            rps = median(r[path]["rps"] for r in runs[variant])
            cpu = median(r[path]["cpu_us"] for r in runs[variant])
            ratio = rps / median(r[path]["rps"] for r in bare) if bare else float("nan")
            row += [f"{rps:,.0f}", f"{ratio:.2f}x", f"{cpu:,.0f}"]
        rows.append(row)
    headers = ["variant", "/ok req/s", "vs bare", "/ok server CPU µs/req", "/boom req/s", "vs bare"]
    headers.append("/boom server CPU µs/req")
    body = (
        f"{machine_line()}. gunicorn (1 gthread worker, 4 threads) serving a Flask app, wrk -t2 "
        f"-c{args.conns} for {args.duration:g} s per path, {args.rounds} rounds alternating, medians.\n\n"
        + table(headers, rows)
    )
    if instructions:
        base = instructions["bare"][0] if "bare" in instructions else None
        irows = [
            [v, f"{n:,.0f}", f"{base / n:.3f}x" if base else "", f"{n - base:+,.0f}" if base else ""]
            + [f"{w:.2f}"]
            for v, (n, w) in instructions.items()
        ]
        body += (
            "\n\nInstructions a server process spends per /ok request (valgrind callgrind on waitress "
            "with its default 4 threads, serving the same Flask app; 1,300 minus 300 keep-alive requests, "
            "per request), and "
            "waitress's queue-depth warnings per request (see `server_instructions`). "
            "Target for tripwire: ≥ 0.95x bare.\n\n"
            + table(["variant", "instructions/req", "bare / variant", "added", "warnings/req"], irows)
        )
    print(body)
    if not args.dry_run:
        write_section("WSGI over HTTP (gunicorn + wrk; callgrind on waitress)", body)


if __name__ == "__main__":
    main()
