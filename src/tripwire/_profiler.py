"""The sampling profiler: one daemon thread reading every thread's stack about 100 times a second.

Imported only when a profiling option is set (``Client`` loads it); with none set there is no thread,
no module, no cost. What the sampler thread does per tick is kept small, because it is the overhead:

* ``sys._current_frames()`` once, then for each thread a walk up ``f_back`` collecting
  ``(id(code), instruction offset)`` pairs, leaf first: plain ints, cheap to hash. No names, no
  dicts, no strings; those are made on the worker (``_profile_builder``) once per distinct frame.
* equal stacks are interned: the first time a stack is seen it is stored as a flat tuple
  ``(code, line, code, line, ...)``, and every later tick of it shares that one tuple, so a thread
  parked in the same place for a minute costs one dict lookup per tick, not a new tuple per sample;
* one tick is one ``(timestamp, ((thread id, stack), ...))`` pair shared by every recording open at
  that moment (a recording appends a reference to it).

Bounded: a recording keeps at most ``MAX_TICKS`` ticks (counted as ``max_samples`` once when it
hits the cap), stacks are cut at ``MAX_DEPTH`` frames, the interning table is emptied when it holds
``MAX_INTERNED`` stacks (recordings keep their own references, so nothing is lost but sharing).

Safe: an exception inside a tick is logged once and the tick skipped; the thread itself never dies
of one. ``close()`` stops it; in a forked child the thread does not exist, so every recording of the
parent is dropped and the sampler starts again only when something asks it to (``_forksafe``).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ._forksafe import reset_after_fork
from ._log import logger

#: Frames per stack at most (the leaf-most are kept): sentry-sdk's limit too.
MAX_DEPTH = 128
#: Ticks per recording at most: 60 s at 101 Hz with a margin.
MAX_TICKS = 7_000
#: Distinct stacks kept for sharing before the table is emptied.
MAX_INTERNED = 20_000
#: A transaction's profile covers at most its first 30 s (Sentry's limit).
MAX_PROFILE_NS = 30_000_000_000

#: One sample of every thread at one moment: (perf_counter_ns, wall-clock seconds, stacks).
Tick = tuple[int, float, tuple[tuple[int, tuple[Any, ...]], ...]]


class Recording:
    """The ticks taken while one profile (a transaction's, or a continuous chunk) was open."""

    __slots__ = ("active_thread_id", "dropped", "end_ns", "max_ns", "start_ns", "start_wall", "ticks")

    def __init__(self, max_ns: int | None = None) -> None:
        self.start_ns = time.perf_counter_ns()
        self.start_wall = time.time()
        self.end_ns: int | None = None
        #: The thread that opened it (a transaction's event loop or request thread).
        self.active_thread_id = threading.get_ident()
        self.ticks: list[Tick] = []
        #: Ticks not kept because the recording was full.
        self.dropped = 0
        self.max_ns = max_ns


class Sampler:
    """The sampler thread and the recordings it feeds. Thread-safe; never raises into callers."""

    def __init__(self, frequency: float) -> None:
        self.interval = 1.0 / frequency
        #: Called on the sampler thread after every tick (the continuous profiler's chunk clock).
        self.on_tick: Callable[[int], None] | None = None
        self._lock = threading.Lock()
        self._recordings: tuple[Recording, ...] = ()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: (id(code), instruction offset, ...) → (code, line, ...): one tuple kept per distinct stack.
        self._interned: dict[tuple[int, ...], tuple[Any, ...]] = {}
        self._errors_logged = False
        #: Ticks skipped because sampling itself failed (a frame vanished mid-walk, say).
        self.failed_ticks = 0
        reset_after_fork(self)

    # -- recordings -----------------------------------------------------------------------------
    def open(self, max_ns: int | None = None) -> Recording | None:
        """A new recording fed from the next tick on; None once closed."""
        recording = Recording(max_ns)
        with self._lock:
            if self._closed:
                return None
            self._recordings = (*self._recordings, recording)
            self._ensure_thread()
        self._wake.set()
        return recording

    def close_recording(self, recording: Recording) -> None:
        """Stop feeding ``recording`` (its ``end_ns`` is set now unless set already)."""
        if recording.end_ns is None:
            recording.end_ns = time.perf_counter_ns()
        with self._lock:
            self._recordings = tuple(r for r in self._recordings if r is not recording)

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _ensure_thread(self) -> None:
        # Under the lock. Started on the first recording, never at init.
        thread = self._thread
        if thread is None or not thread.is_alive():
            thread = threading.Thread(target=self._run, name="tripwire-profiler", daemon=True)
            self._thread = thread
            thread.start()

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread (idempotent); open recordings are closed as they are."""
        with self._lock:
            self._closed = True
            recordings, self._recordings = self._recordings, ()
            thread = self._thread
        now = time.perf_counter_ns()
        for recording in recordings:
            if recording.end_ns is None:
                recording.end_ns = now
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _after_fork_in_child(self) -> None:
        # The thread is gone; the parent's recordings are the parent's to send.
        self._lock = threading.Lock()
        self._recordings = ()
        self._thread = None
        self._wake = threading.Event()
        self._interned = {}

    # -- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        me = threading.get_ident()
        interval = self.interval
        next_at = time.perf_counter()
        while True:
            if self._closed:
                return
            if not self._recordings:
                # Idle: wait (no polling) until a recording opens or close() wakes us.
                self._wake.clear()
                if not self._recordings and not self._closed:
                    self._wake.wait()
                next_at = time.perf_counter()
                continue
            try:
                self._tick(me)
            except Exception:
                self.failed_ticks += 1
                if not self._errors_logged:
                    self._errors_logged = True
                    logger.exception("tripwire: profiler sample failed (logged once; sampling goes on)")
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.perf_counter()  # fell behind (a long GIL hold): do not burst to catch up

    def _tick(self, me: int) -> None:
        frames = sys._current_frames()
        now_ns = time.perf_counter_ns()
        wall = time.time()
        interned = self._interned
        if len(interned) > MAX_INTERNED:
            interned = self._interned = {}
        stacks = []
        for tid, frame in frames.items():
            if tid == me:
                continue
            # The lookup key is (id(code), instruction offset) pairs: a code object's own hash
            # re-hashes its constants and bytecode on every call, and f_lineno decodes the line
            # table; both are left to the first sight of a stack (_stack_of). The ids stay valid
            # while the entry lives, because its value holds the code objects themselves.
            key: list[int] = []
            depth = 0
            f: Any = frame
            while f is not None and depth < MAX_DEPTH:
                key.append(id(f.f_code))
                key.append(f.f_lasti)
                f = f.f_back
                depth += 1
            ids = tuple(key)
            shared = interned.get(ids)
            if shared is None:
                shared = interned[ids] = _stack_of(frame)
            stacks.append((tid, shared))
        del frames  # frames keep their locals alive: let them go before the next tick
        tick: Tick = (now_ns, wall, tuple(stacks))
        for recording in self._recordings:
            if recording.max_ns is not None and now_ns - recording.start_ns > recording.max_ns:
                self.close_recording(recording)  # Sentry's 30 s: the profile ends, nothing is lost
                continue
            ticks = recording.ticks
            if len(ticks) >= MAX_TICKS:
                recording.dropped += 1  # counted when the profile is built
                continue
            ticks.append(tick)
        on_tick = self.on_tick
        if on_tick is not None:
            on_tick(now_ns)


def _stack_of(frame: Any) -> tuple[Any, ...]:
    """``(code, line, code, line, ...)`` of ``frame`` and its callers, leaf first (a new stack)."""
    out: list[Any] = []
    depth = 0
    while frame is not None and depth < MAX_DEPTH:
        out.append(frame.f_code)
        out.append(frame.f_lineno)
        frame = frame.f_back
        depth += 1
    return tuple(out)


__all__ = ["MAX_DEPTH", "MAX_PROFILE_NS", "MAX_TICKS", "Recording", "Sampler", "Tick"]
