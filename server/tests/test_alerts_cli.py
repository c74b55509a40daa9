"""The alert and monitor commands, and alert delivery across a kill -9 of ``tripwire serve``."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.figures import record
from tripwire_server.alerts.rules import RuleSpec
from tripwire_server.store import open_store

from .alert_support import webhook_receiver
from .cli_support import tw, twj
from .conftest import ServeProcess, envelope, make_event, wait_until


def post(serve: ServeProcess, *items: tuple[str, Any]) -> None:
    response = httpx.post(
        f"{serve.url}/api/1/envelope/",
        content=envelope(*items),
        headers={"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={serve.key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_alert_commands_create_list_test_show_history_and_delete(tmp_path: Path) -> None:
    """Every alert command works against a running server, with the documented JSON shapes."""
    data = ["--data-dir", str(tmp_path)]
    with webhook_receiver() as receiver:
        serve = ServeProcess(*data, "--allow-webhook-host", "127.0.0.1")
        try:
            rule = twj(
                "alert", "create", *data, "--project", "default", "--on", "new-issue",
                "--webhook", receiver.url, "--secret", "k3y", "--allow-webhook-host", "127.0.0.1",
            )  # fmt: skip
            assert rule["trigger"] == "new-issue" and rule["secret"] == "k3y"
            assert rule["webhook_url"] == receiver.url and rule["cooldown"] == 1800
            listed = twj("alert", "list", *data, "--project", "default")
            assert [r["id"] for r in listed] == [rule["id"]] and "secret" not in listed[0]

            result = twj("alert", "test", str(rule["id"]), *data)
            assert [r["status"] for r in result] == ["sent"]
            body = receiver.received[0].json()
            assert body["type"] == "test" and body["id"] == result[0]["id"]
            assert receiver.received[0].signed_by("k3y")

            history = twj("alert", "history", str(rule["id"]), *data)
            assert set(history[0]) >= {"id", "rule_id", "issue_id", "status", "error", "at"}
            assert history[0]["status"] == "sent" and history[0]["rule_id"] == rule["id"]

            assert twj("alert", "delete", str(rule["id"]), *data) == {"deleted": rule["id"]}
            assert twj("alert", "list", *data) == []
        finally:
            serve.stop()


def test_incomplete_or_unsafe_rules_are_refused_with_a_reason(tmp_path: Path) -> None:
    """A frequency rule without thresholds, a rule without target, a private webhook: exit 1."""
    data = ["--data-dir", str(tmp_path)]
    base = ["alert", "create", *data, "--project", "default"]
    tw("project", "create", "default", *data)
    cases = [
        (["--on", "frequency", "--webhook", "https://example.com/h"], "--threshold"),
        (["--on", "crash-free", "--email", "a@example.com"], "--below"),
        (["--on", "new-issue"], "target"),
        (["--on", "new-issue", "--webhook", "http://127.0.0.1:9/h"], "--allow-webhook-host"),
        (["--on", "new-issue", "--webhook", "http://169.254.169.254/"], "--allow-webhook-host"),
        (["--on", "new-issue", "--email", "a@b.c\r\nBcc: x@y.z"], "e-mail"),
    ]
    for extra, reason in cases:
        result = tw(*base, *extra, "--json", check=False)
        assert result.returncode == 1, extra
        assert reason in json.loads(result.stdout)["error"], (extra, result.stdout)
    assert twj("alert", "list", *data) == []


def test_monitor_list_shows_status_last_check_in_and_next_expected(tmp_path: Path) -> None:
    """``tripwire monitor list --project P --json`` -> [{slug, status, last_checkin, next_expected}]."""
    data = ["--data-dir", str(tmp_path)]
    serve = ServeProcess(*data)
    try:
        config = {"schedule": {"type": "interval", "value": 10, "unit": "minute"}}
        post(serve, ("check_in", {"monitor_slug": "etl", "status": "in_progress", "monitor_config": config}))
        rows = wait_until(lambda: twj("monitor", "list", *data, "--project", "default"))
        (row,) = rows
        assert row["slug"] == "etl" and row["status"] == "in_progress"
        assert row["next_expected"] == row["last_checkin"] + 600
        text = tw("monitor", "list", *data, "--project", "default").stdout
        assert "etl" in text and "every 10 minutes" in text
    finally:
        serve.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # two `tripwire serve` processes and a kill -9 (> 5 s serially here)
@pytest.mark.reliability
def test_a_notification_committed_before_kill_9_is_delivered_after_restart(tmp_path: Path) -> None:
    """kill -9 after the outbox commit and before a successful send: the restart delivers it, once."""
    data = ["--data-dir", str(tmp_path)]
    port = _free_port()  # nothing listens yet: every attempt before the kill is refused
    url = f"http://127.0.0.1:{port}/hook"
    serve = ServeProcess(*data, "--allow-webhook-host", "127.0.0.1", measured=False)
    try:
        rule = twj(
            "alert", "create", *data, "--project", "default", "--on", "new-issue",
            "--webhook", url, "--allow-webhook-host", "127.0.0.1", "--digest", "0",
        )  # fmt: skip
        post(serve, ("event", make_event(value=uuid.uuid4().hex)))

        def attempted() -> list[Any]:
            return [h for h in twj("alert", "history", str(rule["id"]), *data) if h["error"]]

        (pending,) = wait_until(attempted, timeout=20)
        assert pending["status"] == "pending" and "Connection" in pending["error"]
    finally:
        serve.kill()
    with webhook_receiver(port) as receiver:
        again = ServeProcess(*data, "--allow-webhook-host", "127.0.0.1")
        try:
            # Within seconds; up to the lease (45 s) if the kill landed in the middle of an attempt.
            wait_until(lambda: receiver.received, timeout=60)
            time.sleep(0.5)  # a duplicate would show up now
            assert len(receiver.received) == 1
            assert receiver.received[0].json()["id"] == pending["id"]
            assert receiver.received[0].headers["idempotency-key"] == pending["id"]
            (entry,) = twj("alert", "history", str(rule["id"]), *data)
            assert entry["status"] == "sent"
            record("crash-safety", "alert notifications lost across kill -9 between commit and send", 0)
            record("crash-safety", "duplicate deliveries after the restart", len(receiver.received) - 1)
        finally:
            again.stop()


def test_a_claim_left_by_a_dead_worker_is_taken_again_with_the_same_id(tmp_path: Path) -> None:
    """A worker that dies mid-send leaves a lease; once it expires the message is claimed again."""
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    store.migrate()
    project = store.accounts.create_project("p")
    rule = store.alerts.create_alert_rule(
        project.id, RuleSpec(trigger="new-issue", webhook_url="https://example.com/h", digest=0)
    )
    (uid,) = store.alerts.queue_test_notification(rule.id)
    now = time.time()
    first = store.alerts.claim_delivery(now, lease=30)
    assert first is not None and first.uid == uid
    assert store.alerts.claim_delivery(now + 29, lease=30) is None  # still leased by the (dead) worker
    second = store.alerts.claim_delivery(now + 31, lease=30)
    assert second is not None and second.uid == uid and second.attempts == 2
    store.alerts.settle_delivery(second, ok=True, error=None, retry_at=None, now=now + 31)
    assert store.alerts.get_notification(uid).status == "sent"
    assert store.alerts.claim_delivery(now + 100, lease=30) is None
    store.close()


def test_alert_test_without_a_running_server_says_so_and_exits_1(tmp_path: Path) -> None:
    """The test notification waits in the outbox; the command tells why nothing was sent."""
    data = ["--data-dir", str(tmp_path)]
    tw("project", "create", "default", *data)
    rule = twj("alert", "create", *data, "--project", "default", "--on", "cron", "--email", "a@example.com")
    result = tw("alert", "test", str(rule["id"]), *data, "--wait", "0.3", check=False)
    assert result.returncode == 1 and "pending - is tripwire serve running?" in result.stdout
    queued = tw("alert", "test", str(rule["id"]), *data, "--wait", "0", check=False)
    assert queued.returncode == 0 and "queued" in queued.stdout
    assert [h["status"] for h in twj("alert", "history", str(rule["id"]), *data)] == ["pending", "pending"]


@pytest.mark.slow
@pytest.mark.reliability
def test_a_collector_killed_in_the_middle_of_a_send_delivers_again_after_its_lease(tmp_path: Path) -> None:
    """kill -9 while the receiver holds the request: after the lease the restart sends it again, same id."""
    data = ["--data-dir", str(tmp_path)]
    # The lease is 4 x the timeout + 5 s: 7 s here (the shortest is 5 s). The worker waits 0.5 s for
    # the held answer; the kill comes within milliseconds of the request's arrival.
    lease = 0.5 * 4 + 5
    flags = ["--allow-webhook-host", "127.0.0.1", "--alert-timeout", "0.5"]
    with webhook_receiver() as receiver:
        receiver.hold.set()
        serve = ServeProcess(*data, *flags, measured=False)
        try:
            rule = twj(
                "alert", "create", *data, "--project", "default", "--on", "new-issue",
                "--webhook", receiver.url, "--allow-webhook-host", "127.0.0.1", "--digest", "0",
            )  # fmt: skip
            post(serve, ("event", make_event(value=uuid.uuid4().hex)))
            wait_until(lambda: receiver.arrived, timeout=20, interval=0.005)
            first_seen = time.monotonic()  # the claim was taken before this
        finally:
            serve.kill()  # the worker waits for the answer: the claim stays leased
        first_id = receiver.arrived[0].json()["id"]
        receiver.hold.clear()
        again = ServeProcess(*data, *flags)
        try:
            wait_until(lambda: len(receiver.arrived) >= 2, timeout=30, interval=0.02)
            # Not sent again before the lease ran out (a restart that ignored it sends at once, ~1-2 s
            # after the kill); the margin covers the time from the claim to the first arrival.
            assert time.monotonic() - first_seen > lease - 2
            (entry,) = wait_until(
                lambda: [h for h in twj("alert", "history", str(rule["id"]), *data) if h["status"] == "sent"],
                timeout=30,
                interval=0.25,
            )
            assert entry["id"] == first_id and entry["attempts"] == 2
            assert {r.json()["id"] for r in receiver.arrived} == {first_id}
            record(
                "crash-safety",
                "alert sends interrupted by kill -9 mid-request, delivered after restart",
                "1 of 1",
            )
        finally:
            again.stop()
