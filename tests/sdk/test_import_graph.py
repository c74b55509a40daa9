"""The SDK's modules import downwards: no import cycle among them, read from the source.

Every import counts: at module level, inside functions (deferred) and under ``if TYPE_CHECKING:``,
since a type-only import is a dependency too (tests/support/import_graph.py reads them).
"""

from __future__ import annotations

from pathlib import Path

import tripwire
from tests.support.import_graph import describe, find_cycle, import_graph, tangles

SOURCE = Path(tripwire.__file__).parent


def test_no_import_cycle_among_the_sdk_modules() -> None:
    """No module of the SDK imports, directly or not, a module that imports it back."""
    graph = import_graph(SOURCE)
    assert len(graph) > 30 and "tripwire._client" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + describe(cycle, graph)


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
    assert describe(cycle, graph) == (
        "tripwire._a (line 1) -> tripwire._b (line 2) -> tripwire.sub.thing (line 3) -> tripwire._a"
    )
    assert tangles(graph) == [frozenset({"tripwire._a", "tripwire._b", "tripwire.sub.thing"})]
    (package / "sub" / "thing.py").write_text("")
    assert find_cycle(import_graph(package)) is None
    assert tangles(import_graph(package)) == []
