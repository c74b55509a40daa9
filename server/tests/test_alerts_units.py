"""The pure parts of alerts: rule decisions, the SSRF check, message formats and backoff."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.support.figures import record
from tripwire_server.alerts import rules as R
from tripwire_server.alerts.outbox import BACKOFF_MAX, retry_delay
from tripwire_server.alerts.senders import render_email, render_webhook, sign
from tripwire_server.alerts.settings import AlertSettings, SmtpSettings
from tripwire_server.alerts.ssrf import UnsafeURL, check_syntax, check_url
from tripwire_server.store.alert_records import AlertRule, Delivery


def test_filters_match_environment_release_tags_and_a_minimum_level() -> None:
    """'error' matches error and fatal; every given field must match."""
    f = R.Filters(environment="production", level="error", release="2.0", tags=(("region", "eu"),))
    ok: dict[str, Any] = {
        "level": "fatal",
        "environment": "production",
        "release": "2.0",
        "tags": [("region", "eu")],
    }
    assert f.matches(**ok)
    assert not f.matches(**{**ok, "level": "warning"})
    assert not f.matches(**{**ok, "environment": "staging"})
    assert not f.matches(**{**ok, "release": "1.9"})
    assert not f.matches(**{**ok, "tags": [("region", "us")]})
    assert R.Filters().matches(level="debug", environment=None, release=None)


def test_cooldown_and_digest_slots() -> None:
    """A subject is quiet for the cooldown; messages of a rule are at least ``digest`` apart."""
    assert not R.in_cooldown(None, 100.0, 1800)
    assert R.in_cooldown(100.0, 1899.0, 1800) and not R.in_cooldown(100.0, 1900.0, 1800)
    assert R.next_slot(None, 100.0, 60) == 100.0
    assert R.next_slot(100.0, 130.0, 60) == 160.0  # too soon after the last: next free slot
    assert R.next_slot(160.0, 140.0, 60) == 160.0  # a message is scheduled: join it
    assert R.next_slot(100.0, 500.0, 60) == 500.0
    assert R.next_slot(100.0, 101.0, 0) == 101.0


def test_thresholds_and_crash_free_rates() -> None:
    """Frequency fires at N events, users above N users; crash-free only after min_sessions."""
    assert R.over_threshold("frequency", 5, 5) and not R.over_threshold("users", 5, 5)
    assert R.crash_free_breached(started=100, crashed=2, below_percent=99.0, min_sessions=50)
    assert not R.crash_free_breached(started=100, crashed=1, below_percent=99.0, min_sessions=50)
    assert not R.crash_free_breached(started=10, crashed=10, below_percent=99.0, min_sessions=50)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"on": "nope", "webhook": "https://x.example/h"}, "unknown trigger"),
        ({"on": "new-issue"}, "target"),
        ({"on": "frequency", "email": "a@b.co", "threshold": 5}, "--window"),
        ({"on": "users", "email": "a@b.co", "threshold": 5, "window": 99999}, "1440"),
        ({"on": "crash-free", "email": "a@b.co", "below": 120, "min_sessions": 5}, "--below"),
        ({"on": "new-issue", "email": "a@b.co", "format": "irc"}, "format"),
        ({"on": "new-issue", "email": "x@y.z, evil@x.y"}, "e-mail"),
        ({"on": "new-issue", "email": "a@b.co", "threshold": "many"}, "number"),
        ({"on": "new-issue", "email": "a@b.co", "filters": {"level": "loud"}}, "level"),
    ],
)
def test_incomplete_rules_are_refused_with_a_reason(body: dict[str, Any], reason: str) -> None:
    """Each inconsistent rule names what is wrong."""
    with pytest.raises(R.RuleError, match=reason):
        R.spec_from_json(body)


def test_spec_from_json_takes_minutes_for_cooldown_and_seconds_for_digest() -> None:
    spec = R.spec_from_json(
        {
            "on": "frequency",
            "webhook": "https://h.example/x",
            "threshold": "10",
            "window": 5,
            "cooldown_minutes": 2,
        }
    )
    assert (spec.threshold, spec.window_minutes, spec.cooldown, spec.digest) == (10, 5, 120.0, 60.0)


def resolver(*answers: str) -> Any:
    def resolve(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, 1, 6, "", (a, port)) for a in answers]

    return resolve


SSRF_TARGETS = [
    "169.254.169.254",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "127.0.0.1",
    "::1",
    "::ffff:127.0.0.1",
    "fd00::1",
    "0.0.0.0",
    "224.0.0.1",
]


@pytest.mark.reliability
@pytest.mark.parametrize("address", SSRF_TARGETS)
def test_webhooks_never_reach_private_loopback_link_local_or_metadata_addresses(address: str) -> None:
    """Every non-public answer of DNS is refused, IPv4-mapped IPv6 included."""
    with pytest.raises(UnsafeURL, match="--allow-webhook-host"):
        check_url("https://hooks.example.com/x", resolve=resolver(address))
    if address == SSRF_TARGETS[-1]:
        record(
            "attacks",
            "alert webhook SSRF targets refused (metadata, private, loopback, mapped)",
            len(SSRF_TARGETS),
        )


def test_one_private_answer_among_public_ones_is_enough_to_refuse() -> None:
    """DNS may answer several addresses: all must be public."""
    with pytest.raises(UnsafeURL):
        check_url("https://hooks.example.com/x", resolve=resolver("93.184.216.34", "10.0.0.7"))
    assert check_url("https://hooks.example.com/x", resolve=resolver("93.184.216.34")) == ["93.184.216.34"]


def test_the_allow_list_takes_hosts_addresses_and_networks() -> None:
    """--allow-webhook-host 127.0.0.1 / 10.0.0.0/8 / hooks.internal open exactly those."""
    assert check_url("http://127.0.0.1:9/h", ["127.0.0.1"], resolve=resolver("127.0.0.1"))
    assert check_url("http://10.2.3.4/h", ["10.0.0.0/8"], resolve=resolver("10.2.3.4"))
    assert check_url("http://hooks.internal/h", ["hooks.internal"], resolve=resolver("10.9.9.9"))
    with pytest.raises(UnsafeURL):
        check_url("http://192.168.0.2/h", ["10.0.0.0/8"], resolve=resolver("192.168.0.2"))


def test_only_http_urls_with_a_host_are_accepted() -> None:
    for url in ("file:///etc/passwd", "gopher://x/", "http:///nohost", "javascript:alert(1)"):
        with pytest.raises(UnsafeURL):
            check_syntax(url)
    with pytest.raises(UnsafeURL):
        check_syntax("http://localhost:8080/")
    check_syntax("https://hooks.slack.com/services/T/B/X")


def _delivery(
    fmt: str = "json", title: str = "ValueError: <!channel> @everyone *bold* & <b>x</b>"
) -> Delivery:
    rule = AlertRule(
        id=3, project_id=1, name="prod errors", trigger="new-issue", threshold=None, window_minutes=None,
        below=None, min_sessions=None, once=False, filters=R.Filters(), webhook_url="https://h.example/x",
        format=fmt, email="ops@example.com", secret="k", cooldown=1800, digest=60, created_at=0,
    )  # fmt: skip
    message = {"trigger": "new-issue", "subject": "issue:9", "issue_id": 9, "title": title, "level": "error"}
    return Delivery(
        uid="abc123",
        rule=rule,
        target="webhook",
        project_name="shop",
        messages=[message],
        row_ids=[1],
        attempts=1,
    )


def test_the_json_body_is_documented_signed_and_carries_its_id() -> None:
    body, headers = render_webhook(_delivery(), "https://errors.example.com/")
    data = json.loads(body)
    assert data["id"] == "abc123" == headers["Idempotency-Key"]
    assert headers["X-Tripwire-Signature"] == sign("k", body)
    assert data["type"] == "new-issue" and data["rule"] == {"id": 3, "name": "prod errors"}
    assert data["project"] == {"id": 1, "name": "shop"} and data["more"] == 0
    assert data["items"][0]["url"] == "https://errors.example.com/issues/9"
    assert data["url"] == "https://errors.example.com/projects/1/alerts/3"


def test_chat_formats_escape_what_came_from_an_event() -> None:
    """No Slack <!channel>, no Discord/Mattermost @everyone or Markdown from an issue title."""
    slack = json.loads(render_webhook(_delivery("slack"), "https://e.example")[0])["text"]
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack and "&amp;" in slack
    assert "<https://e.example/issues/9|" in slack
    discord = json.loads(render_webhook(_delivery("discord"), "https://e.example")[0])
    assert discord["allowed_mentions"] == {"parse": []} and "@everyone" not in discord["content"]
    assert "\\*bold\\*" in discord["content"]
    mattermost = json.loads(render_webhook(_delivery("mattermost"), "https://e.example")[0])["text"]
    assert "@everyone" not in mattermost and "[ValueError" in mattermost
    body, headers = render_webhook(_delivery("ntfy", "Ünïcode error"), "https://e.example")
    assert headers["Content-Type"].startswith("text/plain") and b"https://e.example/issues/9" in body
    headers["Title"].encode("latin-1")  # a valid header value


def test_discord_messages_stay_within_2000_characters() -> None:
    delivery = _delivery("discord")
    many = [{**delivery.messages[0], "title": "x" * 290, "issue_id": n} for n in range(40)]
    big = Delivery(**{**delivery.__dict__, "messages": many})
    content = json.loads(render_webhook(big, "https://e.example")[0])["content"]
    assert len(content) <= 2000


def test_the_email_has_a_text_and_an_escaped_html_part_and_no_header_injection() -> None:
    msg = render_email(_delivery(title="boom\r\nBcc: victim@example.com <i>"), "https://e.example", "a@b.c")
    assert "\n" not in str(msg["Subject"]) and msg.get("Bcc") is None
    html, plain = msg.get_body(("html",)), msg.get_body(("plain",))
    assert html is not None and plain is not None
    assert "&lt;i&gt;" in html.get_content()
    assert "<i>" in plain.get_content()


def test_backoff_doubles_from_two_seconds_to_ten_minutes_with_jitter() -> None:
    assert retry_delay(1, rand=lambda: 1.0) == 2.0 and retry_delay(1, rand=lambda: 0.0) == 1.0
    assert retry_delay(4, rand=lambda: 1.0) == 16.0
    assert retry_delay(30, rand=lambda: 1.0) == BACKOFF_MAX


def test_smtp_urls_parse_starttls_tls_and_credentials_without_showing_the_password() -> None:
    s = SmtpSettings.from_url("smtp://bob:p%40ss@mail.example:2525?starttls=1", "alerts@example.com")
    assert (s.host, s.port, s.username, s.password, s.starttls, s.tls) == (
        "mail.example", 2525, "bob", "p@ss", True, False
    )  # fmt: skip
    assert "p@ss" not in repr(s) and "p@ss" not in repr(AlertSettings(smtp_url="smtp://bob:p%40ss@h"))
    assert SmtpSettings.from_url("smtp://h?tls=1", None).port == 465
    with pytest.raises(ValueError):
        SmtpSettings.from_url("http://h", None)
    with pytest.raises(ValueError):
        SmtpSettings.from_url("smtp://h?tls=1&starttls=1", None)
