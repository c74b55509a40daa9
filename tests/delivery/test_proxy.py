"""Delivery through a forward proxy: explicit, from the environment, with credentials, and bypassed."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

import tripwire
from tests.support.proxy import Proxy
from tests.support.sink import Sink
from tripwire.reporters.http import HTTP_CLIENTS
from tripwire.reporters.sentry import SentryReporter


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with Proxy() as running:
        yield running


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.fixture(params=HTTP_CLIENTS)
def http_client(request: pytest.FixtureRequest) -> str:
    """Each test below runs with both senders (http.client, pycurl)."""
    return str(request.param)


def test_plain_http_is_forwarded_by_the_proxy(sink: Sink, proxy: Proxy, http_client: str) -> None:
    """With proxy= set, http requests go to the proxy with the absolute URL, and arrive."""
    tripwire.init(
        reporters=[SentryReporter(sink.dsn, proxy=proxy.url, http_client=http_client)],
        send_client_reports=False,
    )
    tripwire.capture_message("via proxy", "error")
    assert tripwire.flush(10)
    assert len(sink.events) == 1
    assert proxy.seen == [("POST", f"{sink.url}/api/1/envelope/")]


def test_https_goes_through_a_connect_tunnel_with_credentials(tmp_path: Path, http_client: str) -> None:
    """For https the reporter opens an authenticated CONNECT tunnel and verifies the server end to end."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with Sink(tls=context) as sink, Proxy(credentials=("ann", "s3cret")) as proxy:
        url = proxy.url.replace("http://", "http://ann:s3cret@")
        tripwire.init(
            reporters=[SentryReporter(sink.dsn, proxy=url, ca_file=str(ca_file), http_client=http_client)],
            send_client_reports=False,
        )
        for i in range(3):
            tripwire.capture_message(f"tunnelled {i}", "error")
        assert tripwire.flush(10)
        assert len(sink.events) == 3
        # One tunnel, kept alive for all three requests.
        assert proxy.seen == [("CONNECT", f"127.0.0.1:{sink.port}")]


def test_wrong_proxy_credentials_keep_events_waiting(sink: Sink, http_client: str) -> None:
    """A proxy refusing the credentials (407) is treated like an unreachable backend: nothing is lost."""
    with Proxy(credentials=("ann", "s3cret")) as proxy:
        url = proxy.url.replace("http://", "http://ann:wrong@")
        tripwire.init(
            reporters=[
                SentryReporter(sink.dsn.replace("http://", "https://"), proxy=url, http_client=http_client)
            ],
            send_client_reports=False,
        )
        tripwire.capture_message("waiting", "error")
        assert tripwire.flush(0.2) is False
        assert tripwire.stats()["pending"] == {"sentry": 1}
        assert tripwire.stats()["dropped"] == {}


def test_proxy_comes_from_the_environment(
    sink: Sink, proxy: Proxy, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    """Without proxy=, http_proxy from the environment is used, as curl and requests do."""
    clean_proxy_env.setenv("http_proxy", proxy.url)
    tripwire.init(sink.dsn, send_client_reports=False)
    tripwire.capture_message("env proxy", "error")
    assert tripwire.flush(10)
    assert len(sink.events) == 1
    assert len(proxy.seen) == 1


def test_no_proxy_bypasses_the_proxy(sink: Sink, proxy: Proxy, clean_proxy_env: pytest.MonkeyPatch) -> None:
    """Hosts listed in no_proxy are reached directly."""
    clean_proxy_env.setenv("http_proxy", proxy.url)
    clean_proxy_env.setenv("no_proxy", "localhost,127.0.0.1")
    tripwire.init(sink.dsn, send_client_reports=False)
    tripwire.capture_message("direct", "error")
    assert tripwire.flush(10)
    assert len(sink.events) == 1
    assert proxy.seen == []
