"""A request of a framework that is neither ASGI nor WSGI (aiohttp, Tornado), as a ``Connection``.

The framework integrations subclass :class:`~tripwire._connection.Connection` over their own request
object (the headers, URL, method, query and client address it reads) and use these two functions
around the handler: the request's scope is installed as the isolation scope for its duration, and its
release-health session is counted when it ends, as the ASGI middleware does.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

from . import _globals
from ._connection import Connection
from ._scope import _ROOT, _isolation
from ._sessions import EXITED

C = TypeVar("C", bound=Connection)


def open_request(cls: type[C], request: Any, path: str, root_path: str = "") -> C | None:
    """The request's Connection, installed as the isolation scope; None without a client or when an
    outer integration already handles this request."""
    if _globals.client is None:
        return None
    parent = _isolation.get()
    if parent is not _ROOT and isinstance(parent.unit_of_work(), Connection):
        return None
    conn = cls()
    conn.last_event_id = None
    conn.trace_id = None
    conn._base = parent.data
    conn._data = None
    conn._session = None
    conn.scope = request
    conn.path = path
    conn.root_path = root_path
    conn.started = time.time()
    conn.status = None
    conn.outcome = EXITED
    conn.route = None
    conn.app_send = None
    conn.body = None
    conn.token = _isolation.set(conn)
    return conn


def close_request(conn: Connection) -> None:
    """Restore the enclosing scope and count the request's session."""
    _isolation.reset(conn.token)
    client = _globals.client
    sessions = client.sessions if client is not None else None
    if sessions is not None and sessions.auto:
        sessions.record(conn.started, conn.outcome)
