"""The store's account methods: migration 5 on an existing database, key rotation and membership
(SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import time

import pytest

from tripwire_server import credentials
from tripwire_server.store import NotFound, StoreError, open_store
from tripwire_server.store.migrations import migrations


def test_upgrading_keeps_every_key_and_every_users_access(database_url: str) -> None:
    """A database made before migration 5 keeps ingesting with its key, and its non-admin users
    stay able to see its projects (they become members); admins need no membership."""
    store = open_store(database_url)
    try:
        with store.db.tx() as c:
            c.ex("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            for version, statements in migrations(store.backend):
                if version >= 4:
                    break
                for statement in statements:
                    c.ex(statement)
                c.ex("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, 0.0))
            now = time.time()
            c.ex(
                "INSERT INTO projects (name, public_key, created_at) VALUES (?, ?, ?)",
                ("old", "a" * 32, now),
            )
            for name, admin in (("root", 1), ("viewer", 0)):
                c.ex(
                    "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?)",
                    (name, "x", admin, now),
                )
        assert 5 in store.migrate()
        project = store.accounts.get_project("old")
        assert [k.public_key for k in store.accounts.list_project_keys(project.id)] == ["a" * 32]
        assert store.accounts.member_project_ids(store.accounts.get_user("viewer").id) == {project.id}
        assert store.accounts.member_project_ids(store.accounts.get_user("root").id) == set()
        fresh = store.accounts.create_project("new")
        assert store.accounts.list_project_members(fresh.id) == []
    finally:
        store.close()


def test_rotation_overlaps_and_the_newest_remaining_key_is_shown(database_url: str) -> None:
    """After two rotations all three keys are valid; revoking the shown key shows the newest left;
    the last key, or a key of another project, cannot be revoked."""
    store = open_store(database_url)
    store.migrate()
    try:
        project = store.accounts.create_project("rot")
        other = store.accounts.create_project("other")
        first = project.public_key
        second = store.accounts.add_project_key(project.id).public_key
        third = store.accounts.add_project_key(project.id).public_key
        assert [k.public_key for k in store.accounts.list_project_keys(project.id)] == [first, second, third]
        assert store.accounts.get_project(project.id).public_key == third
        with pytest.raises(NotFound):
            store.accounts.revoke_project_key(other.id, second)
        store.accounts.revoke_project_key(project.id, third)
        assert store.accounts.get_project(project.id).public_key == second
        store.accounts.revoke_project_key(project.id, first)
        with pytest.raises(StoreError, match="last"):
            store.accounts.revoke_project_key(project.id, second)
        assert [k.public_key for k in store.accounts.list_project_keys(project.id)] == [second]
    finally:
        store.close()


def test_an_unknown_user_s_login_runs_the_same_scrypt_as_a_known_user_s() -> None:
    """The stand-in hash checked for unknown user names has the real hashes' scrypt cost, so a login
    attempt cannot tell which user names exist by its time, and no password matches it."""
    real = credentials.hash_password("correct horse").split("$")
    stand_in = credentials.unmatchable_hash()
    parts = stand_in.split("$")
    assert parts[:4] == real[:4]  # scheme, N, r, p: the work of a check
    assert len(base64.b64decode(parts[4])) == len(base64.b64decode(real[4]))
    assert len(base64.b64decode(parts[5])) == len(base64.b64decode(real[5]))
    assert not credentials.check_password("", stand_in)
    assert not credentials.check_password("correct horse", stand_in)
    assert credentials.check_password("correct horse", "$".join(real))
    assert credentials.unmatchable_hash() != stand_in  # a fresh random salt and digest each time


def test_a_login_for_an_unknown_user_is_refused_after_one_full_check(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify_password spends one scrypt check on a user name that does not exist, as on one that
    does, and answers None for both wrong passwords."""
    store = open_store(database_url)
    try:
        store.migrate()
        store.accounts.create_user("alice", "right password 1")
        checked: list[str] = []
        real_check = credentials.check_password

        def counting(password: str, encoded: str) -> bool:
            checked.append(encoded.split("$")[1])
            return real_check(password, encoded)

        monkeypatch.setattr(credentials, "check_password", counting)
        assert store.accounts.verify_password("mallory", "right password 1") is None
        assert store.accounts.verify_password("alice", "wrong password") is None
        assert checked == [str(credentials._N)] * 2
        user = store.accounts.verify_password("alice", "right password 1")
        assert user is not None and user.username == "alice"
    finally:
        store.close()
