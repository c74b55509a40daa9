"""A profiled Starlette service in a subprocess, for the profiling tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.coverage_env import without_coverage

from ..conftest import free_port, wait_until

SERVICE = Path(__file__).with_name("profiled_service.py")
#: Who profiles the service: each is a client variant of the end-to-end tests. ``sentry`` sends
#: transaction profiles (``profile`` items), ``sentry-continuous`` continuous ``profile_chunk``s.
#: ``tripwire`` is tripwire's own profiler (same option names). ``tripwire-continuous`` (its
#: continuous mode) also runs in ``profiled_service.py`` but is not listed yet: tripwire's
#: transactions do not name their thread (``contexts.trace.data["thread.id"]``, as sentry-sdk's
#: do), so a chunk's samples of every thread go to the transaction and dilute its shares.
CLIENTS = ("sentry", "sentry-continuous", "tripwire", "tripwire-continuous")
#: The function the /crunch route spends its time in, as profiles name it.
SLOW_FUNCTION = "crunch_numbers"
HOSTILE_NAME = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
RELEASE = "shop@3.1.0"


class ProfiledService:
    """``profiled_service.py`` under uvicorn, profiled by ``client``, reporting to ``dsn``."""

    def __init__(self, client: str, dsn: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVICE), client, dsn, str(self.port)],
            # A sentry-sdk client runs nothing of ours: not measured by coverage.
            env={
                **(without_coverage() if client.startswith("sentry") else os.environ),
                "PYTHONUNBUFFERED": "1",
            },
        )
        self.http = httpx.Client(base_url=self.url, timeout=30)
        try:
            # 60 s: importing the SDK and the framework under coverage on a loaded 2-core machine.
            wait_until(self._up, timeout=60, interval=0.1)
        except BaseException:
            # A service that never came up must not outlive the test (it would keep its port and
            # its CPU share for the rest of the run).
            self.proc.kill()
            self.proc.wait(10)
            self.http.close()
            raise

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the profiled service exited with {self.proc.returncode}")
        try:
            return self.http.get("/fast").status_code == 200
        except httpx.TransportError:
            return False

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def stop(self) -> None:
        """Stop it: uvicorn shuts down, and the SDK flushes what it holds."""
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
