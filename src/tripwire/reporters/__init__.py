"""Reporters: one module per backend, found by entry point name (group ``tripwire.reporters``).

Built in: ``sentry`` (Sentry envelopes), ``bugsnag``, ``raygun``, ``logging`` and ``capture`` (tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _deferred
from .._exceptions import ConfigurationError
from .base import Reporter

__all__ = ["Reporter", "create_reporter", "load_backend"]

ENTRY_POINT_GROUP = "tripwire.reporters"

# Built-in backends resolve without importlib.metadata, which costs ~15 ms to import (see _deferred).
_BUILTIN = {
    "sentry": ("tripwire.reporters.sentry", "SentryReporter"),
    "bugsnag": ("tripwire.reporters.bugsnag", "BugsnagReporter"),
    "raygun": ("tripwire.reporters.raygun", "RaygunReporter"),
    "logging": ("tripwire.reporters.logging", "LoggingReporter"),
    "capture": ("tripwire.reporters.capture", "CaptureReporter"),
}


def load_backend(name: str) -> type[Reporter]:
    """The reporter class registered under ``name`` (built in, or an installed entry point)."""
    if name in _BUILTIN:
        module, attr = _BUILTIN[name]
        cls = getattr(__import__(module, fromlist=[attr]), attr)  # the submodule, without importlib
    else:
        found = [ep for ep in _deferred.entry_points(ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            raise ConfigurationError(
                f"reporters: no backend named {name!r} (entry point group {ENTRY_POINT_GROUP!r})"
            )
        cls = found[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Reporter)):
        raise ConfigurationError(f"reporters: backend {name!r} is not a tripwire Reporter class")
    return cls


def create_reporter(spec: Any) -> Reporter:
    """A reporter from an instance, or from ``{"backend": name, **options}``."""
    if isinstance(spec, Reporter):
        return spec
    if isinstance(spec, Mapping):
        config = dict(spec)
        backend = config.pop("backend", None)
        if not isinstance(backend, str):
            raise ConfigurationError(f"reporters: a config dict needs a 'backend' name: {spec!r}")
        cls = load_backend(backend)
        try:
            return cls(**config)
        except ConfigurationError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"reporters: backend {backend!r}: {exc}") from None
    raise ConfigurationError(f"reporters: expected a Reporter or a config dict with 'backend', got {spec!r}")
