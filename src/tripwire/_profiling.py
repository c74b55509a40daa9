"""Which profiles are recorded, and when: Sentry's two profiling modes over one :class:`Sampler`.

* Transaction profiles (``profiles_sample_rate`` / ``profiles_sampler``): a sampled transaction is
  profiled with that probability, from its start to its end (at most 30 s); the profile is sent as a
  ``profile`` item in the transaction's own envelope.
* Continuous profiling (``profile_session_sample_rate``, decided once per process, and
  ``profile_lifecycle``): the profiler runs while any sampled transaction is open ("trace") or
  between :func:`tripwire.start_profiler` and :func:`tripwire.stop_profiler` ("manual"), and sends
  what it recorded as a ``profile_chunk`` item every ``profile_chunk_interval`` seconds (60).
  Transactions that ran while it ran carry ``contexts.profile.profiler_id``.

Transaction profiling wins when both are configured (as in sentry-sdk). What runs on the request's
thread is an ``open``/``close`` of a recording: the frames, stacks and JSON are made on the worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _deferred
from ._forksafe import reset_after_fork
from ._log import logger
from ._profiler import MAX_PROFILE_NS, MAX_TICKS, Recording, Sampler
from ._types import ProfileChunk as Chunk

if TYPE_CHECKING:
    from ._options import Options
    from ._stats import DropCounter


class ProfileHandle:
    """What a transaction holds of the profiler (``Transaction.profile``)."""

    __slots__ = ("profiler_id", "recording", "release", "thread_id")

    #: The transaction's own profile (transaction mode), else None.
    recording: Recording | None
    #: The continuous session it ran in, for ``contexts.profile.profiler_id``.
    profiler_id: str | None
    #: Called once when the transaction ends (the "trace" lifecycle's count); may be None.
    release: Callable[[], None] | None
    #: The thread the transaction started on: a continuous profile's samples of that thread in the
    #: transaction's time window are the transaction's (sent as ``contexts.trace.data["thread.id"]``).
    thread_id: int


class Profiler:
    """The client's profiler: made only when a profiling option is set (see ``Client``)."""

    def __init__(
        self,
        options: Options,
        stats: DropCounter,
        submit_chunk: Callable[[Chunk], bool],
    ) -> None:
        self.options = options
        self.stats = stats
        self.submit_chunk = submit_chunk
        self.transaction_mode = (
            options.profiles_sample_rate is not None or options.profiles_sampler is not None
        )
        self.sampler = Sampler(options.profiler_frequency)
        if not self.transaction_mode:
            self.sampler.on_tick = self._clock  # the chunk clock; transaction profiles need none
        self._chunk_ns = int(options.profile_chunk_interval * 1e9)
        self._lock = threading.RLock()
        #: Continuous mode: decided once per process (a forked child decides again).
        self.session_sampled = False
        if not self.transaction_mode and options.profile_session_sample_rate is not None:
            self.session_sampled = _deferred.random() < options.profile_session_sample_rate
            if not self.session_sampled:
                stats.record("sample_rate", "profile_chunk")
        self.trace_lifecycle = options.profile_lifecycle == "trace"
        self.profiler_id: str | None = None
        self._chunk: Chunk | None = None
        self._manual = False
        self._open_transactions = 0
        reset_after_fork(self)

    # -- transactions (called on the request's thread) -------------------------------------------
    def transaction_started(self, name: str, op: str | None) -> ProfileHandle | None:
        """The handle a new sampled transaction keeps, or None when it is not profiled."""
        try:
            if self.transaction_mode:
                if not self._sample_transaction(name, op):
                    return None
                recording = self.sampler.open(MAX_PROFILE_NS)
                if recording is None:
                    return None
                handle = ProfileHandle()
                handle.recording = recording
                handle.profiler_id = None
                handle.release = None
                handle.thread_id = threading.get_ident()
                return handle
            if not self.session_sampled:
                return None
            if self.trace_lifecycle:
                with self._lock:
                    self._open_transactions += 1
                    self._start_locked()
                handle = ProfileHandle()
                handle.recording = None
                handle.profiler_id = self.profiler_id
                handle.release = self._transaction_ended
                handle.thread_id = threading.get_ident()
                return handle
            profiler_id = self.profiler_id if self._chunk is not None else None
            if profiler_id is None:
                return None
            handle = ProfileHandle()
            handle.recording = None
            handle.profiler_id = profiler_id
            handle.release = None
            handle.thread_id = threading.get_ident()
            return handle
        except Exception:
            logger.exception("tripwire: could not start a profile; the transaction goes on without")
            return None

    def transaction_finished(self, handle: ProfileHandle) -> None:
        """End what ``handle`` holds (called once, when its transaction is handed to the worker)."""
        try:
            if handle.recording is not None:
                self.sampler.close_recording(handle.recording)
            release = handle.release
            if release is not None:
                handle.release = None
                release()
        except Exception:
            logger.exception("tripwire: could not stop a profile")

    def _sample_transaction(self, name: str, op: str | None) -> bool:
        sampler = self.options.profiles_sampler
        if sampler is not None:
            try:
                rate = sampler({"transaction_context": {"name": name, "op": op}})
            except Exception:
                logger.exception("tripwire: profiles_sampler raised; the transaction is not profiled")
                return False
            if isinstance(rate, bool):
                rate = 1.0 if rate else 0.0
            if not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
                logger.warning("tripwire: profiles_sampler returned %r, not a rate; not profiled", rate)
                return False
        else:
            rate = self.options.profiles_sample_rate or 0.0
        if rate >= 1.0 or _deferred.random() < rate:
            return True
        self.stats.record("sample_rate", "profile")
        return False

    def _transaction_ended(self) -> None:
        with self._lock:
            self._open_transactions = max(0, self._open_transactions - 1)
            if self._open_transactions == 0 and not self._manual:
                self._stop_locked()

    # -- continuous mode ------------------------------------------------------------------------
    def start(self) -> None:
        """``tripwire.start_profiler()``: start the continuous profiler (manual lifecycle)."""
        if self.transaction_mode or not self.session_sampled:
            return
        if self.trace_lifecycle:
            logger.warning("tripwire: start_profiler() does nothing with profile_lifecycle='trace'")
            return
        with self._lock:
            self._manual = True
            self._start_locked()

    def stop(self) -> None:
        """``tripwire.stop_profiler()``: stop it, sending what it recorded since the last chunk."""
        if self.transaction_mode or self.trace_lifecycle:
            return
        with self._lock:
            self._manual = False
            self._stop_locked()

    def _start_locked(self) -> None:
        if self._chunk is not None:
            return
        if self.profiler_id is None:
            self.profiler_id = _deferred.uuid4().replace("-", "")
        self._open_chunk_locked()

    def _open_chunk_locked(self) -> None:
        assert self.profiler_id is not None
        recording = self.sampler.open()
        if recording is None:
            self._chunk = None
            return
        self._chunk = Chunk(self.profiler_id, _deferred.uuid4().replace("-", ""), recording)

    def _stop_locked(self) -> None:
        chunk, self._chunk = self._chunk, None
        if chunk is not None:
            self._send(chunk)

    def _send(self, chunk: Chunk) -> None:
        self.sampler.close_recording(chunk.recording)
        if chunk.recording.ticks:
            self.submit_chunk(chunk)

    def _clock(self, now_ns: int) -> None:
        # On the sampler thread, after each tick: cut the chunk when its time is up or it is full
        # (before the next tick, so a full chunk loses nothing).
        chunk = self._chunk
        if chunk is None:
            return
        recording = chunk.recording
        if now_ns - recording.start_ns < self._chunk_ns and len(recording.ticks) < MAX_TICKS:
            return
        with self._lock:
            if self._chunk is not chunk:
                return  # stopped or cut meanwhile
            self._open_chunk_locked()
        self._send(chunk)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Send the open chunk, stop the sampler thread (called by ``Client.close``)."""
        try:
            with self._lock:
                self._manual = False
                self._stop_locked()
            self.sampler.close()
        except Exception:
            logger.exception("tripwire: could not stop the profiler")

    def _after_fork_in_child(self) -> None:
        # The parent's session and chunk are the parent's. The child decides its own session and
        # starts again only when a transaction (or start_profiler()) asks.
        self._lock = threading.RLock()
        self._chunk = None
        self._manual = False
        self._open_transactions = 0
        self.profiler_id = None
        rate = self.options.profile_session_sample_rate
        if not self.transaction_mode and rate is not None:
            self.session_sampled = _deferred.random() < rate


__all__ = ["ProfileHandle", "Profiler"]
