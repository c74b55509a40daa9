"""The user the app sets is sent as set: send_default_pii governs only what the SDK collects itself.

Sentry documents it that way (``set_user`` data is always sent; ``send_default_pii`` adds the IP
address, cookies and the request's user that the SDK finds on its own). Secrets in a user field are
still filtered like anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tripwire
from tests.support.sink import Sink

FILTERED = "[Filtered]"
API_KEY = "0123456789abcdef0123456789abcdef"

USER = {
    "id": "42",
    "email": "bob@example.test",
    "username": "bob",
    "name": "Bob Builder",
    "ip_address": "203.0.113.9",
    "plan": "pro",
}


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


def _send(sink: Sink, user: dict[str, str], **options: object) -> None:
    tripwire.init(
        sink.dsn,
        reporters=[{"backend": "bugsnag", "api_key": API_KEY, "endpoint": sink.url}],
        send_client_reports=False,
        release=None,
        **options,
    )
    tripwire.set_user(user)
    tripwire.capture_message("checkout failed", "error")
    assert tripwire.flush(10)


@pytest.mark.parametrize("pii", [False, True])
def test_a_user_set_by_the_app_reaches_sentry_whole(sink: Sink, pii: bool) -> None:
    """set_user({id, email, username, name, ip_address, plan}) arrives unchanged, with or without PII."""
    _send(sink, USER, send_default_pii=pii)
    (event,) = sink.events
    assert event["user"] == USER
    assert "user" not in event.get("_meta", {})


def test_the_sentry_docs_example_user_is_sent(sink: Sink) -> None:
    """set_user({"email": ...}) alone (the example in Sentry's docs) is sent, not dropped entirely."""
    _send(sink, {"email": "jane.doe@example.com"})
    (event,) = sink.events
    assert event["user"] == {"email": "jane.doe@example.com"}
    assert sink.bugsnag_events[0]["user"] == {"email": "jane.doe@example.com"}


def test_a_user_set_by_the_app_reaches_bugsnag_with_its_name(sink: Sink) -> None:
    """BugSnag gets id, email and name; the other fields go to the user tab of its metadata."""
    _send(sink, USER)
    (event,) = sink.bugsnag_events
    assert event["user"] == {"id": "42", "email": "bob@example.test", "name": "Bob Builder"}
    assert event["metaData"]["user"] == {"username": "bob", "ip_address": "203.0.113.9", "plan": "pro"}


def test_bugsnag_takes_the_username_as_name_when_there_is_no_name(sink: Sink) -> None:
    """A user with a username but no name shows under that username in BugSnag."""
    _send(sink, {"id": "7", "username": "ann"})
    (event,) = sink.bugsnag_events
    assert event["user"] == {"id": "7", "name": "ann"}
    assert "user" not in event["metaData"]


def test_secrets_in_user_fields_are_still_filtered(sink: Sink) -> None:
    """A password or token put in the user is filtered, in both reporters; the identity is not."""
    _send(sink, {"id": "9", "email": "eve@example.test", "api_token": "s3cr3t", "note": "password=hunter2"})
    (event,) = sink.events
    assert event["user"] == {
        "id": "9",
        "email": "eve@example.test",
        "api_token": FILTERED,
        "note": f"password={FILTERED}",
    }
    bugsnag = sink.bugsnag_events[0]
    assert bugsnag["user"] == {"id": "9", "email": "eve@example.test"}
    assert bugsnag["metaData"]["user"] == {"api_token": FILTERED, "note": f"password={FILTERED}"}


def test_request_cookies_and_client_address_still_need_pii(sink: Sink) -> None:
    """What the SDK collects itself (cookies, REMOTE_ADDR) is still left out without send_default_pii."""
    tripwire.init(sink.dsn, send_client_reports=False, release=None)
    tripwire.set_user({"id": "1", "email": "a@example.test"})
    tripwire.capture_message(
        "x",
        "error",
        event={
            "request": {
                "url": "http://shop.example/",
                "cookies": {"theme": "dark"},
                "env": {"REMOTE_ADDR": "10.0.0.7"},
            }
        },
    )
    assert tripwire.flush(10)
    (event,) = sink.events
    assert event["user"] == {"id": "1", "email": "a@example.test"}
    assert "cookies" not in event["request"] and "REMOTE_ADDR" not in event["request"].get("env", {})
