"""Performance data in the collector: transactions of 10 spans ingested and rolled up, on SQLite
and PostgreSQL; page render time with 10M transactions stored; storage per sample and per minute.

For each backend, a real `tripwire serve` subprocess receives gzip envelopes (one transaction of
10 spans each, as sentry-sdk sends them, over 20 transaction names) from a keep-alive load
generator over loopback. Reported: transactions/s acknowledged, transactions/s stored (digested
into rollups and samples, measured until the queue is empty), with an empty database and again
after 7 days × 10M transactions were written into it.

Ingesting 10M transactions here would take hours, so the pre-fill writes what digesting them
would leave, directly: per-minute and per-hour rollups of 10M transactions over 7 days (50 names
× 2 environments × 2 releases, minute rows for the whole week) and the samples (10 per name and
hour). The Performance page and a transaction summary over 7 days are then timed through the
dashboard (HTTP, logged in), server time measured as the request latency over loopback.

    python bench/performance_bench.py                      # SQLite + PostgreSQL
    python bench/performance_bench.py --backends sqlite --duration 5
    python bench/performance_bench.py --instructions         # valgrind counts; writes its own table

``--instructions`` counts the collector's instructions (valgrind callgrind) per ingested envelope
(the ASGI app in-process, 32 requests in flight, digester off) and per digested transaction
(batches of 200 and 500), each as the difference of a small and a large run divided by the
difference in count, so neither the process's start-up nor the machine's load is in it. On
PostgreSQL only the collector's side is counted (the database server's work is not).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from _harness import machine_line, table, write_section
from _wrk import available as wrk_available
from _wrk import wrk_load
from ingest_bench import _cpu_seconds, _Database, _load, _pg_url, _serve, _stop, default_project
from tripwire_server import _json
from tripwire_server.performance import histogram
from tripwire_server.store import open_store

NAMES = 20
SPANS = 10
PREFILL_NAMES = 50
PREFILL_TOTAL = 10_000_000
LOADERS = {
    "wrk": "wrk, 2 threads, a Lua script cycling through pre-built requests",
    "asyncio": "the Python asyncio generator of ingest_bench.py",
}
ROLLUP_INSERT = (
    "INSERT INTO perf_rollups (project_id, res, bucket, environment, release, name, op, count,"
    " failures, duration_sum, histogram) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SPAN_OP_INSERT = (
    "INSERT INTO perf_span_ops (project_id, res, bucket, environment, release, name, span_op, count,"
    " total_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SAMPLE_INSERT = (
    "INSERT INTO perf_samples (project_id, hour, kind, trace_id, span_id, event_id, name, op, environment,"
    " release, start_timestamp, timestamp, duration_ms, failed, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def make_transaction(i: int, rng: random.Random, now: float) -> dict[str, Any]:
    """A sentry-sdk-like transaction of ~10 spans (db queries, an HTTP call, a cache lookup)."""
    name = f"GET /api/resource_{i % NAMES}/{{id}}"
    duration = rng.lognormvariate(math.log(80), 0.6) / 1000
    start = now - duration
    root = uuid.uuid4().hex[:16]
    spans = []
    for n in range(SPANS):
        s = start + duration * n / (SPANS + 1)
        op, desc = (
            ("db.sql.query", f"SELECT * FROM table_{n} WHERE id = %s")
            if n < 7
            else ("http.client", "GET https://inventory.internal/items")
            if n < 9
            else ("cache.get", "user:42")
        )
        spans.append(
            {
                "span_id": uuid.uuid4().hex[:16],
                "parent_span_id": root,
                "trace_id": None,
                "op": op,
                "description": desc,
                "start_timestamp": s,
                "timestamp": s + duration / (SPANS + 2),
                "status": "ok",
                "data": {"db.system": "postgresql"} if n < 7 else {},
            }
        )
    trace_id = uuid.uuid4().hex
    for s in spans:
        s["trace_id"] = trace_id
    return {
        "type": "transaction",
        "event_id": uuid.uuid4().hex,
        "transaction": name,
        "transaction_info": {"source": "route"},
        "start_timestamp": start,
        "timestamp": now,
        "release": "shop@1.2.3",
        "environment": "production",
        "platform": "python",
        "sdk": {"name": "sentry.python.starlette", "version": "2.0.0"},
        "contexts": {
            "trace": {"trace_id": trace_id, "span_id": root, "op": "http.server", "status": "ok"},
            "runtime": {"name": "CPython", "version": "3.11.4"},
        },
        "request": {
            "method": "GET",
            "url": f"http://shop.local/api/resource/{i}",
            "headers": {"Host": "shop"},
        },
        "spans": spans,
    }


def make_body(tx: dict[str, Any]) -> bytes:
    payload = json.dumps(tx).encode()
    header = json.dumps({"event_id": tx["event_id"], "sent_at": "2026-01-01T00:00:00Z"}).encode()
    item = json.dumps({"type": "transaction", "length": len(payload)}).encode()
    return gzip.compress(b"\n".join([header, item, payload]), 6)


def prefill(database_url: str, now: float) -> dict[str, Any]:
    """Write the rollups and samples that 10M transactions over 7 days would leave."""
    store = open_store(database_url)
    store.migrate()
    project = default_project(store)
    rng = random.Random(5)
    minutes = 7 * 1440
    keys = [
        (f"GET /api/page_{n}/{{id}}", env, rel)
        for n in range(PREFILL_NAMES)
        for env in ("production", "staging")
        for rel in ("shop@1.0", "shop@1.1")
    ]
    per_row = PREFILL_TOTAL / (minutes * len(keys))
    start_minute = (int(now // 60) - minutes) * 60
    t0 = time.perf_counter()
    day = 86400
    with store.db.tx() as c:
        if store.backend == "postgresql":
            store.performance.ensure_partitions(c, {start_minute + d * day for d in range(9)})
        batch: list[tuple[Any, ...]] = []
        hours: dict[tuple[Any, ...], list[Any]] = {}
        written = 0
        for m in range(minutes):
            bucket = float(start_minute + m * 60)
            hour = float(int(bucket // 3600) * 3600)
            for name, env, rel in keys:
                n = int(per_row) + (1 if rng.random() < per_row - int(per_row) else 0)
                if n == 0:
                    continue
                hist = histogram.of(rng.lognormvariate(math.log(80), 0.6) for _ in range(n))
                fails = sum(1 for _ in range(n) if rng.random() < 0.01)
                total = n * 90.0
                batch.append(
                    (
                        project.id,
                        60,
                        bucket,
                        env,
                        rel,
                        name,
                        "http.server",
                        n,
                        fails,
                        total,
                        histogram.encode(hist),
                    )
                )
                h = hours.setdefault((project.id, 3600, hour, env, rel, name, "http.server"), [0, 0, 0.0, {}])
                h[0] += n
                h[1] += fails
                h[2] += total
                histogram.merge(h[3], hist)
                written += n
            if len(batch) > 20_000:
                c.many(
                    ROLLUP_INSERT,
                    batch,
                )
                batch = []
        c.many(
            ROLLUP_INSERT,
            batch,
        )
        days: dict[tuple[Any, ...], list[Any]] = {}
        for k, v in hours.items():
            d = days.setdefault((k[0], 86400, float(int(k[2] // 86400) * 86400), *k[3:]), [0, 0, 0.0, {}])
            d[0] += v[0]
            d[1] += v[1]
            d[2] += v[2]
            histogram.merge(d[3], v[3])
        c.many(
            ROLLUP_INSERT,
            [(*k, v[0], v[1], v[2], histogram.encode(v[3])) for k, v in (*hours.items(), *days.items())],
        )
        ops = [(*k[:6], "db", v[0] * 7, v[0] * 35.0) for k, v in (*hours.items(), *days.items())]
        c.many(
            SPAN_OP_INSERT,
            ops,
        )
        samples = []
        for (pid, _res, hour, env, rel, name, op), _v in hours.items():
            if env != "production" or rel != "shop@1.1":
                continue
            for k in range(10):
                tx = make_transaction(k, rng, hour + 1800 + k)
                tx["transaction"] = name
                blob = _json.pack_event(
                    {
                        "project_id": pid,
                        "event_id": tx["event_id"],
                        "trace_id": tx["contexts"]["trace"]["trace_id"],
                        "span_id": tx["contexts"]["trace"]["span_id"],
                        "parent_span_id": None,
                        "name": name,
                        "op": op,
                        "start_timestamp": tx["start_timestamp"],
                        "timestamp": tx["timestamp"],
                        "status": "ok",
                        "http_status": 200,
                        "environment": env,
                        "release": rel,
                        "spans": [
                            {
                                k2: s[k2]
                                for k2 in (
                                    "span_id",
                                    "parent_span_id",
                                    "op",
                                    "description",
                                    "start_timestamp",
                                    "timestamp",
                                    "status",
                                )
                            }
                            for s in tx["spans"]
                        ],
                        "dropped_spans": 0,
                    }
                )
                samples.append(
                    (
                        pid,
                        hour,
                        "slow" if k < 5 else "random",
                        tx["contexts"]["trace"]["trace_id"],
                        tx["contexts"]["trace"]["span_id"],
                        tx["event_id"],
                        name,
                        op,
                        env,
                        rel,
                        tx["start_timestamp"],
                        tx["timestamp"],
                        (tx["timestamp"] - tx["start_timestamp"]) * 1000,
                        0,
                        blob,
                    )
                )
        c.many(
            SAMPLE_INSERT,
            samples,
        )
    elapsed = time.perf_counter() - t0
    if store.backend == "postgresql":
        with store.db.tx() as c:
            c.ex("ANALYZE")
    rows = store.performance.perf_storage()
    store.close()
    return {"transactions": written, "seconds": elapsed, "rows": rows}


def storage(database_url: str, backend: str) -> dict[str, float]:
    """Bytes per stored sample and per rolled-up minute row (table and index bytes / rows)."""
    store = open_store(database_url)
    try:
        with store.db.tx(write=False) as c:
            counts = {t: int(c.one(f"SELECT COUNT(*) FROM {t}")[0]) for t in ("perf_samples", "perf_rollups")}
            minute_rows = int(c.one("SELECT COUNT(*) FROM perf_rollups WHERE res = 60")[0])
            if backend == "sqlite":
                sizes = {
                    t: sum(
                        int(r[1])
                        for r in c.all("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
                        if r[0] == t or r[0].startswith(f"sqlite_autoindex_{t}") or r[0].startswith(t + "_")
                    )
                    for t in counts
                }
            else:
                sizes = {}
                for t in counts:
                    sizes[t] = int(
                        c.one(
                            "SELECT COALESCE(SUM(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i"
                            " JOIN pg_class p ON p.oid = i.inhparent"
                            " JOIN pg_namespace n ON n.oid = p.relnamespace"
                            " WHERE p.relname = ? AND n.nspname = current_schema()",
                            (t,),
                        )[0]
                    )
    finally:
        store.close()
    return {
        "bytes_per_sample": sizes["perf_samples"] / max(1, counts["perf_samples"]),
        "bytes_per_rollup_row": sizes["perf_rollups"] / max(1, counts["perf_rollups"]),
        "minute_rows": minute_rows,
        "samples": counts["perf_samples"],
    }


def _ingest_digest_cpu(info: dict[str, Any]) -> tuple[float, float]:
    """CPU seconds of the HTTP processes (the first and its ``--workers``) and of the digest child."""
    own, children = _cpu_seconds(info["pid"])
    workers = sum(sum(_cpu_seconds(pid)) for pid in info.get("workers", []))
    return own + workers, children - workers


def run_load(
    database_url: str,
    duration: float,
    rng: random.Random,
    load: str = "wrk",
    workers: int = 1,
    connections: int = 64,
) -> dict[str, Any]:
    proc, info = _serve(database_url, *(("--workers", str(workers)) if workers > 1 else ()))
    host, port = info["url"].split("//", 1)[1].rstrip("/").rsplit(":", 1)
    key = info["dsn"].split("//", 1)[1].split("@", 1)[0]
    project = int(info["dsn"].rsplit("/", 1)[1])
    store = open_store(database_url)
    now = time.time()
    # Distinct transactions (own event and trace ids) for up to 6,000/s: none is sent twice.
    bodies = [make_body(make_transaction(i, rng, now + i * 0.0001)) for i in range(int(duration * 6000))]
    try:
        time.sleep(0.5)
        before = _stored(store, project)
        cpu0 = _ingest_digest_cpu(info)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        if load == "wrk":
            result = wrk_load(
                host, int(port), f"/api/{project}/envelope/", key, bodies, duration, connections=connections
            )
            p99 = result["p99_ms"]
        else:
            result = asyncio.run(_load(host, int(port), project, key, bodies, duration))
            lat = sorted(result["latencies"])
            p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else 0.0
        load_end = time.perf_counter()
        cpu_load = _ingest_digest_cpu(info)
        acked = result["status"].get(200, 0)
        while store.queue.queue_depth() > 0:
            time.sleep(0.05)
        drained = time.perf_counter()
        cpu1 = _ingest_digest_cpu(info)
        stored = _stored(store, project) - before
    finally:
        store.close()
        _stop(proc)
    return {
        "acked_per_s": acked / (load_end - t0),
        "stored": stored,
        "stored_per_s": stored / (drained - t0),
        "p99_ms": p99,
        "errors": sum(v for k, v in result["status"].items() if k != 200) + result.get("socket_errors", 0),
        "cpu_us": ((cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])) / max(1, stored) * 1e6,
        # The ingest process's CPU per acknowledged request while the load ran, and the digest
        # child's per stored transaction until the queue was empty.
        "ingest_cpu_us": (cpu_load[0] - cpu0[0]) / max(1, acked) * 1e6,
        "digest_cpu_us": (cpu1[1] - cpu0[1]) / max(1, stored) * 1e6,
        "client_cpu_us": result.get("client_cpu_s", float("nan")) / max(1, acked) * 1e6,
        "load_avg": load0,
    }


def digest_only(database_url: str, batch: int, count: int, rng: random.Random) -> dict[str, float]:
    """The digest alone, in this process: CPU per transaction with ``count`` transactions queued
    and digested ``batch`` at a time (no HTTP, no other process competing for the database)."""
    from tripwire_server.config import CollectorConfig
    from tripwire_server.digest.worker import Digester
    from tripwire_server.store.base import IntakeRow

    store = open_store(database_url, sqlite_synchronous="NORMAL")
    try:
        store.migrate()
        project = default_project(store)
        now = time.time()
        bodies = [make_body(make_transaction(i, rng, now + i * 0.0001)) for i in range(count)]
        store.queue.enqueue([IntakeRow(project.id, now, "envelope:gzip", b, None) for b in bodies])
        processor = Digester(
            store.queue, store.retention, CollectorConfig(database_url=database_url)
        ).processor
        cpu0, t0, done = time.process_time(), time.perf_counter(), 0
        while n := store.queue.digest_batch(batch, processor):
            done += n
    finally:
        store.close()
    return {
        "cpu_us": (time.process_time() - cpu0) / max(1, done) * 1e6,
        "wall_us": (time.perf_counter() - t0) / max(1, done) * 1e6,
    }


CHILD = Path(__file__).resolve().parent / "_perf_child.py"
#: (small, large) counts of the instruction runs: envelopes for ingest, transactions for digest
#: (whole batches each, so every batch is full).
INGEST_COUNTS = (320, 1280)
DIGEST_COUNTS = {200: (200, 1200), 500: (500, 1500)}


def _callgrind(args: list[str]) -> tuple[int, str]:
    """Instructions the child ran (callgrind's total) and what it printed."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, str(CHILD), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", out.stderr)
    if match is None:
        raise RuntimeError(f"no callgrind total:\n{out.stderr[-2000:]}")
    return int(match.group(1)), out.stdout.strip()


def _queued(url: str, count: int, rng: random.Random, now: float) -> None:
    from tripwire_server.store.base import IntakeRow

    store = open_store(url)
    try:
        store.migrate()
        project = default_project(store)
        bodies = [make_body(make_transaction(i, rng, now + i * 0.0001)) for i in range(count)]
        store.queue.enqueue([IntakeRow(project.id, time.time(), "envelope:gzip", b, None) for b in bodies])
    finally:
        store.close()


def instructions(backend: str) -> dict[str, float]:
    """Instructions per ingested envelope and per digested transaction (see the module docstring)."""
    # Inside one minute, half an hour back: every run folds into the same number of buckets.
    now = float(int(time.time() // 3600) * 3600 - 1800)
    out: dict[str, float] = {}
    for batch, counts in DIGEST_COUNTS.items():
        totals = []
        for n in counts:
            db = _Database(backend)
            try:
                _queued(db.url, n, random.Random(3), now)
                total, printed = _callgrind(["digest", db.url, str(batch)])
                assert int(printed) == n, (printed, n)
                totals.append(total)
            finally:
                db.drop()
        out[f"digest_{batch}"] = (totals[1] - totals[0]) / (counts[1] - counts[0])
    rng = random.Random(4)
    tmp = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    try:
        bodies = tmp / "bodies.hex"
        bodies.write_text(
            "\n".join(
                make_body(make_transaction(i, rng, now + i * 0.0001)).hex() for i in range(INGEST_COUNTS[1])
            )
        )
        totals = []
        for n in INGEST_COUNTS:
            db = _Database(backend)
            try:
                total, printed = _callgrind(["ingest", db.url, str(n), str(bodies)])
                assert int(printed) == n, (printed, n)
                store = open_store(db.url)
                assert store.queue.queue_depth() == n, (store.queue.queue_depth(), n)
                store.close()
                totals.append(total)
            finally:
                db.drop()
        out["ingest"] = (totals[1] - totals[0]) / (INGEST_COUNTS[1] - INGEST_COUNTS[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _stored(store: Any, project: int) -> int:
    with store.db.tx(write=False) as c:
        row = c.one(
            "SELECT COALESCE(SUM(count), 0) FROM perf_rollups"
            " WHERE project_id = ? AND res = 3600 AND name LIKE ?",
            (project, "GET /api/resource_%"),
        )
    return int(row[0])


def time_pages(database_url: str, rounds: int = 15) -> dict[str, float]:
    proc, info = _serve(database_url)
    try:
        with httpx.Client(base_url=info["url"].rstrip("/"), timeout=60) as client:
            form = client.get("/login").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert csrf
            store = open_store(database_url)
            password = info.get("admin_password") or "bench-password-123"
            if not info.get("admin_password"):
                store.accounts.set_password("admin", password)
            store.close()
            r = client.post(
                "/login",
                data={"csrf_token": csrf.group(1), "username": "admin", "password": password, "next": "/"},
            )
            assert r.status_code == 303, r.text
            out = {}
            for label, path, params in (
                ("performance_7d_ms", "/projects/1/performance", {"since": "7d"}),
                (
                    "summary_7d_ms",
                    "/projects/1/performance/summary",
                    {"since": "7d", "transaction": "GET /api/page_7/{id}"},
                ),
                ("performance_1h_ms", "/projects/1/performance", {"since": "1h"}),
            ):
                times = []
                cpu0 = _cpu_seconds(info["pid"])[0]
                for _ in range(rounds):
                    t = time.perf_counter()
                    page = client.get(path, params=params)
                    times.append((time.perf_counter() - t) * 1000)
                    assert page.status_code == 200
                # Server CPU per page does not depend on what else runs on the machine; the
                # latency does (the 2 cores are shared).
                out[label.replace("_ms", "_cpu_ms")] = (_cpu_seconds(info["pid"])[0] - cpu0) / rounds * 1000
                out[label] = statistics.median(times)
            assert "GET /api/page_7/{id}" in page.text or label == "performance_1h_ms"
    finally:
        _stop(proc)
    return out


def quick(args: argparse.Namespace, rng: random.Random) -> None:
    """Empty databases only, every (backend, workers) variant in turn for ``--rounds`` rounds;
    print each run and a table of medians."""
    variants = [
        (backend, int(w))
        for backend in args.backends.split(",")
        for w in args.workers.split(",")
        if (backend == "postgresql" and _pg_url()) or (backend == "sqlite" and int(w) == 1)
    ]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for backend, workers in variants:
            db = _Database(backend)
            try:
                result = run_load(db.url, args.duration, rng, args.load, workers, args.connections)
            finally:
                db.drop()
            runs[(backend, workers)].append(result)
            print(f"round {r} {backend} workers={workers}", result, flush=True)
    keys = ("acked_per_s", "stored_per_s", "ingest_cpu_us", "digest_cpu_us", "client_cpu_us", "load_avg")
    print(
        table(
            ["backend", "HTTP processes", "tx/s acknowledged", "tx/s stored", "ingest CPU µs / request"]
            + ["digest CPU µs / tx", "load generator CPU µs / request", "load average", "stored per round"],
            [
                (
                    backend,
                    workers,
                    *(f"{statistics.median(x[k] for x in runs[(backend, workers)]):,.0f}" for k in keys[:-1]),
                    f"{statistics.median(x['load_avg'] for x in runs[(backend, workers)]):.1f}",
                    " / ".join(f"{x['stored_per_s']:,.0f}" for x in runs[(backend, workers)]),
                )
                for backend, workers in variants
            ],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument(
        "--load",
        choices=("wrk", "asyncio"),
        default="wrk" if wrk_available() else "asyncio",
        help="load generator: wrk (cheap; apt-get install -y wrk) or the Python asyncio one",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=64,
        help="keep-alive connections of the wrk load (the asyncio generator keeps its own 32)",
    )
    parser.add_argument("--quick", action="store_true", help="empty database only; print, do not write")
    parser.add_argument(
        "--workers",
        default="1",
        help="with --quick: HTTP processes of `tripwire serve --workers`, comma-separated variants"
        " run alternately (PostgreSQL only for N > 1), e.g. 1,2",
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --quick: rounds of every variant")
    parser.add_argument(
        "--digest-only",
        action="store_true",
        help="print the digest's CPU per transaction at batch sizes 20, 100 and 500 (no HTTP); write nothing",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="print instructions per ingested envelope and per digested transaction (valgrind)",
    )
    args = parser.parse_args()
    if args.instructions:
        rows = []
        for backend in args.backends.split(","):
            if backend == "postgresql" and not _pg_url():
                print("skipping PostgreSQL: set TRIPWIRE_BENCH_DATABASE_URL")
                continue
            counts = instructions(backend)
            print(backend, counts, flush=True)
            rows.append((backend, *(f"{counts[k]:,.0f}" for k in ("ingest", "digest_200", "digest_500"))))
        print(
            table(
                [
                    "backend",
                    "instructions / ingested envelope",
                    "instructions / digested tx (batches of 200)",
                    "instructions / digested tx (batches of 500)",
                ],
                rows,
            )
        )
        return
    if args.digest_only:
        for backend in args.backends.split(","):
            for batch in (20, 100, 500):
                db = _Database(backend)
                try:
                    cost = digest_only(db.url, batch, 3000, random.Random(3))
                    print(backend, "batch", batch, cost, flush=True)
                finally:
                    db.drop()
        return
    rng = random.Random(3)
    if args.quick:
        quick(args, rng)
        return
    rows = []
    size_rows = []
    for backend in args.backends.split(","):
        if backend == "postgresql" and not _pg_url():
            print("skipping PostgreSQL: set TRIPWIRE_BENCH_DATABASE_URL")
            continue
        db = _Database(backend)
        try:
            empty = run_load(db.url, args.duration, rng, args.load, connections=args.connections)
            print(backend, "empty", empty, flush=True)
            sizes_small = storage(db.url, backend)
            filled = prefill(db.url, time.time())
            print(backend, "prefill", filled, flush=True)
            full = run_load(db.url, args.duration, rng, args.load, connections=args.connections)
            print(backend, "10M", full, flush=True)
            pages = time_pages(db.url)
            print(backend, "pages", pages, flush=True)
            sizes = storage(db.url, backend)
        finally:
            db.drop()
        for label, r in (("empty", empty), (f"{filled['transactions'] / 1e6:.1f}M stored (7 days)", full)):
            rows.append(
                (
                    backend,
                    label,
                    r["acked_per_s"],
                    r["stored_per_s"],
                    r["stored"],
                    r["p99_ms"],
                    r["errors"],
                    r["cpu_us"],
                    r["ingest_cpu_us"],
                    r["digest_cpu_us"],
                    r["client_cpu_us"],
                    f"{r['load_avg']:.1f}",
                )
            )
        size_rows.append(
            (
                backend,
                f"{pages['performance_7d_cpu_ms']:.0f} ({pages['performance_7d_ms']:.0f})",
                f"{pages['summary_7d_cpu_ms']:.0f} ({pages['summary_7d_ms']:.0f})",
                f"{pages['performance_1h_cpu_ms']:.0f} ({pages['performance_1h_ms']:.0f})",
                sizes["bytes_per_sample"],
                sizes["bytes_per_rollup_row"],
                sizes["minute_rows"],
                sizes_small["bytes_per_sample"],
            )
        )
    body = (
        f"{machine_line()}; `nice -n -10 python bench/performance_bench.py --duration {args.duration:g}"
        f" --load {args.load}` (the server and the load generator at a higher priority than the other"
        " jobs on the machine). Transactions of"
        f" {SPANS} spans (gzip envelopes as sentry-sdk sends them, {NAMES} names, each with its own event"
        f" and trace id) from {args.connections if args.load == 'wrk' else 32} keep-alive connections"
        f" ({LOADERS[args.load]}) into"
        " `tripwire serve` (digest in its child process). Stored: digested into minute, hour and day rollups,"
        " span-op times and samples, until the queue was empty. The 10M pre-fill writes the rollups and"
        " samples"
        " that 10M transactions over 7 days leave (50 names × 2 environments × 2 releases), directly.\n\n"
        + table(
            [
                "backend",
                "stored before",
                "tx/s acknowledged",
                "tx/s stored",
                "stored",
                "p99 ack ms",
                "errors",
                "server CPU µs / tx",
                "ingest CPU µs / request",
                "digest CPU µs / tx",
                "load generator CPU µs / request",
                "load average",
            ],
            rows,
        )
        + "\n\nServer time of the pages with 10M transactions stored: server CPU ms per page (from /proc),"
        " and"
        " in brackets the median latency of 15 requests over loopback (logged in; it grows with the"
        " machine's load, the CPU does not); and storage:\n\n"
        + table(
            [
                "backend",
                "Performance page 7d: CPU ms (latency)",
                "summary 7d: CPU ms (latency)",
                "Performance page 1h: CPU ms (latency)",
                "bytes / sample (10 spans, compressed)",
                "bytes / rollup row",
                "minute rows",
                "bytes / sample (ingested)",
            ],
            size_rows,
        )
    )
    write_section("Performance data (transactions)", body)


if __name__ == "__main__":
    main()
