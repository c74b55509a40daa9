"""Sentry-protocol profile payloads built by hand: ``profile`` (sample format v1) and
``profile_chunk`` (v2) items with known stacks, for tests that need exact counts."""

from __future__ import annotations

import time
import uuid
from typing import Any

#: A frame: (function, module, file).
Frame = tuple[str, str, str]

MAIN_THREAD = "140000000000001"
OTHER_THREAD = "140000000000002"


def _indexed(
    stacks: list[tuple[list[Frame], int, str]],
) -> tuple[list[dict[str, Any]], list[list[int]], list[tuple[int, str]]]:
    """Frames, stacks (leaf first) and (stack index, thread) per sample, in order."""
    frames: list[dict[str, Any]] = []
    index: dict[Frame, int] = {}
    out_stacks: list[list[int]] = []
    samples: list[tuple[int, str]] = []
    for root_first, count, thread in stacks:
        ids = []
        for frame in root_first:
            if frame not in index:
                index[frame] = len(frames)
                frames.append(
                    {
                        "function": frame[0],
                        "module": frame[1],
                        "filename": frame[2],
                        "abs_path": "/srv/" + frame[2],
                        "lineno": 10,
                    }
                )
            ids.append(index[frame])
        out_stacks.append(list(reversed(ids)))
        samples += [(len(out_stacks) - 1, thread)] * count
    return frames, out_stacks, samples


def transaction_profile(
    name: str,
    stacks: list[tuple[list[Frame], int, str]],
    *,
    release: str = "app@1.0.0",
    transaction_id: str | None = None,
    trace_id: str | None = None,
    start: float | None = None,
    interval: float = 0.01,
) -> dict[str, Any]:
    """A v1 ``profile`` item: ``stacks`` are (frames root first, samples, thread id); the
    transaction's active thread is :data:`MAIN_THREAD`."""
    start = time.time() - 5 if start is None else start
    frames, out_stacks, samples = _indexed(stacks)
    return {
        "event_id": uuid.uuid4().hex,
        "platform": "python",
        "version": "1",
        "release": release,
        "environment": "test",
        "timestamp": start,
        "profile": {
            "frames": frames,
            "stacks": out_stacks,
            "samples": [
                {
                    "elapsed_since_start_ns": str(int(i * interval * 1e9)),
                    "thread_id": thread,
                    "stack_id": stack,
                }
                for i, (stack, thread) in enumerate(samples)
            ],
            "thread_metadata": {MAIN_THREAD: {"name": "MainThread"}, OTHER_THREAD: {"name": "worker"}},
        },
        "transactions": [
            {
                "id": transaction_id or uuid.uuid4().hex,
                "name": name,
                "relative_start_ns": "0",
                "relative_end_ns": str(int(len(samples) * interval * 1e9)),
                "trace_id": trace_id or uuid.uuid4().hex,
                "active_thread_id": MAIN_THREAD,
            }
        ],
    }


def chunk(
    profiler_id: str,
    stacks: list[tuple[list[Frame], int, str]],
    *,
    start: float,
    interval: float = 0.01,
    release: str = "app@1.0.0",
) -> dict[str, Any]:
    """A v2 ``profile_chunk`` item; sample i is taken at ``start + i * interval``."""
    frames, out_stacks, samples = _indexed(stacks)
    return {
        "chunk_id": uuid.uuid4().hex,
        "profiler_id": profiler_id,
        "platform": "python",
        "version": "2",
        "release": release,
        "environment": "test",
        "client_sdk": {"name": "sentry.python", "version": "2.0.0"},
        "profile": {
            "frames": frames,
            "stacks": out_stacks,
            "samples": [
                {"timestamp": start + i * interval, "thread_id": thread, "stack_id": stack}
                for i, (stack, thread) in enumerate(samples)
            ],
            "thread_metadata": {MAIN_THREAD: {"name": "MainThread"}},
        },
    }


def transaction_under(
    profiler_id: str, name: str, start: float, end: float, thread: str = MAIN_THREAD
) -> dict[str, Any]:
    """A ``transaction`` payload that ran under a continuous profiler, on ``thread``."""
    trace_id = uuid.uuid4().hex
    return {
        "event_id": uuid.uuid4().hex,
        "type": "transaction",
        "transaction": name,
        "start_timestamp": start,
        "timestamp": end,
        "release": "app@1.0.0",
        "environment": "test",
        "contexts": {
            "trace": {
                "trace_id": trace_id,
                "span_id": uuid.uuid4().hex[:16],
                "op": "http.server",
                "status": "ok",
                "data": {"thread.id": thread},
            },
            "profile": {"profiler_id": profiler_id},
        },
        "spans": [],
    }
