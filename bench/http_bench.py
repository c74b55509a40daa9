"""ASGI over HTTP: uvicorn (uvloop + httptools, one process) under wrk, per SDK, side by side.

For every round and variant a fresh uvicorn process serves the benchmark Starlette app (see
_asgi_variants.py); wrk drives ``/ok`` and then ``/boom`` (every request raises) with 32 connections.
Variants alternate (A B C D, D C B A, ...); figures are medians over rounds. The SDKs report to a
loopback sink in this process (tests/support/sink.py).

    python bench/http_bench.py [--rounds 3] [--duration 5] [--conns 32] [--variants bare,tripwire,...]

"server CPU µs/req" is the uvicorn process's CPU time (all threads, from /proc) during the wrk run
divided by the requests wrk completed. With valgrind installed, a last table counts the instructions
the server process spends per /ok request (deterministic: what the noise of a shared machine hides).
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
import time
from pathlib import Path
from typing import Any

# bench/ for the helpers, the repository root for tests.support.sink
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.sink import Sink

from _asgi_variants import VARIANTS, reported
from _harness import ROOT, alternating, machine_line, median, table, write_section

SERVER = r"""
import sys
sys.path.insert(0, {bench!r})
import uvicorn
from _asgi_variants import build
variant, sink_url, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = build(variant, sink_url)
uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning",
            access_log=False, lifespan="on")
"""

CLK_TCK = os.sysconf("SC_CLK_TCK")
NO_SDK = ("bare", "passthrough")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
    """Stop a benchmark server with ``sig`` (SIGINT: a graceful shutdown), killing it after ``timeout``."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0, path: str = "/ok") -> None:
    """Wait until the server at ``port`` answers ``GET path`` with 200 (``proc``: its process)."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during startup")
        try:
            # 5 s: an endpoint that makes calls of its own (tracing_http_bench.py) answers slower.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(request)
                if conn.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError("server not ready")


def _ms(text: str) -> float:
    value = float(re.sub(r"[a-z]+$", "", text))
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    if text.endswith("s"):
        return value * 1000
    return value


def wrk(url: str, duration: float, conns: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{duration:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    return {
        "requests": requests,
        "rps": rps,
        "p50_ms": _ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
    }


def count_occurrences(sink: Sink) -> int:
    return sum(reported(sink))


def run_variant(
    variant: str, sink: Sink, duration: float, conns: int, paths: tuple[str, ...] = ("ok", "boom")
) -> dict[str, Any]:
    port = free_port()
    code = SERVER.format(bench=str(Path(__file__).resolve().parent))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    before_events, before_counted = reported(sink)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, variant, sink.url, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    result: dict[str, Any] = {}
    try:
        wait_ready(port, proc)
        wrk(f"http://127.0.0.1:{port}/ok", 1, conns)  # warm-up
        for path in paths:
            cpu0 = cpu_seconds(proc.pid)
            res = wrk(f"http://127.0.0.1:{port}/{path}", duration, conns)
            cpu = cpu_seconds(proc.pid) - cpu0
            res["cpu_us"] = cpu / max(res["requests"], 1) * 1e6
            result[path] = res
    finally:
        stop(proc)  # graceful: lifespan shutdown, SDKs flush
    if variant not in NO_SDK and "boom" in result:
        target = before_events + before_counted + result["boom"]["requests"]
        sink.wait_until(lambda: count_occurrences(sink) >= target, timeout=10)
    events, counted = reported(sink)
    result["events"] = events - before_events
    result["counted"] = counted - before_counted
    return result


def server_instructions(variant: str, sink: Sink, path: str, small: int = 300, large: int = 1300) -> float:
    """Instructions the uvicorn process spends per request (valgrind callgrind on the server).

    Two servers, sent ``small`` and ``large`` sequential keep-alive requests; the difference per
    request leaves startup and shutdown out. Deterministic (fixed hash seed), unlike req/s on a shared
    machine: the ratio to bare is what throughput would be if CPU were all that counted.
    """
    code = SERVER.format(bench=str(Path(__file__).resolve().parent))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONHASHSEED="0")
    totals = []
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
                request = f"GET /{path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
                reader = conn.makefile("rb")
                for _ in range(count):
                    conn.sendall(request)
                    length = 0
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    reader.read(length)
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=300)
        match = re.search(r"Collected : (\d+)", err)
        if match is None:
            raise RuntimeError(f"no callgrind total for {variant}:\n{err[-2000:]}")
        totals.append(int(match.group(1)))
    return (totals[1] - totals[0]) / (large - small)


def _accounted(run: dict[str, Any]) -> str:
    missing = run["events"] + run["counted"] - run["boom"]["requests"]
    return f"{run['events']:,} + {run['counted']:,} ({missing:+d})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--dry-run", action="store_true", help="print the table, leave RESULTS.md alone")
    parser.add_argument("--paths", default="ok,boom", help="ok, boom or both")
    parser.add_argument(
        "--no-callgrind", action="store_true", help="skip counting the server's instructions per /ok request"
    )
    args = parser.parse_args()
    paths = tuple(args.paths.split(","))
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    variants = args.variants.split(",")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with Sink() as sink:
        for r, variant in alternating(variants, args.rounds):
            res = run_variant(variant, sink, args.duration, args.conns, paths)
            runs[variant].append(res)
            rates = " ".join(f"{p} {res[p]['rps']:.0f}/s" for p in paths)
            print(f"round {r} {variant}: {rates} events {res['events']}", file=sys.stderr)

    def med(variant: str, path: str, key: str) -> float:
        return median(run[path][key] for run in runs[variant])

    sections = []
    for path in paths:
        bare_rps, bare_cpu = med("bare", path, "rps"), med("bare", path, "cpu_us")
        rows = []
        for v in variants:
            rps, cpu = med(v, path, "rps"), med(v, path, "cpu_us")
            row = [
                v,
                rps,
                f"{rps / bare_rps:.2f}",
                med(v, path, "p50_ms"),
                med(v, path, "p99_ms"),
                cpu,
                f"{cpu - bare_cpu:+.0f}",
                ", ".join(f"{run[path]['rps']:.0f}" for run in runs[v]),
            ]
            if path == "boom":
                accounted = "–" if v in NO_SDK else ", ".join(_accounted(run) for run in runs[v])
                row.insert(7, accounted)
            rows.append(row)
        headers = ["variant", "req/s", "×bare", "p50 ms", "p99 ms", "server CPU µs/req", "added CPU µs/req"]
        if path == "boom":
            headers.append("events sent + occurrences counted (− completed /boom requests), per run")
        headers.append("req/s per run")
        title = "**/ok** (trivial endpoint)" if path == "ok" else "**/boom** (every request raises)"
        sections.append(f"{title}\n\n" + table(headers, rows))
    body = (
        f"`bench/http_bench.py --rounds {args.rounds} --duration {args.duration:g} --conns {args.conns}` — "
        f"{machine_line()}. uvicorn (uvloop + httptools, one process) serving the Starlette app, wrk "
        f"-t2 -c{args.conns}; a fresh server per variant and round, variants alternated, medians. SDKs at "
        "defaults with a release, reporting to a loopback sink; server and sink share the 2 cores with "
        "wrk.\n\n"
        + "\n\n".join(sections)
        + "\n\nTargets: /ok ≥ 0.95× bare throughput; /boom ≥ 0.8× bare. *events sent* are the events that "
        "reached the sink; *occurrences counted* are the failing requests tripwire's repeat limit (default "
        "60 full events per minute per error) counted instead of building and sending, as reported in its "
        "client reports, each carried as a count on the error's next event. Their sum accounts for every "
        "failing request (the sink also sees requests in flight that wrk did not count as completed, hence a "
        "small +n). `tripwire-every-event` is tripwire with `repeat_limit=None`: every failing request built "
        "and sent."
    )
    if "ok" in paths and not args.no_callgrind and shutil.which("valgrind"):
        with Sink() as sink:
            instr = {v: server_instructions(v, sink, "ok") for v in variants}
        base = instr["bare"]
        body += (
            "\n\nInstructions the server process spends per /ok request (valgrind callgrind on uvicorn, "
            "two servers sent 300 and 1,300 sequential keep-alive requests, the difference per request; "
            "deterministic, so it shows what the noise of a shared machine hides). *bare ÷ variant* is "
            "the throughput ratio if CPU were all that counted:\n\n"
        )
        body += table(
            ["variant", "instructions/request", "added", "bare ÷ variant"],
            [[v, f"{instr[v]:,.0f}", f"{instr[v] - base:+,.0f}", f"{base / instr[v]:.3f}"] for v in variants],
        )
    if not args.dry_run:
        write_section("ASGI over HTTP (uvicorn + wrk)", body)
    print(body)


if __name__ == "__main__":
    main()
