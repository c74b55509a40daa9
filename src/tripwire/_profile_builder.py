"""Sentry profile payloads from the profiler's recordings, built on the worker.

The sampler keeps stacks as flat tuples ``(code, line, code, line, ...)``, leaf first. Here each
distinct ``(code, line)`` becomes one frame dict and each distinct stack one list of frame indexes,
in the two formats Sentry reads:

* ``profile`` (sample format v1), sent in its transaction's envelope: samples carry
  ``elapsed_since_start_ns`` (a string of nanoseconds since the profile started);
* ``profile_chunk`` (v2), sent alone: samples carry ``timestamp`` (epoch seconds, a float).

Thread ids are strings in both (Sentry's JSON keys are strings; the values follow).
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from typing import Any

from ._options import Options
from ._profiler import Recording
from ._stacktrace import FrameBuilder
from ._types import Event, ProfileChunk
from ._version import __version__

SDK_NAME = "tripwire.python"
#: Relay refuses profiles with fewer samples; sentry-sdk does not send them either.
MIN_SAMPLES = 2


class ProfileBuilder:
    """Builds profile payloads for one client; caches per-file and per-code facts between profiles."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.frames = FrameBuilder(options)
        self._modules: dict[str, str] = {}
        self._modules_seen = 0
        self._code_cache: dict[tuple[Any, int], dict[str, Any]] = {}

    # -- payloads -------------------------------------------------------------------------------
    def transaction_profile(self, recording: Recording, event: Event) -> dict[str, Any] | None:
        """The ``profile`` item of the transaction ``event`` (built already); None if too few samples."""
        start = recording.start_ns
        end = recording.end_ns if recording.end_ns is not None else start
        ticks = [t for t in recording.ticks if start <= t[0] <= end]
        if len(ticks) < MIN_SAMPLES:
            return None
        profile = self._profile(ticks, lambda tick: str(tick[0] - start), "elapsed_since_start_ns")
        trace = (event.get("contexts") or {}).get("trace") or {}
        transaction = {
            "id": event.get("event_id"),
            "trace_id": trace.get("trace_id"),
            "name": event.get("transaction"),
            "active_thread_id": str(recording.active_thread_id),
            "relative_start_ns": "0",
            "relative_end_ns": str(end - start),
        }
        payload: dict[str, Any] = {
            "version": "1",
            "platform": "python",
            "event_id": os.urandom(16).hex(),
            "timestamp": _rfc3339(recording.start_wall),
            "release": self.options.release or "",
            "environment": self.options.environment,
            "transaction": transaction,
            # sentry-sdk sends the older list form only; servers read either, so both go.
            "transactions": [transaction],
            "device": {"architecture": platform.machine()},
            "os": {"name": platform.system(), "version": platform.release()},
            "runtime": {"name": platform.python_implementation(), "version": platform.python_version()},
            "profile": profile,
        }
        return payload

    def chunk(self, chunk: ProfileChunk) -> dict[str, Any] | None:
        """The ``profile_chunk`` item of ``chunk``; None if it holds too few samples."""
        recording: Recording = chunk.recording
        end = recording.end_ns if recording.end_ns is not None else sys.maxsize
        ticks = [t for t in recording.ticks if t[0] <= end]
        if len(ticks) < MIN_SAMPLES:
            return None
        payload: dict[str, Any] = {
            "version": "2",
            "platform": "python",
            "profiler_id": chunk.profiler_id,
            "chunk_id": chunk.chunk_id,
            "client_sdk": {"name": SDK_NAME, "version": __version__},
            "environment": self.options.environment,
            "profile": self._profile(ticks, lambda tick: tick[1], "timestamp"),
        }
        if self.options.release:
            payload["release"] = self.options.release
        return payload

    # -- the shared part ------------------------------------------------------------------------
    def _profile(self, ticks: list[Any], when: Any, when_key: str) -> dict[str, Any]:
        frames: list[dict[str, Any]] = []
        # Keyed by identity: stacks are interned by the sampler (equal stacks are one tuple) and a
        # code object's own hash re-hashes its bytecode and constants on every call.
        frame_index: dict[tuple[int, int], int] = {}
        stacks: list[list[int]] = []
        stack_index: dict[int, int] = {}
        by_content: dict[tuple[int, ...], int] = {}
        samples: list[dict[str, Any]] = []
        threads: set[int] = set()
        for tick in ticks:
            stamp = when(tick)
            for tid, stack in tick[2]:
                sid = stack_index.get(id(stack))
                if sid is None:
                    indexes = []
                    for i in range(0, len(stack), 2):
                        code, line = stack[i], stack[i + 1]
                        fid = frame_index.get((id(code), line))
                        if fid is None:
                            fid = frame_index[(id(code), line)] = len(frames)
                            frames.append(self._frame(code, line))
                        indexes.append(fid)
                    # Stacks told apart by instruction offset alone are one stack of lines here.
                    content = tuple(indexes)
                    sid = by_content.get(content)
                    if sid is None:
                        sid = by_content[content] = len(stacks)
                        stacks.append(indexes)
                    stack_index[id(stack)] = sid
                threads.add(tid)
                samples.append({when_key: stamp, "thread_id": str(tid), "stack_id": sid})
        names = {t.ident: t.name for t in threading.enumerate()}
        metadata = {str(tid): {"name": names.get(tid, f"Thread {tid}")} for tid in sorted(threads)}
        return {"samples": samples, "stacks": stacks, "frames": frames, "thread_metadata": metadata}

    def _frame(self, code: Any, lineno: int) -> dict[str, Any]:
        key = (code, lineno)
        cached = self._code_cache.get(key)
        if cached is not None:
            return dict(cached)
        filename = code.co_filename
        abs_path, rel = self.frames.paths(filename)
        module = self._module(abs_path)
        frame = {
            "function": getattr(code, "co_qualname", code.co_name),
            "module": module,
            "filename": rel,
            "abs_path": abs_path,
            "lineno": lineno,
            "in_app": self.frames.in_app(module, abs_path),
        }
        if len(self._code_cache) > 50_000:
            self._code_cache.clear()
        self._code_cache[key] = frame
        return dict(frame)

    def _module(self, abs_path: str) -> str | None:
        # A code object does not know its module; the module whose file it is does.
        modules = self._modules
        if abs_path not in modules and len(sys.modules) != self._modules_seen:
            self._modules_seen = len(sys.modules)
            for name, module in list(sys.modules.items()):
                path = getattr(module, "__file__", None)
                if isinstance(path, str):
                    modules.setdefault(os.path.abspath(path), name)
        return modules.get(abs_path)


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}Z"


__all__ = ["MIN_SAMPLES", "ProfileBuilder"]
