"""HTTPS delivery: certificates are verified; a private CA is trusted only when given."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

import tripwire
from tests.support.faults import wait_until
from tests.support.sink import Sink
from tripwire.reporters.http import HTTP_CLIENTS
from tripwire.reporters.sentry import SentryReporter


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_sink(ca: trustme.CA) -> Iterator[Sink]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with Sink(tls=context) as sink:
        yield sink


@pytest.fixture(params=HTTP_CLIENTS)
def http_client(request: pytest.FixtureRequest) -> str:
    """Each test below runs with both senders (http.client, pycurl)."""
    return str(request.param)


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def test_events_go_over_https_to_a_server_signed_by_a_trusted_ca(
    tls_sink: Sink, ca_file: str, http_client: str
) -> None:
    """With ca_file naming the server's CA, Sentry and BugSnag reporters deliver over verified TLS."""
    tripwire.init(
        reporters=[
            SentryReporter(tls_sink.dsn, ca_file=ca_file, http_client=http_client),
            {"backend": "bugsnag", "api_key": "k" * 32, "endpoint": tls_sink.url, "ca_file": ca_file},
        ],
        send_client_reports=False,
    )
    assert tls_sink.dsn.startswith("https://")
    for i in range(3):
        tripwire.capture_message(f"secure {i}", "error")
    assert tripwire.flush(10)
    assert len(tls_sink.events) == 3
    assert len(tls_sink.bugsnag_events) == 3


def test_an_untrusted_certificate_is_refused(tls_sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    """Against a certificate the system does not trust nothing is sent, and the warning says why."""
    tripwire.init(tls_sink.dsn, send_client_reports=False)
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        tripwire.capture_message("must not leak", "error")
        assert tripwire.flush(0.2) is False
        # The refused handshake is logged when the first attempt ends, which on a loaded machine can
        # be after the 0.2 s flush deadline: poll for it rather than assume it.
        assert wait_until(
            lambda: any("CERTIFICATE_VERIFY_FAILED" in r.getMessage() for r in caplog.records), 5
        )
    assert tls_sink.requests == []
    assert tripwire.stats()["pending"] == {"sentry": 1}
