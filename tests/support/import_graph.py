"""The import graph of a package, read from its source, and the cycles in it.

Used by the import-cycle tests of both distributions (tests/sdk/test_import_graph.py for
``tripwire``, server/tests/test_import_graph.py for ``tripwire_server``).

Every import counts: at module level, inside functions (deferred) and under ``if TYPE_CHECKING:``,
since a type-only import is a dependency too. A package's ``__init__`` is the node of the package:
importing ``pkg.x`` also runs ``pkg/__init__.py``, but that is Python's doing, not a dependency
``x`` declares. Imports of modules outside the package are not edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

#: module -> {module it imports: line of the first such import}
Graph = Mapping[str, Mapping[str, int]]


def _modules(root: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[tuple[str, int]]:
    """(module imported, line) for every import of a known module in ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target not in known:
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                # ``from . import _scope`` imports the submodule; ``from ._x import y``, module _x.
                yield (submodule if submodule in known else target), node.lineno


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """module -> {module it imports: line of the first such import}, for the package at ``root``."""
    known = _modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, path in known.items():
        edges: dict[str, int] = {}
        for target, line in _imports(name, path, known):
            if target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (a depth-first search for a back edge)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, {})):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def tangles(graph: Graph) -> list[frozenset[str]]:
    """The groups of modules that import each other, directly or not (strongly connected
    components of more than one module), sorted by their first module."""
    groups = []
    remaining = dict(graph)
    while (cycle := find_cycle(remaining)) is not None:
        group = set(cycle)
        # Grow the group to every module that both reaches it and is reached from it.
        reach_from = _reachable(remaining, group)
        reversed_graph: dict[str, set[str]] = {}
        for source, targets in remaining.items():
            for target in targets:
                reversed_graph.setdefault(target, set()).add(source)
        reach_to = _reachable(reversed_graph, group)
        group = reach_from & reach_to
        groups.append(frozenset(group))
        remaining = {
            m: {t: n for t, n in edges.items() if t not in group}
            for m, edges in remaining.items()
            if m not in group
        }
    return sorted(groups, key=min)


def _reachable(graph: Mapping[str, Mapping[str, object] | set[str]], start: set[str]) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def describe(cycle: list[str], graph: Graph) -> str:
    """``a (line 3) -> b (line 7) -> a``: the cycle with the line of each import."""
    steps = (f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False))
    return " -> ".join(steps) + f" -> {cycle[-1]}"
