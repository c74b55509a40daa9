"""Collector ingest throughput: ~8 KB events into `tripwire serve`, on SQLite and PostgreSQL.

For each backend and each pre-filled database size, a real `tripwire serve` subprocess receives
gzip envelopes (one event each, as SDKs send them) from a keep-alive load generator over loopback
for a fixed time. Reported: events/s acknowledged (HTTP 200, i.e. durably queued), events/s stored
(every acknowledged event digested and queryable, measured until the queue is empty), p50/p99
ingest latency, and the backlog left when the load stopped.

    python bench/ingest_bench.py                 # SQLite + PostgreSQL, 0 and 10k stored, 8 s each
    python bench/ingest_bench.py --big           # also 100k and 1M stored events (bulk pre-fill)
    python bench/ingest_bench.py --backends sqlite --duration 5 --sizes 0

PostgreSQL is used when TRIPWIRE_BENCH_DATABASE_URL (or TRIPWIRE_TEST_DATABASE_URL) is set; each
run uses a fresh schema that is dropped afterwards. Bugsink is not run here (its licence forbids
depending on it); its figures on this machine come from the reference study and are quoted.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from _harness import machine_line, table, write_section
from tripwire_server.store import Project, Store, open_store

CONNECTIONS = 32
ISSUE_KINDS = 20


def make_event(i: int, rng: random.Random) -> dict[str, Any]:
    """An ~8 KB Python error event: 30 frames with context and locals, breadcrumbs, request."""
    kind = i % ISSUE_KINDS
    frames = []
    for n in range(30):
        frame: dict[str, Any] = {
            "filename": f"app/mod_{kind}_{n}.py",
            "abs_path": f"/srv/app/mod_{kind}_{n}.py",
            "module": f"app.mod_{kind}_{n}",
            "function": f"handler_{n}",
            "lineno": 10 + n,
            "in_app": n % 3 != 0,
            "context_line": f"    result = handler_{n + 1}(request, payload)",
        }
        if n >= 25:  # locals on the frames nearest the crash, like an SDK with include_local_variables
            frame["vars"] = {"request": "<Request POST /checkout>", "n": str(n), "payload": "{'sku': 7}"}
        frames.append(frame)
    return {
        "event_id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "platform": "python",
        "level": "error",
        "release": "shop@2.3.1",
        "environment": "production",
        "server_name": "web-1",
        "tags": {"region": "eu-west", "kind": str(kind)},
        "user": {"id": str(rng.randint(1, 10_000)), "ip_address": "10.0.0.1"},
        "request": {
            "url": "https://shop.example/checkout",
            "method": "POST",
            "headers": {"User-Agent": "bench"},
        },
        "breadcrumbs": {
            "values": [
                {
                    "timestamp": time.time(),
                    "category": "query",
                    "message": f"SELECT * FROM orders WHERE id = {j}",
                }
                for j in range(10)
            ]
        },
        "exception": {
            "values": [
                {
                    "type": f"Error{kind}",
                    "value": f"order {rng.randint(1, 10**6)} failed",
                    "stacktrace": {"frames": frames},
                }
            ]
        },
    }


def make_body(event: dict[str, Any]) -> bytes:
    payload = json.dumps(event).encode()
    raw = b"\n".join(
        [
            json.dumps({"event_id": event["event_id"]}).encode(),
            json.dumps({"type": "event", "length": len(payload)}).encode(),
            payload,
        ]
    )
    return gzip.compress(raw, 6)


# -- load generator (raw asyncio HTTP/1.1 with keep-alive: cheap on the client side) -----------------


async def _connection(
    host: str, port: int, path: str, key: str, bodies: list[bytes], deadline: float, out: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-sentry-envelope\r\n"
        f"Content-Encoding: gzip\r\nX-Sentry-Auth: Sentry sentry_version=7, sentry_key={key}\r\n"
    )
    try:
        while time.perf_counter() < deadline and bodies:
            body = bodies.pop()
            request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            start = time.perf_counter()
            writer.write(request)
            header = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in header.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            out["latencies"].append(time.perf_counter() - start)
            status = int(header.split(b" ", 2)[1])
            out["status"][status] = out["status"].get(status, 0) + 1
    finally:
        writer.close()


async def _load(
    host: str, port: int, project: int, key: str, bodies: list[bytes], duration: float
) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "status": {}}
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(
        *(
            _connection(host, port, f"/api/{project}/envelope/", key, bodies, deadline, out)
            for _ in range(CONNECTIONS)
        )
    )
    out["elapsed"] = time.perf_counter() - start
    return out


# -- pre-fill ----------------------------------------------------------------------------------------


def default_project(store: Store) -> Project:
    """The first project of ``store`` (``tripwire serve`` makes "default"), made if there is none."""
    projects = store.accounts.list_projects()
    return projects[0] if projects else store.accounts.create_project("default")


def prefill(database_url: str, count: int) -> None:
    """Insert ``count`` stored events (spread over issues) directly, the fast way."""
    if count <= 0:
        return
    store = open_store(database_url, sqlite_synchronous="NORMAL")
    store.migrate()
    project = default_project(store)
    rng = random.Random(1)
    blob = zlib.compress(json.dumps(make_event(0, rng)).encode(), 1)
    now = time.time()
    with store.db.tx() as c:
        issue_ids = []
        for k in range(1000):
            row = c.one(
                "INSERT INTO issues (project_id, grouping_version, grouping_hash,"
                " grouping_explanation, title,"
                " culprit, type, value, level, first_seen, last_seen, event_count)"
                " VALUES (?, 'tripwire:1', ?, '{}', ?, '', 'Prefill', '', 'error', ?, ?, 0) RETURNING id",
                (project.id, f"prefill-{k}", f"Prefill{k}: old issue", now - 86400, now - 3600),
            )
            issue_ids.append(row[0])
    chunk = 20_000
    for start in range(0, count, chunk):
        rows = [
            (
                project.id,
                uuid.uuid4().hex,
                issue_ids[i % len(issue_ids)],
                now - 3600,
                now - 3600,
                "error",
                "Prefill: old issue",
                "shop@2.3.0",
                "production",
                "prefill",
                blob,
            )
            for i in range(start, min(count, start + chunk))
        ]
        with store.db.tx() as c:
            c.many(
                "INSERT INTO events (project_id, event_id, issue_id, timestamp, received_at,"
                " level, title, release,"
                " environment, grouping_hash, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    with store.db.tx() as c:
        c.ex("UPDATE issues SET event_count = (SELECT COUNT(*) FROM events e WHERE e.issue_id = issues.id)")
    if store.backend == "postgresql":
        with store.db.tx() as c:
            c.ex("ANALYZE")
    store.close()


# -- one measurement ------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user + system) of a process and of its live children (the digest process)."""
    tick = os.sysconf("SC_CLK_TCK")
    own = children = 0.0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            pids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
        if p == pid:
            own += seconds
        else:
            children += seconds
    return own, children


def _serve(database_url: str, *extra: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tripwire_server",
            "serve",
            "--port",
            "0",
            "--json",
            "--database-url",
            database_url,
            "--retention-max-events",
            "0",
            "--retention-days",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)
    if proc.stdout is not None:
        proc.stdout.close()


def _bodies(duration: float, rng: random.Random, rate: int = 4000) -> list[bytes]:
    # Enough pre-built bodies for the run at up to ``rate`` per second (built before the clock
    # starts); if they run out first, the rate is still taken over the time actually used.
    return [make_body(make_event(i, rng)) for i in range(int(duration * rate))]


def run_once(database_url: str, prefilled: int, duration: float, rng: random.Random) -> dict[str, Any]:
    """Ingest and digest together, as in production."""
    prefill(database_url, prefilled)
    proc, info = _serve(database_url)
    host, port = info["url"].split("//", 1)[1].rstrip("/").rsplit(":", 1)
    key = info["dsn"].split("//", 1)[1].split("@", 1)[0]
    project = int(info["dsn"].rsplit("/", 1)[1])
    store = open_store(database_url)
    bodies = _bodies(duration, rng)
    body_size = statistics.mean(len(zlib.decompress(b, 31)) for b in bodies[:50])
    try:
        time.sleep(0.5)
        before = store.issues.count_events()
        cpu0 = _cpu_seconds(info["pid"])
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        result = asyncio.run(_load(host, int(port), project, key, bodies, duration))
        load_end = time.perf_counter()
        backlog = store.queue.queue_depth()
        acked = result["status"].get(200, 0)
        while store.queue.queue_depth() > 0:
            time.sleep(0.05)
        drained = time.perf_counter()
        cpu1 = _cpu_seconds(info["pid"])
        cpu_http, cpu_digest = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        stored = store.issues.count_events() - before
        lat = sorted(result["latencies"])
    finally:
        store.close()
        _stop(proc)
    return {
        "acked": acked,
        "acked_per_s": acked / (load_end - t0),
        "stored": stored,
        "stored_per_s": stored / (drained - t0),
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else 0.0,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else 0.0,
        "backlog": backlog,
        "errors": sum(v for k, v in result["status"].items() if k != 200),
        "event_bytes": body_size,
        "cpu_us_per_event": (cpu_http + cpu_digest) / max(1, stored) * 1e6,
        "cpu_http_us": cpu_http / max(1, stored) * 1e6,
        "cpu_digest_us": cpu_digest / max(1, stored) * 1e6,
        "load": load0,
    }


def run_split(database_url: str, duration: float, rng: random.Random) -> dict[str, Any]:
    """Each half alone: ingest with the digest off, then the digest of the queue it left."""
    proc, info = _serve(database_url, "--no-digest")
    host, port = info["url"].split("//", 1)[1].rstrip("/").rsplit(":", 1)
    key = info["dsn"].split("//", 1)[1].split("@", 1)[0]
    project = int(info["dsn"].rsplit("/", 1)[1])
    bodies = _bodies(duration, rng, rate=6000)
    try:
        time.sleep(0.5)
        load0 = os.getloadavg()[0]
        cpu0 = _cpu_seconds(info["pid"])[0]
        result = asyncio.run(_load(host, int(port), project, key, bodies, duration))
        cpu_http = _cpu_seconds(info["pid"])[0] - cpu0
    finally:
        _stop(proc)
    acked = result["status"].get(200, 0)
    lat = sorted(result["latencies"])
    store = open_store(database_url)
    try:
        queued = store.queue.queue_depth()
        proc, info = _serve(database_url)
        try:
            # Time the digest from its first stored event to the empty queue.
            while store.issues.count_events() == 0:
                time.sleep(0.01)
            t0 = time.perf_counter()
            first = store.issues.count_events()
            while store.queue.queue_depth() > 0:
                time.sleep(0.02)
            digest_s = time.perf_counter() - t0
            cpu_digest = _cpu_seconds(info["pid"])[1]
        finally:
            _stop(proc)
        stored = store.issues.count_events()
    finally:
        store.close()
    return {
        "acked": acked,
        "acked_per_s": acked / result["elapsed"],
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else 0.0,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else 0.0,
        "queued": queued,
        "stored": stored,
        "digest_per_s": (stored - first) / max(digest_s, 1e-9),
        "cpu_http_us": cpu_http / max(1, acked) * 1e6,
        "cpu_digest_us": cpu_digest / max(1, stored) * 1e6,
        "load": load0,
    }


def _pg_url() -> str | None:
    return os.environ.get("TRIPWIRE_BENCH_DATABASE_URL") or os.environ.get("TRIPWIRE_TEST_DATABASE_URL")


class _Database:
    """A fresh database of one backend for one measurement (removed afterwards)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._admin: Any = None
        if backend == "sqlite":
            self._tmp = tempfile.mkdtemp(prefix="tw-bench-")
            self.url = f"sqlite:///{Path(self._tmp) / 'bench.sqlite3'}"
            return
        import psycopg

        base = _pg_url()
        assert base
        self._schema = f"tw_bench_{secrets.token_hex(4)}"
        self._admin = psycopg.connect(base, autocommit=True)
        self._admin.execute(f"CREATE SCHEMA {self._schema}")
        sep = "&" if "?" in base else "?"
        self.url = f"{base}{sep}options={quote(f'-csearch_path={self._schema}')}"

    def drop(self) -> None:
        if self._admin is not None:
            self._admin.execute(f"DROP SCHEMA {self._schema} CASCADE")
            self._admin.close()
        else:
            shutil.rmtree(self._tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per measurement")
    parser.add_argument("--big", action="store_true", help="also measure at 100k and 1M stored events")
    parser.add_argument(
        "--sizes", type=str, default=None, help="comma-separated pre-fill sizes, e.g. 0,10000"
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-split", action="store_true", help="skip the ingest-only / digest-only rows")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    sizes = [0, 10_000] + ([100_000, 1_000_000] if args.big else [])
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    if "postgresql" in backends and not _pg_url():
        print("PostgreSQL skipped: set TRIPWIRE_BENCH_DATABASE_URL", file=sys.stderr)
        backends.remove("postgresql")
    rng = random.Random(42)
    rows = []
    split_rows = []
    for backend in backends:
        for size in sizes:
            db = _Database(backend)
            try:
                r = run_once(db.url, size, args.duration, rng)
            finally:
                db.drop()
            print(
                backend,
                size,
                {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()},
                flush=True,
            )
            rows.append(
                [
                    backend,
                    f"{size:,}",
                    r["acked"],
                    r["acked_per_s"],
                    r["stored_per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["backlog"],
                    r["errors"],
                    f"{r['cpu_us_per_event']:.0f} ({r['cpu_http_us']:.0f} + {r['cpu_digest_us']:.0f})",
                    r["load"],
                ]
            )
        if not args.no_split:
            db = _Database(backend)
            try:
                r = run_split(db.url, args.duration, rng)
            finally:
                db.drop()
            print(
                backend,
                "split",
                {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()},
                flush=True,
            )
            split_rows.append(
                [
                    backend,
                    r["acked_per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    f"{r['cpu_http_us']:.0f}",
                    r["digest_per_s"],
                    f"{r['cpu_digest_us']:.0f}",
                    r["load"],
                ]
            )
    body = (
        f"`bench/ingest_bench.py --duration {args.duration:g}{' --big' if args.big else ''}`"
        f" — {machine_line()}. "
        f"One `tripwire serve` process (uvicorn, one worker, default settings: SQLite WAL with "
        f"synchronous=FULL for the queue, "
        f"group commit into the ingest queue, background digest) and a load generator on the same 2 cores: "
        f"{CONNECTIONS} keep-alive connections over loopback, gzip envelopes with one ~8 KB event each "
        f"(30 frames, {ISSUE_KINDS} distinct issues). *acked/s*: HTTP 200s per second of load (a 200 means "
        f"committed to the durable queue). *stored/s*: acknowledged events digested and queryable, "
        f"divided by "
        f"the time from the start of the load until the queue was empty. *stored before*: events pre-filled "
        f"in bulk before the run. *backlog*: envelopes still queued when the load stopped. *server CPU "
        f"µs/event*: CPU time of the collector (HTTP process + digest process) per stored event, from "
        f"/proc; it does not depend on how busy the machine is, unlike the rates. *load avg*: the "
        f"machine's 1-minute load average at the start (other work on the 2 cores lowers the rates).\n\n"
        + table(
            [
                "backend",
                "stored before",
                "events sent (200)",
                "acked/s",
                "stored/s",
                "p50 ms",
                "p99 ms",
                "backlog",
                "non-200",
                "server CPU µs/event (HTTP + digest)",
                "load avg",
            ],
            rows,
        )
        + "\n\nEach half alone (same events; the ingest with the digest switched off, then the digest of the "
        "queue it left, timed from its first stored event to the empty queue):\n\n"
        + table(
            [
                "backend",
                "ingest only: acked/s",
                "p50 ms",
                "p99 ms",
                "HTTP CPU µs/event",
                "digest only: stored/s",
                "digest CPU µs/event",
                "load avg",
            ],
            split_rows,
        )
        + "\n\nBaseline for scale (reference study, same kind of 2-core machine, ~8 KB events):"
        " Bugsink accepted "
        "about 107 req/s with its background digester and digested about 50 events/s. Target: at least 2,000 "
        "events/s stored on SQLite, flat as the database grows."
    )
    print(body)
    if not args.no_write:
        write_section("Collector ingest", body)


if __name__ == "__main__":
    main()
