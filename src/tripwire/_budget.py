"""The hard size budget: an event never leaves the SDK larger than ``max_event_bytes``.

Size is the compact UTF-8 JSON encoding (what the reporters send before compression). An event over the
budget is trimmed, never dropped, in this order — the least useful bytes first, and within each step
the largest part first:

1. ``vars``            frame locals: library frames, then app frames, the crashing frame last
2. ``context_lines``   ``pre_context``/``post_context`` source lines, library frames first
3. ``breadcrumbs``     oldest first
4. ``extra``           largest entry first
5. ``frames``          the middle of long stack traces (the oldest 5 and newest 15 frames stay)
6. ``request``, ``contexts``, ``modules``: request body and headers, then custom contexts, then modules
7. ``strings``         every string cut to 256 characters
8. ``minimal``         only the identifying fields and the raised exception's type and value

Each removal is noted in ``_meta`` (rule ``!budget``) and the list of steps taken goes to
``extra["tripwire.trimmed"]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from ._log import logger
from ._serialize import Serializer, add_meta, clean_str

TRIMMED_KEY = "tripwire.trimmed"
# Room kept for the trimming record itself (``extra["tripwire.trimmed"]`` and its _meta notes).
_RESERVE = 512
_KEEP_CONTEXTS = frozenset({"trace", "runtime", "os", "thread"})
_MINIMAL_KEYS = (
    "event_id",
    "timestamp",
    "platform",
    "level",
    "logger",
    "release",
    "environment",
    "server_name",
    "sdk",
    "transaction",
    "fingerprint",
)


def encode(event: Any) -> bytes:
    """``event`` as compact UTF-8 JSON: what the reporters send. Raises if it is not JSON-safe."""
    return json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def encoded_size(event: Any) -> int:
    """Bytes of ``event`` as compact UTF-8 JSON. Raises if it is not JSON-safe."""
    return len(encode(event))


# The encoding of the last event that left enforce(), kept with the event itself: the budget has to
# encode the event to measure it, and encoding is one of the largest costs per event, so the Sentry
# reporter sends these very bytes instead of encoding again. A reference (not an id) to the event, so
# the check ``cached[0] is event`` cannot be fooled by a new dict at a reused address. One slot: each
# worker hands an event to its reporters right after enforce(); a miss only means encoding again.
_last: tuple[Any, bytes] | None = None


def encoded(event: Any) -> bytes | None:
    """The bytes enforce() measured for ``event`` (compact UTF-8 JSON), if it was the last one."""
    last = _last
    if last is not None and last[0] is event:
        return last[1]
    return None


def _remember(event: dict[str, Any], body: bytes) -> dict[str, Any]:
    global _last
    _last = (event, body)
    return event


def _size(part: Any) -> int:
    try:
        return encoded_size(part)
    except (TypeError, ValueError):
        return 0


def _frames(event: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], dict[str, Any], bool]]:
    """(path, frame, is_crashing) for every frame; the crashing frame is the raised exception's last."""
    values = (event.get("exception") or {}).get("values") or []
    for i, value in enumerate(values):
        frames = ((value or {}).get("stacktrace") or {}).get("frames") or []
        for j, frame in enumerate(frames):
            if isinstance(frame, dict):
                crashing = i == len(values) - 1 and j == len(frames) - 1
                yield ("exception", "values", str(i), "stacktrace", "frames", str(j)), frame, crashing


def _importance(frame: dict[str, Any], crashing: bool) -> int:
    return 2 if crashing else 1 if frame.get("in_app") else 0


class _Trimmer:
    def __init__(self, event: dict[str, Any], meta: dict[str, Any], limit: int, size: int) -> None:
        self.event = event
        self.meta = meta
        self.limit = limit
        self.size = size
        self.steps: list[str] = []

    def over(self) -> bool:
        return self.size > self.limit

    def remeasure(self) -> None:
        self.size = encoded_size(self.event)

    def remove_parts(self, step: str, parts: list[tuple[int, int, Callable[[], None]]]) -> None:
        """Run removals (importance, size, remove) least important and largest first, until under."""
        if not self.over() or not parts:
            return
        self.steps.append(step)
        for _rank, size, remove in sorted(parts, key=lambda p: (p[0], -p[1])):
            remove()
            self.size -= size
            if not self.over():
                break
        self.remeasure()

    def vars(self) -> None:
        parts = []
        for path, frame, crashing in _frames(self.event):
            if "vars" in frame:
                rank = _importance(frame, crashing)
                parts.append((rank, _size(frame["vars"]), self._drop(frame, "vars", path)))
        self.remove_parts("vars", parts)

    def context_lines(self) -> None:
        parts = []
        for path, frame, crashing in _frames(self.event):
            for key in ("pre_context", "post_context"):
                if frame.get(key):
                    rank = _importance(frame, crashing)
                    parts.append((rank, _size(frame[key]), self._drop(frame, key, path)))
        self.remove_parts("context_lines", parts)

    def breadcrumbs(self) -> None:
        crumbs = (self.event.get("breadcrumbs") or {}).get("values")
        if not isinstance(crumbs, list) or not crumbs or not self.over():
            return
        self.steps.append("breadcrumbs")
        original = len(crumbs)
        while crumbs and self.over():
            self.size -= _size(crumbs.pop(0)) + 1
        if len(crumbs) == 0:
            self.event.pop("breadcrumbs", None)
        add_meta(self.meta, ("breadcrumbs", "values"), len=original)
        self.remeasure()

    def extra(self) -> None:
        extra = self.event.get("extra")
        if not isinstance(extra, dict):
            return
        parts = [(0, _size(v) + len(k), self._drop(extra, k, ("extra",))) for k, v in extra.items()]
        self.remove_parts("extra", parts)

    def frames(self) -> None:
        if not self.over():
            return
        values = (self.event.get("exception") or {}).get("values") or []
        changed = False
        for i, value in enumerate(values):
            stacktrace = (value or {}).get("stacktrace") or {}
            frames = stacktrace.get("frames") or []
            if len(frames) > 20:
                stacktrace["frames"] = frames[:5] + frames[-15:]
                path = ("exception", "values", str(i), "stacktrace")
                # Keep the original count if the frame limit already cut this stack.
                old = self._meta_node(path).pop("frames", None) or {}
                original = max(len(frames), (old.get("") or {}).get("len", 0))
                add_meta(self.meta, (*path, "frames"), len=original)
                changed = True
        if changed:
            self.steps.append("frames")
            self.remeasure()

    def request_contexts_modules(self) -> None:
        parts: list[tuple[int, int, Callable[[], None]]] = []
        request = self.event.get("request")
        if isinstance(request, dict):
            for key, rank in (("data", 0), ("headers", 1), ("env", 1), ("cookies", 0), ("query_string", 2)):
                if key in request:
                    parts.append((rank, _size(request[key]), self._drop(request, key, ("request",))))
        contexts = self.event.get("contexts")
        if isinstance(contexts, dict):
            for key, value in contexts.items():
                if key not in _KEEP_CONTEXTS:
                    parts.append((3, _size(value), self._drop(contexts, key, ("contexts",))))
        if "modules" in self.event:
            parts.append((4, _size(self.event["modules"]), self._drop(self.event, "modules", ())))
        for key in ("tags", "user"):
            if key in self.event:
                parts.append((5, _size(self.event[key]), self._drop(self.event, key, ())))
        self.remove_parts("request_contexts_modules", parts)

    def strings(self) -> None:
        if not self.over():
            return
        self.steps.append("strings")
        meta = self.meta
        serializer = Serializer(meta, max_string=256, max_breadth=20, max_depth=4)
        for key in list(self.event):
            if key not in ("_meta", "event_id", "timestamp"):
                self.event[key] = _shorten(self.event[key], serializer, (key,))
        self.remeasure()

    def minimal(self) -> None:
        if not self.over():
            return
        self.steps.append("minimal")
        event = self.event
        kept: dict[str, Any] = {k: event[k] for k in _MINIMAL_KEYS if k in event}
        for key in ("release", "environment", "server_name", "transaction", "logger"):
            if isinstance(kept.get(key), str):
                kept[key] = clean_str(kept[key], 200)
        if isinstance(kept.get("fingerprint"), list):
            kept["fingerprint"] = [clean_str(str(p), 100) for p in kept["fingerprint"][:5]]
        kept["sdk"] = {k: v for k, v in (kept.get("sdk") or {}).items() if k in ("name", "version")}
        values = (event.get("exception") or {}).get("values") or []
        if values and isinstance(values[-1], dict):
            last = values[-1]
            kept["exception"] = {
                "values": [
                    {
                        "type": clean_str(str(last.get("type", "Error")), 200),
                        "value": clean_str(str(last.get("value", "")), 1000),
                        "mechanism": {
                            k: v for k, v in (last.get("mechanism") or {}).items() if k in ("type", "handled")
                        },
                    }
                ]
            }
        entry = event.get("logentry")
        if isinstance(entry, dict):
            message = entry.get("formatted") or entry.get("message") or ""
            kept["logentry"] = {"message": clean_str(str(message), 1000)}
        event.clear()
        event.update(kept)
        self.meta.clear()
        self.remeasure()

    # -- helpers ------------------------------------------------------------------------------

    def _meta_node(self, path: tuple[str, ...]) -> dict[str, Any]:
        node = self.meta
        for part in path:
            child = node.get(part)
            if not isinstance(child, dict):
                return {}
            node = child
        return node

    def _drop(self, container: dict[str, Any], key: str, path: tuple[str, ...]) -> Callable[[], None]:
        def remove() -> None:
            if container.pop(key, None) is not None:
                self._meta_node(path).pop(key, None)
                add_meta(self.meta, (*path, key), rem=[["!budget", "x"]])

        return remove


def _shorten(value: Any, serializer: Serializer, path: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return serializer.string(value, path)
    if isinstance(value, dict):
        return {k: _shorten(v, serializer, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, serializer, (*path, str(i))) for i, v in enumerate(value)]
    return value


def enforce(event: dict[str, Any], max_bytes: int, max_string: int = 1024) -> dict[str, Any]:
    """``event`` made JSON-safe (if it is not already) and trimmed to ``max_bytes``; never raises."""
    meta = event.pop("_meta", None)
    if not isinstance(meta, dict):
        meta = {}
    if meta:
        event["_meta"] = meta
    try:
        # The usual case, in one encoding: the whole event with its notes fits.
        body = encode(event)
        if len(body) <= max_bytes:
            return _remember(event, body)
        event.pop("_meta", None)
        size = encoded_size(event)
    except (TypeError, ValueError, RecursionError):
        # Someone (a processor, before_send) put something that is not JSON into the event.
        event.pop("_meta", None)
        serializer = Serializer(meta, max_string=max_string, max_depth=12, max_breadth=500)
        safe: Any = serializer.serialize(event, ())
        event = safe if isinstance(safe, dict) else {}
        size = encoded_size(event)
    if size + (_size(meta) + 10 if meta else 0) <= max_bytes:
        if meta:
            event["_meta"] = meta
        return _remember(event, encode(event))
    try:
        trimmer = _Trimmer(event, meta, max_bytes - _RESERVE, size)
        for step in (
            trimmer.vars,
            trimmer.context_lines,
            trimmer.breadcrumbs,
            trimmer.extra,
            trimmer.frames,
            trimmer.request_contexts_modules,
            trimmer.strings,
            trimmer.minimal,
        ):
            if not trimmer.over():
                break
            step()
        if trimmer.steps:
            extra = event.get("extra")
            if not isinstance(extra, dict):
                extra = event["extra"] = {}
            extra[TRIMMED_KEY] = trimmer.steps
            logger.debug("tripwire: event %s trimmed: %s", event.get("event_id"), trimmer.steps)
    except Exception:
        logger.exception("tripwire: size budget failed; sending a minimal event")
        event = {k: event[k] for k in ("event_id", "timestamp", "platform", "level") if k in event}
        meta = {}
    if meta:
        event["_meta"] = meta
    body = encode(event)
    if len(body) > max_bytes and "_meta" in event:
        # The _meta notes themselves can be large (many truncations): they go before the event does.
        event.pop("_meta", None)
        body = encode(event)
    return _remember(event, body)


__all__ = ["TRIMMED_KEY", "encode", "encoded", "encoded_size", "enforce"]
