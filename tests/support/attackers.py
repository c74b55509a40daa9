"""Hostile clients of the collector's ingest path, for the attack tests and the load benchmark.

Each attacker is a thread with its own raw socket to 127.0.0.1 doing one thing over and over until
stopped: a gzip bomb that pauses (without a key, with the DSN key in the envelope header, or with
the key in ``X-Sentry-Auth``), headers or a body sent a byte at a time, or a large attachment
envelope at full speed. They ignore ``Retry-After`` and ``Connection: close`` and open a new
connection for every attempt, as a hostile client would. ``source`` binds another loopback
address (Linux routes all of 127.0.0.0/8 to lo), so that the server tells them apart from normal
clients as it would attackers on the internet. :func:`rss_tree_mib` measures what the server
holds, children included.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

MiB = 1024 * 1024
#: Decompressed size of one bomb: under the default 100 MiB envelope limit, so nothing refuses
#: it for its size and the server must inflate it to the end.
BOMB_INFLATED = 95 * MiB
KINDS = ("bomb-keyless", "bomb-dsn", "bomb-key", "slow-headers", "slow-body", "big-attachment")


def rss_tree_mib(pid: int) -> float:
    """Resident memory of process ``pid`` and all its descendants, in MiB (Linux /proc)."""
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                todo.extend(int(c) for c in children)
        except OSError:
            pass
    return total


@functools.cache
def deflated_mib_of_zeros() -> bytes:
    """One MiB of zeros as raw deflate blocks (level 9, ~1 KiB) ending on a full flush: they refer
    to nothing before them and end byte-aligned, so copies of them can follow each other (and any
    other blocks that end on a full flush) in one stream. Deflating the zeros of a bomb once per
    MiB instead of all 95 MiB for every bomb: ~0.3 s of CPU less per bomb."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return comp.compress(bytes(MiB)) + comp.flush(zlib.Z_FULL_FLUSH)


@functools.lru_cache(maxsize=8)
def bomb(first_line: bytes) -> bytes:
    """An unfinished gzip stream: ``first_line``, an item with no length, then zeros that inflate
    to ~95 MiB (~96 KiB on the wire). The server has to wait for the rest, which never comes.
    The item is a replay recording: a type without an item size limit of its own (profiles have
    one now), so only the envelope's limits and the inflate ratio stop it."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = comp.compress(first_line + b'{"type": "replay_recording"}\n') + comp.flush(zlib.Z_FULL_FLUSH)
    return out + deflated_mib_of_zeros() * (BOMB_INFLATED // MiB)


class Attackers:
    """``count`` threads of attack ``kind`` against ``url`` (project ``project_id``, key ``key``)."""

    def __init__(
        self,
        kind: str,
        count: int,
        *,
        port: int,
        project_id: int,
        key: str,
        pause: float = 5.0,
        rate: float | None = None,
        source: str | None = None,
    ) -> None:
        assert kind in KINDS, kind
        self.kind, self.port, self.project_id, self.key, self.pause = kind, port, project_id, key, pause
        #: Attempts per second per thread at most (None: as fast as the server answers).
        self.rate = rate
        #: Local address the connections come from (None: the system's choice, 127.0.0.1).
        self.source = source
        self.outcomes: Counter[str] = Counter()
        self.attempts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def start(self) -> Attackers:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def _note(self, outcome: str) -> None:
        with self._lock:
            self.attempts += 1
            self.outcomes[outcome] += 1

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                outcome = self._once()
            except OSError as exc:
                outcome = type(exc).__name__
            self._note(outcome)
            if self.rate:
                next_at += 1.0 / self.rate
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _head(self, length: int, extra: str = "") -> bytes:
        return (
            f"POST /api/{self.project_id}/envelope/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n"
        ).encode()

    def _once(self) -> str:
        source = (self.source, 0) if self.source else None
        with socket.create_connection(("127.0.0.1", self.port), timeout=10, source_address=source) as sock:
            if self.kind.startswith("bomb"):
                auth = ""
                first: dict[str, str] = {}
                if self.kind == "bomb-key":
                    auth = f"X-Sentry-Auth: Sentry sentry_key={self.key}\r\n"
                elif self.kind == "bomb-dsn":
                    first = {"dsn": f"http://{self.key}@127.0.0.1:{self.port}/{self.project_id}"}
                body = bomb(json.dumps(first).encode() + b"\n")
                sock.sendall(self._head(len(body) + 100_000, auth + "Content-Encoding: gzip\r\n") + body)
                return self._wait(sock, self.pause)
            if self.kind == "slow-headers":
                sock.sendall(b"POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\n")
                return self._trickle(sock, b"X")
            if self.kind == "slow-body":
                sock.sendall(
                    self._head(1 * MiB, f"X-Sentry-Auth: Sentry sentry_key={self.key}\r\n")
                    + b'{}\n{"type": "attachment", "length": 1000000}\n'
                )
                return self._trickle(sock, b"a")
            # big-attachment: a legitimate but heavy envelope (15 MiB) at full speed.
            payload = b"x" * (15 * MiB)
            body = b'{}\n{"type": "attachment", "length": %d}\n%s\n' % (len(payload), payload)
            sock.sendall(self._head(len(body), f"X-Sentry-Auth: Sentry sentry_key={self.key}\r\n") + body)
            return self._wait(sock, 30)

    def _wait(self, sock: socket.socket, seconds: float) -> str:
        """Hold the connection for ``seconds`` or until the server answers; the status or 'held'."""
        sock.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"
        return "held"

    def _trickle(self, sock: socket.socket, byte: bytes) -> str:
        sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                sock.sendall(byte)
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return "cut"
            return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "cut"
        return "held"
