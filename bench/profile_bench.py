"""Profiles in the collector: what digesting sentry-sdk's profiles costs, and what storing them takes.

The envelopes are the official sentry-sdk's own: it runs in this process with
``profiles_sample_rate=1.0`` (its real sampler thread at 101 Hz) around transactions of a few
pure-Python functions ~60 ms deep in a call chain, and a capturing transport keeps each envelope
as it would go on the wire (a transaction and its ``profile`` item). The same transactions are
then queued twice into a fresh store of each backend: once with their profiles, once without; the
digest (``EnvelopeProcessor`` and the store, in this process, like ``tripwire serve``'s digest
child) runs over each queue, alternating A/B rounds, and the CPU time per envelope is compared.
Reported: digest CPU per profile (the difference), bytes per stored profile (compressed) and per
profile on the wire, the function rows one profile adds, and the functions table's CPU time.

    python bench/profile_bench.py                       # SQLite + PostgreSQL (if configured)
    python bench/profile_bench.py --backends sqlite --transactions 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from _harness import machine_line, table, write_section
from ingest_bench import _Database, _pg_url
from tripwire_server.config import CollectorConfig
from tripwire_server.digest.processor import EnvelopeProcessor
from tripwire_server.profiling import service
from tripwire_server.store import open_store
from tripwire_server.store.base import IntakeRow

ROUTES = ("/orders", "/search", "/report", "/checkout", "/profile")


def _work(depth: int, rounds: int) -> int:
    if depth:
        return _work(depth - 1, rounds) + 1
    total = 0
    for i in range(rounds):
        total = (total * 31 + i * i) % 1_000_003
    return total


def _parse(rounds: int) -> int:
    return sum(len(str(i)) for i in range(rounds))


def sentry_envelopes(count: int) -> tuple[list[bytes], list[bytes]]:
    """``count`` envelopes of a transaction with its profile, and the same without the profile."""
    import sentry_sdk
    from sentry_sdk.envelope import Envelope
    from sentry_sdk.transport import Transport

    captured: list[Envelope] = []

    class Capture(Transport):
        def capture_envelope(self, envelope: Envelope) -> None:
            captured.append(envelope)

    sentry_sdk.init(
        dsn="http://key@127.0.0.1:9/1",
        transport=Capture,
        traces_sample_rate=1.0,
        profiles_sample_rate=1.0,
        release="bench@1.0",
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    for i in range(count):
        with sentry_sdk.start_transaction(name=ROUTES[i % len(ROUTES)], op="http.server"):
            _work(20, 150_000)
            _parse(60_000)
    sentry_sdk.flush(timeout=10)
    sentry_sdk.get_client().close()
    full, bare = [], []
    for envelope in captured:
        kinds = [item.type for item in envelope.items]
        if "transaction" not in kinds:
            continue
        full.append(envelope.serialize())
        without = Envelope(headers=envelope.headers)
        for item in envelope.items:
            if item.type != "profile":
                without.add_item(item)
        bare.append(without.serialize())
    return full, bare


def _digest(url: str, bodies: list[bytes]) -> tuple[float, Any]:
    """CPU seconds to digest ``bodies`` into a fresh store at ``url``; the store stays open."""
    store = open_store(url)
    store.migrate()
    project = store.accounts.create_project(f"bench-{time.monotonic_ns()}")
    now = time.time()
    store.queue.enqueue([IntakeRow(project.id, now, "envelope", body, "127.0.0.1") for body in bodies])
    processor = EnvelopeProcessor(CollectorConfig().limits)
    start = time.process_time()
    while store.queue.digest_batch(100, processor):
        pass
    return time.process_time() - start, (store, project)


def _size(store: Any, sql: str) -> int:
    with store.db.tx(write=False) as c:
        return int(c.one(sql)[0] or 0)


def measure(backend: str, full: list[bytes], bare: list[bytes], rounds: int) -> list[Any]:
    per_full: list[float] = []
    per_bare: list[float] = []
    kept: dict[str, Any] = {}
    for r in range(rounds):
        for variant, bodies, out in (("full", full, per_full), ("bare", bare, per_bare))[
            :: 1 if r % 2 == 0 else -1
        ]:
            db = _Database(backend)
            try:
                cpu, (store, project) = _digest(db.url, bodies)
                out.append(cpu / len(bodies))
                if variant == "full" and not kept:
                    kept["profiles"] = _size(store, "SELECT COUNT(*) FROM profiles")
                    kept["bytes"] = _size(
                        store,
                        "SELECT SUM(LENGTH(data)) FROM profiles"
                        if backend == "sqlite"
                        else "SELECT SUM(octet_length(data)) FROM profiles",
                    )
                    kept["function_rows"] = _size(store, "SELECT COUNT(*) FROM profile_functions")
                    t0 = time.process_time()
                    for _ in range(20):
                        service.functions(store, project, ROUTES[0], 0.0, time.time() + 3600)
                    kept["table_ms"] = (time.process_time() - t0) / 20 * 1000
                store.close()
            finally:
                db.drop()
    with_profile = statistics.median(per_full) * 1e6
    without = statistics.median(per_bare) * 1e6
    profiles = kept["profiles"] or 1
    return [
        backend,
        len(full),
        round(without),
        round(with_profile),
        round(with_profile - without),
        round(kept["bytes"] / profiles),
        round(kept["function_rows"] / len(full), 1),
        round(kept["table_ms"], 1),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds per backend (medians)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    full, bare = sentry_envelopes(args.transactions)
    wire = statistics.median(len(f) - len(b) for f, b in zip(full, bare, strict=True))
    rows = []
    for backend in args.backends.split(","):
        if backend == "postgresql" and not _pg_url():
            print("skipping postgresql: set TRIPWIRE_BENCH_DATABASE_URL")
            continue
        rows.append(measure(backend, full, bare, args.rounds))
    body = (
        f"{machine_line()}; `python bench/profile_bench.py --transactions {args.transactions}"
        f" --rounds {args.rounds}`. Envelopes made by the official sentry-sdk in this process"
        " (`profiles_sample_rate=1.0`, its 101 Hz sampler; transactions of ~60 ms of pure-Python work,"
        f" 20 frames deep, 5 names); a profile is {wire:,.0f} bytes on the wire (uncompressed JSON,"
        " median). Digest CPU per envelope (`EnvelopeProcessor` and the store in one process, medians"
        " of A/B rounds), with and without the envelope's `profile` item:\n\n"
        + table(
            [
                "backend",
                "envelopes",
                "digest µs / transaction",
                "digest µs / transaction + profile",
                "µs / profile",
                "bytes / stored profile",
                "function rows / profile",
                "functions table ms (CPU)",
            ],
            rows,
        )
        + f"\n\nLoad average {load:.1f} when the run started (other work on the same cores; the script"
        " is meant to run under `nice -n -10`). The store side is one upsert per function and hour per"
        " digest batch; most of the cost per profile is reading its frames and samples, counting, and"
        " compressing the kept ones (brotli)."
    )
    print(body)
    if not args.no_write:
        write_section("Profiles in the collector", body)


if __name__ == "__main__":
    main()
