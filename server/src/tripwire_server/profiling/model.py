"""Profiles in one internal shape, whatever version of the Sentry sample format they came in.

A ``profile`` item (sample format v1: one transaction's profile, sample times in nanoseconds since
its start) and a ``profile_chunk`` item (v2: about a minute of a continuous profiler's samples,
each with an absolute timestamp) both become a :class:`Profile`: frames, stacks (frame indexes,
leaf first, as the SDKs send them) and samples ``(seconds since the epoch, thread id, stack)``.
Everything is bounded: strings are cut, stacks deeper than :data:`MAX_DEPTH` lose their root
frames, and the item itself is bounded by ``Limits.max_profile_size``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..normalize import normalize_event_id, parse_timestamp, trim
from ..performance.model import MAX_AGE, MAX_FUTURE_SKEW

#: Frames kept per stack (sentry-sdk sends at most 128): the frames nearest the leaf are kept.
MAX_DEPTH = 128
MAX_FUNCTION = 200
MAX_MODULE = 200
MAX_FILE = 300
MAX_NAME = 200
MAX_RELEASE = 250
MAX_ENVIRONMENT = 64
#: The name aggregates of continuous-profile samples get when no transaction was running.
CONTINUOUS = "(continuous)"


@dataclasses.dataclass(frozen=True)
class Frame:
    """A code location: what the function tables and flame graphs group by (not the line)."""

    function: str
    module: str
    file: str
    lineno: int = 0
    in_app: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.function, self.module, self.file)

    def to_json(self) -> list[Any]:
        return [self.function, self.module, self.file, self.lineno, self.in_app]


@dataclasses.dataclass
class Profile:
    """A transaction profile, a continuous-profile chunk, or one transaction's part of a chunk."""

    kind: str  # "transaction", "chunk", or "import" (a collapsed-stack file)
    #: The profile's event id, or the chunk id (with ``-<transaction event id>`` for a chunk's part).
    profile_id: str
    frames: list[Frame]
    stacks: list[list[int]]
    #: ``(timestamp, thread id, stack index)``, in time order.
    samples: list[tuple[float, str, int]]
    threads: dict[str, str]
    release: str = ""
    environment: str = "production"
    #: The transaction this profile belongs to ("" for a continuous chunk not yet attributed).
    transaction_event_id: str = ""
    transaction_name: str = CONTINUOUS
    trace_id: str = ""
    #: The thread the transaction ran on: only its samples count in the function aggregates.
    active_thread_id: str | None = None
    profiler_id: str = ""
    start: float = 0.0
    end: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The stored form (compressed by the store): what a flame graph is drawn from."""
        return {
            "kind": self.kind,
            "profile_id": self.profile_id,
            "frames": [f.to_json() for f in self.frames],
            "stacks": self.stacks,
            "samples": [[t, tid, s] for t, tid, s in self.samples],
            "threads": self.threads,
            "release": self.release,
            "environment": self.environment,
            "transaction_event_id": self.transaction_event_id,
            "transaction_name": self.transaction_name,
            "trace_id": self.trace_id,
            "active_thread_id": self.active_thread_id,
            "profiler_id": self.profiler_id,
            "start": self.start,
            "end": self.end,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        return cls(
            kind=data["kind"],
            profile_id=data["profile_id"],
            frames=[Frame(f[0], f[1], f[2], int(f[3]), bool(f[4])) for f in data["frames"]],
            stacks=[list(s) for s in data["stacks"]],
            samples=[(float(t), str(tid), int(s)) for t, tid, s in data["samples"]],
            threads={str(k): str(v) for k, v in data["threads"].items()},
            release=data.get("release", ""),
            environment=data.get("environment", "production"),
            transaction_event_id=data.get("transaction_event_id", ""),
            transaction_name=data.get("transaction_name", CONTINUOUS),
            trace_id=data.get("trace_id", ""),
            active_thread_id=data.get("active_thread_id"),
            profiler_id=data.get("profiler_id", ""),
            start=float(data.get("start", 0.0)),
            end=float(data.get("end", 0.0)),
        )

    def subset(self, keep: list[int], **fields: Any) -> Profile:
        """A profile of the samples at indexes ``keep`` only (frames and stacks re-indexed)."""
        stack_map: dict[int, int] = {}
        frame_map: dict[int, int] = {}
        frames: list[Frame] = []
        stacks: list[list[int]] = []
        samples: list[tuple[float, str, int]] = []
        for i in keep:
            ts, tid, stack = self.samples[i]
            new = stack_map.get(stack)
            if new is None:
                ids = []
                for f in self.stacks[stack]:
                    if f not in frame_map:
                        frame_map[f] = len(frames)
                        frames.append(self.frames[f])
                    ids.append(frame_map[f])
                new = stack_map[stack] = len(stacks)
                stacks.append(ids)
            samples.append((ts, tid, new))
        threads = {tid: self.threads.get(tid, "") for _ts, tid, _s in samples}
        return dataclasses.replace(
            self, frames=frames, stacks=stacks, samples=samples, threads=threads, **fields
        )


def _text(value: Any, limit: int, default: str = "") -> str:
    # The common case first (every frame has three of these): a short string without NUL.
    if type(value) is str and 0 < len(value) <= limit and "\x00" not in value:
        return value
    if value is None or value == "":
        return default
    return trim(value if isinstance(value, str) else str(value), limit)


def _hex_id(value: Any) -> str:
    return normalize_event_id(value) or ""


def _frames(raw: Any) -> list[Frame]:
    if not isinstance(raw, list):
        raise ValueError("profile.frames must be a list")
    out = []
    for f in raw:
        if not isinstance(f, dict):
            raise ValueError("a profile frame must be an object")
        lineno = f.get("lineno")
        out.append(
            Frame(
                function=_text(f.get("function"), MAX_FUNCTION, "<unknown>"),
                module=_text(f.get("module"), MAX_MODULE),
                file=_text(f.get("filename") or f.get("abs_path"), MAX_FILE),
                lineno=lineno if type(lineno) is int and 0 <= lineno < 2**31 else 0,
                in_app=f.get("in_app") is True,
            )
        )
    return out


def _stacks(raw: Any, frame_count: int) -> list[list[int]]:
    if not isinstance(raw, list):
        raise ValueError("profile.stacks must be a list")
    out = []
    for stack in raw:
        if not isinstance(stack, list):
            raise ValueError("a profile stack must be a list of frame indexes")
        ids = []
        for f in stack[:MAX_DEPTH]:  # leaf first: a too-deep stack loses its root frames
            if type(f) is not int or not 0 <= f < frame_count:
                raise ValueError("a profile stack refers to a frame that is not there")
            ids.append(f)
        out.append(ids)
    return out


def _threads(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {
        trim(str(k), 32): _text(v.get("name") if isinstance(v, dict) else None, 100)
        for k, v in list(raw.items())[:1000]
    }


def _sample_parts(raw: Any, stack_count: int) -> tuple[str, int]:
    if not isinstance(raw, dict):
        raise ValueError("a profile sample must be an object")
    stack = raw.get("stack_id")
    if type(stack) is not int or not 0 <= stack < stack_count:
        raise ValueError("a profile sample refers to a stack that is not there")
    return trim(str(raw.get("thread_id", "")), 32), stack


def _body(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("profile payload must be a JSON object")
    body = data.get("profile")
    if not isinstance(body, dict):
        raise ValueError("profile payload without a profile object")
    return body


def from_profile(data: Any) -> Profile:
    """A ``profile`` item (sample format v1); raises ValueError if it is not one."""
    body = _body(data)
    frames = _frames(body.get("frames"))
    stacks = _stacks(body.get("stacks"), len(frames))
    raw_samples = body.get("samples")
    if not isinstance(raw_samples, list):
        raise ValueError("profile.samples must be a list")
    start = parse_timestamp(data.get("timestamp"))
    if start is None:
        raise ValueError("profile without a timestamp")
    txs = data.get("transactions")
    tx = txs[0] if isinstance(txs, list) and txs and isinstance(txs[0], dict) else data.get("transaction")
    if not isinstance(tx, dict):
        raise ValueError("profile without its transaction")
    samples = []
    for raw in raw_samples:
        tid, stack = _sample_parts(raw, len(stacks))
        try:
            offset = int(raw.get("elapsed_since_start_ns", 0)) / 1e9
        except (TypeError, ValueError):
            raise ValueError("a profile sample has an invalid elapsed_since_start_ns") from None
        samples.append((start + offset, tid, stack))
    samples.sort(key=lambda s: s[0])
    active = tx.get("active_thread_id")
    end = samples[-1][0] if samples else start
    try:
        # The transaction's own end, relative to the profile's start, when the SDK says it.
        end = max(end, start + int(tx.get("relative_end_ns") or 0) / 1e9)
    except (TypeError, ValueError):
        pass
    profile_id = _hex_id(data.get("event_id"))
    if not profile_id:
        raise ValueError("profile without an event_id")
    return Profile(
        kind="transaction",
        profile_id=profile_id,
        frames=frames,
        stacks=stacks,
        samples=samples,
        threads=_threads(body.get("thread_metadata")),
        release=_text(data.get("release"), MAX_RELEASE),
        environment=_text(data.get("environment"), MAX_ENVIRONMENT, "production"),
        transaction_event_id=_hex_id(tx.get("id")),
        transaction_name=_text(tx.get("name"), MAX_NAME, "<unlabeled transaction>"),
        trace_id=_hex_id(tx.get("trace_id")),
        active_thread_id=None if active is None else trim(str(active), 32),
        start=start,
        end=end,
    )


def from_chunk(data: Any) -> Profile:
    """A ``profile_chunk`` item (sample format v2); raises ValueError if it is not one."""
    body = _body(data)
    frames = _frames(body.get("frames"))
    stacks = _stacks(body.get("stacks"), len(frames))
    raw_samples = body.get("samples")
    if not isinstance(raw_samples, list):
        raise ValueError("profile.samples must be a list")
    samples = []
    for raw in raw_samples:
        tid, stack = _sample_parts(raw, len(stacks))
        ts = parse_timestamp(raw.get("timestamp"))
        if ts is None:
            raise ValueError("a profile chunk sample without a timestamp")
        samples.append((ts, tid, stack))
    samples.sort(key=lambda s: s[0])
    chunk_id = _hex_id(data.get("chunk_id"))
    profiler_id = _hex_id(data.get("profiler_id"))
    if not chunk_id or not profiler_id:
        raise ValueError("profile chunk without chunk_id and profiler_id")
    start = samples[0][0] if samples else 0.0
    return Profile(
        kind="chunk",
        profile_id=chunk_id,
        frames=frames,
        stacks=stacks,
        samples=samples,
        threads=_threads(body.get("thread_metadata")),
        release=_text(data.get("release"), MAX_RELEASE),
        environment=_text(data.get("environment"), MAX_ENVIRONMENT, "production"),
        profiler_id=profiler_id,
        start=start,
        end=samples[-1][0] if samples else start,
    )


def fit_clock(profile: Profile, received_at: float) -> bool:
    """Shift a profile from a client clock that runs ahead (as transactions are), so that no row
    lands in a far future hour; False if the profile is too old to keep (the bounds of
    performance data)."""
    if profile.end < received_at - MAX_AGE:
        return False
    drift = profile.end - received_at
    if drift > MAX_FUTURE_SKEW:
        profile.samples = [(ts - drift, tid, s) for ts, tid, s in profile.samples]
        profile.start -= drift
        profile.end -= drift
    return True


@dataclasses.dataclass(frozen=True)
class TransactionWindow:
    """A transaction that ran while a continuous profiler was on: its chunks' samples on its
    thread between its start and end are its own."""

    project_id: int
    profiler_id: str
    thread_id: str
    start: float
    end: float
    event_id: str
    trace_id: str
    name: str
    release: str
    environment: str


def window_of(data: Any, project_id: int, tx_event_id: str) -> TransactionWindow | None:
    """The window of a ``transaction`` payload that carries ``contexts.profile.profiler_id``."""
    if not isinstance(data, dict):
        return None
    contexts = data.get("contexts")
    if not isinstance(contexts, dict):
        return None
    profile = contexts.get("profile")
    trace = contexts.get("trace")
    if not isinstance(profile, dict) or not isinstance(trace, dict):
        return None
    profiler_id = _hex_id(profile.get("profiler_id"))
    trace_data = trace.get("data")
    # sentry-sdk names the transaction's thread here; without it, every thread's samples within
    # the transaction's time are its own.
    thread = trace_data.get("thread.id") if isinstance(trace_data, dict) else None
    start = parse_timestamp(data.get("start_timestamp"))
    end = parse_timestamp(data.get("timestamp"))
    if not profiler_id or start is None or end is None or end < start:
        return None
    return TransactionWindow(
        project_id=project_id,
        profiler_id=profiler_id,
        thread_id="" if thread is None else trim(str(thread), 32),
        start=start,
        end=end,
        event_id=tx_event_id,
        trace_id=_hex_id(trace.get("trace_id")),
        name=_text(data.get("transaction"), MAX_NAME, "<unlabeled transaction>"),
        release=_text(data.get("release"), MAX_RELEASE),
        environment=_text(data.get("environment"), MAX_ENVIRONMENT, "production"),
    )


def attribute(chunk: Profile, windows: list[TransactionWindow]) -> list[Profile]:
    """Split a chunk into one part per transaction that ran during it (the samples of the
    transaction's thread within its start and end) and a ``(continuous)`` part with the rest.

    Where transactions overlap on one thread (concurrent requests on an event loop), a sample
    goes to the one that started last: the innermost, most often the one that is running.
    """
    by_thread: dict[str, list[TransactionWindow]] = {}
    for w in sorted(windows, key=lambda w: (w.start, w.event_id)):
        by_thread.setdefault(w.thread_id, []).append(w)
    any_thread = by_thread.pop("", [])  # windows whose SDK did not name the thread
    owned: dict[str, list[int]] = {}
    owner: dict[str, TransactionWindow] = {}
    rest: list[int] = []
    for i, (ts, tid, _stack) in enumerate(chunk.samples):
        found = None
        for w in by_thread.get(tid, ()):
            if w.start > ts:
                break
            if ts <= w.end:
                found = w  # the latest start wins
        if found is None:
            for w in any_thread:
                if w.start > ts:
                    break
                if ts <= w.end:
                    found = w
        if found is None:
            rest.append(i)
        else:
            owned.setdefault(found.event_id, []).append(i)
            owner[found.event_id] = found
    parts = []
    for event_id, keep in owned.items():
        w = owner[event_id]
        parts.append(
            chunk.subset(
                keep,
                profile_id=f"{chunk.profile_id}-{event_id}",
                transaction_event_id=event_id,
                transaction_name=w.name,
                trace_id=w.trace_id,
                active_thread_id=w.thread_id or None,
                release=chunk.release or w.release,
                environment=w.environment,
                start=chunk.samples[keep[0]][0],
                end=chunk.samples[keep[-1]][0],
            )
        )
    if rest or not parts:
        parts.append(
            chunk.subset(
                rest,
                start=chunk.samples[rest[0]][0] if rest else chunk.start,
                end=chunk.samples[rest[-1]][0] if rest else chunk.end,
            )
        )
    return parts
