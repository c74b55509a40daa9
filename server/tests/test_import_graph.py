"""The collector's modules and import cycles among them, read from the source (as for the SDK in
tests/sdk/test_import_graph.py, with the same reader, tests/support/import_graph.py).

Two tangles remain from before the split; issue 12 part 4 (state in its own module, one repository per
concern in the store) removes them. The test names them exactly, so that a new cycle fails it, and so
does a tangle that has been undone without being taken off the list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tripwire_server
from tests.support.import_graph import describe, find_cycle, import_graph, tangles

SOURCE = Path(tripwire_server.__file__).parent

#: Modules that import ``app`` for ``CollectorState`` while ``app`` imports them to compose the app.
APP_TANGLE = frozenset(
    f"tripwire_server.{m}"
    for m in (
        "api", "api_alerts", "api_feedback", "api_logs", "api_performance", "api_profiling", "app",
        "bugsnag_ingest", "digest", "ingest", "otlp_ingest",
    )
)
#: ``store._sql`` composes the store from mixins that import ``_sql`` back (for ``Cursor`` and helpers).
STORE_TANGLE = frozenset(
    f"tripwire_server.store.{m}"
    for m in (
        "_accounts", "_alerts", "_batch_writer", "_feedback", "_logs", "_monitors", "_performance",
        "_project_access", "_sql",
    )
)
KNOWN = [APP_TANGLE, STORE_TANGLE]


def test_the_only_import_cycles_among_the_collector_modules_are_the_two_known_tangles() -> None:
    """Outside the two named tangles no collector module imports a module that imports it back."""
    graph = import_graph(SOURCE)
    assert len(graph) > 60 and "tripwire_server.cli" in graph and "tripwire_server.web" in graph
    found = tangles(graph)
    new = [sorted(group) for group in found if group not in KNOWN]
    outside = {m: {t: n for t, n in e.items() if t not in APP_TANGLE | STORE_TANGLE}
               for m, e in graph.items() if m not in APP_TANGLE | STORE_TANGLE}
    cycle = find_cycle(outside)
    assert cycle is None, "import cycle: " + describe(cycle, graph)
    assert not new, f"new import tangles: {new}"
    assert found == sorted(KNOWN, key=min), "a known tangle changed: update KNOWN (and the docstring)"


def test_the_collector_never_reaches_into_a_module_above_its_package() -> None:
    """Every relative import of the collector stays inside tripwire_server (the SDK is imported by name)."""
    escapes = []
    for path in sorted(SOURCE.rglob("*.py")):
        depth = len(path.relative_to(SOURCE.parent).parts) - 1
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level > depth:
                escapes.append(f"{path.relative_to(SOURCE.parent)}:{node.lineno}")
    assert escapes == []
