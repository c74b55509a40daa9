"""``class X(NamedTuple)`` without importing :mod:`typing` at run time.

``typing`` costs about 3 ms of CPU to import, a fifth of ``import tripwire; tripwire.init(dsn)``, and
the SDK only needs it for type checkers. Its ``NamedTuple`` also compiles every (string) annotation
into a ``ForwardRef``, which nobody here reads. Modules that declare immutable records therefore say::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from ._namedtuple import NamedTuple

so that mypy checks the real ``typing.NamedTuple`` while the interpreter builds the same
``collections.namedtuple`` class (fields in annotation order, defaults, methods and docstring from the
class body) as ``typing.NamedTuple`` would. Only what the SDK uses is supported: no generics, no
subclassing of a record, no ``NamedTuple("X", [...])`` call form.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

__all__ = ["NamedTuple"]

# Called with names only known at run time, which mypy's namedtuple() special case rejects.
_make_record: Callable[..., type] = collections.namedtuple

# What namedtuple() makes and a class body must not replace (the same list as typing's).
_PROHIBITED = frozenset(
    {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults", "_make",
     "_replace", "_asdict", "_source"}
)
# Class-body entries that are not attributes of the record.
_SPECIAL = frozenset({"__module__", "__qualname__", "__annotations__"})


class _NamedTupleMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, object]) -> type:
        if not bases:  # the NamedTuple base below
            return super().__new__(mcs, name, bases, namespace)
        if bases != (NamedTuple,):
            raise TypeError(f"{name}: a NamedTuple can only derive from NamedTuple")
        annotations = namespace.get("__annotations__", {})
        assert isinstance(annotations, dict)
        fields = list(annotations)
        defaults = [namespace[field] for field in fields if field in namespace]
        if any(field not in namespace for field in fields[len(fields) - len(defaults) :]):
            raise TypeError(f"{name}: fields without a default cannot follow fields with one")
        cls = _make_record(name, fields, defaults=defaults, module=namespace["__module__"])
        cls.__annotations__ = annotations
        for key, value in namespace.items():
            if key in _PROHIBITED:
                raise AttributeError(f"{name}: cannot overwrite NamedTuple attribute {key}")
            if key not in _SPECIAL and key not in annotations:
                setattr(cls, key, value)
        cls.__qualname__ = str(namespace.get("__qualname__", name))
        return cls


class NamedTuple(metaclass=_NamedTupleMeta):
    """Base class for records; see the module docstring."""
