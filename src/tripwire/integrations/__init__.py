"""Integrations hook tripwire into the process: logging, excepthooks, threads, asyncio, outgoing HTTP.

None is installed at import time. :func:`tripwire.init` installs the defaults (unless
``default_integrations=False``) and :func:`tripwire.close` restores what was there before. Turn one off
by name, or configure it by passing an instance::

    tripwire.init(
        dsn,
        disabled_integrations=["stdlib"],
        integrations=[LoggingIntegration(breadcrumb_level=logging.DEBUG, event_level=logging.WARNING)],
    )

Names: ``logging``, ``excepthook``, ``threading``, ``asyncio``, ``stdlib``, ``httpx``, ``aiohttp``,
``tornado``, ``sanic``, ``context``, ``celery``, ``rq``; ``sqlite3``, ``psycopg``, ``asyncpg``,
``redis``, ``sqlalchemy`` (spans: installed only when tracing is on).
Integrations for libraries the app may never use (asyncio, http.client, httpx) patch them only once the
app imports them, so ``init()`` imports none of them; for six of them (:data:`_ON_IMPORT`) ``init()``
does not even import the integration's own module before that.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from .._log import logger
from ._common import Integration
from ._imports import when_imported

if TYPE_CHECKING:
    from .._options import Options
    from .aiohttp import AiohttpIntegration as AiohttpIntegration
    from .asyncio import AsyncioIntegration as AsyncioIntegration
    from .asyncpg import AsyncpgIntegration as AsyncpgIntegration
    from .celery import CeleryIntegration as CeleryIntegration
    from .context import ContextIntegration as ContextIntegration
    from .excepthook import ExcepthookIntegration as ExcepthookIntegration
    from .httpx import HttpxIntegration as HttpxIntegration
    from .logging import LoggingIntegration as LoggingIntegration
    from .modules import ArgvIntegration as ArgvIntegration
    from .modules import ModulesIntegration as ModulesIntegration
    from .psycopg import PsycopgIntegration as PsycopgIntegration
    from .redis import RedisIntegration as RedisIntegration
    from .rq import RqIntegration as RqIntegration
    from .sanic import SanicIntegration as SanicIntegration
    from .session import ProcessSessionIntegration as ProcessSessionIntegration
    from .sqlalchemy import SqlalchemyIntegration as SqlalchemyIntegration
    from .sqlite import SqliteIntegration as SqliteIntegration
    from .stdlib import StdlibIntegration as StdlibIntegration
    from .threading import ThreadingIntegration as ThreadingIntegration
    from .tornado import TornadoIntegration as TornadoIntegration

__all__ = [
    "DEFAULT_INTEGRATIONS",
    "AiohttpIntegration",
    "ArgvIntegration",
    "AsyncioIntegration",
    "AsyncpgIntegration",
    "CeleryIntegration",
    "ContextIntegration",
    "ExcepthookIntegration",
    "HttpxIntegration",
    "Integration",
    "LoggingIntegration",
    "ModulesIntegration",
    "ProcessSessionIntegration",
    "PsycopgIntegration",
    "RedisIntegration",
    "RqIntegration",
    "SanicIntegration",
    "SqlalchemyIntegration",
    "SqliteIntegration",
    "StdlibIntegration",
    "ThreadingIntegration",
    "TornadoIntegration",
    "installed",
]

#: The integrations on by default: name -> (module, class). Imported only by init().
DEFAULT_INTEGRATIONS: dict[str, tuple[str, str]] = {
    "context": ("tripwire.integrations.context", "ContextIntegration"),
    "logging": ("tripwire.integrations.logging", "LoggingIntegration"),
    "excepthook": ("tripwire.integrations.excepthook", "ExcepthookIntegration"),
    "threading": ("tripwire.integrations.threading", "ThreadingIntegration"),
    "asyncio": ("tripwire.integrations.asyncio", "AsyncioIntegration"),
    "stdlib": ("tripwire.integrations.stdlib", "StdlibIntegration"),
    "httpx": ("tripwire.integrations.httpx", "HttpxIntegration"),
    "aiohttp": ("tripwire.integrations.aiohttp", "AiohttpIntegration"),
    "tornado": ("tripwire.integrations.tornado", "TornadoIntegration"),
    "sanic": ("tripwire.integrations.sanic", "SanicIntegration"),
    "celery": ("tripwire.integrations.celery", "CeleryIntegration"),
    "rq": ("tripwire.integrations.rq", "RqIntegration"),
    "sqlite3": ("tripwire.integrations.sqlite", "SqliteIntegration"),
    "psycopg": ("tripwire.integrations.psycopg", "PsycopgIntegration"),
    "asyncpg": ("tripwire.integrations.asyncpg", "AsyncpgIntegration"),
    "redis": ("tripwire.integrations.redis", "RedisIntegration"),
    "sqlalchemy": ("tripwire.integrations.sqlalchemy", "SqlalchemyIntegration"),
}

#: Default integrations that only record spans: installed only when the options turn tracing on, so
#: that without tracing none of their imports is even watched.
_TRACING_ONLY = frozenset({"sqlite3", "psycopg", "asyncpg", "redis", "sqlalchemy"})

#: Integrations that exist but are only installed when passed in ``integrations=[...]``.
_OPTIONAL = frozenset({"process_session", "modules", "argv"})

#: Default integrations that do nothing but wait for one module of their library (the one their
#: install() watches): init() watches that module itself and imports the integration's own module
#: only once the app imports it. Importing these six at init was 4 % of the instructions of import +
#: init (callgrind).
_ON_IMPORT: dict[str, str] = {
    "stdlib": "http.client",
    "httpx": "httpx",
    "aiohttp": "aiohttp.client",
    "sanic": "sanic.handlers.error",
    "celery": "celery",
    "rq": "rq.worker",
}

_installed: list[Integration] = []


class _OnImport(Integration):
    """A default integration of :data:`_ON_IMPORT`, made and installed when its module is imported."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._integration: Integration | None = None
        self._cancel: Callable[[], None] | None = None

    def install(self) -> None:
        self._cancel = when_imported(_ON_IMPORT[self.name], self._install_now)

    def _install_now(self, module: ModuleType) -> None:
        self._cancel = None
        integration = _load(self.name)()
        integration.install()  # watches the module just imported: acts on it at once
        self._integration = integration

    def uninstall(self) -> None:
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()
        integration, self._integration = self._integration, None
        if integration is not None:
            integration.uninstall()

    def __repr__(self) -> str:
        return f"<{DEFAULT_INTEGRATIONS[self.name][1]} {self.name!r}, on import of {_ON_IMPORT[self.name]}>"


def _identifier(integration: Integration) -> str:
    return integration.name if isinstance(integration, _OnImport) else integration.identifier


def _load(name: str) -> type[Integration]:
    module, attr = DEFAULT_INTEGRATIONS[name]
    # __import__ with a fromlist returns the submodule itself; importlib.import_module would do the
    # same but importing importlib (and warnings) costs init() 0.3 ms.
    cls: type[Integration] = getattr(__import__(module, fromlist=[attr]), attr)
    return cls


def __getattr__(name: str) -> Any:
    # ``from tripwire.integrations import LoggingIntegration`` without importing all of them.
    for key, (_module, attr) in DEFAULT_INTEGRATIONS.items():
        if attr == name:
            return _load(key)
    if name in ("ModulesIntegration", "ArgvIntegration"):
        from . import modules

        return getattr(modules, name)
    if name == "ProcessSessionIntegration":
        from .session import ProcessSessionIntegration

        return ProcessSessionIntegration
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve(options: Options) -> list[Integration]:
    """The integrations ``options`` ask for, in install order; ConfigurationError if one is wrong."""
    disabled = set(options.disabled_integrations)
    given: dict[str, Integration] = {}
    for item in options.integrations:
        if isinstance(item, type) and issubclass(item, Integration):
            item = item()
        if not isinstance(item, Integration):
            raise ConfigurationError(f"integrations: expected Integration objects, got {item!r}")
        if not item.identifier:
            raise ConfigurationError(f"integrations: {item!r} has no identifier")
        given[item.identifier] = item
    known = {*DEFAULT_INTEGRATIONS, *_OPTIONAL}
    unknown = disabled - known - set(given)
    if unknown:
        raise ConfigurationError(
            f"disabled_integrations: unknown name {sorted(unknown)[0]!r}; known: {', '.join(sorted(known))}"
        )
    chosen: dict[str, Integration] = {}
    if options.default_integrations:
        for name in DEFAULT_INTEGRATIONS:
            if name in _TRACING_ONLY and not options.tracing:
                continue
            if name not in disabled and name not in given:
                chosen[name] = _OnImport(name) if name in _ON_IMPORT else _load(name)()
    for name, item in given.items():
        if name not in disabled:
            chosen[name] = item
    return list(chosen.values())


def prepare(options: Options, *, release_given: bool) -> tuple[Options, list[Integration]]:
    """What init() needs before it creates the client: the integrations, and the detected release."""
    integrations = resolve(options)
    if not release_given and options.release is None:
        from .context import ContextIntegration, detect_release

        for integration in integrations:
            if isinstance(integration, ContextIntegration) and integration.detect_release:
                release = detect_release()
                if release:
                    options = options._replace(release=release)
    return options, integrations


def install(integrations: list[Integration]) -> None:
    """Uninstall whatever is installed, then install ``integrations``; failures are logged."""
    uninstall()
    for integration in integrations:
        try:
            integration.install()
        except Exception:
            logger.exception("tripwire: could not install %r; it stays off", integration)
            continue
        _installed.append(integration)


def uninstall() -> None:
    """Uninstall every installed integration, newest first, restoring the previous hooks."""
    while _installed:
        integration = _installed.pop()
        try:
            integration.uninstall()
        except Exception:
            logger.exception("tripwire: could not uninstall %r", integration)


def installed() -> list[str]:
    """The identifiers of the integrations installed now, in install order."""
    return [_identifier(integration) for integration in _installed]
