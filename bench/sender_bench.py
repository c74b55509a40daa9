"""Sender: CPU per POST of the HTTP/1.1 implementations the SDK's sender could use.

One kept-alive connection to a loopback server (in its own process, so it takes no CPU from the
measured thread) that answers every request with a typical collector answer. The client thread posts
a 3 KB body N times; the figure is its CPU time (``thread_time``) per POST: writing the request,
reading and parsing the response. Variants, in alternating rounds, medians:

- ``http.client``: what tripwire uses (``tripwire.delivery.connections.ConnectionPool``);
- ``hand-written``: the request writer and response parser tripwire had before (``--before-src``,
  a source tree with ``tripwire/_http.py``); skipped without it;
- ``h11``: the sans-I/O parser, over a plain socket;
- ``urllib3``: its connection pool (which builds on ``http.client``).

    python bench/sender_bench.py --rounds 5 --n 3000 --before-src /tmp/before/src
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import _harness

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 41\r\n"
    b"Date: Mon, 07 Dec 2026 00:00:00 GMT\r\nServer: uvicorn\r\n\r\n"
    b'{"id":"0123456789abcdef0123456789abcdef"}'
)
BODY = b"x" * 3000
HEADERS = {
    "Content-Type": "application/x-sentry-envelope",
    "X-Sentry-Auth": "Sentry sentry_version=7, sentry_key=public, sentry_client=tripwire.python/0.1",
    "User-Agent": "tripwire.python/0.1",
    "Content-Encoding": "gzip",
}
PATH = "/api/1/envelope/"


def _serve(listener: socket.socket) -> None:
    """Answer every request on every connection with ANSWER (request framed by Content-Length)."""
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                conn.close()
                break
            buf += data
            while b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                if len(rest) < length:
                    break
                buf = rest[length:]
                conn.sendall(ANSWER)


def _http_client(port: int, before_src: str | None) -> Callable[[], None]:
    from tripwire.delivery.connections import ConnectionPool

    pool = ConnectionPool(5.0, proxy="")
    url = f"http://127.0.0.1:{port}{PATH}"
    return lambda: _check(pool.post(url, BODY, dict(HEADERS))[0])


def _hand_written(port: int, before_src: str | None) -> Callable[[], None]:
    assert before_src is not None
    spec = importlib.util.spec_from_file_location("before_http", f"{before_src}/tripwire/_http.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pool = module.ConnectionPool(5.0, proxy="")
    url = f"http://127.0.0.1:{port}{PATH}"
    return lambda: _check(pool.post(url, BODY, dict(HEADERS))[0])


def _h11(port: int, before_src: str | None) -> Callable[[], None]:
    import h11

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", f"127.0.0.1:{port}"), ("Content-Length", str(len(BODY))), *HEADERS.items()]

    def post() -> None:
        data = conn.send(h11.Request(method="POST", target=PATH, headers=headers))
        data += conn.send(h11.Data(data=BODY)) + conn.send(h11.EndOfMessage())
        sock.sendall(data)
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
        conn.start_next_cycle()
        _check(status)

    return post


def _urllib3(port: int, before_src: str | None) -> Callable[[], None]:
    import urllib3

    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1, retries=False)

    def post() -> None:
        response = pool.urlopen("POST", PATH, body=BODY, headers=HEADERS, preload_content=True)
        _check(response.status)

    return post


def _check(status: int) -> None:
    if status != 200:
        raise RuntimeError(f"unexpected status {status}")


VARIANTS: dict[str, Callable[[int, str | None], Callable[[], None]]] = {
    "http.client": _http_client,
    "hand-written": _hand_written,
    "h11": _h11,
    "urllib3": _urllib3,
}


def measure(variant: str, port: int, n: int, before_src: str | None) -> float:
    """CPU µs per POST on the posting thread."""
    post = VARIANTS[variant](port, before_src)
    for _ in range(200):  # warm up: connection, caches
        post()
    start = time.thread_time()
    for _ in range(n):
        post()
    return (time.thread_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--before-src", help="a source tree with the hand-written tripwire/_http.py")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args()
    variants = [v for v in VARIANTS if v != "hand-written" or args.before_src]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = multiprocessing.Process(target=_serve, args=(listener,), daemon=True)
    server.start()
    port = int(listener.getsockname()[1])
    results: dict[str, list[float]] = {v: [] for v in variants}
    try:
        for r, variant in _harness.alternating(variants, args.rounds):
            results[variant].append(measure(variant, port, args.n, args.before_src))
            print(f"round {r} {variant}: {results[variant][-1]:.1f} µs", file=sys.stderr)
    finally:
        server.terminate()
    base = _harness.median(results["http.client"])
    rows: list[list[Any]] = [
        [v, _harness.median(results[v]), f"{_harness.median(results[v]) / base:.2f}x"] for v in variants
    ]
    body = "\n\n".join(
        [
            f"`bench/sender_bench.py --rounds {args.rounds} --n {args.n}"
            f"{' --before-src ' + args.before_src if args.before_src else ''}` — {_harness.machine_line()}. "
            "CPU µs per POST of a 3 KB body on one kept-alive loopback connection, on the posting "
            "thread (write the request, read and parse a typical collector answer); the server runs "
            "in another process. Medians of alternating rounds.",
            _harness.table(["HTTP/1.1 client", "CPU µs / POST", "vs http.client"], rows),
            "tripwire's sender uses `http.client` (standard library, no dependency). hand-written = "
            "the request writer and response parser tripwire had before (`--before-src`); h11 = "
            "the sans-I/O parser over a plain socket; urllib3 builds on `http.client`.",
        ]
    )
    print(body)
    if not args.no_write:
        _harness.write_section("Sender HTTP/1.1 cost", body)


if __name__ == "__main__":
    main()
