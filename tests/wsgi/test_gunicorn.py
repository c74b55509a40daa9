"""A Flask app wrapped in tripwire.wsgi.TripwireMiddleware under a real gunicorn, sync and gthread
workers, with the SDK initialised in the master before the fork (--preload) and in each worker after
it (post_fork): every failing request reported once, over HTTP, with its route and its own user."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.figures import record
from tests.support.sink import Sink

ROOT = Path(__file__).resolve().parents[2]

APP = """
import os
import tripwire
from flask import Flask
from tripwire.wsgi import TripwireMiddleware

if os.environ["TRIPWIRE_INIT"] == "before-fork":
    tripwire.init(os.environ["TRIPWIRE_TEST_DSN"], send_client_reports=False, release="1.0",
                  repeat_limit=None)

app = Flask("gunicorn_app")
app.wsgi_app = TripwireMiddleware(app.wsgi_app)

@app.route("/ok")
def ok():
    return str(os.getpid())

@app.route("/orders/<int:oid>")
def order(oid):
    tripwire.set_user({"id": f"user-{oid}"})
    raise LookupError(f"order {oid}")
"""

CONFIG = """
import os

def post_fork(server, worker):
    if os.environ["TRIPWIRE_INIT"] == "after-fork":
        import tripwire
        tripwire.init(os.environ["TRIPWIRE_TEST_DSN"], send_client_reports=False, release="1.0",
                      repeat_limit=None)
"""


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
@pytest.mark.parametrize("init", ["before-fork", "after-fork"])
def test_gunicorn_workers_report_each_failing_request_once_with_its_route_and_user(
    sink: Sink, tmp_path: Path, worker_class: str, init: str
) -> None:
    (tmp_path / "gunicorn_app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "gunicorn_conf.py").write_text(textwrap.dedent(CONFIG))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), str(tmp_path)])
    env.update(TRIPWIRE_TEST_DSN=sink.dsn, TRIPWIRE_INIT=init)
    port = _free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--config", "gunicorn_conf.py",
        "--workers", "2", "--worker-class", worker_class, "--threads", "4",
        "--bind", f"127.0.0.1:{port}", "--log-level", "error", "--error-logfile", os.devnull,
        "--graceful-timeout", "10", "gunicorn_app:app",
    ]  # fmt: skip
    if init == "before-fork":
        command.insert(3, "--preload")
    server = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    count = 30
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert _get(port, "/ok") == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda i: _get(port, f"/orders/{i}"), range(count)))
        assert statuses == [500] * count
        arrived = sink.wait_until(lambda: len(sink.events) >= count, 10)
        time.sleep(0.2)  # anything extra would show up too
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, stderr = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
            pytest.fail(f"gunicorn did not stop on SIGTERM:\n{stderr}")
    assert arrived, f"{len(sink.events)} of {count} events\n{stderr}"
    assert server.returncode == 0, stderr
    events = sink.events
    assert len(events) == count
    for event in events:
        exc = event["exception"]["values"][-1]
        oid = exc["value"].split()[-1].rstrip("'")
        assert exc["type"] == "LookupError"
        assert event["user"]["id"] == f"user-{oid}"
        assert event["transaction"] == "/orders/<int:oid>"
        assert event["request"]["url"] == f"http://127.0.0.1:{port}/orders/{oid}"
    assert sorted(int(e["user"]["id"].split("-")[1]) for e in events) == list(range(count))
    record(
        "fork-shutdown",
        f"gunicorn {worker_class} workers, tripwire.wsgi, init {init}",
        f"{count} concurrent failing Flask requests, 0 lost, 0 duplicated",
        "2 workers; each event with its own route and user; SIGTERM stop clean",
    )
