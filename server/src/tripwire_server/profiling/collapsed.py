"""Collapsed-stack files (one ``root;...;leaf COUNT`` line per distinct stack) read as a profile.

Two producers are recognised by their frame syntax: py-spy (``record --format raw`` or
``--format collapsed``: ``function (path/file.py:line)``, with optional ``process ...`` and
``thread (0x...)`` frames first) and CPython's sampling profiler (``python -m profiling.sampling
--collapsed``: ``file.py:function:line``, with a ``tid:N`` frame first). Any other frame text is
taken as a function name. A file's module is its file name without ``.py`` (neither format says
more), which is enough for the idle-frame rules of the standard library.

The samples are laid out at 100 Hz from the import time; a file of more than
:data:`MAX_SAMPLES` samples is scaled down (every count multiplied by the same factor), so one
import stays bounded.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable

from ..normalize import trim
from .model import MAX_DEPTH, MAX_FILE, MAX_FUNCTION, Frame, Profile

#: Samples kept from one file, at most.
MAX_SAMPLES = 200_000
#: Distinct stacks read from one file, at most (a line past it is an error).
MAX_STACKS = 100_000
#: Bytes of one line, at most.
MAX_LINE = 64 * 1024
#: The transaction name of an import without one.
IMPORTED = "(imported)"

_PYSPY = re.compile(r"^(?P<function>.+?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_CPYTHON = re.compile(r"^(?P<file>[^:;]+\.pyw?):(?P<function>.+):(?P<line>\d+)$")
_THREAD = re.compile(r"^(?:tid:(?P<tid>\d+)|thread \((?P<hex>0x[0-9A-Fa-f]+)\)(?: .*)?)$")


def _module_of(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".pyw", ".py"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return ""


def parse_frame(text: str) -> Frame:
    """One frame of either syntax."""
    match = _PYSPY.match(text) or _CPYTHON.match(text)
    if match is None:
        return Frame(trim(text, MAX_FUNCTION), "", "")
    path = match.group("file")
    line = match.group("line")
    return Frame(
        trim(match.group("function"), MAX_FUNCTION),
        trim(_module_of(path), MAX_FUNCTION),
        trim(path, MAX_FILE),
        int(line) if line and len(line) < 10 else 0,
    )


def parse(lines: Iterable[str]) -> list[tuple[str, list[Frame], int]]:
    """``(thread, frames root first, count)`` per line; raises ValueError on a line that is not
    ``STACK COUNT``."""
    out: list[tuple[str, list[Frame], int]] = []
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            raise ValueError(f"line {number} is longer than {MAX_LINE} characters")
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or len(count) > 12:
            raise ValueError(f"line {number} is not 'frame;frame;... COUNT'")
        if len(out) >= MAX_STACKS:
            raise ValueError(f"more than {MAX_STACKS} distinct stacks")
        parts = stack.split(";")
        thread = "0"
        while parts and (parts[0].startswith("process ") or _THREAD.match(parts[0])):
            found = _THREAD.match(parts.pop(0))
            if found is not None:
                thread = str(int(found.group("hex"), 16)) if found.group("hex") else found.group("tid")
        out.append((thread, [parse_frame(p) for p in parts[-MAX_DEPTH:]], int(count)))
    return out


def to_profile(
    stacks: list[tuple[str, list[Frame], int]],
    *,
    name: str = IMPORTED,
    release: str = "",
    environment: str = "production",
    now: float | None = None,
) -> Profile:
    """A profile of every thread (nothing is left out as "another thread" in an import)."""
    total = sum(count for _t, _f, count in stacks)
    scale = min(1.0, MAX_SAMPLES / total) if total else 1.0
    frames: list[Frame] = []
    index: dict[Frame, int] = {}
    out_stacks: list[list[int]] = []
    samples: list[tuple[float, str, int]] = []
    start = time.time() if now is None else now
    for thread, root_first, count in stacks:
        ids = []
        for frame in reversed(root_first):  # stored leaf first, as the SDKs send them
            if frame not in index:
                index[frame] = len(frames)
                frames.append(frame)
            ids.append(index[frame])
        out_stacks.append(ids)
        for _ in range(round(count * scale)):
            samples.append((start + len(samples) * 0.01, thread, len(out_stacks) - 1))
    return Profile(
        kind="import",
        profile_id=uuid.uuid4().hex,
        frames=frames,
        stacks=out_stacks,
        samples=samples,
        threads={thread: "" for thread, _f, _c in stacks},
        release=release,
        environment=environment,
        transaction_name=name,
        start=start,
        end=samples[-1][0] if samples else start,
    )
