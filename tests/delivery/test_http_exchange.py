"""The sender's HTTP/1.1 exchange against a real socket server answering in the shapes servers use."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tripwire.delivery.connections import MAX_RESPONSE_BYTES, ConnectionPool


@contextmanager
def raw_server(answers: list[bytes]) -> Iterator[tuple[str, list[bytes], list[int]]]:
    """A server on 127.0.0.1 that reads one request per answer and writes that answer verbatim.

    An answer ending the connection (HTTP/1.0, ``Connection: close`` or no length) closes the socket;
    yields (url, raw requests received, ids of the connections they came on).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    requests: list[bytes] = []
    conns: list[int] = []
    pending = list(answers)

    def read_request(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length"))
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def serve() -> None:
        number = 0
        while pending:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            number += 1
            with conn:
                while pending:
                    request = read_request(conn)
                    if not request:
                        break
                    requests.append(request)
                    conns.append(number)
                    answer = pending.pop(0)
                    conn.sendall(answer)
                    if answer.startswith(b"HTTP/1.0") or b"Connection: close" in answer or (
                        b"Content-Length" not in answer and b"chunked" not in answer
                    ):
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/1/envelope/", requests, conns
    finally:
        listener.close()
        thread.join(2)


def test_one_request_carries_host_length_and_body_on_a_kept_alive_connection() -> None:
    """Two posts go over one connection, each with Host, Content-Length and the exact body."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Sentry-Rate-Limits: 60:error\r\n\r\n{}"
    with raw_server([ok, ok]) as (url, requests, conns):
        pool = ConnectionPool(5.0, proxy="")
        first = pool.post(url, b"first body", {"Content-Type": "application/json"})
        second = pool.post(url, b"second", {"Content-Type": "application/json"})
        pool.close()
    assert first == (200, {"content-length": "2", "x-sentry-rate-limits": "60:error"}, b"{}")
    assert second[0] == 200
    assert conns == [1, 1]
    head, _, body = requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api/1/envelope/ HTTP/1.1\r\n")
    assert f"Host: {url.split('/')[2]}".encode() in head
    assert b"Content-Length: 10" in head and body == b"first body"


def test_chunked_answers_are_read_whole_and_keep_the_connection() -> None:
    """A chunked reply (with a chunk extension) is joined, and the next post reuses the connection."""
    chunked = b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n"
    chunked += b"5;ext=1\r\nslow \r\n5\r\ndown!\r\n0\r\n\r\n"
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with raw_server([chunked, ok]) as (url, _requests, conns):
        pool = ConnectionPool(5.0, proxy="")
        status, headers, body = pool.post(url, b"x", {})
        assert pool.post(url, b"y", {})[0] == 200
        pool.close()
    assert (status, headers["retry-after"], body) == (429, "7", b"slow down!")
    assert conns == [1, 1]


def test_interim_answers_are_skipped_and_unframed_bodies_end_the_connection() -> None:
    """A 100 Continue before the real answer is skipped; a body without length is read to the close."""
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 503 Service Unavailable\r\n\r\nback soon"
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with raw_server([interim, ok]) as (url, _requests, conns):
        pool = ConnectionPool(5.0, proxy="")
        assert pool.post(url, b"x", {}) == (503, {}, b"back soon")
        assert pool.post(url, b"y", {})[0] == 200
        pool.close()
    assert conns == [1, 2]


def test_a_huge_answer_is_cut_and_its_connection_not_reused() -> None:
    """Only MAX_RESPONSE_BYTES of a long reply are kept, and the next post opens a new connection."""
    size = MAX_RESPONSE_BYTES + 5000
    big = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with raw_server([big, ok]) as (url, _requests, conns):
        pool = ConnectionPool(5.0, proxy="")
        status, _headers, body = pool.post(url, b"x", {})
        assert pool.post(url, b"y", {})[0] == 200
        pool.close()
    assert status == 413 and len(body) == MAX_RESPONSE_BYTES
    assert conns == [1, 2]


def test_header_values_with_line_breaks_are_refused() -> None:
    """A header value with CR/LF never reaches the wire (no header injection)."""
    with raw_server([]) as (url, requests, _conns):
        pool = ConnectionPool(5.0, proxy="")
        with pytest.raises(ValueError):
            pool.post(url, b"x", {"X-Test": "a\r\nInjected: yes"})
        pool.close()
    assert requests == []
