"""Scrubbing: one rule set for every field; PII only with send_default_pii; users add keys and patterns."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import tripwire
import tripwire.testing
from tripwire import _scope
from tripwire._scrub import FILTERED, Scrubber
from tripwire.integrations._common import active_scrubber

from ._support import frames, one_event

SENSITIVE_KEYS = [
    "password",
    "db_password",
    "PASSWD",
    "secret",
    "client_secret",
    "token",
    "refresh_token",
    "api_key",
    "apikey",
    "X-Api-Key",
    "auth",
    "Authorization",
    "cookie",
    "Set-Cookie",
    "session",
    "sessionid",
    "csrf",
    "csrftoken",
    "X-XSRF-TOKEN",
    "credit_card",
    "creditCardNumber",
    "card-number",
    "private_key",
    "privateKey",
]


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_sensitive_keys_are_filtered_in_every_user_field(key: str) -> None:
    """A sensitive key is filtered in extra, contexts, tags, user, breadcrumb data and frame locals."""

    def go() -> None:
        tripwire.set_extra(key, "s3cr3t")
        tripwire.set_extra("nested", {"deeper": {key: "s3cr3t"}, "list": [{key: "s3cr3t"}]})
        tripwire.set_context("service", {key: "s3cr3t", "name": "billing"})
        tripwire.set_tag(key, "s3cr3t")
        tripwire.set_user({"id": "7", key: "s3cr3t"})
        tripwire.add_breadcrumb("login", data={key: "s3cr3t"})
        local_vars = {key: "s3cr3t"}  # noqa: F841 - a local the frame reports
        try:
            raise ValueError("x")
        except ValueError:
            tripwire.capture_exception()

    event = one_event(go, include_source_context=False)  # the test's own source shows the literal
    assert "s3cr3t" not in json.dumps(event)
    assert event["extra"][key] == FILTERED
    assert event["extra"]["nested"]["deeper"][key] == FILTERED
    assert event["contexts"]["service"] == {key: FILTERED, "name": "billing"}
    assert event["user"][key] == FILTERED
    assert event["breadcrumbs"]["values"][0]["data"][key] == FILTERED
    assert frames(event)[-1]["vars"]["local_vars"][key] == FILTERED


def test_harmless_keys_are_kept() -> None:
    """Ordinary keys are kept; the substring rule deliberately also catches e.g. tokenizer_name."""
    scrubber = Scrubber()
    assert not scrubber.is_sensitive_key("username")
    assert not scrubber.is_sensitive_key("order_id")
    assert not scrubber.is_sensitive_key("passage")
    assert scrubber.is_sensitive_key("tokenizer_name")  # substring rule: over-scrubbing is the safe side


def test_secrets_inside_text_are_filtered() -> None:
    """key=value pairs, JSON/dict-looking pairs, URL passwords and bearer tokens inside strings."""
    s = Scrubber()
    assert (
        s.scrub_text("login failed password=hunter2 for bob") == f"login failed password={FILTERED} for bob"
    )
    assert (
        s.scrub_text("{'api_key': 'abc123', 'user': 'bob'}") == f"{{'api_key': '{FILTERED}', 'user': 'bob'}}"
    )
    assert s.scrub_text('{"token": "abc", "n": 1}') == f'{{"token": "{FILTERED}", "n": 1}}'
    assert s.scrub_text("postgresql://app:pa55@db:5432/x") == f"postgresql://app:{FILTERED}@db:5432/x"
    assert s.scrub_text("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y") == f"Authorization: {FILTERED}"
    assert s.scrub_text("sent Bearer eyJhbGciOiJIUzI1NiJ9.x.y upstream") == f"sent Bearer {FILTERED} upstream"
    assert s.scrub_text("nothing to see here") == "nothing to see here"


def test_exception_values_messages_and_locals_text_are_scrubbed() -> None:
    """Secrets in an exception message, a log message and a local's repr do not leave the process."""

    class Config:
        def __repr__(self) -> str:
            return "Config(api_key='sk_live_123', region='eu')"

    def go() -> None:
        config = Config()  # noqa: F841
        dsn = "https://user:hunter2@db.internal/app"  # noqa: F841
        raise ConnectionError("cannot connect with password=hunter2")

    def handler() -> None:
        try:
            go()
        except ConnectionError:
            tripwire.capture_exception()

    event = one_event(handler, include_source_context=False)
    text = json.dumps(event)
    assert "hunter2" not in text and "sk_live_123" not in text
    assert "region='eu'" in text
    message = one_event(lambda: tripwire.capture_message("retry with token=abc123"))
    assert message["logentry"]["formatted"] == f"retry with token={FILTERED}"


def test_user_scrub_keys_and_patterns() -> None:
    """scrub_keys adds key substrings; scrub_patterns filters matching text in every string."""

    def go() -> None:
        tripwire.set_extra("ssn", "123-45-6789")
        tripwire.set_extra("note", "card 4111-1111-1111-1111 used")
        tripwire.set_extra("iban_number", "DE89 3704")
        tripwire.capture_message("customer 123-45-6789 failed")

    event = one_event(go, scrub_keys=["iban"], scrub_patterns=[r"\d{3}-\d{2}-\d{4}", r"(?:\d{4}-){3}\d{4}"])
    assert event["extra"]["iban_number"] == FILTERED
    assert event["extra"]["ssn"] == FILTERED
    assert event["extra"]["note"] == f"card {FILTERED} used"
    assert event["logentry"]["message"] == f"customer {FILTERED} failed"


def test_filtered_keys_are_recorded_in_meta() -> None:
    """Each filtered value is noted in _meta so a reader knows it was there."""
    event = one_event(lambda: tripwire.capture_message("x", extras={"password": "p"}))
    assert event["_meta"]["extra"]["password"][""]["rem"] == [["!filter", "s"]]


def _with_request(request: dict[str, Any]) -> None:
    holder = _scope.current_holder()
    holder.data = holder.data.with_processor(lambda e, h: {**e, "request": request})
    tripwire.capture_message("request event")


REQUEST = {
    "url": "https://admin:pw@example.test/pay?order=7&token=abc&api_key=k#top",
    "method": "POST",
    "query_string": "order=7&access_token=abc&session_id=s",
    "headers": {
        "Authorization": "Bearer abc.def.ghi",
        "Cookie": "sessionid=s; theme=dark",
        "X-Api-Key": "k",
        "X-Forwarded-For": "203.0.113.9",
        "User-Agent": "curl/8",
    },
    "cookies": {"sessionid": "s", "theme": "dark"},
    "data": {"username": "bob", "password": "hunter2", "card": {"credit_card_number": "4111"}},
    "env": {"REMOTE_ADDR": "203.0.113.9", "SERVER_NAME": "api"},
}


def test_request_is_scrubbed_without_pii() -> None:
    """Request URL, query, headers, body are scrubbed; cookies, IP headers and REMOTE_ADDR removed."""
    with tripwire.testing.capture_events() as events, tripwire.isolation_scope():
        _with_request(REQUEST)
    request = events[0]["request"]
    assert (
        request["url"]
        == f"https://admin:{FILTERED}@example.test/pay?order=7&token={FILTERED}&api_key={FILTERED}#top"
    )
    assert request["query_string"] == f"order=7&access_token={FILTERED}&session_id={FILTERED}"
    assert request["headers"] == {"Authorization": FILTERED, "X-Api-Key": FILTERED, "User-Agent": "curl/8"}
    assert "cookies" not in request
    assert request["data"] == {
        "username": "bob",
        "password": FILTERED,
        "card": {"credit_card_number": FILTERED},
    }
    assert request["env"] == {"SERVER_NAME": "api"}
    assert "hunter2" not in json.dumps(events[0]) and "203.0.113.9" not in json.dumps(events[0])


def test_request_with_pii_keeps_cookies_and_ips_but_not_secrets() -> None:
    """With send_default_pii cookies and IPs are sent, but session cookies are still filtered."""
    with tripwire.testing.capture_events(send_default_pii=True) as events, tripwire.isolation_scope():
        _with_request(REQUEST)
    request = events[0]["request"]
    assert request["cookies"] == {"sessionid": FILTERED, "theme": "dark"}
    assert request["headers"]["X-Forwarded-For"] == "203.0.113.9"
    assert request["headers"]["Cookie"] == FILTERED
    assert request["env"]["REMOTE_ADDR"] == "203.0.113.9"


def test_a_user_given_explicitly_is_sent_whatever_send_default_pii() -> None:
    """user= on a capture is the app's choice: email/username/ip are sent with and without PII."""
    user = {
        "id": "42",
        "email": "bob@example.test",
        "username": "bob",
        "ip_address": "203.0.113.9",
        "plan": "pro",
    }
    without = one_event(lambda: tripwire.capture_message("x", user=user))
    assert without["user"] == user
    assert "_meta" not in without
    with_pii = one_event(lambda: tripwire.capture_message("x", user=user), send_default_pii=True)
    assert with_pii["user"] == user


def test_each_client_scrubs_by_its_own_options() -> None:
    """A client's scrubber (built once) follows its scrub_keys and PII setting, not another client's."""
    plain = tripwire.init(reporters=[tripwire.testing.CaptureReporter()])
    assert plain.scrubber is plain.scrubber
    assert plain.scrubber.scrub_mapping({"orderNo": 1, "tenant": "t"}) == {"orderNo": 1, "tenant": "t"}
    assert plain.scrubber.scrub_headers({"Cookie": "a=b", "Accept": "*/*"}) == {"Accept": "*/*"}
    strict = tripwire.init(
        reporters=[tripwire.testing.CaptureReporter()], scrub_keys=["tenant"], send_default_pii=True
    )
    assert strict.scrubber.scrub_mapping({"orderNo": 1, "tenant": "t"}) == {"orderNo": 1, "tenant": FILTERED}
    assert strict.scrubber.scrub_headers({"Cookie": "a=b"}) == {"Cookie": FILTERED}
    assert strict.scrubber.scrub_headers({"X-Real-IP": "1.2.3.4"}) == {"X-Real-IP": "1.2.3.4"}
    assert plain.scrubber.scrub_mapping({"tenant": "t"}) == {"tenant": "t"}


def test_integrations_scrub_by_the_active_clients_rules() -> None:
    """What integrations put into breadcrumbs follows the active client's rules, the defaults without one."""
    assert active_scrubber().scrub_url("http://u:p@h/x") == f"http://u:{FILTERED}@h/x"
    assert active_scrubber().scrub_query_string("a=1&secret=2") == f"a=1&secret={FILTERED}"
    assert active_scrubber().scrub_mapping({"tenant": "t"}) == {"tenant": "t"}
    client = tripwire.init(reporters=[tripwire.testing.CaptureReporter()], scrub_keys=["tenant"])
    assert active_scrubber() is client.scrubber
    assert active_scrubber().scrub_mapping({"tenant": "t"}) == {"tenant": FILTERED}


def test_percent_encoded_query_keys_are_recognised() -> None:
    """`pass%77ord=x` and `api+key` style keys are decoded before the check."""
    s = Scrubber()
    assert s.scrub_query_string("pass%77ord=x&ok=1") == f"pass%77ord={FILTERED}&ok=1"
    assert re.search("x&", s.scrub_query_string("api%5Fkey=x&b=2")) is None


def test_objects_with_a_broken_eq_under_sensitive_keys_are_filtered() -> None:
    """A value whose __eq__ raises is still filtered under a sensitive key, its neighbours kept."""

    class BrokenEq:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no eq")

        __hash__ = object.__hash__

    event = one_event(lambda: tripwire.capture_message("x", extras={"d": {"token": BrokenEq(), "n": 1}}))
    assert event["extra"]["d"] == {"token": FILTERED, "n": 1}
    assert Scrubber().scrub_mapping({"password": BrokenEq(), "n": 1}) == {"password": FILTERED, "n": 1}


def test_prose_with_credential_words_is_left_alone() -> None:
    """Messages that merely mention tokens or basic settings keep their words."""
    s = Scrubber()
    for text in ("Invalid token format", "Basic settings changed", "bearer bonds are old", "auth failed"):
        assert s.scrub_text(text) == text
    assert s.scrub_text("Authorization: Basic dXNlcjpwYXNz") == f"Authorization: {FILTERED}"
