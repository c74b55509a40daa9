"""Run a function right after a module is imported, or now if it already is.

Integrations patch libraries (asyncio, http.client, httpx, concurrent.futures) only when the
application uses them: importing them ourselves would cost the app tens of milliseconds at start and
pull in code it never runs. Python has no post-import hook, so a finder at the front of
``sys.meta_path`` notices when a watched module is about to load, lets the real finder locate it, and
wraps its loader so the callbacks run once the module body has executed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .._log import logger

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec  # importlib imports warnings: 0.3 ms at init

Callback = Callable[[ModuleType], None]


class _Loader:
    """Wraps the real loader of a watched module; only ``exec_module`` does anything extra."""

    def __init__(self, loader: Any, finder: _PostImportFinder) -> None:
        self._loader = loader
        self._finder = finder

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        result: ModuleType | None = self._loader.create_module(spec)
        return result

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back first, so inspect, importlib.resources and pkgutil see it.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        self._finder.fire(module.__name__, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _PostImportFinder:
    """A meta path finder that never finds anything itself; it only watches."""

    def __init__(self) -> None:
        self.watched: dict[str, list[Callback]] = {}
        self._local = threading.local()

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in self.watched or getattr(self._local, "busy", False):
            return None
        self._local.busy = True
        try:
            spec: ModuleSpec | None = None
            for finder in sys.meta_path:
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                found: Any = find(name, path, target)
                if found is not None:
                    spec = found
                    break
        finally:
            self._local.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, self)  # type: ignore[assignment,unused-ignore]
        return spec

    def fire(self, name: str, module: ModuleType) -> None:
        with _lock:
            callbacks = self.watched.pop(name, [])
            if not self.watched and self is _finder:
                _remove_finder()
        for callback in callbacks:
            _call(callback, module)


_finder: _PostImportFinder | None = None
_lock = threading.Lock()


def _remove_finder() -> None:
    global _finder
    finder, _finder = _finder, None
    if finder is not None:
        try:
            sys.meta_path.remove(finder)
        except ValueError:
            pass


def _call(callback: Callback, module: ModuleType) -> None:
    try:
        callback(module)
    except Exception:
        logger.exception("tripwire: could not set up the integration for %s", module.__name__)


def when_imported(name: str, callback: Callback) -> Callable[[], None]:
    """Call ``callback(module)`` now if ``name`` is imported, else right after its first import.

    Returns a function that cancels the callback if it has not run yet.
    """
    global _finder
    module = sys.modules.get(name)
    if module is not None:
        _call(callback, module)
        return _noop
    with _lock:
        if _finder is None:
            _finder = _PostImportFinder()
            sys.meta_path.insert(0, _finder)
        finder = _finder
        finder.watched.setdefault(name, []).append(callback)

    def cancel() -> None:
        with _lock:
            callbacks = finder.watched.get(name)
            if callbacks and callback in callbacks:
                callbacks.remove(callback)
                if not callbacks:
                    del finder.watched[name]
            if not finder.watched and finder is _finder:
                _remove_finder()

    return cancel


def _noop() -> None:
    pass


def watching() -> list[str]:
    """The module names still waited for (for tests and debugging)."""
    finder = _finder
    return sorted(finder.watched) if finder is not None else []
