"""Objects named in configuration files, as asphalt configures them.

A reporter, hook or integration given in a file cannot be a Python object, so it is given by
reference: ``"package.module:attribute"`` (the attribute itself: a class, a function) or a dict
``{"type": "package.module:Class", "args": [...], "kwargs": {...}}`` (what calling it returns).
:func:`resolve` turns either into the object, and anything else is returned unchanged, so code that
passes objects keeps working. A wrong reference is a ``ConfigurationError`` naming the option.
"""

from collections.abc import Mapping
from typing import Any

from ._exceptions import ConfigurationError


def is_reference(value: Any) -> bool:
    """True for ``"module:attribute"`` strings and ``{"type": "module:attribute", ...}`` dicts."""
    if isinstance(value, str):
        module, sep, attr = value.partition(":")
        return bool(sep and module and attr) and " " not in value
    return isinstance(value, Mapping) and isinstance(value.get("type"), str) and ":" in value["type"]


def load(reference: str, option: str) -> Any:
    """The object ``"package.module:attr.sub"`` names."""
    module_name, _, path = reference.partition(":")
    try:
        # __import__ with a fromlist returns the submodule itself (importlib costs an import).
        target: Any = __import__(module_name, fromlist=["_"])
        for part in path.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"{option}: cannot load {reference!r}: {exc}") from None
    return target


def resolve(value: Any, option: str) -> Any:
    """The object a reference names (called with its args for the dict form); other values as given."""
    if isinstance(value, str):
        if not is_reference(value):
            return value
        return load(value, option)
    if isinstance(value, Mapping) and is_reference(value):
        factory = load(value["type"], option)
        args = value.get("args") or ()
        kwargs = value.get("kwargs") or {}
        if not isinstance(args, list | tuple) or not isinstance(kwargs, Mapping):
            raise ConfigurationError(f"{option}: 'args' must be a list and 'kwargs' a mapping")
        try:
            return factory(*args, **dict(kwargs))
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ConfigurationError(f"{option}: calling {value['type']!r} failed: {exc!r}") from None
    return value
