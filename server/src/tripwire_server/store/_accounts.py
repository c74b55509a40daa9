"""Users, dashboard login sessions and API tokens: the part of the SQL store about people.

Passwords are kept as scrypt hashes; session cookies and API tokens only as SHA-256 hashes. A
password change logs the user's web sessions out and revokes their API tokens: whoever had the
old password may have made both.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import secrets as _secrets
from ._pg_locks import SCOPED_KEY
from .base import MAX_ID, ApiToken, NotFound, StoreError, User

if TYPE_CHECKING:
    from ._sql import Cursor

# A valid hash of a random password, used to make unknown-user logins as slow as real ones.
_DUMMY_HASH = _secrets.hash_password(_secrets.new_token(""))


def _user(row: Sequence[Any]) -> User:
    return User(id=row[0], username=row[1], is_admin=bool(row[2]), created_at=row[3])


class AccountsMixin:
    """The user/session/token methods of :class:`~._sql.SQLStore`."""

    if TYPE_CHECKING:
        backend: str

        def _tx(self, write: bool = True) -> contextlib.AbstractContextManager[Cursor]: ...

    # -- users -------------------------------------------------------------------------------

    def create_user(self, username: str, password: str, *, is_admin: bool = False) -> User:
        if not username:
            raise StoreError("a user needs a name")
        hashed = _secrets.hash_password(password)
        with self._tx() as c:
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
        hashed = _secrets.hash_password(password)
        with self._tx() as c:
            row = c.one(
                "UPDATE users SET password_hash = ? WHERE username = ? RETURNING id",
                (hashed, username),
            )
            if row is None:
                raise NotFound(f"no user {username!r}")
            c.ex("DELETE FROM web_sessions WHERE user_id = ?", (row[0],))
            c.ex("DELETE FROM api_tokens WHERE user_id = ?", (row[0],))

    def list_users(self) -> list[User]:
        with self._tx(write=False) as c:
            rows = c.all("SELECT id, username, is_admin, created_at FROM users ORDER BY username")
        return [_user(r) for r in rows]

    def get_user(self, username: str) -> User:
        with self._tx(write=False) as c:
            row = c.one(
                "SELECT id, username, is_admin, created_at FROM users WHERE username = ?",
                (username,),
            )
        if row is None:
            raise NotFound(f"no user {username!r}")
        return _user(row)

    def verify_password(self, username: str, password: str) -> User | None:
        with self._tx(write=False) as c:
            row = c.one(
                "SELECT id, username, is_admin, created_at, password_hash FROM users WHERE username = ?",
                (username,),
            )
        if row is None:
            # Spend the same time as a real check so that user names cannot be probed.
            _secrets.check_password(password, _DUMMY_HASH)
            return None
        return _user(row) if _secrets.check_password(password, row[4]) else None

    def create_web_session(self, user_id: int, ttl: float = 14 * 86400) -> str:
        token = _secrets.new_token("tws_")
        now = time.time()
        with self._tx() as c:
            c.ex("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
            c.ex(
                "INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (_secrets.token_hash(token), user_id, now, now + ttl),
            )
        return token

    def get_web_session_user(self, token: str) -> User | None:
        with self._tx(write=False) as c:
            row = c.one(
                "SELECT u.id, u.username, u.is_admin, u.created_at FROM web_sessions s"
                " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
                (_secrets.token_hash(token), time.time()),
            )
        return None if row is None else _user(row)

    def delete_web_session(self, token: str) -> None:
        with self._tx() as c:
            c.ex("DELETE FROM web_sessions WHERE token_hash = ?", (_secrets.token_hash(token),))

    def create_api_token(self, user_id: int, name: str = "", *, expires_at: float | None = None) -> str:
        return self.issue_api_token(user_id, name, expires_at=expires_at)[1]

    def issue_api_token(
        self, user_id: int, name: str = "", *, expires_at: float | None = None
    ) -> tuple[ApiToken, str]:
        token = _secrets.new_token("tw_")
        with self._tx() as c:
            row = c.one(
                "INSERT INTO api_tokens (token_hash, user_id, name, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                (_secrets.token_hash(token), user_id, name, time.time(), expires_at),
            )
            token_id = int(row[0])
        (listed,) = [t for t in self.list_api_tokens(user_id) if t.id == token_id]
        return listed, token

    def verify_api_token(self, token: str) -> User | None:
        with self._tx(write=False) as c:
            row = c.one(
                "SELECT u.id, u.username, u.is_admin, u.created_at FROM api_tokens t"
                " JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?"
                " AND (t.expires_at IS NULL OR t.expires_at > ?)",
                (_secrets.token_hash(token), time.time()),
            )
        return None if row is None else _user(row)

    def list_api_tokens(self, user_id: int | None = None) -> list[ApiToken]:
        sql = (
            "SELECT t.id, t.user_id, u.username, t.name, t.created_at, t.expires_at"
            " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        )
        params: tuple[Any, ...] = ()
        if user_id is not None:
            sql += " WHERE t.user_id = ?"
            params = (user_id,)
        with self._tx(write=False) as c:
            rows = c.all(sql + " ORDER BY t.id", params)
        return [ApiToken(*row) for row in rows]

    def revoke_api_token(self, token_id: int, *, user_id: int | None = None) -> None:
        sql, params = "DELETE FROM api_tokens WHERE id = ?", [db_int(token_id)]
        if user_id is not None:
            sql += " AND user_id = ?"
            params.append(user_id)
        with self._tx() as c:
            if c.one(sql + " RETURNING id", params) is None:
                raise NotFound(f"no API token {token_id}")

    # -- the login throttle ------------------------------------------------------------------

    def take_login_slot(
        self, address: str, account: str, *, limit: int, window: float, now: float
    ) -> int | None:
        since = now - window
        with self._tx() as c:
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
        if self.backend != "postgresql":
            return True
        function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
        row = c.one(f"SELECT {function}({SCOPED_KEY})", (f"tripwire-login:{key}",))
        return wait or bool(row[0])

    def release_login_slot(self, slot: int) -> None:
        with self._tx() as c:
            c.ex("DELETE FROM login_attempts WHERE id = ?", (slot,))


def db_int(value: int) -> int:
    """``value`` if a database id column can hold it; NotFound otherwise (no row can have it)."""
    if not -MAX_ID <= value <= MAX_ID:
        raise NotFound(f"no object with id {value}")
    return value
