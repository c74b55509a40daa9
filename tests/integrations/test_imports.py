"""The post-import hook that lets integrations patch libraries only once the app imports them."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tripwire.integrations import _imports


@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n.startswith("tw_probe")]:
        del sys.modules[name]


def test_callback_runs_after_the_module_body_and_finder_goes_away(module_dir: Path) -> None:
    """The callback sees the fully executed module; then the finder leaves sys.meta_path."""
    (module_dir / "tw_probe_a.py").write_text("VALUE = 41\ndef answer():\n    return VALUE + 1\n")
    seen: list[int] = []
    _imports.when_imported("tw_probe_a", lambda module: seen.append(module.answer()))
    assert "tw_probe_a" in _imports.watching()
    assert seen == []
    module = importlib.import_module("tw_probe_a")
    assert seen == [42]
    assert _imports.watching() == []
    assert not any(isinstance(f, _imports._PostImportFinder) for f in sys.meta_path)
    # The real loader is back in place: source introspection works.
    assert "VALUE = 41" in inspect.getsource(module)
    assert type(module.__loader__).__name__ == "SourceFileLoader"


def test_already_imported_module_runs_the_callback_at_once() -> None:
    """For a module already in sys.modules the callback runs immediately."""
    seen: list[ModuleType] = []
    _imports.when_imported("json", seen.append)
    assert seen == [sys.modules["json"]]


def test_cancel_before_import_means_no_callback(module_dir: Path) -> None:
    """A cancelled watch never fires (what close() does for modules the app never imported)."""
    (module_dir / "tw_probe_b.py").write_text("X = 1\n")
    seen: list[ModuleType] = []
    cancel = _imports.when_imported("tw_probe_b", seen.append)
    cancel()
    importlib.import_module("tw_probe_b")
    assert seen == []
    assert _imports.watching() == []


def test_failing_callback_does_not_break_the_import(module_dir: Path) -> None:
    """An exception in a callback is logged; the app's import still succeeds."""
    (module_dir / "tw_probe_c.py").write_text("OK = True\n")

    def broken(module: ModuleType) -> None:
        raise RuntimeError("integration bug")

    _imports.when_imported("tw_probe_c", broken)
    assert importlib.import_module("tw_probe_c").OK is True


def test_module_that_does_not_exist_still_raises_import_error() -> None:
    """Watching a missing module does not change the ImportError the app gets."""
    cancel = _imports.when_imported("tw_probe_missing", lambda module: None)
    try:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("tw_probe_missing")
    finally:
        cancel()
