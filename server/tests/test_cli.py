"""The tripwire CLI against a real collector process and real databases."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tripwire_server import cli
from tripwire_server.store import open_store

from .cli_support import tw, twj
from .conftest import ServeProcess, wait_until


def tw_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``tripwire ARGS`` as users start it: the console script's module, in a process of its own."""
    result = subprocess.run(
        [sys.executable, "-m", "tripwire_server", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result


def twj_process(*args: str) -> Any:
    return json.loads(tw_process(*args, "--json").stdout)


def test_first_start_prints_dsn_and_password_once_and_binds_locally(tmp_path: Path) -> None:
    """serve creates project default and an admin; the password is shown on the first start only."""
    first = ServeProcess("--data-dir", str(tmp_path))
    try:
        assert first.url.startswith("http://127.0.0.1:")
        assert first.info["project"] == "default"
        assert first.info["admin_user"] == "admin" and first.info["admin_password"]
        store = open_store(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
        assert store.accounts.verify_password("admin", first.info["admin_password"]) is not None
        store.close()
    finally:
        first.stop()
    second = ServeProcess("--data-dir", str(tmp_path))
    try:
        assert second.info["admin_password"] is None
        assert second.dsn.split("@")[0] == first.dsn.split("@")[0]  # same project key
    finally:
        second.stop()


def test_admin_password_comes_from_the_environment(tmp_path: Path) -> None:
    """TRIPWIRE_ADMIN_PASSWORD sets the first admin password (which is then not echoed)."""
    proc = ServeProcess("--data-dir", str(tmp_path), env={"TRIPWIRE_ADMIN_PASSWORD": "s3cret-pw"})
    try:
        assert proc.info["admin_password"] is None
        store = open_store(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
        assert store.accounts.verify_password("admin", "s3cret-pw") is not None
        store.close()
    finally:
        proc.stop()


@pytest.mark.slow  # a `tripwire serve` and five CLI processes, each a fresh interpreter (> 5 s serially here)
def test_project_token_issues_event_and_send_test_work_together(tmp_path: Path) -> None:
    """Create a project, send a test event to its DSN, find it with issues and event show: the real
    console script, each command a process of its own."""
    data = ["--data-dir", str(tmp_path)]
    server = ServeProcess(*data)
    try:
        created = twj_process("project", "create", "billing", *data)
        assert created["name"] == "billing"
        assert created["dsn"].startswith(f"http://{created['public_key']}@127.0.0.1:")
        listed = twj_process("project", "list", *data)
        assert [p["name"] for p in listed] == ["default", "billing"]
        assert listed[1]["dsn"] == created["dsn"]

        sent = twj_process("send-test", "--dsn", created["dsn"], "--message", "cli check")
        assert sent["status"] == 200
        store = open_store(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
        try:
            wait_until(lambda: store.issues.count_events(created["id"]) == 1)
        finally:
            store.close()
        issues = twj_process("issues", "--project", "billing", *data)
        assert [i["title"] for i in issues] == ["RuntimeError: cli check"]
        event = twj_process("event", "show", sent["event_id"], *data)
        assert event["data"]["exception"]["values"][0]["value"] == "cli check"
        assert "cli check" in tw_process("issues", "--project", "billing", *data).stdout

        token = twj_process("token", "create", *data)["token"]
        response = httpx.get(f"{server.url}/api/0/projects/", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200 and len(response.json()) == 2
    finally:
        server.stop()


def test_users_are_created_and_passwords_changed(tmp_path: Path) -> None:
    """user create and user passwd change what verifies."""
    data = ["--data-dir", str(tmp_path)]
    created = twj("user", "create", "ops", "--password", "first-pw", *data)
    assert created == {"username": "ops", "password": None}
    generated = twj("user", "passwd", "ops", *data)["password"]
    assert generated
    store = open_store(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
    try:
        assert store.accounts.verify_password("ops", "first-pw") is None
        assert store.accounts.verify_password("ops", generated) is not None
    finally:
        store.close()


def test_errors_exit_1_with_a_message(tmp_path: Path) -> None:
    """A duplicate project, an unknown event, a refused send-test and a malformed DSN fail clearly."""
    data = ["--data-dir", str(tmp_path)]
    tw("project", "create", "dup", *data)
    again = tw("project", "create", "dup", *data, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    missing = tw("event", "show", "0" * 32, *data, "--json", check=False)
    assert missing.returncode == 1 and "no event" in json.loads(missing.stdout)["error"]
    refused = tw("send-test", "--dsn", "http://badkey@127.0.0.1:9/1", check=False)
    assert refused.returncode == 1
    no_key = tw("send-test", "--dsn", "http://127.0.0.1:9/1", check=False)
    assert no_key.returncode == 1 and "--dsn: DSN has no public key" in no_key.stderr


def test_postgresql_database_url_is_used_by_every_command(pg_url: str) -> None:
    """--database-url points the CLI at PostgreSQL."""
    created = twj("project", "create", "pg-project", "--database-url", pg_url)
    listed = twj("project", "list", "--database-url", pg_url)
    assert [p["name"] for p in listed] == ["pg-project"] and listed[0]["id"] == created["id"]


def test_project_set_changes_quota_and_retention(tmp_path: Path) -> None:
    """project set stores per-project limits; -1 goes back to the server default."""
    data = ["--data-dir", str(tmp_path)]
    tw("project", "create", "svc", *data)
    changed = twj("project", "set", "svc", "--quota-per-minute", "60", "--retention-days", "7", *data)
    assert (changed["quota_per_minute"], changed["retention_days"]) == (60, 7)
    assert changed["retention_max_events"] is None
    reset = twj("project", "set", "svc", "--quota-per-minute", "-1", *data)
    assert (reset["quota_per_minute"], reset["retention_days"]) == (None, 7)


def _cli(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> Any:
    """Run the ``tripwire`` command in this process (the same ``main`` the console script calls);
    its JSON output, or its stderr when it fails."""
    assert cli.main([*args, "--json"] if code == 0 else list(args)) == code
    out = capsys.readouterr()
    return json.loads(out.out) if code == 0 else out.err


def test_tokens_are_listed_revoked_and_expire_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """token create --expires-in sets an expiry, token list shows it (never the secret), token
    revoke makes the token useless; every command answers --json."""
    base = ("--data-dir", str(tmp_path))
    _cli(capsys, "user", "create", "admin", "--admin", "--password", "admin password 1", *base)
    created = _cli(capsys, "token", "create", "--name", "ci", "--expires-in", "30", *base)
    assert created["token"].startswith("tw_") and created["expires_at"] > time.time() + 29 * 86400
    listed = _cli(capsys, "token", "list", *base)
    assert [(t["id"], t["name"], t["user"]) for t in listed] == [(created["id"], "ci", "admin")]
    assert "token" not in listed[0]
    store = open_store(f"sqlite:///{tmp_path / 'tripwire.sqlite3'}")
    try:
        assert store.accounts.verify_api_token(created["token"]) is not None
        assert _cli(capsys, "token", "revoke", str(created["id"]), *base) == {"revoked": created["id"]}
        assert store.accounts.verify_api_token(created["token"]) is None
    finally:
        store.close()
    assert _cli(capsys, "token", "list", *base) == []
    assert "no API token" in _cli(capsys, "token", "revoke", str(created["id"]), *base, code=1)


def test_keys_are_rotated_and_revoked_and_members_managed_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """project rotate-key adds a key (both listed), revoke-key removes the old one and the last
    key cannot be revoked; add-member/remove-member change who sees the project."""
    base = ("--data-dir", str(tmp_path))
    project = _cli(capsys, "project", "create", "shop", *base)
    old = project["public_key"]
    rotated = _cli(capsys, "project", "rotate-key", "shop", *base)
    keys = _cli(capsys, "project", "keys", "shop", *base)
    assert {k["public_key"] for k in keys} == {old, rotated["public_key"]}
    assert _cli(capsys, "project", "revoke-key", "shop", old, *base) == {"project": "shop", "revoked": old}
    remaining = _cli(capsys, "project", "keys", "shop", *base)
    assert [k["public_key"] for k in remaining] == [rotated["public_key"]]
    assert "last" in _cli(capsys, "project", "revoke-key", "shop", rotated["public_key"], *base, code=1)
    _cli(capsys, "user", "create", "erin", "--password", "erin password 1", *base)
    assert _cli(capsys, "project", "add-member", "shop", "erin", *base)["member"] is True
    assert _cli(capsys, "project", "members", "shop", *base) == [{"username": "erin", "is_admin": False}]
    assert _cli(capsys, "project", "remove-member", "shop", "erin", *base)["member"] is False
    assert _cli(capsys, "project", "members", "shop", *base) == []
    assert [u["username"] for u in _cli(capsys, "user", "list", *base)] == ["erin"]
