"""Fixtures for the collector: real servers on 127.0.0.1, real SQLite files, the real PostgreSQL.

PostgreSQL tests run when TRIPWIRE_TEST_DATABASE_URL is set; every test gets its own schema
(``tw_test_<random>``), dropped afterwards, so parallel runs and teammates' tests never collide.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.coverage_env import without_coverage
from tests.support.prompt_uvicorn import PromptServer
from tripwire_server import credentials
from tripwire_server.app import create_app
from tripwire_server.config import CollectorConfig
from tripwire_server.serving import uvicorn_config
from tripwire_server.store import Store, open_store

PG_ENV = "TRIPWIRE_TEST_DATABASE_URL"

# scrypt at a sixteenth of the production cost (N = 2**10, not 2**14) for the collectors the tests
# run in this process: each makes an admin's hash at start and the web tests log in often (~550
# hashes and checks per run, 22 s of CPU at ~40 ms each). The code, the stored format and the
# comparisons the tests check are the same; only scrypt's work factor, which no test measures, is
# lower. `tripwire serve` processes the tests start keep the production cost.
credentials._N = 2**10


def wait_until(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def away_from_boundary(period: float, margin: float = 5.0) -> None:
    """Sleep past the end of the current ``period`` (60: minute, 3600: hour) if it ends within
    ``margin`` seconds, so that a test's requests fall in one quota window or one hour bucket."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.05)


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


class PgSchemas:
    """Creates throw-away schemas in the shared test database."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self._conn = psycopg.connect(url, autocommit=True)
        self.created: list[str] = []

    def new(self) -> str:
        schema = f"tw_test_{secrets.token_hex(6)}"
        self._conn.execute(f"CREATE SCHEMA {schema}")
        self.created.append(schema)
        return with_schema(self.url, schema)

    def drop(self, url: str) -> None:
        schema = url.rsplit("search_path%3D", 1)[1]
        self._conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def close(self) -> None:
        for schema in self.created:
            self._conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        self._conn.close()


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[PgSchemas]:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set")
    schemas = PgSchemas(url)
    yield schemas
    schemas.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tripwire.sqlite3'}"
        return
    schemas: PgSchemas = request.getfixturevalue("pg_schemas")
    url = schemas.new()
    yield url
    schemas.drop(url)


@pytest.fixture
def pg_url(pg_schemas: PgSchemas) -> Iterator[str]:
    """A fresh PostgreSQL schema (skips when no PostgreSQL is configured)."""
    url = pg_schemas.new()
    yield url
    pg_schemas.drop(url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The collector app served by a real uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, database_url: str, **config: Any) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.config = CollectorConfig(port=self.port, database_url=database_url, **config)
        self.store: Store = open_store(database_url)
        self.app = create_app(self.config, store=self.store)
        self.state = self.app.state.collector
        self.server = PromptServer(
            uvicorn_config(self.app, self.config.limits, log_level="warning", access_log=False, lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=20)
        self.url = f"http://127.0.0.1:{self.port}"
        project = self.store.accounts.get_project("default")
        self.project = project
        self.dsn = project.dsn(self.url)
        self.key = project.public_key
        admin = self.store.accounts.get_user("admin")
        self.token = self.store.accounts.create_api_token(admin.id, "tests")
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def api(self, path: str, method: str = "GET", **kwargs: Any) -> Any:
        response = self.http.request(
            method, path, headers={"Authorization": f"Bearer {self.token}"}, **kwargs
        )
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json()

    def post_envelope(
        self, body: Any, *, project_id: int | None = None, key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key or self.key}"}
        headers.update(kwargs.pop("headers", {}))
        return self.http.post(
            f"/api/{project_id or self.project.id}/envelope/", content=body, headers=headers, **kwargs
        )

    def drained(self) -> bool:
        return self.store.queue.queue_depth() == 0 and self.state.writer.in_flight == 0

    def wait_digested(self, timeout: float = 20) -> None:
        wait_until(self.drained, timeout=timeout)

    def stop(self) -> None:
        self.http.close()
        self.server.stop()
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    """A running collector on a fresh database (SQLite and PostgreSQL)."""
    live = LiveServer(database_url)
    yield live
    live.stop()


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A running collector on a fresh SQLite file (for protocol tests that do not vary by backend)."""
    live = LiveServer(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
    yield live
    live.stop()


# -- building envelopes ------------------------------------------------------------------------------


def make_event(
    *,
    type_: str = "ValueError",
    value: str = "boom",
    frames: list[tuple[str, str, int]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Sentry error event; ``frames`` are (module, function, lineno), outermost first, in-app."""
    frames = frames if frames is not None else [("app.main", "run", 10), ("app.views", "checkout", 42)]
    event: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "platform": "python",
        "level": "error",
        "exception": {
            "values": [
                {
                    "type": type_,
                    "value": value,
                    "stacktrace": {
                        "frames": [
                            {
                                "module": m,
                                "function": f,
                                "lineno": n,
                                "filename": m.replace(".", "/") + ".py",
                                "in_app": True,
                            }
                            for m, f, n in frames
                        ]
                    },
                }
            ]
        },
    }
    event.update(extra)
    return event


def envelope(*items: tuple[str, Any], header: dict[str, Any] | None = None, lengths: bool = True) -> bytes:
    """An envelope of ``(type, payload)`` items; payloads that are not bytes are JSON-encoded."""
    head = dict(header or {})
    for kind, payload in items:
        if kind == "event" and isinstance(payload, dict):
            head.setdefault("event_id", payload.get("event_id"))
    lines = [json.dumps(head).encode()]
    for kind, payload in items:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        item_header: dict[str, Any] = {"type": kind}
        if lengths:
            item_header["length"] = len(data)
        lines += [json.dumps(item_header).encode(), data]
    return b"\n".join(lines) + b"\n"


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


# -- collector subprocesses --------------------------------------------------------------------------


class ServeProcess:
    """``python -m tripwire_server serve`` as a real subprocess.

    ``measured=False`` for a process the test ends with SIGKILL: it never writes its coverage data
    (``tests/support/coverage_env.py``)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, measured: bool = True) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()/kill()
        environ = {**os.environ, **(env or {})}
        if not measured:
            environ = without_coverage(environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tripwire_server", "serve", "--port", "0", "--json", *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=environ,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            self.log.seek(0)
            raise AssertionError(self.log.read().decode(errors="replace"))
        self.info = json.loads(line)
        self.url = self.info["url"].rstrip("/")
        self.dsn = self.info["dsn"]
        self.key = self.dsn.split("//", 1)[1].split("@", 1)[0]
        wait_until(self._healthy, timeout=20)

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/api/0/health/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()
