"""Accounts: the collector's settings, projects, who and what may reach a project (its DSN keys
and its members), users, dashboard login sessions and API tokens.

Passwords are kept as scrypt hashes; session cookies and API tokens only as SHA-256 hashes. A
password change logs the user's web sessions out and revokes their API tokens: whoever had the
old password may have made both.

A project has one or more DSN public keys. Rotating adds a key and makes it the one shown in DSNs
(``projects.public_key``); the older keys keep ingesting until they are revoked, so SDKs can be
redeployed with the new DSN before the old one stops working. The last key cannot be revoked.
Admins see every project; other users only those they are members of.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from .. import credentials
from ._pg_locks import SCOPED_KEY
from .base import MAX_ID, ApiToken, NotFound, Project, ProjectKey, StoreError, User
from .database import Cursor, Database

_PROJECT_COLUMNS = (
    "id, name, public_key, created_at, quota_per_minute, retention_days, retention_max_events,"
    " attachment_bytes_per_hour, attachment_bytes_total"
)


def _user(row: Sequence[Any]) -> User:
    return User(id=row[0], username=row[1], is_admin=bool(row[2]), created_at=row[3])


def _project(row: Sequence[Any]) -> Project:
    return Project(*row)


class Accounts:
    """Settings, projects and their keys and members, users, sessions and tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- settings ----------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        """A persisted collector setting (e.g. ``public_url``), or None."""
        with self.db.tx(write=False) as c:
            row = c.one("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        """Persist a collector setting."""
        with self.db.tx() as c:
            c.ex(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- projects ----------------------------------------------------------------------------

    def create_project(self, name: str) -> Project:
        """Create a project with a fresh public key. StoreError if the name exists."""
        name = name.strip()
        if not name:
            raise StoreError("a project needs a name")
        # ON CONFLICT rather than check-then-insert: two processes starting at once both create
        # "default", and one of them must simply find it taken.
        with self.db.tx() as c:
            row = c.one(
                f"INSERT INTO projects (name, public_key, created_at) VALUES (?, ?, ?)"
                f" ON CONFLICT (name) DO NOTHING RETURNING {_PROJECT_COLUMNS}",
                (name, credentials.new_public_key(), time.time()),
            )
            if row is not None:
                c.ex(
                    "INSERT INTO project_keys (public_key, project_id, created_at) VALUES (?, ?, ?)",
                    (row[2], row[0], row[3]),
                )
        if row is None:
            raise StoreError(f"project {name!r} already exists")
        return _project(row)

    def list_projects(self) -> list[Project]:
        """All projects, by id."""
        with self.db.tx(write=False) as c:
            rows = c.all(f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY id")
        return [_project(r) for r in rows]

    def get_project(self, id_or_name: int | str) -> Project:
        """A project by numeric id or by name. NotFound if missing."""
        with self.db.tx(write=False) as c:
            row = None
            ref = str(id_or_name)
            # At most 19 ASCII digits ("²".isdigit() is True but int("²") fails, and int() refuses
            # more than 4300 digits); an id past 2^63 or a name with NUL (PostgreSQL refuses it in
            # text) can match nothing.
            if "\x00" in ref:
                raise NotFound(f"no project {id_or_name!r}")
            if isinstance(id_or_name, int) or (ref.isascii() and ref.isdigit() and len(ref) <= 19):
                with contextlib.suppress(NotFound):
                    row = c.one(
                        f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ?", (db_int(int(id_or_name)),)
                    )
            if row is None:
                row = c.one(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE name = ?", (str(id_or_name),))
        if row is None:
            raise NotFound(f"no project {id_or_name!r}")
        return _project(row)

    def update_project(
        self,
        project_id: int,
        *,
        quota_per_minute: int | None = None,
        retention_days: int | None = None,
        retention_max_events: int | None = None,
        attachment_bytes_per_hour: int | None = None,
        attachment_bytes_total: int | None = None,
    ) -> Project:
        """Set per-project quota/retention/attachment overrides (None leaves a field unchanged;
        -1 clears it back to the collector default)."""
        changes = {
            "quota_per_minute": quota_per_minute,
            "retention_days": retention_days,
            "retention_max_events": retention_max_events,
            "attachment_bytes_per_hour": attachment_bytes_per_hour,
            "attachment_bytes_total": attachment_bytes_total,
        }
        with self.db.tx() as c:
            for column, value in changes.items():
                if value is None:
                    continue
                c.ex(
                    f"UPDATE projects SET {column} = ? WHERE id = ?",
                    (None if value < 0 else value, project_id),
                )
        return self.get_project(project_id)

    # -- users -------------------------------------------------------------------------------

    def create_user(self, username: str, password: str, *, is_admin: bool = False) -> User:
        """Create a user; the password is stored as an scrypt hash. StoreError if the name exists."""
        if not username:
            raise StoreError("a user needs a name")
        hashed = credentials.hash_password(password)
        with self.db.tx() as c:
            row = c.one(
                "INSERT INTO users (username, password_hash, is_admin, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (username) DO NOTHING"
                " RETURNING id, username, is_admin, created_at",
                (username, hashed, int(is_admin), time.time()),
            )
        if row is None:
            raise StoreError(f"user {username!r} already exists")
        return _user(row)

    def set_password(self, username: str, password: str) -> None:
        """Replace a user's password (and log out their web sessions). NotFound if no such user."""
        hashed = credentials.hash_password(password)
        with self.db.tx() as c:
            row = c.one(
                "UPDATE users SET password_hash = ? WHERE username = ? RETURNING id",
                (hashed, username),
            )
            if row is None:
                raise NotFound(f"no user {username!r}")
            c.ex("DELETE FROM web_sessions WHERE user_id = ?", (row[0],))
            c.ex("DELETE FROM api_tokens WHERE user_id = ?", (row[0],))

    def list_users(self) -> list[User]:
        """All users, by name."""
        with self.db.tx(write=False) as c:
            rows = c.all("SELECT id, username, is_admin, created_at FROM users ORDER BY username")
        return [_user(r) for r in rows]

    def get_user(self, username: str) -> User:
        """A user by name. NotFound if missing."""
        with self.db.tx(write=False) as c:
            row = c.one(
                "SELECT id, username, is_admin, created_at FROM users WHERE username = ?",
                (username,),
            )
        if row is None:
            raise NotFound(f"no user {username!r}")
        return _user(row)

    def verify_password(self, username: str, password: str) -> User | None:
        """The user if the password matches, else None (constant-time comparison)."""
        with self.db.tx(write=False) as c:
            row = c.one(
                "SELECT id, username, is_admin, created_at, password_hash FROM users WHERE username = ?",
                (username,),
            )
        if row is None:
            # Spend the same time as a real check so that user names cannot be probed.
            credentials.check_password(password, credentials.unmatchable_hash())
            return None
        return _user(row) if credentials.check_password(password, row[4]) else None

    def create_web_session(self, user_id: int, ttl: float = 14 * 86400) -> str:
        """Start a dashboard login session; return the secret cookie value (only its hash is kept)."""
        token = credentials.new_token("tws_")
        now = time.time()
        with self.db.tx() as c:
            c.ex("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
            c.ex(
                "INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (credentials.token_hash(token), user_id, now, now + ttl),
            )
        return token

    def get_web_session_user(self, token: str) -> User | None:
        """The user of a live dashboard session, or None if unknown or expired."""
        with self.db.tx(write=False) as c:
            row = c.one(
                "SELECT u.id, u.username, u.is_admin, u.created_at FROM web_sessions s"
                " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
                (credentials.token_hash(token), time.time()),
            )
        return None if row is None else _user(row)

    def delete_web_session(self, token: str) -> None:
        """Log a dashboard session out."""
        with self.db.tx() as c:
            c.ex("DELETE FROM web_sessions WHERE token_hash = ?", (credentials.token_hash(token),))

    def create_api_token(self, user_id: int, name: str = "", *, expires_at: float | None = None) -> str:
        """Create an API token for a user; return it (only its hash is kept: show it once)."""
        return self.issue_api_token(user_id, name, expires_at=expires_at)[1]

    def issue_api_token(
        self, user_id: int, name: str = "", *, expires_at: float | None = None
    ) -> tuple[ApiToken, str]:
        """Like :meth:`create_api_token`, also returning the listed form (with its id)."""
        token = credentials.new_token("tw_")
        with self.db.tx() as c:
            row = c.one(
                "INSERT INTO api_tokens (token_hash, user_id, name, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                (credentials.token_hash(token), user_id, name, time.time(), expires_at),
            )
            token_id = int(row[0])
        (listed,) = [t for t in self.list_api_tokens(user_id) if t.id == token_id]
        return listed, token

    def verify_api_token(self, token: str) -> User | None:
        """The user owning an API token that has not expired, or None."""
        with self.db.tx(write=False) as c:
            row = c.one(
                "SELECT u.id, u.username, u.is_admin, u.created_at FROM api_tokens t"
                " JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?"
                " AND (t.expires_at IS NULL OR t.expires_at > ?)",
                (credentials.token_hash(token), time.time()),
            )
        return None if row is None else _user(row)

    def list_api_tokens(self, user_id: int | None = None) -> list[ApiToken]:
        """The tokens of one user (or of everyone), oldest first."""
        sql = (
            "SELECT t.id, t.user_id, u.username, t.name, t.created_at, t.expires_at"
            " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        )
        params: tuple[Any, ...] = ()
        if user_id is not None:
            sql += " WHERE t.user_id = ?"
            params = (user_id,)
        with self.db.tx(write=False) as c:
            rows = c.all(sql + " ORDER BY t.id", params)
        return [ApiToken(*row) for row in rows]

    def revoke_api_token(self, token_id: int, *, user_id: int | None = None) -> None:
        """Delete a token (only if it belongs to ``user_id`` when given). NotFound otherwise."""
        sql, params = "DELETE FROM api_tokens WHERE id = ?", [db_int(token_id)]
        if user_id is not None:
            sql += " AND user_id = ?"
            params.append(user_id)
        with self.db.tx() as c:
            if c.one(sql + " RETURNING id", params) is None:
                raise NotFound(f"no API token {token_id}")

    # -- the login throttle ------------------------------------------------------------------

    def take_login_slot(
        self, address: str, account: str, *, limit: int, window: float, now: float
    ) -> int | None:
        """Count one login attempt of ``address`` for ``account`` before its password is checked,
        unless either already has ``limit`` attempts in the last ``window`` seconds (then None).
        Atomic across processes sharing the database. Returns the attempt's id."""
        since = now - window
        with self.db.tx() as c:
            # Racing logins of one address or account must count one after the other. SQLite's
            # write transaction already holds the whole database; PostgreSQL takes a lock per key
            # until commit (always in one order, so two logins never wait on each other in a cycle).
            for key in sorted((f"addr:{address}", f"user:{account}")):
                self._login_lock(c, key)
            for column, value in (("address", address), ("account", account)):
                row = c.one(
                    f"SELECT COUNT(*) FROM login_attempts WHERE {column} = ? AND at > ?", (value, since)
                )
                if int(row[0]) >= limit:
                    return None
            # Forget what has left the window, so the table holds one window of attempts at most
            # (one pruner at a time: two deleting the same rows could wait on each other).
            if self._login_lock(c, "prune", wait=False):
                c.ex("DELETE FROM login_attempts WHERE at <= ?", (since,))
            row = c.one(
                "INSERT INTO login_attempts (address, account, at) VALUES (?, ?, ?) RETURNING id",
                (address, account, now),
            )
        return int(row[0])

    def _login_lock(self, c: Cursor, key: str, *, wait: bool = True) -> bool:
        if self.db.backend != "postgresql":
            return True
        function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
        row = c.one(f"SELECT {function}({SCOPED_KEY})", (f"tripwire-login:{key}",))
        return wait or bool(row[0])

    def release_login_slot(self, slot: int) -> None:
        """Forget one attempt (its password was right); earlier failures stay counted."""
        with self.db.tx() as c:
            c.ex("DELETE FROM login_attempts WHERE id = ?", (slot,))

    # -- DSN keys ----------------------------------------------------------------------------

    def list_project_keys(self, project_id: int | None = None) -> list[ProjectKey]:
        """The DSN keys of a project (or of all projects), oldest first."""
        sql = "SELECT project_id, public_key, created_at FROM project_keys"
        params: tuple[int, ...] = ()
        if project_id is not None:
            sql += " WHERE project_id = ?"
            params = (project_id,)
        with self.db.tx(write=False) as c:
            rows = c.all(sql + " ORDER BY created_at, public_key", params)
        return [ProjectKey(*row) for row in rows]

    def add_project_key(self, project_id: int) -> ProjectKey:
        """Add a fresh DSN key; it becomes the project's ``public_key``, the old ones stay valid."""
        key = ProjectKey(project_id, credentials.new_public_key(), time.time())
        with self.db.tx() as c:
            row = c.one(
                "UPDATE projects SET public_key = ? WHERE id = ? RETURNING id", (key.public_key, project_id)
            )
            if row is None:
                raise NotFound(f"no project {project_id}")
            c.ex(
                "INSERT INTO project_keys (public_key, project_id, created_at) VALUES (?, ?, ?)",
                (key.public_key, project_id, key.created_at),
            )
        return key

    def revoke_project_key(self, project_id: int, public_key: str) -> None:
        """Remove a key (NotFound if it is not the project's; StoreError if it is the last one)."""
        with self.db.tx() as c:
            # Lock the project row first: two revocations at once must not both see two keys left.
            if c.one("UPDATE projects SET id = id WHERE id = ? RETURNING id", (project_id,)) is None:
                raise NotFound(f"no project {project_id}")
            keys = [
                row[0]
                for row in c.all(
                    "SELECT public_key FROM project_keys WHERE project_id = ?"
                    " ORDER BY created_at, public_key",
                    (project_id,),
                )
            ]
            if public_key not in keys:
                raise NotFound(f"no key {public_key!r} in project {project_id}")
            if len(keys) == 1:
                raise StoreError("the last DSN key of a project cannot be revoked: rotate first")
            c.ex("DELETE FROM project_keys WHERE public_key = ?", (public_key,))
            newest = [k for k in keys if k != public_key][-1]
            c.ex(
                "UPDATE projects SET public_key = ? WHERE id = ? AND public_key = ?",
                (newest, project_id, public_key),
            )

    # -- members -----------------------------------------------------------------------------

    def add_project_member(self, project_id: int, user_id: int) -> None:
        """Let a user see and triage a project (idempotent)."""
        with self.db.tx() as c:
            c.ex(
                "INSERT INTO project_members (project_id, user_id, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (project_id, user_id) DO NOTHING",
                (project_id, user_id, time.time()),
            )

    def remove_project_member(self, project_id: int, user_id: int) -> None:
        """Take a project away from a user. NotFound if they were not a member."""
        with self.db.tx() as c:
            row = c.one(
                "DELETE FROM project_members WHERE project_id = ? AND user_id = ? RETURNING user_id",
                (project_id, user_id),
            )
        if row is None:
            raise NotFound("that user is not a member of this project")

    def list_project_members(self, project_id: int) -> list[User]:
        """The members of a project, by name (admins see every project without being members)."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT u.id, u.username, u.is_admin, u.created_at FROM project_members m"
                " JOIN users u ON u.id = m.user_id WHERE m.project_id = ? ORDER BY u.username",
                (project_id,),
            )
        return [_user(row) for row in rows]

    def member_project_ids(self, user_id: int) -> set[int]:
        """The ids of the projects a user is a member of."""
        with self.db.tx(write=False) as c:
            rows = c.all("SELECT project_id FROM project_members WHERE user_id = ?", (user_id,))
        return {int(row[0]) for row in rows}


def db_int(value: int) -> int:
    """``value`` if a database id column can hold it; NotFound otherwise (no row can have it)."""
    if not -MAX_ID <= value <= MAX_ID:
        raise NotFound(f"no object with id {value}")
    return value
