"""The collector's modules import downwards: no import cycle among them, read from the source (as for
the SDK in tests/sdk/test_import_graph.py, with the same reader, tests/support/import_graph.py).

Every import counts, deferred and type-only ones included; a package's ``__init__`` is the node of
the package. docs/internal/COLLECTOR.md draws the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tripwire_server
from tests.support.import_graph import describe, find_cycle, import_graph, tangles

SOURCE = Path(tripwire_server.__file__).parent


def test_no_import_cycle_among_the_collector_modules() -> None:
    """No module of the collector imports, directly or not, a module that imports it back."""
    graph = import_graph(SOURCE)
    assert len(graph) > 60 and "tripwire_server.cli" in graph and "tripwire_server.store.database" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + describe(cycle, graph)
    assert tangles(graph) == []


def test_the_layers_point_down() -> None:
    """The store, the digest and shared state never import the HTTP layers above them."""
    graph = import_graph(SOURCE)
    upper = ("tripwire_server.ingest", "tripwire_server.api", "tripwire_server.web", "tripwire_server.app")
    for name, edges in graph.items():
        if name.startswith(("tripwire_server.store", "tripwire_server.digest", "tripwire_server.state")):
            wrong = sorted(t for t in edges if t.startswith(upper))
            assert not wrong, f"{name} imports {wrong} (line {edges[wrong[0]] if wrong else 0})"


def test_the_repositories_do_not_reach_into_the_store_or_a_backend() -> None:
    """The store's database layer and repositories import neither the store that composes them nor
    a backend (only ``open_store`` picks one)."""
    graph = import_graph(SOURCE)
    backends = {f"tripwire_server.store.{m}" for m in ("_store", "sqlite", "postgres")}
    for name, edges in graph.items():
        if name.startswith("tripwire_server.store.") and name not in backends:
            assert not backends & set(edges), f"{name} imports {sorted(backends & set(edges))}"


def test_the_collector_never_reaches_into_a_module_above_its_package() -> None:
    """Every relative import of the collector stays inside tripwire_server (the SDK is imported by name)."""
    escapes = []
    for path in sorted(SOURCE.rglob("*.py")):
        depth = len(path.relative_to(SOURCE.parent).parts) - 1
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level > depth:
                escapes.append(f"{path.relative_to(SOURCE.parent)}:{node.lineno}")
    assert escapes == []
