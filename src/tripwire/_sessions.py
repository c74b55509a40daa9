"""Release health: how many units of work ended well, with handled errors, or crashed.

Two kinds of session, following the Sentry model:

* **Request sessions** (one per http request or websocket connection, started by the ASGI middleware)
  are never sent one by one. Each ends as one increment of a counter in the client's
  :class:`SessionAggregator`; the counters go out as ``sessions`` items
  (``{"attrs": {release, environment}, "aggregates": [{"started", "exited", "errored", ...}]}``) every
  ``interval`` seconds from a small timer thread, and on ``flush()``/``close()``. Memory is one small
  list per minute with traffic, and that is emptied on every flush.

  The common case, a request that ended well, is the cheapest: ``next(aggregator.exited)``, one C call
  with no clock read and no lookup. The timer thread wakes at every minute boundary and moves what that
  counter gained into the minute that just ended. Errored and crashed requests (rare) go through
  :meth:`SessionAggregator.record`, which files them under the minute they started.
* **Application sessions** (a script, a worker process: :func:`start_application_session`) are sent as
  single ``session`` updates with ``sid``/``did``/``status``/``errors``/``duration``.

Without a release there is no release health (the server could not attribute it), so the client then
has no aggregator and the middleware does no session work at all.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from . import _deferred, _scope
from ._forksafe import reset_after_fork
from ._log import logger
from ._types import SessionBatch

#: Outcome indexes into an aggregate's counter list, and their names in the ``sessions`` item.
EXITED, ERRORED, CRASHED, ABNORMAL = 0, 1, 2, 3
_OUTCOMES = ("exited", "errored", "crashed", "abnormal")

#: Sentry accepts at most 100 aggregates per ``sessions`` item.
_MAX_AGGREGATES_PER_ITEM = 100


def iso_minute(minute: int) -> str:
    """``minute`` (minutes since the epoch) as the ISO timestamp Sentry expects for ``started``."""
    return time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(minute * 60))


def iso_time(ts: float) -> str:
    millis = int((ts % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{millis:03d}Z"


def _value(counter: itertools.count[int]) -> int:
    """How often ``next()`` was called on ``counter`` (read without counting one more)."""
    return int(repr(counter)[6:-1])


class SessionAggregator:
    """Per-minute counts of ended request sessions for one release + environment.

    A request that ended well pays ``next(aggregator.exited)``; an errored or crashed one pays
    ``record()``: one dict lookup and an increment, no lock.
    """

    def __init__(
        self,
        submit: Callable[[SessionBatch], bool],
        *,
        release: str,
        environment: str,
        auto: bool = True,
        interval: float = 60.0,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        #: Whether integrations start request sessions by themselves (``auto_session_tracking``).
        self.auto = auto
        self.attrs = {"release": release, "environment": environment}
        self.interval = interval
        self._submit = submit
        self._on_drop = on_drop
        self._lock = threading.RLock()  # reentrant: see _forksafe (captures from signal handlers)
        # Keyed by minute since the epoch (ints, looked up with equal floats: see ``record``).
        self._buckets: dict[float, list[itertools.count[int]]] = {}
        #: ``next(aggregator.exited)`` counts one request session that ended well, now. Never
        #: replaced (the middleware keeps a reference); the timer moves its gains into ``_drained``.
        self.exited = itertools.count()
        self._exited_taken = 0
        self._drained: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        reset_after_fork(self)

    def record(self, started: float, outcome: int) -> None:
        """Count one ended session that started at ``started`` (epoch seconds) with ``outcome``."""
        # No lock here: ``next()`` on an itertools.count is atomic under the GIL, and the bucket of a
        # minute, once made, is only replaced at flush time (see ``_take_buckets``).
        # ``started // 60`` is a float; it finds the int key of the same minute (equal, same hash).
        counters = self._buckets.get(started // 60)
        if counters is None:
            counters = self._new_bucket(int(started) // 60)
        next(counters[outcome])

    def _new_bucket(self, minute: int) -> list[itertools.count[int]]:
        with self._lock:
            counters = self._buckets.get(minute)
            if counters is None:
                counters = self._buckets[minute] = [itertools.count() for _ in _OUTCOMES]
                self._start_timer()
            return counters

    def start(self) -> None:
        """Make sure the timer thread runs: call it before counting on :attr:`exited`."""
        if self._thread is None:
            with self._lock:
                self._start_timer()

    def _start_timer(self) -> None:
        # Called with the lock held; starts the thread at most once per process (again after fork).
        if self._thread is None and not self._closed:
            thread = threading.Thread(target=self._run, name="tripwire-sessions", daemon=True)
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        stop = self._stop
        next_flush = time.time() + self.interval
        while True:
            now = time.time()
            boundary = (now // 60 + 1) * 60
            if stop.wait(min(boundary, next_flush) - now):
                return
            try:
                now = time.time()
                if now >= boundary:
                    # What ``exited`` gained up to here ended in the minute that just closed.
                    self._drain(int(boundary) // 60 - 1)
                if now >= next_flush:
                    next_flush = now + self.interval
                    self.flush()
            except Exception:
                logger.exception("tripwire: could not flush release-health sessions")

    def _drain(self, minute: int) -> None:
        """File what :attr:`exited` gained since the last drain under ``minute``."""
        with self._lock:
            total = _value(self.exited)
            gained = total - self._exited_taken
            if gained > 0:
                self._exited_taken = total
                self._drained[minute] = self._drained.get(minute, 0) + gained

    def take(self) -> list[dict[str, Any]]:
        """The counts so far as ``sessions`` item payloads, and forget them."""
        return self._items(self._take_buckets())

    def _take_buckets(self) -> dict[float, list[int]]:
        self._drain(int(time.time()) // 60)
        with self._lock:
            buckets, self._buckets = self._buckets, {}
            drained, self._drained = self._drained, {}
        # A request that fetched a bucket just before the swap may still count into it; let it.
        if buckets:
            time.sleep(0)
        counts = {minute: [_value(c) for c in counters] for minute, counters in buckets.items()}
        for minute, exited in drained.items():
            counts.setdefault(minute, [0] * len(_OUTCOMES))[EXITED] += exited
        return counts

    def _items(self, buckets: dict[float, list[int]]) -> list[dict[str, Any]]:
        aggregates = []
        for minute in sorted(buckets):
            counts = buckets[minute]
            entry: dict[str, Any] = {"started": iso_minute(int(minute))}
            for index, name in enumerate(_OUTCOMES):
                if counts[index]:
                    entry[name] = counts[index]
            aggregates.append(entry)
        return [
            {"attrs": dict(self.attrs), "aggregates": aggregates[i : i + _MAX_AGGREGATES_PER_ITEM]}
            for i in range(0, len(aggregates), _MAX_AGGREGATES_PER_ITEM)
        ]

    def flush(self) -> bool:
        """Hand the counts so far to the client's worker; False if they had to be dropped."""
        buckets = self._take_buckets()
        if not buckets:
            return True
        if self._submit(SessionBatch(aggregates=self._items(buckets))):
            return True
        if self._on_drop is not None:
            self._on_drop(sum(sum(counts) for counts in buckets.values()))
        return False

    def close(self) -> None:
        """Flush what is counted and stop the timer thread."""
        self._closed = True
        self._stop.set()
        self.flush()

    def _after_fork_in_child(self) -> None:
        # The child inherits the parent's counts (they would be sent twice) but not its timer thread.
        had_timer = self._thread is not None
        self._lock = threading.RLock()
        self._buckets = {}
        # ``exited`` stays the same object (middlewares hold it); the parent's gains are its own.
        self._exited_taken = _value(self.exited)
        self._drained = {}
        self._stop = threading.Event()
        self._thread = None
        if had_timer:
            # The middleware starts the timer once per client; a child serving requests for a
            # client bound before the fork would otherwise count on ``exited`` with nobody draining.
            self._start_timer()


class ApplicationSession:
    """A session for a whole process or job, sent as single ``session`` updates.

    It sits in a scope holder's ``session`` slot, so errors captured while it is active count on it.
    """

    __slots__ = ("attrs", "did", "errors", "init", "sid", "started", "status")

    def __init__(self, attrs: Mapping[str, str], did: str | None = None) -> None:
        self.sid = _deferred.uuid4()
        self.did = did
        self.started = time.time()
        self.status = "ok"
        self.errors = 0
        self.init = True
        self.attrs = dict(attrs)

    def mark_error(self, *, handled: bool) -> None:
        self.errors += 1
        if not handled:
            self.status = "crashed"

    def update(self, *, ended: bool = False) -> dict[str, Any]:
        """The ``session`` item payload for the state now; ``ended`` closes an ``ok`` session."""
        now = time.time()
        if ended and self.status == "ok":
            self.status = "exited"
        payload: dict[str, Any] = {
            "sid": self.sid,
            "init": self.init,
            "started": iso_time(self.started),
            "timestamp": iso_time(now),
            "status": self.status,
            "errors": self.errors,
            "attrs": dict(self.attrs),
        }
        if self.did:
            payload["did"] = self.did
        if ended:
            payload["duration"] = round(now - self.started, 3)
        self.init = False
        return payload


def _did_from_user(user: Mapping[str, Any] | None) -> str | None:
    if not user:
        return None
    for key in ("id", "email", "username"):
        value = user.get(key)
        if value:
            return str(value)
    return None


class SessionClient(Protocol):
    """What application sessions need of the client (``_client.Client``)."""

    sessions: SessionAggregator | None

    def submit_sessions(self, batch: SessionBatch) -> bool: ...


def start_application_session(
    client: SessionClient | None, *, did: str | None = None
) -> ApplicationSession | None:
    """Start a session for the current unit of work (the process, outside any request).

    Ends a session already running there first. Returns None when release health is off (no
    release, or tripwire not initialised).
    """
    if client is None or client.sessions is None:
        return None
    holder = _scope.isolation_holder()
    if isinstance(holder.session, ApplicationSession):
        end_application_session(client)
    session = ApplicationSession(client.sessions.attrs, did or _did_from_user(holder.data.user))
    holder.session = session
    return session


def end_application_session(client: SessionClient | None, status: str | None = None) -> bool:
    """End the current unit of work's application session and queue its final update.

    ``status`` overrides the outcome (``exited``, ``crashed``, ``abnormal``). False if there was none.
    """
    holder = _scope.isolation_holder()
    session = holder.session
    if not isinstance(session, ApplicationSession):
        return False
    holder.session = None
    if status is not None:
        session.status = status
    if session.did is None:
        session.did = _did_from_user(holder.data.user)
    if client is None:
        return False
    return client.submit_sessions(SessionBatch(updates=[session.update(ended=True)]))
