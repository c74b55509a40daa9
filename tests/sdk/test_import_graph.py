"""The SDK's modules import downwards: no import cycle among them, read from the source.

Every import counts: at module level, inside functions (deferred) and under ``if TYPE_CHECKING:``,
since a type-only import is a dependency too.
A package's ``__init__`` is the node of the package: importing ``tripwire.x`` also runs
``tripwire/__init__.py``, but that is Python's doing, not a dependency ``x`` declares.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import tripwire

SOURCE = Path(tripwire.__file__).parent


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


def import_graph(root: Path = SOURCE) -> dict[str, dict[str, int]]:
    """module -> {module it imports: line of the first such import}."""
    known = _modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, path in known.items():
        edges: dict[str, int] = {}
        for target, line in _imports(name, path, known):
            if target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def find_cycle(graph: Mapping[str, Mapping[str, int]]) -> list[str] | None:
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


def _describe(cycle: list[str], graph: Mapping[str, Mapping[str, int]]) -> str:
    steps = (f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False))
    return " -> ".join(steps) + f" -> {cycle[-1]}"


def test_no_import_cycle_among_the_sdk_modules() -> None:
    """No module of the SDK imports, directly or not, a module that imports it back."""
    graph = import_graph()
    assert len(graph) > 30 and "tripwire._client" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + _describe(cycle, graph)


def test_a_cycle_is_found_and_named(tmp_path: Path) -> None:
    """The check sees cycles through deferred and type-only imports, and names the modules and lines."""
    package = tmp_path / "tripwire"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from ._a import A\n")
    (package / "_a.py").write_text("from . import _b\nA = 1\n")
    (package / "_b.py").write_text("def f():\n    from .sub import thing\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "thing.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import _a\n"
    )
    graph = import_graph(package)
    cycle = find_cycle(graph)
    assert cycle == ["tripwire._a", "tripwire._b", "tripwire.sub.thing", "tripwire._a"]
    assert _describe(cycle, graph) == (
        "tripwire._a (line 1) -> tripwire._b (line 2) -> tripwire.sub.thing (line 3) -> tripwire._a"
    )
    (package / "sub" / "thing.py").write_text("")
    assert find_cycle(import_graph(package)) is None
