"""Run an ASGI app under a real uvicorn or hypercorn server on 127.0.0.1, in a background thread.

The socket is bound here (port 0) and handed to the server, so there is no port race.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

SERVERS = ("uvicorn", "hypercorn")


@dataclass
class Running:
    kind: str
    port: int
    thread: threading.Thread
    error: list[BaseException] = field(default_factory=list)
    stop: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _wait_listening(port: int, thread: threading.Thread, timeout: float = 10.0) -> bool:
    """True once the server answers HTTP; False if its thread ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"GET /__ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if conn.recv(16).startswith(b"HTTP/1.1"):
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"server on port {port} did not come up")


@contextmanager
def serve(app: Any, kind: str, *, lifespan: Literal["auto", "on", "off"] = "auto") -> Iterator[Running]:
    """Serve ``app`` with ``kind`` (uvicorn or hypercorn) until the block ends.

    If the server cannot start (a failing lifespan startup), ``running.thread`` is already dead on
    entry; the caller checks ``running.thread.is_alive()``.
    """

    async def probed(scope: Any, receive: Any, send: Any) -> None:
        # Readiness probes are answered here, so that they never reach the application under test.
        if scope["type"] == "http" and scope["path"] == "/__ready":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    sock = _bind()
    port = sock.getsockname()[1]
    running = Running(kind, port, threading.Thread())
    if kind == "uvicorn":
        import uvicorn

        from tests.support.prompt_uvicorn import PromptServer

        config = uvicorn.Config(
            probed,
            log_level="critical",
            lifespan=lifespan,
            ws="websockets-sansio",
            timeout_graceful_shutdown=5,
        )
        server = PromptServer(config)

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # SystemExit when the lifespan startup fails
                running.error.append(exc)

        def stop() -> None:
            server.stop()

    elif kind == "hypercorn":
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config

        hyper_config = Config()
        # Hypercorn closes the socket it is given: give it its own descriptor.
        hyper_config.bind = [f"fd://{os.dup(sock.fileno())}"]
        hyper_config.loglevel = "CRITICAL"
        hyper_config.graceful_timeout = 5
        loop_box: dict[str, Any] = {}

        async def main() -> None:
            loop_box["loop"] = asyncio.get_running_loop()
            loop_box["event"] = event = asyncio.Event()
            await hypercorn_serve(probed, hyper_config, shutdown_trigger=event.wait)

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:
                running.error.append(exc)

        def stop() -> None:
            loop = loop_box.get("loop")
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(loop_box["event"].set)
                except RuntimeError:
                    pass

    else:
        raise ValueError(kind)
    running.stop = stop
    running.thread = threading.Thread(target=run, name=f"test-{kind}", daemon=True)
    running.thread.start()
    try:
        _wait_listening(port, running.thread)
        yield running
    finally:
        stop()
        running.thread.join(15)
        sock.close()
