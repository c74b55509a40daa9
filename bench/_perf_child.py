"""The collector's transaction path, driven in one process for valgrind callgrind (see
``performance_bench.py --instructions``): instruction counts do not depend on the machine's load.

    python bench/_perf_child.py digest DATABASE_URL BATCH     # digest the queue, BATCH at a time
    python bench/_perf_child.py ingest DATABASE_URL N BODIES  # N envelope requests through the app

``digest`` digests whatever the parent queued; ``ingest`` sends N requests (bodies read from the
file BODIES, one gzip envelope per line, hex) to the collector's ASGI app in waves of
:data:`CONCURRENCY`, as the keep-alive connections of the load test would: the group commit then
writes one batch per wave. The digester is off for ``ingest``; the parent counts the queue after.
Both run twice under valgrind (a small and a large count); the difference per unit is the cost
of one transaction, without the process's start-up.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path
from typing import Any

#: Requests in flight at once (the load test's keep-alive connections).
CONCURRENCY = 32


def digest(url: str, batch: int) -> int:
    from tripwire_server.config import CollectorConfig
    from tripwire_server.digest.worker import Digester
    from tripwire_server.store import open_store

    store = open_store(url, sqlite_synchronous="NORMAL")
    store.performance.random = random.Random(7)
    processor = Digester(store.queue, store.retention, CollectorConfig(database_url=url)).processor
    done = 0
    while n := store.queue.digest_batch(batch, processor):
        done += n
    store.close()
    return done


async def _lifespan(app: Any) -> tuple[asyncio.Queue[Any], asyncio.Task[None]]:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    started = asyncio.Event()

    async def receive() -> Any:
        return await inbox.get()

    async def send(message: Any) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()
        elif message["type"].endswith(".failed"):
            raise RuntimeError(message)

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    await started.wait()
    return inbox, task


async def _request(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    sent = False
    status = 0

    async def receive() -> Any:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a client that stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return status


async def ingest(url: str, count: int, bodies: list[bytes]) -> int:
    from tripwire_server.app import create_app
    from tripwire_server.config import CollectorConfig

    app = create_app(CollectorConfig(database_url=url, run_digester=False))
    inbox, task = await _lifespan(app)
    project = app.state.collector.bootstrap.project
    path = f"/api/{project.id}/envelope/"
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/x-sentry-envelope"),
        (b"content-encoding", b"gzip"),
        (b"x-sentry-auth", f"Sentry sentry_version=7, sentry_key={project.public_key}".encode()),
        (b"user-agent", b"sentry.python/2.0.0"),
    ]
    ok = 0
    for wave in range(0, count, CONCURRENCY):
        statuses = await asyncio.gather(
            *(
                _request(app, path, headers, bodies[i % len(bodies)])
                for i in range(wave, min(count, wave + CONCURRENCY))
            )
        )
        ok += sum(1 for s in statuses if s == 200)
    await inbox.put({"type": "lifespan.shutdown"})
    await task
    return ok


def main() -> None:
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "digest":
        print(digest(url, int(sys.argv[3])))
    else:
        bodies = [bytes.fromhex(line) for line in Path(sys.argv[4]).read_text().split()]
        print(asyncio.run(ingest(url, int(sys.argv[3]), bodies)))


if __name__ == "__main__":
    main()
