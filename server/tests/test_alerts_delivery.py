"""Alert rules end to end: a real collector, real events, a real SMTP server and webhook receiver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tripwire_server.alerts.settings import AlertSettings

from .alert_support import WebhookReceiver, create_rule, smtp_sink, start_alerting, webhook_receiver
from .conftest import LiveServer, envelope, make_event, wait_until

LOOPBACK = AlertSettings(allow_webhook_hosts=("127.0.0.1",), poll_interval=0.02)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as r:
        yield r


def send(server: LiveServer, *events: dict[str, Any]) -> None:
    for event in events:
        response = server.post_envelope(envelope(("event", event)))
        assert response.status_code == 200, response.text


def history(server: LiveServer, rule_id: int) -> list[dict[str, Any]]:
    return server.api(f"/api/0/alerts/{rule_id}/history/")  # type: ignore[no-any-return]


def test_new_issue_email_arrives_over_real_smtp_with_text_and_escaped_html(tmp_path: Path) -> None:
    """A new issue e-mails the rule's address: subject, plain text, escaped HTML, dashboard link."""
    with smtp_sink() as sink:
        server = start_alerting(
            f"sqlite:///{tmp_path / 'db.sqlite3'}", smtp_url=sink.url, smtp_from="alerts@tripwire.test"
        )
        try:
            rule = create_rule(server, on="new-issue", email="oncall@example.com")
            send(server, make_event(type_="KeyError", value="<script>alert(1)</script> & more"))
            wait_until(lambda: sink.messages, timeout=15)
            msg = sink.messages[0]
            assert sink.envelopes[0] == ("alerts@tripwire.test", ["oncall@example.com"])
            assert str(msg["Subject"]).strip().startswith("[tripwire] New issue in default: KeyError")
            plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
            assert plain is not None and html is not None
            text, page = plain.get_content(), html.get_content()
            issue_id = server.store.issues.list_issues(server.project.id)[0].id
            assert f"{server.url}/issues/{issue_id}" in text
            assert "<script>alert(1)</script>" in text
            assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
            assert "<script>" not in page
            entry = wait_until(lambda: [h for h in history(server, rule["id"]) if h["status"] == "sent"])
            assert entry[0]["issue_id"] == issue_id and entry[0]["error"] is None
        finally:
            server.stop()


def test_regression_webhook_is_signed_and_carries_its_idempotency_key(
    database_url: str, receiver: WebhookReceiver
) -> None:
    """A resolved issue seen again posts a JSON body signed with the rule's secret, with its id."""
    server = start_alerting(database_url)
    try:
        rule = create_rule(server, on="regression", webhook=receiver.url, secret="s3cret")
        event = make_event(value="it came back", release="1.0")
        send(server, event)
        server.wait_digested()
        issue = server.store.issues.list_issues(server.project.id)[0]
        server.api(f"/api/0/issues/{issue.id}/", "PATCH", json={"status": "resolved"})
        send(server, make_event(value="it came back", release="1.0"))
        wait_until(lambda: receiver.received, timeout=15)
        got = receiver.received[0]
        body = got.json()
        assert got.signed_by("s3cret") and not got.signed_by("other")
        assert got.headers["idempotency-key"] == body["id"]
        assert body["type"] == "regression"
        assert body["rule"] == {"id": rule["id"], "name": "regression"}
        assert body["project"]["name"] == "default"
        assert [i["issue_id"] for i in body["items"]] == [issue.id]
        assert body["items"][0]["url"] == f"{server.url}/issues/{issue.id}"
        sent = wait_until(lambda: [h for h in history(server, rule["id"]) if h["status"] == "sent"])
        assert sent[0]["id"] == body["id"]
    finally:
        server.stop()


def test_frequency_rule_fires_when_the_threshold_is_reached_then_cools_down(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """5 events in 10 minutes fires once; more events within the cooldown are counted as suppressed."""
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        rule = create_rule(server, on="frequency", threshold=5, window=10, webhook=receiver.url)
        send(server, *[make_event(value="busy") for _ in range(4)])
        server.wait_digested()
        assert history(server, rule["id"]) == []
        send(server, make_event(value="busy"))
        wait_until(lambda: receiver.received, timeout=15)
        body = receiver.received[0].json()
        assert body["type"] == "frequency"
        assert body["items"][0]["count"] == 5 and body["items"][0]["window_minutes"] == 10
        assert receiver.received[0].signed_by(server.store.alerts.get_alert_rule(rule["id"]).secret)
        send(server, *[make_event(value="busy") for _ in range(3)])
        server.wait_digested()
        entries = history(server, rule["id"])
        suppressed = [h for h in entries if h["status"] == "suppressed"]
        assert len(suppressed) == 1 and suppressed[0]["count"] == 3
        assert len(receiver.received) == 1
    finally:
        server.stop()


def test_new_issues_of_one_batch_arrive_as_one_digest(tmp_path: Path, receiver: WebhookReceiver) -> None:
    """Several new issues committed together make one message listing all of them."""
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        create_rule(server, on="new-issue", webhook=receiver.url, digest_seconds=60)
        events = [make_event(type_=f"Error{n}", frames=[("app", f"f{n}", n)]) for n in range(5)]
        server.post_envelope(envelope(*[("event", e) for e in events]))
        wait_until(lambda: receiver.received, timeout=15)
        server.wait_digested()
        body = receiver.received[0].json()
        assert len(body["items"]) == 5 and body["text"] == "5 new issues in default"
        assert len(receiver.received) == 1
    finally:
        server.stop()


def test_test_notification_reaches_the_webhook(tmp_path: Path, receiver: WebhookReceiver) -> None:
    """The API's test button sends a signed test message to the rule's URL, query string included."""
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        rule = create_rule(server, on="new-issue", webhook=receiver.url + "?token=a%20b", format="json")
        queued = server.api(f"/api/0/alerts/{rule['id']}/test/", "POST")["queued"]
        wait_until(lambda: receiver.received, timeout=15)
        body = receiver.received[0].json()
        assert body["type"] == "test" and body["id"] == queued[0]
        assert receiver.received[0].path == "/hook?token=a%20b"
        assert receiver.received[0].signed_by(rule["secret"])
    finally:
        server.stop()


def test_a_failing_receiver_is_retried_with_the_same_id_until_it_answers(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """A 503 is retried after a backoff; the retry carries the same notification id."""
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        receiver.status = 503
        rule = create_rule(server, on="new-issue", webhook=receiver.url)
        send(server, make_event())
        wait_until(lambda: receiver.received, timeout=15)
        pending = wait_until(lambda: [h for h in history(server, rule["id"]) if h["error"]])
        assert pending[0]["status"] == "pending" and "HTTP 503" in pending[0]["error"]
        receiver.status = 200
        wait_until(lambda: [h for h in history(server, rule["id"]) if h["status"] == "sent"], timeout=15)
        ids = {r.json()["id"] for r in receiver.received}
        assert len(receiver.received) >= 2 and len(ids) == 1
    finally:
        server.stop()


def test_webhooks_to_private_addresses_are_refused_unless_allowed(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """Without the allow-list a loopback URL is refused at creation and never called at send."""
    server = LiveServer(f"sqlite:///{tmp_path / 'db.sqlite3'}", alerts=AlertSettings(poll_interval=0.02))
    try:
        response = server.http.post(
            f"/api/0/projects/{server.project.id}/alerts/",
            json={"on": "new-issue", "webhook": receiver.url},
            headers={"Authorization": f"Bearer {server.token}"},
        )
        assert response.status_code == 400 and "--allow-webhook-host" in response.json()["detail"]
        for url in ("http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "ftp://example.com/"):
            response = server.http.post(
                f"/api/0/projects/{server.project.id}/alerts/",
                json={"on": "new-issue", "webhook": url},
                headers={"Authorization": f"Bearer {server.token}"},
            )
            assert response.status_code == 400, url
        # A rule that names a host resolving to loopback is stopped when sending.
        from tripwire_server.alerts.rules import RuleSpec

        rule = server.store.alerts.create_alert_rule(
            server.project.id,
            RuleSpec(
                trigger="new-issue", webhook_url=receiver.url.replace("127.0.0.1", "localhost"), digest=0
            ),
        )
        send(server, make_event(value=uuid.uuid4().hex))
        failed = wait_until(
            lambda: [h for h in server.store.alerts.alert_history(rule.id) if h.status == "failed"],
            timeout=15,
        )
        assert "not a public address" in (failed[0].error or "")
        assert receiver.received == []
    finally:
        server.stop()


# aiosmtpd warns about AUTH without STARTTLS even on an implicit-TLS socket (it is encrypted).
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_email_goes_over_starttls_or_implicit_tls_with_authentication(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """smtp://user:pass@host:port?starttls=1 (or tls=1): encrypted, authenticated, delivered."""
    from .alert_support import tls_smtp_sink

    with tls_smtp_sink(tmp_path, implicit=mode == "tls", user="alerts", password="p@ss word") as sink:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        url = f"smtp://alerts:p%40ss%20word@127.0.0.1:{sink.port}?{mode}=1"
        server = start_alerting(
            f"sqlite:///{tmp_path / 'db.sqlite3'}", smtp_url=url, smtp_from="tw@example.com"
        )
        try:
            rule = create_rule(server, on="new-issue", email="oncall@example.com")
            send(server, make_event(value="over tls"))
            wait_until(lambda: sink.messages, timeout=15)
            assert "over tls" in str(sink.messages[0]["Subject"])
            wait_until(lambda: [h["status"] for h in history(server, rule["id"])] == ["sent"])
        finally:
            server.stop()


def test_a_wrong_smtp_password_fails_for_good_with_the_servers_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 5xx from the SMTP server is not retried: the history says failed, with the error."""
    from .alert_support import tls_smtp_sink

    with tls_smtp_sink(tmp_path, implicit=False, user="alerts", password="right") as sink:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        url = f"smtp://alerts:wrong@127.0.0.1:{sink.port}?starttls=1"
        server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}", smtp_url=url)
        try:
            rule = create_rule(server, on="new-issue", email="oncall@example.com")
            send(server, make_event(value="bad password"))
            failed = wait_until(lambda: [h for h in history(server, rule["id"]) if h["status"] == "failed"])
            assert "SMTP 535" in failed[0]["error"] and "wrong" not in failed[0]["error"]
            assert sink.messages == []
        finally:
            server.stop()


def test_filters_keep_a_rule_to_its_environment_and_level(tmp_path: Path, receiver: WebhookReceiver) -> None:
    """A rule for production errors ignores staging and warnings."""
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        create_rule(
            server,
            on="new-issue",
            webhook=receiver.url,
            filters={"environment": "production", "level": "error"},
        )
        send(
            server,
            make_event(type_="StagingError", environment="staging"),
            make_event(type_="Warned", environment="production", level="warning"),
            make_event(type_="RealError", environment="production", frames=[("app", "pay", 3)]),
        )
        wait_until(lambda: receiver.received, timeout=15)
        server.wait_digested()
        titles = [i["title"] for b in receiver.bodies() for i in b["items"]]
        assert len(titles) == 1 and titles[0].startswith("RealError")
    finally:
        server.stop()


def test_a_release_below_its_crash_free_rate_alerts_once_it_has_enough_sessions(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """Crash-free below 90% after 10 sessions: 5 sessions say nothing, 12 with 4 crashes alert (Slack)."""
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        create_rule(server, on="crash-free", below=90, min_sessions=10, webhook=receiver.url, format="slack")

        def sessions(exited: int, crashed: int) -> None:
            body = {
                "attrs": {"release": "shop@1.0", "environment": "production"},
                "aggregates": [{"started": "2026-01-01T00:00:00Z", "exited": exited, "crashed": crashed}],
            }
            assert server.post_envelope(envelope(("sessions", body))).status_code == 200
            server.wait_digested()

        sessions(3, 2)
        assert receiver.received == []
        sessions(5, 2)
        wait_until(lambda: receiver.received, timeout=15)
        text = receiver.received[0].json()["text"]
        assert "Release shop@1.0: crash-free sessions 66.67% (below 90%)" in text
        assert f"<{server.url}/projects/{server.project.id}/releases|" in text
    finally:
        server.stop()


def test_first_time_over_fires_once_ever_while_a_plain_frequency_rule_fires_again(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """With no cooldown, "once" stays quiet the second time the issue is over; the plain rule fires."""
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        plain = create_rule(
            server, on="frequency", threshold=3, window=10, cooldown_minutes=0, webhook=receiver.url
        )
        once = create_rule(
            server,
            on="frequency",
            threshold=3,
            window=10,
            cooldown_minutes=0,
            once=True,
            webhook=receiver.url,
        )
        for _ in range(2):  # each time 3 events in one envelope: one digest batch
            server.post_envelope(envelope(*[("event", make_event(value="flaky")) for _ in range(3)]))
            server.wait_digested()
        wait_until(lambda: len(receiver.received) >= 3, timeout=15)
        by_rule = [b["rule"]["id"] for b in receiver.bodies()]
        assert sorted(by_rule) == sorted([plain["id"], plain["id"], once["id"]])
        # The outbox may deliver the two messages in either order: the counts are what matter.
        assert sorted(
            i["count"] for b in receiver.bodies() if b["rule"]["id"] == plain["id"] for i in b["items"]
        ) == [3, 6]
    finally:
        server.stop()


def test_an_issue_resolved_in_a_release_regresses_only_in_that_release_or_later(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """Resolved in 2.0: an event from 1.9 is old news, one from 2.1 is a regression."""
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        create_rule(server, on="regression", webhook=receiver.url)
        send(server, make_event(value="stale cache", release="1.9"))
        server.wait_digested()
        issue = server.store.issues.list_issues(server.project.id)[0]
        server.api(
            f"/api/0/issues/{issue.id}/", "PATCH", json={"status": "resolved", "resolved_in_release": "2.0"}
        )
        send(server, make_event(value="stale cache", release="1.9"))
        server.wait_digested()
        assert server.store.issues.get_issue(issue.id).status == "resolved" and receiver.received == []
        send(server, make_event(value="stale cache", release="2.1"))
        wait_until(lambda: receiver.received, timeout=15)
        (item,) = receiver.received[0].json()["items"]
        assert item["issue_id"] == issue.id and item["release"] == "2.1"
    finally:
        server.stop()


def test_only_admins_manage_rules_through_the_api_and_others_never_see_secrets(tmp_path: Path) -> None:
    """A non-admin token lists rules without secret or full URL and gets 403 for every change."""
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        rule = create_rule(server, on="new-issue", webhook="https://hooks.example.com/services/T/B/SECRET")
        assert rule["secret"] and rule["webhook_url"].endswith("/SECRET")
        viewer = server.store.accounts.create_user("viewer", "viewer password")
        # A member: other users do not see the project at all (404).
        server.store.accounts.add_project_member(server.project.id, viewer.id)
        token = server.store.accounts.create_api_token(viewer.id)
        auth = {"Authorization": f"Bearer {token}"}
        (listed,) = server.http.get(f"/api/0/projects/{server.project.id}/alerts/", headers=auth).json()
        assert "secret" not in listed and listed["webhook_url"] == "https://hooks.example.com/…"
        calls = [
            ("POST", f"/api/0/projects/{server.project.id}/alerts/", {"on": "new-issue", "email": "a@b.co"}),
            ("POST", f"/api/0/alerts/{rule['id']}/test/", None),
            ("DELETE", f"/api/0/alerts/{rule['id']}/", None),
        ]
        for method, path, body in calls:
            assert server.http.request(method, path, json=body, headers=auth).status_code == 403, path
        paths = server.http.get("/api/0/openapi.json").json()["paths"]
        assert "/api/0/projects/{project}/alerts/" in paths and "/api/0/alerts/{rule_id}/history/" in paths
        assert "/api/0/projects/{project}/monitors/{slug}/" in paths
    finally:
        server.stop()


def test_an_ignored_issue_never_fires_frequency_or_user_rules(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """Ignoring an issue mutes it: over the threshold again, nothing is sent or counted."""
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        rule = create_rule(server, on="frequency", threshold=1, window=10, webhook=receiver.url)
        send(server, make_event(value="noisy but known"))
        wait_until(lambda: [h for h in history(server, rule["id"]) if h["status"] == "sent"], timeout=15)
        issue = server.store.issues.list_issues(server.project.id)[0]
        server.api(f"/api/0/issues/{issue.id}/", "PATCH", json={"status": "ignored"})
        send(server, *[make_event(value="noisy but known") for _ in range(5)])
        server.wait_digested()
        assert len(receiver.received) == 1
        assert [h["status"] for h in history(server, rule["id"])] == ["sent"]
    finally:
        server.stop()


def test_https_webhooks_verify_the_certificate_of_the_host_they_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https:// webhook is delivered over verified TLS (to the pinned address, checked for its
    host name); one whose certificate does not match is not sent, and its history shows the TLS error."""
    import ssl

    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    good = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(good)
    wrong = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.example").configure_cert(wrong)
    server = start_alerting(f"sqlite:///{tmp_path / 'db.sqlite3'}", allow_webhook_hosts=("localhost",))
    try:
        with webhook_receiver(tls=good) as ok, webhook_receiver(tls=wrong) as bad:
            rule_ok = create_rule(server, on="new-issue", webhook=ok.url.replace("127.0.0.1", "localhost"))
            from tripwire_server.alerts.rules import RuleSpec

            rule_bad = server.store.alerts.create_alert_rule(
                server.project.id,
                RuleSpec(
                    trigger="new-issue", webhook_url=bad.url.replace("127.0.0.1", "localhost"), digest=0
                ),
            )
            send(server, make_event(value="over https"))
            wait_until(lambda: [h for h in history(server, rule_ok["id"]) if h["status"] == "sent"])
            assert ok.received[0].json()["items"][0]["title"].endswith("over https")
            assert ok.received[0].signed_by(rule_ok["secret"])
            failed = wait_until(
                lambda: [h for h in server.store.alerts.alert_history(rule_bad.id) if h.error]
            )
            assert "CERTIFICATE_VERIFY_FAILED" in (failed[0].error or "") and bad.received == []
    finally:
        server.stop()
