"""Error-storm protection: a per-error budget of full events, decided on the caller before any work.

When one error repeats many times a second (a broken dependency, a bad deploy), building and sending
every occurrence costs the app CPU it needs most at that moment, burns the backend's quota, and adds
nothing a developer reads: the hundredth copy of the same stack trace says what the first one said.
So each error, identified by a cheap key (exception types plus the code locations of the traceback,
or a message template), gets a token bucket of ``limit`` full events per minute. Occurrences beyond
it are not built at all; they are counted (``stats()``: ``repeat_limit``) and the count rides on
the next full event of that error as ``contexts.repeats.coalesced``, which the tripwire collector adds
to the issue's event, hourly and release counts.

That next event may never come (the storm ends, the process idles), so the count must not wait for
it: each error keeps its latest coalesced occurrence (a cheap snapshot, not built), and at the end of
each window, on ``flush()`` and on ``close()`` (and when an error is forgotten for room) that
occurrence is sent as one final event standing for all the coalesced ones. Any Sentry-compatible
server keeps it; tripwire's collector also counts the figure in its contexts.

The key is computed on the calling thread, so it must stay in the low microseconds: it walks the
traceback chain reading code objects and line numbers only, never source or locals.
"""

# No ``from __future__ import annotations`` here: typing.NamedTuple would compile each string
# annotation into a ForwardRef at import (measured: 0.5 ms for Options alone).

import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ._forksafe import reset_after_fork
from ._log import logger

#: How many distinct errors are tracked; the least recently seen is forgotten beyond this.
MAX_TRACKED = 1_000
#: Bounds on the key walk, so a pathological chain or recursion depth costs a bounded time.
_MAX_CHAIN = 8
_MAX_FRAMES = 128


class ErrorKey(NamedTuple):
    """An error's identity (cheap to hash: types and ints) and what keeps those ints meaningful."""

    key: tuple[Any, ...]
    #: The code objects whose ids are in ``key``: the bucket holds them, so no id is reused by a
    #: different function while its budget is tracked.
    codes: tuple[Any, ...] = ()


def exception_key(exc: BaseException, fingerprint: Any = None) -> ErrorKey | None:
    """What makes two occurrences "the same error": types and raise sites along the whole chain.

    None when the exception cannot be keyed (a hostile ``__traceback__`` or ``__cause__`` property):
    such an occurrence is always sent, the safe side.
    """
    try:
        return _exception_key(exc, fingerprint)
    except Exception:
        return None


def _exception_key(exc: BaseException, fingerprint: Any) -> ErrorKey:
    # Code objects by id, not by value: hashing a code object hashes its bytecode and constants,
    # ~0.2 µs each, and a key has a dozen of them, hashed twice per occurrence.
    parts: list[Any] = [fingerprint] if fingerprint else []
    codes: list[Any] = []
    current: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if current is None:
            break
        tb = current.__traceback__
        parts.append(type(current))
        if tb is None:
            # Never raised (``capture_exception(ValueError("x"))``): no stack, so the message decides.
            parts.append(_message(current))
        else:
            for _ in range(_MAX_FRAMES):
                if tb is None:
                    break
                code = tb.tb_frame.f_code
                codes.append(code)
                parts.append(id(code))
                parts.append(tb.tb_lineno)
                tb = tb.tb_next
        cause = current.__cause__
        if cause is None and not current.__suppress_context__:
            cause = current.__context__
        current = cause
    return ErrorKey(tuple(parts), tuple(codes))


def message_key(level: str, template: str, fingerprint: Any = None) -> ErrorKey:
    """Message events are the same error when level and template (not the formatted text) match."""
    return ErrorKey(("message", level, template[:1024], fingerprint))


def _message(exc: BaseException) -> str:
    try:
        return str(exc)[:1024]
    except Exception:  # a broken __str__ must not break capture; the type alone then decides
        return ""


class _Bucket:
    __slots__ = ("codes", "coalesced", "last", "tokens", "updated")

    def __init__(self, tokens: float, now: float, codes: tuple[Any, ...]) -> None:
        self.tokens = tokens
        self.updated = now
        self.coalesced = 0
        self.codes = codes
        #: The latest coalesced occurrence (the caller's snapshot), sent as the final event.
        self.last: Any = None


#: ``(occurrence, others)``: send ``occurrence`` standing for ``others`` more coalesced ones.
Pending = tuple[Any, int]


class RepeatLimiter:
    """Token buckets per error key: ``limit`` full events per minute, bursts up to ``limit``.

    ``emit(pending)`` receives the final events of coalesced occurrences: from a timer thread at the
    end of each ``window`` (started by the first coalesced occurrence), from :meth:`take_pending`
    callers (flush, close), and on the caller's thread when an error is forgotten for room.
    """

    def __init__(
        self,
        limit: int,
        clock: Any = time.monotonic,
        *,
        emit: Callable[[list[Pending]], None] | None = None,
        discard: Callable[[int], None] | None = None,
        window: float = 60.0,
    ) -> None:
        self.limit = limit
        self.window = window
        self._rate = limit / 60.0
        self._clock = clock
        self._emit = emit
        #: Told how many occurrences are definitely not sent as events of their own (counted as
        #: ``repeat_limit`` drops): every coalesced one except the one kept as its error's final event.
        self._discard = discard
        self._lock = threading.RLock()  # reentrant: see _forksafe (captures from signal handlers)
        # Insertion order doubles as recency order: a hit moves its key to the end.
        self._buckets: dict[tuple[Any, ...], _Bucket] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        reset_after_fork(self)

    def admit(self, error: ErrorKey | None) -> int | None:
        """None: over the budget, counted, send nothing. Else send, standing for that many more."""
        if error is None:
            return 0
        key = error.key
        now = self._clock()
        try:
            hash(key)
        except Exception:  # an unhashable part (say, an exception type with a broken hash): no budget
            return 0
        evicted: _Bucket | None = None
        discarded = 0
        with self._lock:
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = _Bucket(float(self.limit), now, error.codes)
                if len(self._buckets) >= MAX_TRACKED:
                    # Forget the least recently seen error; what it coalesced is sent below.
                    evicted = self._buckets.pop(next(iter(self._buckets)))
            else:
                bucket.tokens = min(float(self.limit), bucket.tokens + (now - bucket.updated) * self._rate)
                bucket.updated = now
            self._buckets[key] = bucket
            if bucket.tokens < 1.0:
                bucket.coalesced += 1
                admitted: int | None = None
            else:
                bucket.tokens -= 1.0
                if bucket.last is not None:
                    discarded = 1  # the kept occurrence: this event's count stands for it now
                admitted, bucket.coalesced, bucket.last = bucket.coalesced, 0, None
        if discarded:
            self._count_discarded(discarded)
        if evicted is not None and evicted.coalesced and evicted.last is not None:
            self._send([(evicted.last, evicted.coalesced - 1)])
        return admitted

    def keep(self, error: ErrorKey | None, occurrence: Any) -> None:
        """Remember ``occurrence`` (just refused by :meth:`admit`) as its error's final event."""
        displaced = 1
        if error is not None:
            with self._lock:
                bucket = self._buckets.get(error.key)
                if bucket is not None and bucket.coalesced:
                    displaced = 0 if bucket.last is None else 1
                    bucket.last = occurrence
                    self._start_timer()
        # The occurrence kept before (or this one, if the count was sent in between) is not sent.
        if displaced:
            self._count_discarded(displaced)

    def _start_timer(self) -> None:
        # Called with the lock held.
        if self._thread is None and self._emit is not None and not self._stop.is_set():
            thread = threading.Thread(target=self._run, name="tripwire-repeats", daemon=True)
            self._thread = thread
            thread.start()

    def _count_discarded(self, n: int) -> None:
        if self._discard is not None:
            try:
                self._discard(n)
            except Exception:
                logger.exception("tripwire: could not count coalesced repeats")

    def take_pending(self) -> list[Pending]:
        """The final events of every error with coalesced occurrences, and forget those counts."""
        pending: list[Pending] = []
        with self._lock:
            for bucket in self._buckets.values():
                if bucket.coalesced and bucket.last is not None:
                    pending.append((bucket.last, bucket.coalesced - 1))
                    bucket.coalesced, bucket.last = 0, None
        return pending

    def close(self) -> None:
        """Stop the window timer (the caller sends :meth:`take_pending` itself)."""
        self._stop.set()

    def _send(self, pending: list[Pending]) -> None:
        if pending and self._emit is not None:
            try:
                self._emit(pending)
            except Exception:
                logger.exception("tripwire: could not send the coalesced count of repeated errors")

    def _run(self) -> None:
        while not self._stop.wait(self.window):
            self._send(self.take_pending())

    def _after_fork_in_child(self) -> None:
        # The parent's coalesced occurrences are the parent's to send; the child starts afresh.
        self._lock = threading.RLock()
        self._buckets = {}
        self._stop = threading.Event()
        self._thread = None
