"""Traced services in subprocesses (the official sentry-sdk), for the performance tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from ..conftest import free_port, wait_until

SERVICE = Path(__file__).with_name("traced_service.py")


class TracedService:
    """``traced_service.py`` running under uvicorn, reporting to ``dsn``."""

    def __init__(self, dsn: str, workdir: Path, name: str, downstream: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.durations = workdir / f"{name}-durations.jsonl"
        args = [sys.executable, str(SERVICE), dsn, str(self.port), str(self.durations)]
        if downstream:
            args.append(downstream)
        self.proc = subprocess.Popen(args, env={**os.environ, "PYTHONUNBUFFERED": "1"})
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
        try:
            return self.http.get("/fast").status_code == 200
        except httpx.TransportError:
            return False

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def stop(self) -> list[dict[str, object]]:
        """Stop (uvicorn shuts down, sentry-sdk flushes); return the recorded transactions."""
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self.durations.exists():
            return []
        return [json.loads(line) for line in self.durations.read_text().splitlines() if line.strip()]
