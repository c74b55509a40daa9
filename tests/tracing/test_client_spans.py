"""Automatic spans for the I/O an app does, against the real servers on this machine: httpx (sync
and async) to a loopback server, psycopg 3 (sync and async) and asyncpg on PostgreSQL, redis-py
(sync and asyncio) on Redis."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

import tripwire
from tripwire.reporters.capture import CapturedEvents

from .conftest import Upstream

PG_ENV = "TRIPWIRE_TEST_DATABASE_URL"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _one_transaction(events: CapturedEvents) -> dict[str, Any]:
    tripwire.flush(5)
    (txn,) = events.transactions
    return txn


def _traced_run(work: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        with tripwire.start_span(op="task", name="root"):
            await work()

    asyncio.run(main())


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (./scripts/test sets it when PostgreSQL runs here)")
    return url


def test_httpx_sync_and_async_requests_are_http_client_spans(
    traced: CapturedEvents, upstream: Upstream
) -> None:
    """httpx Client and AsyncClient requests are http.client spans with method, scrubbed URL and
    status, and carry a sentry-trace header naming their span."""

    async def work() -> None:
        with httpx.Client() as http:
            http.get(f"{upstream.url}/a?api_key=secret")
        async with httpx.AsyncClient() as http:
            await http.get(f"{upstream.url}/b?status=503")

    _traced_run(work)
    txn = _one_transaction(traced)
    first, second = txn["spans"]
    assert first["op"] == second["op"] == "http.client"
    assert first["description"] == f"GET {upstream.url}/a"
    assert "secret" not in str(first)
    assert second["status"] == "unavailable" and second["data"]["http.response.status_code"] == 503
    assert [r["sentry-trace"].split("-")[1] for r in upstream.requests] == [
        first["span_id"],
        second["span_id"],
    ]


@pytest.mark.postgres
def test_psycopg_statements_are_db_spans_without_values(traced: CapturedEvents, pg_url: str) -> None:
    """psycopg 3 statements (sync and async) are db spans: the statement with placeholders, db.system
    postgresql and the database name; parameter values never appear."""
    import psycopg

    async def work() -> None:
        with psycopg.connect(pg_url) as conn:
            conn.execute("SELECT %s::text", ("sync-secret",)).fetchone()
        async with await psycopg.AsyncConnection.connect(pg_url) as aconn:
            await (await aconn.execute("SELECT %s::text", ("async-secret",))).fetchone()

    _traced_run(work)
    txn = _one_transaction(traced)
    spans = [s for s in txn["spans"] if s["op"] == "db"]
    assert [s["description"] for s in spans] == ["SELECT %s::text", "SELECT %s::text"]
    db_name = urlsplit(pg_url).path.lstrip("/")  # the database the URL names, not a fixed one
    assert all(s["data"] == {"db.system": "postgresql", "db.name": db_name} for s in spans)
    assert "secret" not in str(txn)


@pytest.mark.postgres
def test_asyncpg_statements_are_db_spans(traced: CapturedEvents, pg_url: str) -> None:
    """asyncpg fetchval/execute are db spans with the $n statement, and a failing one is internal_error."""
    import asyncpg

    async def work() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
            with pytest.raises(asyncpg.PostgresError):
                await conn.execute("SELECT * FROM no_such_table_here")
        finally:
            await conn.close()

    _traced_run(work)
    txn = _one_transaction(traced)
    spans = [s for s in txn["spans"] if s["op"] == "db"]
    assert [s["description"] for s in spans] == ["SELECT $1::int + 1", "SELECT * FROM no_such_table_here"]
    assert spans[0]["status"] == "ok" and spans[1]["status"] == "internal_error"
    assert spans[0]["data"]["db.system"] == "postgresql"


def test_redis_commands_are_spans_with_keys_not_values(traced: CapturedEvents) -> None:
    """redis-py commands (sync, asyncio, pipelines) are db.redis spans: command and key, no values."""
    import redis
    import redis.asyncio

    key = f"tripwire-test:{uuid.uuid4().hex}"

    async def work() -> None:
        sync = redis.Redis.from_url(REDIS_URL)
        try:
            sync.set(key, "value-secret", ex=30)
            pipe = sync.pipeline()
            # redis-py types a pipeline's commands with the client's results; each returns the pipeline.
            pipe.get(key).delete(key)  # type: ignore[union-attr]
            pipe.execute()
        finally:
            sync.close()
        aclient = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            await aclient.set(key, "async-secret", ex=30)
            await aclient.delete(key)
        finally:
            await aclient.aclose()

    _traced_run(work)
    txn = _one_transaction(traced)
    spans = [s for s in txn["spans"] if s["op"] == "db.redis"]
    assert [s["description"] for s in spans] == [
        f"SET {key}",
        "PIPELINE GET DEL",
        f"SET {key}",
        f"DEL {key}",
    ]
    assert spans[0]["data"] == {"db.system": "redis", "db.name": "0"}
    assert "secret" not in str(txn)


def test_untraced_unit_of_work_makes_no_spans_and_no_transaction(upstream: Upstream) -> None:
    """Outside a sampled transaction the hooks record nothing (tracing on, nothing sampled)."""
    import sqlite3

    events = CapturedEvents()
    from tripwire.reporters.capture import CaptureReporter

    tripwire.init(reporters=[CaptureReporter(events)], traces_sample_rate=1.0)
    conn = sqlite3.connect(":memory:")
    conn.execute("SELECT 1")
    httpx.get(upstream.url)
    tripwire.flush(5)
    assert events.transactions == [] and tripwire.stats()["dropped"] == {}


SQLITE_SWITCH = r"""
import sqlite3, tripwire
from tripwire.reporters.capture import CaptureReporter, CapturedEvents

events = CapturedEvents()
tripwire.init(reporters=[CaptureReporter(events)], traces_sample_rate=0.0)
conn = sqlite3.connect(":memory:")
# Nothing sampled yet in this process: the statement methods are sqlite3's own (no Python frame).
assert type(conn).execute is sqlite3.Connection.execute, type(conn).execute
assert type(conn.cursor()).execute is sqlite3.Cursor.execute
conn.execute("SELECT 1")
with tripwire.continue_trace({"sentry-trace": "4" * 32 + "-" + "5" * 16 + "-1"}, name="job"):
    conn.execute("SELECT 2")  # the connection, opened before, is traced from the first sample on
    conn.cursor().execute("SELECT 3")
conn.execute("SELECT 4")
tripwire.flush(5)
[txn] = events.transactions
print([span["description"] for span in txn["spans"]])
"""


def test_sqlite_statements_reach_the_c_methods_until_something_is_sampled() -> None:
    """In a process that has sampled nothing, a traced sqlite3 connection's statements go straight
    to sqlite3's C methods; from the first sampled transaction on, the same connection (opened
    before) records its statements as spans. A fresh interpreter: the switch is for the process."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", SQLITE_SWITCH], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['SELECT 2', 'SELECT 3']"
