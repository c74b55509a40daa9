"""Who and what may reach a project: its DSN keys and its members (the SQL store's part).

A project has one or more DSN public keys. Rotating adds a key and makes it the one shown in DSNs
(``projects.public_key``); the older keys keep ingesting until they are revoked, so SDKs can be
redeployed with the new DSN before the old one stops working. The last key cannot be revoked.

Admins see every project; other users only those they are members of.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from .. import secrets as _secrets
from ._accounts import _user
from .base import NotFound, ProjectKey, StoreError, User

if TYPE_CHECKING:
    from ._sql import Cursor


class ProjectAccessMixin:
    """The project key and membership methods of :class:`~._sql.SQLStore`."""

    if TYPE_CHECKING:

        def _tx(self, write: bool = True) -> contextlib.AbstractContextManager[Cursor]: ...

    # -- DSN keys ----------------------------------------------------------------------------

    def list_project_keys(self, project_id: int | None = None) -> list[ProjectKey]:
        sql = "SELECT project_id, public_key, created_at FROM project_keys"
        params: tuple[int, ...] = ()
        if project_id is not None:
            sql += " WHERE project_id = ?"
            params = (project_id,)
        with self._tx(write=False) as c:
            rows = c.all(sql + " ORDER BY created_at, public_key", params)
        return [ProjectKey(*row) for row in rows]

    def add_project_key(self, project_id: int) -> ProjectKey:
        key = ProjectKey(project_id, _secrets.new_public_key(), time.time())
        with self._tx() as c:
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
        with self._tx() as c:
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
        with self._tx() as c:
            c.ex(
                "INSERT INTO project_members (project_id, user_id, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (project_id, user_id) DO NOTHING",
                (project_id, user_id, time.time()),
            )

    def remove_project_member(self, project_id: int, user_id: int) -> None:
        with self._tx() as c:
            row = c.one(
                "DELETE FROM project_members WHERE project_id = ? AND user_id = ? RETURNING user_id",
                (project_id, user_id),
            )
        if row is None:
            raise NotFound("that user is not a member of this project")

    def list_project_members(self, project_id: int) -> list[User]:
        with self._tx(write=False) as c:
            rows = c.all(
                "SELECT u.id, u.username, u.is_admin, u.created_at FROM project_members m"
                " JOIN users u ON u.id = m.user_id WHERE m.project_id = ? ORDER BY u.username",
                (project_id,),
            )
        return [_user(row) for row in rows]

    def member_project_ids(self, user_id: int) -> set[int]:
        with self._tx(write=False) as c:
            rows = c.all("SELECT project_id FROM project_members WHERE user_id = ?", (user_id,))
        return {int(row[0]) for row in rows}
