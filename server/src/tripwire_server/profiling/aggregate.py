"""Per-function sample counts and flame-graph trees, computed from a :class:`~.model.Profile`.

A function (its name, module and file: not its line) has *self* samples where it is the innermost
frame and *total* samples where it is anywhere on the stack (counted once per sample, however
often it recurses). Samples of waiting threads (:mod:`.idle`) add to the total sample count but
to no function's self count: they are time the transaction spent, but no function's work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from .idle import in_profiler, is_idle
from .model import Frame, Profile

#: Functions kept per profile in the aggregates; the rest of its samples count under OTHER.
MAX_FUNCTIONS = 2000
OTHER = ("(other functions)", "", "")
#: The self count of idle samples goes to this pseudo-function, left out of the rankings.
IDLE = ("(idle)", "", "")

FunctionKey = tuple[str, str, str]


@dataclasses.dataclass
class FunctionCounts:
    """Sample counts of one profile (or many, added up)."""

    samples: int = 0
    idle: int = 0
    #: function key -> [self samples, total samples]
    functions: dict[FunctionKey, list[int]] = dataclasses.field(default_factory=dict)

    def add(self, other: FunctionCounts) -> None:
        self.samples += other.samples
        self.idle += other.idle
        for key, (s, t) in other.functions.items():
            mine = self.functions.get(key)
            if mine is None:
                self.functions[key] = [s, t]
            else:
                mine[0] += s
                mine[1] += t


def counted_threads(profile: Profile) -> str | None:
    """The thread whose samples count (the transaction's), or None for every thread."""
    return profile.active_thread_id if profile.transaction_event_id else None


def _selected(profile: Profile, thread: str | None) -> Iterable[int]:
    for _ts, tid, stack in profile.samples:
        if thread is None or tid == thread:
            yield stack


def function_counts(profile: Profile, thread: str | None = None) -> FunctionCounts:
    """Self and total samples per function over the samples of ``thread`` (None: all threads).

    The stacks of a profiler's own sampling thread are skipped entirely: that thread is the
    profiler sleeping between samples, not part of the application.
    """
    out = FunctionCounts()
    per_stack: dict[int, tuple[FunctionKey | None, list[FunctionKey]] | None] = {}
    frames = profile.frames
    for stack in _selected(profile, thread):
        entry = per_stack.get(stack, ...)
        if entry is ...:
            ids = profile.stacks[stack]
            if ids and in_profiler([frames[i].module for i in ids]):
                entry = None
            else:
                keys = list(dict.fromkeys(frames[i].key for i in ids))
                leaf = frames[ids[0]] if ids else None
                own = None if leaf is None or is_idle(leaf.module, leaf.function) else leaf.key
                entry = (own, keys)
            per_stack[stack] = entry
        if entry is None:
            continue
        own, keys = entry
        out.samples += 1
        if own is None:
            out.idle += 1
        functions = out.functions
        for key in keys:
            counts = functions.get(key)
            if counts is None:
                if len(functions) >= MAX_FUNCTIONS:
                    key = OTHER
                    counts = functions.setdefault(OTHER, [0, 0])
                else:
                    counts = functions[key] = [0, 0]
            counts[1] += 1
            if key == own:
                counts[0] += 1
    return out


@dataclasses.dataclass
class Node:
    """One frame of a flame graph: its samples with everything it called (total) and alone (self)."""

    function: str
    module: str
    file: str
    total: int = 0
    self_count: int = 0
    children: dict[FunctionKey, Node] = dataclasses.field(default_factory=dict)

    def child(self, frame: Frame) -> Node:
        node = self.children.get(frame.key)
        if node is None:
            node = self.children[frame.key] = Node(frame.function, frame.module, frame.file)
        return node

    def sorted_children(self) -> list[Node]:
        """Children in a fixed order (by name), so a path of indexes names one node for good."""
        return [self.children[k] for k in sorted(self.children)]

    def to_json(self, depth: int = 0, max_depth: int = 128) -> dict[str, Any]:
        out: dict[str, Any] = {
            "function": self.function,
            "module": self.module,
            "file": self.file,
            "total": self.total,
            "self": self.self_count,
        }
        if depth < max_depth:
            out["children"] = [c.to_json(depth + 1, max_depth) for c in self.sorted_children()]
        return out


def flame_tree(profiles: Iterable[Profile], *, all_threads: bool = False) -> Node:
    """The merged call tree of ``profiles``: for a transaction's profile, its thread's samples."""
    root = Node("(root)", "", "")
    for profile in profiles:
        thread = None if all_threads else counted_threads(profile)
        frames = profile.frames
        paths: dict[int, list[Node] | None] = {}
        for stack in _selected(profile, thread):
            path = paths.get(stack, ...)
            if path is ...:
                ids = profile.stacks[stack]
                if ids and in_profiler([frames[i].module for i in ids]):
                    path = None
                else:
                    path = []
                    node = root
                    for i in reversed(ids):  # stacks are leaf first: walk from the root
                        node = node.child(frames[i])
                        path.append(node)
                paths[stack] = path
            if path is None:
                continue
            root.total += 1
            for node in path:
                node.total += 1
            if path:
                path[-1].self_count += 1
            else:
                root.self_count += 1
    return root
