"""Error-storm protection: a per-error budget of full events, decided on the caller before any work.

When one error repeats many times a second (a broken dependency, a bad deploy), building and sending
every occurrence costs the app CPU it needs most at that moment, burns the backend's quota, and adds
nothing a developer reads: the hundredth copy of the same stack trace says what the first one said.
So each error, identified by a cheap key (exception types plus the code locations of the traceback,
or a message template), gets a token bucket of ``limit`` full events per minute. Occurrences beyond
it are not snapshotted or built at all; they are counted (``stats()``: ``repeat_limit``) and the count
rides on the next full event of that error as ``contexts.repeats.coalesced``, which the tripwire
collector adds to the issue's event count.

The key is computed on the calling thread, so it must stay in the low microseconds: it walks the
traceback chain reading code objects and line numbers only, never source or locals.
"""

# No ``from __future__ import annotations`` here: typing.NamedTuple would compile each string
# annotation into a ForwardRef at import (measured: 0.5 ms for Options alone).

import threading
import time
from typing import Any, NamedTuple

from ._forksafe import renew_lock_after_fork

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
    __slots__ = ("codes", "coalesced", "tokens", "updated")

    def __init__(self, tokens: float, now: float, codes: tuple[Any, ...]) -> None:
        self.tokens = tokens
        self.updated = now
        self.coalesced = 0
        self.codes = codes


class RepeatLimiter:
    """Token buckets per error key: ``limit`` full events per minute, bursts up to ``limit``."""

    def __init__(self, limit: int, clock: Any = time.monotonic) -> None:
        self.limit = limit
        self._rate = limit / 60.0
        self._clock = clock
        self._lock = threading.RLock()  # reentrant: see _forksafe (captures from signal handlers)
        # Insertion order doubles as recency order: a hit moves its key to the end.
        self._buckets: dict[tuple[Any, ...], _Bucket] = {}
        renew_lock_after_fork(self)

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
        with self._lock:
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = _Bucket(float(self.limit), now, error.codes)
                if len(self._buckets) >= MAX_TRACKED:
                    # Forget the least recently seen error; its coalesced count was already
                    # recorded in the drop counters, only the piggy-back onto a later event is lost.
                    del self._buckets[next(iter(self._buckets))]
            else:
                bucket.tokens = min(float(self.limit), bucket.tokens + (now - bucket.updated) * self._rate)
                bucket.updated = now
            self._buckets[key] = bucket
            if bucket.tokens < 1.0:
                bucket.coalesced += 1
                return None
            bucket.tokens -= 1.0
            coalesced, bucket.coalesced = bucket.coalesced, 0
            return coalesced
