"""Stack frames: the caller's locals snapshot, and (on the worker) frames with source, in_app and vars.

Locals, and why the split is safe: when an exception is captured, every frame of its traceback *below*
the frame that caught it has finished. A finished frame's locals are frozen at the values they had when
it exited, so the worker can read them later and see exactly what the code saw. The frames that are
still running — the catching frame, and any frame of the traceback that is on the current call stack —
keep changing after the capture returns. For those (usually one), :func:`snapshot_live_locals` copies the
locals mapping on the caller: a shallow ``dict`` copy, a few hundred nanoseconds. Values are the same
objects, so a list the handler mutates after the capture shows the mutation; a name the handler rebinds
does not. Representing and scrubbing the values happens on the worker.
"""

from __future__ import annotations

import builtins
import linecache
import os
import re
import sys
from collections import OrderedDict
from collections.abc import Iterator
from itertools import islice
from types import FrameType, TracebackType
from typing import Any

from ._options import Options
from ._serialize import Serializer, clean_str

#: Frames kept per stack trace: the oldest and the newest half of this (the middle of a deep recursion
#: says little); the original count is recorded in ``_meta``.
MAX_FRAMES = 100
#: Exceptions followed through ``__cause__``/``__context__`` and group members.
MAX_EXCEPTIONS = 50
#: Traceback entries checked for still-running frames at capture (the first ones are the candidates).
_MAX_LIVE_CHECK = 100
#: Characters kept of one source line.
MAX_LINE_LENGTH = 500

#: Code locations (code object, instruction, module) whose static frame data is kept.
_MAX_LOCATIONS = 2048
#: Values never replaced by a reference to another frame: cheap to repeat, and clearer in place.
_NOT_SHARED = frozenset({type(None), bool, int, float, str, bytes, complex})

# ExceptionGroup is new in 3.11; on 3.10 nothing is a group.
_GROUP: Any = getattr(builtins, "BaseExceptionGroup", ())


# -- on the caller ----------------------------------------------------------------------------


def iter_exceptions(exc: BaseException, limit: int = MAX_EXCEPTIONS) -> Iterator[BaseException]:
    """Every exception reachable from ``exc`` (cause/context chain and group members), each once."""
    seen: set[int] = set()
    stack = [exc]
    while stack and len(seen) < limit:
        err = stack.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        yield err
        nxt = (
            err.__cause__
            if err.__cause__ is not None
            else (None if err.__suppress_context__ else err.__context__)
        )
        if nxt is not None:
            stack.append(nxt)
        members = getattr(err, "exceptions", None)
        if isinstance(members, tuple) and isinstance(err, _GROUP):
            stack.extend(m for m in members if isinstance(m, BaseException))


def snapshot_live_locals(exc: BaseException) -> dict[FrameType, dict[str, Any]]:
    """Shallow copies of the locals of traceback frames that are still running (see module doc)."""
    # Frames hash by identity: the set holds the running frames only while this function runs.
    live: set[FrameType] = set()
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        live.add(frame)
        frame = frame.f_back
    out: dict[FrameType, dict[str, Any]] = {}
    for err in iter_exceptions(exc):
        tb = err.__traceback__
        # Usually only the first entry is running, but an exception re-raised in a helper has the
        # helper and its caller up front, and the helper may have returned since: check each entry.
        checked = 0
        while tb is not None and checked < _MAX_LIVE_CHECK:
            frame = tb.tb_frame
            if frame in live and frame not in out:
                out[frame] = dict(frame.f_locals)
            tb = tb.tb_next
            checked += 1
    return out


# -- on the worker ----------------------------------------------------------------------------


class FrameBuilder:
    """Builds Sentry frames for one client's options; caches per-file facts between events."""

    def __init__(self, options: Options) -> None:
        self.options = options
        root = options.project_root
        self.project_root = os.path.join(os.path.abspath(root), "") if root else None
        # The standard library is never the app, even when project_root is "/" (a container's WORKDIR).
        self.stdlib = os.path.join(os.path.dirname(os.path.abspath(os.__file__)), "")
        self.include = tuple(options.in_app_include)
        self.exclude = tuple(options.in_app_exclude)
        self._packages_dir = re.compile(r"[\\/](?:site|dist)-packages[\\/]")
        self._paths: dict[str, tuple[str, str]] = {}
        self._in_app: dict[tuple[str | None, str], bool] = {}
        #: Everything about a frame that depends only on where it is (code, instruction, module):
        #: an error storm repeats the same few locations, so each is worked out once.
        self._locations: OrderedDict[tuple[Any, int, str | None], dict[str, Any]] = OrderedDict()

    # -- per file -----------------------------------------------------------------------------

    def paths(self, filename: str) -> tuple[str, str]:
        """(abs_path, filename relative to project_root or the sys.path entry that holds it)."""
        cached = self._paths.get(filename)
        if cached is not None:
            return cached
        if filename.startswith("<") and filename.endswith(">"):
            result = (filename, filename)
        else:
            abs_path = os.path.abspath(filename)
            rel = abs_path
            roots = [p for p in sys.path if p and abs_path.startswith(os.path.join(p, ""))]
            if (
                self.project_root
                and abs_path.startswith(self.project_root)
                and not self._packages_dir.search(abs_path)
            ):
                rel = abs_path[len(self.project_root) :]
            elif roots:
                best = max(roots, key=len)
                rel = abs_path[len(os.path.join(best, "")) :]
            result = (abs_path, rel)
        if len(self._paths) > 10_000:
            self._paths.clear()
        self._paths[filename] = result
        return result

    def in_app(self, module: str | None, abs_path: str) -> bool:
        """include (module prefix) → True; exclude, site/dist-packages, stdlib → False; under root."""
        key = (module, abs_path)
        cached = self._in_app.get(key)
        if cached is not None:
            return cached
        result = False
        if module and any(module == p or module.startswith(p + ".") for p in self.include):
            result = True
        elif (module and any(module == p or module.startswith(p + ".") for p in self.exclude)) or (
            self._packages_dir.search(abs_path) or abs_path.startswith(self.stdlib)
        ):
            result = False
        elif self.project_root and abs_path.startswith(self.project_root):
            result = True
        if len(self._in_app) > 10_000:
            self._in_app.clear()
        self._in_app[key] = result
        return result

    # -- frames -------------------------------------------------------------------------------

    def frames(
        self,
        tb: TracebackType | None,
        live_locals: dict[FrameType, dict[str, Any]],
        serializer: Serializer,
        path: tuple[str, ...],
        library: Serializer | None = None,
    ) -> list[dict[str, Any]]:
        """The frames of ``tb``, oldest call first and the raising frame last.

        ``library`` (default: ``serializer``) represents the locals of frames that are not in app.
        """
        entries: list[TracebackType] = []
        while tb is not None:
            entries.append(tb)
            tb = tb.tb_next
        visible = [t for t in entries if not _hidden(t.tb_frame, live_locals)]
        total = len(visible)
        if total > MAX_FRAMES:
            half = MAX_FRAMES // 2
            visible = visible[:half] + visible[-half:]
            serializer.note((*path, "frames"), len=total)
        # Newest first, so that an object several frames hold (a request, the ASGI scope, ``self``) is
        # represented in full in the frame nearest the error, and the older frames refer to it.
        repeats: dict[tuple[int, int], tuple[Any, str]] = {}
        out = [
            self.frame(t, live_locals, serializer, (*path, "frames", str(i)), library, repeats, i)
            for i, t in reversed(list(enumerate(visible)))
        ]
        out.reverse()
        return out

    def frame(
        self,
        tb: TracebackType,
        live_locals: dict[FrameType, dict[str, Any]],
        serializer: Serializer,
        path: tuple[str, ...],
        library: Serializer | None = None,
        repeats: dict[tuple[int, int], tuple[Any, str]] | None = None,
        index: int = 0,
    ) -> dict[str, Any]:
        """One frame; ``repeats`` (shared by the frames of one stack trace) finds repeated objects."""
        frame = tb.tb_frame
        module = frame.f_globals.get("__name__")
        if not isinstance(module, str):
            module = None
        key = (frame.f_code, tb.tb_lasti, module)
        static = self._locations.get(key)
        if static is None:
            static = self._location(tb, module)
            self._locations[key] = static
            if len(self._locations) > _MAX_LOCATIONS:
                self._locations.popitem(last=False)
        out = dict(static)
        if "pre_context" in out:
            # Fresh lists: the event is the caller's to change (processors, before_send).
            out["pre_context"] = list(out["pre_context"])
            out["post_context"] = list(out["post_context"])
        options = self.options
        if options.include_local_variables and (out["in_app"] or options.library_frame_locals):
            local_vars = live_locals.get(frame)
            if local_vars is None:
                try:
                    local_vars = dict(frame.f_locals)
                except Exception:
                    local_vars = {}
            if local_vars:
                ser = serializer if out["in_app"] or library is None else library
                out["vars"] = self._vars(local_vars, ser, (*path, "vars"), repeats, index)
        return out

    def _location(self, tb: TracebackType, module: str | None) -> dict[str, Any]:
        frame = tb.tb_frame
        code = frame.f_code
        filename = code.co_filename or "<unknown>"
        abs_path, rel = self.paths(filename)
        lineno = tb.tb_lineno or frame.f_lineno or 0
        out: dict[str, Any] = {
            "filename": rel,
            "abs_path": abs_path,
            "function": getattr(code, "co_qualname", code.co_name),
            "module": module,
            "lineno": lineno,
        }
        colno = _colno(code, tb.tb_lasti)
        if colno is not None:
            out["colno"] = colno
        out["in_app"] = self.in_app(module, abs_path)
        if self.options.include_source_context and lineno > 0:
            source = _source(filename, frame, lineno, self.options.context_lines)
            if source is not None:
                out["pre_context"] = source[0]
                out["context_line"] = source[1]
                out["post_context"] = source[2]
        return out

    def _vars(
        self,
        local_vars: dict[str, Any],
        ser: Serializer,
        path: tuple[str, ...],
        repeats: dict[tuple[int, int], tuple[Any, str]] | None,
        index: int,
    ) -> Any:
        kept: dict[Any, Any] = {}
        scrubber = ser.scrubber
        for name, value in local_vars.items():
            if isinstance(name, str) and name.startswith("__") and name.endswith("__"):
                continue  # dunder names (a module frame's __builtins__, __loader__...) are noise
            if repeats is None or type(value) in _NOT_SHARED:
                kept[name] = value
                continue
            # An object already represented in a newer frame of this stack trace (the same object, not
            # an equal one) is sent once: the other frames name where it is. Values under sensitive
            # names are filtered, not shown, so they are not a reference point for other frames.
            seen = repeats.get((id(value), id(ser)))
            if seen is not None and seen[0] is value:
                kept[name] = seen[1]
                continue
            if isinstance(name, str) and not (scrubber is not None and scrubber.is_sensitive_key(name)):
                repeats[(id(value), id(ser))] = (value, f"<same as frame {index} '{name[:64]}'>")
            kept[name] = value
        return ser.serialize(kept, path)


def _hidden(frame: FrameType, live_locals: dict[FrameType, dict[str, Any]]) -> bool:
    """tripwire's own frames and ``__traceback_hide__``.

    The collector (``tripwire_server``) is an application, not the SDK: its frames are not hidden.
    """
    name = frame.f_globals.get("__name__")
    if isinstance(name, str) and (name == "tripwire" or name.startswith("tripwire.")):
        return True
    code = frame.f_code
    # Only look at the locals of code that can set the marker (reading f_locals is not free).
    if "__traceback_hide__" not in code.co_varnames and "__traceback_hide__" not in code.co_names:
        return False
    try:
        local_vars = live_locals.get(frame)
        if local_vars is None:
            local_vars = frame.f_locals
        return bool(local_vars.get("__traceback_hide__"))
    except Exception:
        return False


def _colno(code: Any, lasti: int) -> int | None:
    positions = getattr(code, "co_positions", None)
    if positions is None or lasti < 0:
        return None
    try:
        found = next(islice(positions(), lasti // 2, None), None)
    except Exception:
        return None
    if found is None or found[2] is None:
        return None
    return int(found[2]) + 1


def _source(filename: str, frame: FrameType, lineno: int, n: int) -> tuple[list[str], str, list[str]] | None:
    """(pre_context, context_line, post_context) via linecache (the loader's source if needed)."""
    try:
        lines = linecache.getlines(filename, frame.f_globals)
    except Exception:
        return None
    if not lines or lineno > len(lines):
        return None
    index = lineno - 1

    def clean(line: str) -> str:
        return clean_str(line.rstrip("\r\n"), MAX_LINE_LENGTH)

    return (
        [clean(line) for line in lines[max(0, index - n) : index]],
        clean(lines[index]),
        [clean(line) for line in lines[index + 1 : index + 1 + n]],
    )


__all__ = ["MAX_FRAMES", "FrameBuilder", "iter_exceptions", "snapshot_live_locals"]
