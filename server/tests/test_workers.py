"""``tripwire serve --workers N``: several HTTP processes on one port, one digest, nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tripwire_server.store import open_store

from .conftest import ServeProcess, wait_until

SENT = 240


def _transaction_envelope(i: int) -> bytes:
    now = time.time()
    trace_id, event_id = uuid.uuid4().hex, uuid.uuid4().hex
    tx = {
        "type": "transaction",
        "event_id": event_id,
        "transaction": f"GET /items/{i % 3}",
        "start_timestamp": now - 0.05,
        "timestamp": now,
        "contexts": {"trace": {"trace_id": trace_id, "span_id": uuid.uuid4().hex[:16], "op": "http.server"}},
        "spans": [
            {
                "span_id": uuid.uuid4().hex[:16],
                "trace_id": trace_id,
                "op": "db.sql.query",
                "description": "SELECT 1",
                "start_timestamp": now - 0.04,
                "timestamp": now - 0.03,
            }
        ],
    }
    payload = json.dumps(tx).encode()
    item = json.dumps({"type": "transaction", "length": len(payload)}).encode()
    return b"\n".join([json.dumps({"event_id": event_id}).encode(), item, payload])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone as far as serving goes.
    state = (
        Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if Path(f"/proc/{pid}").exists()
        else "Z"
    )
    return state != "Z"


@pytest.mark.slow  # two collectors and a load run: 7-10 s
@pytest.mark.postgres
def test_two_processes_answer_on_one_port_and_every_acknowledged_transaction_is_stored(pg_url: str) -> None:
    """Connections reach both processes; the one digest stores every acknowledged transaction once."""
    server = ServeProcess("--database-url", pg_url, "--workers", "2")
    workers = server.info["workers"]
    try:
        assert len(workers) == 1
        expected = {server.info["pid"], *workers}

        def answered_by() -> int:
            # A new connection each time: the kernel hands it to whichever process accepts first.
            return int(httpx.get(server.url + "/api/0/health/", timeout=10).json()["pid"])

        seen: set[int] = set()

        def both_answer() -> bool:
            with ThreadPoolExecutor(8) as pool:
                seen.update(pool.map(lambda _: answered_by(), range(16)))
            return seen == expected

        wait_until(both_answer, timeout=60)

        path = server.url + f"/api/{server.dsn.rsplit('/', 1)[1]}/envelope/"
        headers = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={server.key}"}

        def send(i: int) -> int:
            return httpx.post(path, content=_transaction_envelope(i), headers=headers, timeout=30).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(send, range(SENT)))
        assert statuses == [200] * SENT

        store = open_store(pg_url)
        try:

            def stored() -> int:
                with store.db.tx(write=False) as c:
                    return int(c.one("SELECT COALESCE(SUM(count), 0) FROM perf_rollups WHERE res = 3600")[0])

            wait_until(lambda: store.queue.queue_depth() == 0 and stored() == SENT, timeout=60)
            assert stored() == SENT
        finally:
            store.close()
    finally:
        server.stop()
    # Stopping the first process stops the workers too.
    wait_until(lambda: not any(_alive(pid) for pid in workers), timeout=20)


def test_workers_need_postgresql(tmp_path: Path) -> None:
    """SQLite has one writer: --workers 2 on it is refused with a message (exit status 2)."""
    # A process of its own: `serve` configures logging for the process before it checks its flags.
    command = [sys.executable, "-m", "tripwire_server", "serve", "--data-dir", str(tmp_path), "--port", "0"]
    result = subprocess.run([*command, "--workers", "2"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "PostgreSQL" in result.stderr
