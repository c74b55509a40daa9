"""tripwire.delivery.connections: the sender's HTTP/1.1 exchange (http.client) against real socket
servers answering in the shapes servers use, and in shapes they should not."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.figures import record
from tripwire.delivery.connections import MAX_RESPONSE_BYTES, ConnectionPool
from tripwire.delivery.curl import CurlPool


@pytest.fixture(params=["http.client", "pycurl"])
def pool_class(request: pytest.FixtureRequest) -> type[ConnectionPool]:
    """Both senders (``http_client=``) must make the same exchanges."""
    return ConnectionPool if request.param == "http.client" else CurlPool


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
                    if (
                        answer.startswith(b"HTTP/1.0")
                        or b"Connection: close" in answer
                        or (b"Content-Length" not in answer and b"chunked" not in answer)
                    ):
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/1/envelope/", requests, conns
    finally:
        listener.close()
        thread.join(2)


def test_one_request_carries_host_length_and_body_on_a_kept_alive_connection(
    pool_class: type[ConnectionPool],
) -> None:
    """Two posts go over one connection, each with Host, Content-Length and the exact body."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Sentry-Rate-Limits: 60:error\r\n\r\n{}"
    with raw_server([ok, ok]) as (url, requests, conns):
        pool = pool_class(5.0, proxy="")
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


def test_chunked_answers_are_read_whole_and_keep_the_connection(pool_class: type[ConnectionPool]) -> None:
    """A chunked reply (with a chunk extension) is joined, and the next post reuses the connection."""
    chunked = b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n"
    chunked += b"5;ext=1\r\nslow \r\n5\r\ndown!\r\n0\r\n\r\n"
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with raw_server([chunked, ok]) as (url, _requests, conns):
        pool = pool_class(5.0, proxy="")
        status, headers, body = pool.post(url, b"x", {})
        assert pool.post(url, b"y", {})[0] == 200
        pool.close()
    assert (status, headers["retry-after"], body) == (429, "7", b"slow down!")
    assert conns == [1, 1]


def test_interim_answers_are_skipped_and_unframed_bodies_end_the_connection(
    pool_class: type[ConnectionPool],
) -> None:
    """A 100 Continue before the real answer is skipped; a body without length is read to the close."""
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 503 Service Unavailable\r\n\r\nback soon"
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with raw_server([interim, ok]) as (url, _requests, conns):
        pool = pool_class(5.0, proxy="")
        assert pool.post(url, b"x", {}) == (503, {}, b"back soon")
        assert pool.post(url, b"y", {})[0] == 200
        pool.close()
    assert conns == [1, 2]


def test_a_huge_answer_is_cut_and_its_connection_not_reused(pool_class: type[ConnectionPool]) -> None:
    """Only MAX_RESPONSE_BYTES of a long reply are kept, and the next post opens a new connection."""
    size = MAX_RESPONSE_BYTES + 5000
    big = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with raw_server([big, ok]) as (url, _requests, conns):
        pool = pool_class(5.0, proxy="")
        status, _headers, body = pool.post(url, b"x", {})
        assert pool.post(url, b"y", {})[0] == 200
        pool.close()
    assert status == 413 and len(body) == MAX_RESPONSE_BYTES
    assert conns == [1, 2]


def test_header_values_with_line_breaks_are_refused(pool_class: type[ConnectionPool]) -> None:
    """A header value with CR/LF never reaches the wire (no header injection)."""
    with raw_server([]) as (url, requests, _conns):
        pool = pool_class(5.0, proxy="")
        with pytest.raises(ValueError):
            pool.post(url, b"x", {"X-Test": "a\r\nInjected: yes"})
        pool.close()
    assert requests == []


class _OneAnswerServer:
    """Answers every connection on 127.0.0.1 with ``self.answer`` verbatim (after reading the
    request's head), then closes it."""

    def __init__(self) -> None:
        self.answer = b""
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/api/1/envelope/"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(2)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(self.answer)
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(2)


_STATUS_LINES = st.sampled_from(
    [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.0 429 Too Many",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy",
        b"HTTP/1.1 999 What",
        b"HTTP/2 200",
        b"HTTP/1.1 20",
        b"ICY 200 OK",
        b"",
        b"HTTP/1.1 204 No Content",
    ]
)
_HEADERS = st.lists(
    st.sampled_from(
        [
            b"Content-Length: 5",
            b"Content-Length: -1",
            b"Content-Length: 99999999",
            b"Content-Length: x",
            b"Transfer-Encoding: chunked",
            b"Connection: close",
            b"Retry-After: 1",
            b"X-Sentry-Rate-Limits: 1::",
            b"Content-Length: 2\r\nContent-Length: 3",
            b"no colon here",
            b" folded: value",
            b"\xff\xfe: \x00",
        ]
    )
    | st.binary(max_size=30),
    max_size=6,
)
_BODIES = st.sampled_from(
    [b"", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"ffffffffffff\r\nx"]
) | st.binary(max_size=200)


@st.composite
def _responses(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))  # anything at all
    head = b"\r\n".join([draw(_STATUS_LINES), *draw(_HEADERS)])
    return head + b"\r\n\r\n" + draw(_BODIES)


_tried = {"answers": 0}
_SERVER: dict[str, _OneAnswerServer] = {}


@pytest.fixture(scope="module", autouse=True)
def _fuzz_server() -> Iterator[None]:
    """One answering server for every fuzzed answer; the count of answers tried, recorded at the end."""
    yield
    server = _SERVER.pop("server", None)
    if server is not None:
        server.close()
    if _tried["answers"]:
        record(
            "fuzzing",
            "HTTP answers tried against the SDK's sender (http.client)",
            _tried["answers"],
            "tests/delivery/test_connections.py: a response or a transport error, never a crash",
        )


@pytest.mark.reliability
@settings(max_examples=200, deadline=None)
@given(answer=_responses())
def test_any_answer_is_either_a_response_or_a_transport_error(answer: bytes) -> None:
    """Whatever bytes a server answers with, post() returns (status, headers, at most
    MAX_RESPONSE_BYTES of body) or raises an OSError, an HTTPException or a ValueError (which the
    sender counts as a failed attempt): never anything else, never a hang past its timeout."""
    server = _SERVER.get("server")
    if server is None:
        server = _SERVER["server"] = _OneAnswerServer()
    server.answer = answer
    pool = ConnectionPool(2.0, proxy="")
    try:
        status, headers, body = pool.post(server.url, b"{}", {"Content-Type": "application/json"})
    except (OSError, http.client.HTTPException, ValueError):
        pass
    else:
        assert isinstance(status, int)
        assert all(isinstance(k, str) and k == k.lower() for k in headers)
        assert len(body) <= MAX_RESPONSE_BYTES
    finally:
        pool.close()
    _tried["answers"] += 1


def test_a_port_nothing_listens_on_is_unreachable(pool_class: type[ConnectionPool]) -> None:
    """Not even connecting is Unreachable (the backend is down: retried without using an attempt)."""
    from tripwire.delivery.connections import Unreachable

    from .conftest import free_port

    pool = pool_class(2.0, proxy="")
    with pytest.raises(Unreachable):
        pool.post(f"http://127.0.0.1:{free_port()}/api/1/envelope/", b"x", {})
    pool.close()


def test_a_server_that_never_answers_times_out(pool_class: type[ConnectionPool]) -> None:
    """A server that accepts and then says nothing ends in a timeout (an OSError), within it."""
    import time

    with raw_server([]) as (url, _requests, _conns):
        pool = pool_class(0.5, proxy="")
        started = time.monotonic()
        with pytest.raises(OSError):
            pool.post(url, b"x", {})
        pool.close()
    assert time.monotonic() - started < 3
