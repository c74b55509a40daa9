"""The request marker: what the middleware installs per request, and the Connection it turns into."""

from __future__ import annotations

import os
import threading
import time

import pytest

import tripwire
from tests.support.forking import child_exit_code_after_fork_holding
from tripwire import _connection, _scope
from tripwire._connection import BASE, CONN, PATH, ROOT_PATH, SCOPE, STARTED, TOKEN, Connection


def _marker() -> list[object]:
    marker: list[object] = [None, _scope.ScopeData(), {"type": "http", "path": "/m"}, "/m", "", 0.0, None]
    assert len(marker) == TOKEN + 1 and (BASE, SCOPE, PATH, ROOT_PATH, STARTED) == (1, 2, 3, 4, 5)
    return marker


def test_every_thread_of_a_request_gets_the_same_connection() -> None:
    """Threads that touch a request's scope at the same moment all end up with one holder."""
    marker = _marker()
    start = threading.Barrier(16)
    seen: list[Connection] = []

    def touch() -> None:
        start.wait()
        seen.append(_connection.connection_of(marker))

    threads = [threading.Thread(target=touch) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 16
    assert all(conn is seen[0] for conn in seen)
    assert marker[CONN] is seen[0]
    assert (seen[0].path, seen[0].scope["path"]) == ("/m", "/m")


def test_scope_setters_inside_a_request_go_to_its_connection() -> None:
    """With a marker installed, tripwire.set_tag() makes the Connection and changes only its data."""
    marker = _marker()
    token = _scope._isolation.set(marker)
    try:
        tripwire.set_tag("inside", "yes")
        holder = _scope.current_holder()
    finally:
        _scope._isolation.reset(token)
    assert holder is marker[CONN]
    assert isinstance(holder, Connection) and holder.data.tags == {"inside": "yes"}
    assert "inside" not in _scope.current_holder().data.tags


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no fork()")
def test_a_fork_while_another_thread_makes_a_connection_leaves_the_child_working() -> None:
    """A child forked while the making lock was held can still make Connections (no deadlock)."""
    # As if another thread were inside connection_of() at the fork; the child dies if it blocks.
    started = time.monotonic()
    code = child_exit_code_after_fork_holding(
        _connection._making._lock, lambda: isinstance(_connection.connection_of(_marker()), Connection)
    )
    assert code == 0
    assert time.monotonic() - started < 5
