"""Real receivers on 127.0.0.1 for the alert tests: a webhook endpoint and an SMTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tripwire_server.alerts.settings import AlertSettings

from .conftest import LiveServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-tripwire-signature", ""), expected)


@dataclass
class WebhookReceiver:
    """An HTTP server that records every POST; ``status`` is what it answers."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    #: Requests whose body was read (before ``hold`` lets them be answered).
    arrived: list[Received] = field(default_factory=list)
    status: int = 200
    #: Set to make requests wait (a receiver that hangs) until cleared.
    hold: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}/hook"

    def bodies(self) -> list[Any]:
        with self.lock:
            return [r.json() for r in self.received]


@contextmanager
def webhook_receiver(port: int = 0, *, tls: Any = None) -> Iterator[WebhookReceiver]:
    """A receiver on 127.0.0.1; with ``tls`` (an ``ssl.SSLContext``) it speaks HTTPS."""
    holder: list[WebhookReceiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = holder[0]
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with receiver.lock:
                receiver.arrived.append(got)
            while receiver.hold.is_set():
                time.sleep(0.01)
            with receiver.lock:
                receiver.received.append(got)
            self.send_response(receiver.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver = WebhookReceiver(server, scheme="https" if tls is not None else "http")
    holder.append(receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.hold.clear()
        server.shutdown()
        server.server_close()


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink(port=0)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            sink.messages.append(msg)
            sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        sink.port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@contextmanager
def tls_smtp_sink(tmp_dir: Any, *, implicit: bool, user: str, password: str) -> Iterator[SmtpSink]:
    """An SMTP server with a throwaway CA: STARTTLS (or implicit TLS) and required AUTH.

    The CA's certificate goes to ``tmp_dir/ca.pem``: point ``SSL_CERT_FILE`` at it to trust it.
    """
    import socket
    import ssl

    import trustme
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_dir / "ca.pem"))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    sink = SmtpSink(port=0)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            sink.messages.append(msg)
            sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == user.encode()
            and data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        sink.port = probe.getsockname()[1]
    options: dict[str, Any] = {"authenticator": authenticate, "auth_required": True}
    if implicit:
        # aiosmtpd only counts STARTTLS as TLS when deciding to offer AUTH; this socket is TLS.
        options.update(ssl_context=server_ctx, auth_require_tls=False)
    else:
        options.update(tls_context=server_ctx, require_starttls=True)
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=sink.port, server_hostname="127.0.0.1", **options
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def start_alerting(database_url: str, **alerts: Any) -> LiveServer:
    """A live server whose alert sender may post to loopback webhooks and polls every 20 ms."""
    settings = AlertSettings(**{"allow_webhook_hosts": ("127.0.0.1",), "poll_interval": 0.02, **alerts})
    return LiveServer(database_url, alerts=settings)


def create_rule(server: LiveServer, **body: Any) -> dict[str, Any]:
    """Create an alert rule through the API (notifications not digested unless the body says so)."""
    body.setdefault("digest_seconds", 0)
    return server.api(f"/api/0/projects/{server.project.id}/alerts/", "POST", json=body)  # type: ignore[no-any-return]
