"""Turn arbitrary Python objects into bounded, JSON-safe data. Never raises.

Runs on the worker. Whatever users put into extras, contexts, tags, breadcrumbs or their local
variables — cycles, objects whose ``__repr__``/``__str__`` raise, bytes, lone surrogates, huge or
deeply nested containers, NaN, objects from C extensions — comes out as ``None``/``bool``/``int``/
``float``/``str``/``list``/``dict`` that ``json.dumps(..., allow_nan=False)`` accepts.

Limits (documented in docs/events.md), each recorded in the event's ``_meta`` the way Sentry does it,
so a reader knows what is missing::

    strings      max_value_length characters (option, 1024)   {"len": n, "rem": [["!limit", "s", a, b]]}
    containers   MAX_BREADTH items per mapping or sequence     {"len": n}
    nesting      MAX_DEPTH levels; deeper: "<dict of 3 items>"  {"rem": [["!limit", "x"]]}
    cycles       a container inside itself becomes "<cyclic>"
    failures     an object that cannot be represented becomes "<unrepresentable T>"
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from itertools import islice
from typing import Any, Protocol

from . import _deferred


class KeyScrubber(Protocol):
    """What the serializer needs of a scrubber (``_scrub.Scrubber``) to scrub in the same pass."""

    def is_sensitive_key(self, key: str) -> bool: ...

    def scrub_text(self, text: str) -> str: ...


#: Items kept per mapping or sequence.
MAX_BREADTH = 50
#: Container levels kept below the field being serialized (extra["a"]["b"]... counts from "a").
MAX_DEPTH = 6
#: Characters kept of a mapping key.
MAX_KEY_LENGTH = 256
FILTERED = "[Filtered]"
# Containers shown item by item (bounded). Dict views and arrays are here too: their repr is built
# from every element, which for a million-element one would cost the worker a long, useless string.
# (array.array is checked apart, through _deferred: importing ``array`` is not worth it at import.)
_SEQUENCES = frozenset(
    {list, tuple, set, frozenset, deque, type({}.keys()), type({}.values()), type({}.items())}
)
_INF = float("inf")
#: Integers outside this range become strings: JSON readers lose precision beyond 64 bits.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1

Meta = dict[str, "Any"]  # quoted: Any is imported for type checkers only
"""The ``_meta`` tree: same keys as the event, annotations under the key ``""``."""


def add_meta(meta: Meta, path: tuple[str, ...], **info: Any) -> None:
    """Record ``info`` (``len``, ``rem``) for the value at ``path`` in the ``_meta`` tree."""
    node = meta
    for part in path:
        if type(part) is not str or not part.isascii():
            part = safe_str(part, MAX_KEY_LENGTH)  # the same cleaning the data's keys got
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    note = node.setdefault("", {})
    rem = info.pop("rem", None)
    note.update(info)
    if rem:
        note.setdefault("rem", []).extend(rem)


def type_name(value: Any) -> str:
    try:
        cls = type(value)
        return f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__qualname__
    except Exception:
        return "object"


def clean_str(text: str, limit: int) -> str:
    """``text`` as a plain, UTF-8-encodable str of at most ``limit`` characters (no _meta)."""
    if type(text) is not str:
        text = str.__str__(text)
    if len(text) > limit:
        text = text[: max(limit - 3, 0)] + "..."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be encoded; show them escaped instead of failing the event.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def safe_repr(value: Any, limit: int) -> str:
    """``repr(value)``, bounded and never raising."""
    try:
        text = repr(value)
        if not isinstance(text, str):
            raise TypeError("__repr__ returned a non-string")
    except Exception as exc:
        try:
            text = f"<{type_name(value)} object (repr failed: {type(exc).__name__})>"
        except Exception:
            text = "<unrepresentable object>"
    return clean_str(text, limit)


def safe_str(value: Any, limit: int) -> str:
    """``str(value)``, bounded and never raising; falls back to the repr."""
    if type(value) is str:
        return clean_str(value, limit)
    try:
        text = str(value)
        if not isinstance(text, str):
            raise TypeError("__str__ returned a non-string")
    except Exception:
        return safe_repr(value, limit)
    return clean_str(text, limit)


class Serializer:
    """Serializes values against one ``_meta`` tree; see the module docstring for the limits."""

    __slots__ = ("max_breadth", "max_depth", "max_string", "meta", "scrubber")

    def __init__(
        self,
        meta: Meta | None,
        *,
        max_string: int = 1024,
        max_depth: int = MAX_DEPTH,
        max_breadth: int = MAX_BREADTH,
        scrubber: KeyScrubber | None = None,
    ) -> None:
        self.meta = meta
        self.max_string = max_string
        self.max_depth = max_depth
        self.max_breadth = max_breadth
        #: When set, scrubbing happens in the same pass: values under sensitive keys are never even
        #: represented, and every string is searched for secrets before it is cut.
        self.scrubber = scrubber

    def note(self, path: tuple[str, ...], **info: Any) -> None:
        """Record ``info`` in ``_meta`` at ``path`` (nothing when this serializer keeps no notes)."""
        if self.meta is not None:
            add_meta(self.meta, path, **info)

    def serialize(self, value: Any, path: tuple[str, ...]) -> Any:
        """The JSON-safe form of ``value``; annotations go to ``_meta`` at ``path``."""
        return self._node(value, path, 0, set())

    def string(self, value: Any, path: tuple[str, ...], limit: int | None = None) -> str:
        """``str(value)`` bounded to ``limit`` (default max_value_length), truncation in ``_meta``."""
        limit = limit or self.max_string
        text = value if type(value) is str else safe_str(value, limit * 4)
        return self._str(text, path, limit)

    def _str(self, text: str, path: tuple[str, ...], limit: int | None = None) -> str:
        limit = limit or self.max_string
        if type(text) is not str:
            text = str.__str__(text)
        if len(text) > limit:
            self.note(path, len=len(text), rem=[["!limit", "s", limit - 3, limit]])
            # Keep a margin past the cut, so a secret straddling it is still recognised below.
            text = text[: limit + 256]
        if self.scrubber is not None:
            text = self.scrubber.scrub_text(text)
        return clean_str(text, limit)

    def _node(self, value: Any, path: tuple[str, ...], depth: int, active: set[int]) -> Any:
        try:
            return self._convert(value, path, depth, active)
        except Exception:
            return f"<unrepresentable {type_name(value)}>"

    def _convert(self, value: Any, path: tuple[str, ...], depth: int, active: set[int]) -> Any:
        cls = type(value)
        if value is None or cls is bool:
            return value
        if cls is str:
            return self._str(value, path)
        if cls is int:
            if _INT_MIN <= value <= _INT_MAX:
                return value
            return f"<int of {value.bit_length()} bits>" if value.bit_length() > 4000 else str(value)
        if cls is float:
            return value if -_INF < value < _INF else repr(value)  # false for nan and the infinities
        if isinstance(value, str):  # a str subclass: its __str__ may be overridden, take the data
            return self._str(str.__str__(value), path)
        if cls is bytes or cls is bytearray:
            raw = bytes(value[: self.max_string * 4])
            text = raw.decode("utf-8", "backslashreplace")
            if len(value) > len(raw):
                self.note(path, len=len(value), rem=[["!limit", "s", len(text), len(text)]])
            return self._str(text, path)
        if cls is dict:
            is_mapping, is_sequence = True, False
        elif cls in _SEQUENCES:
            is_mapping, is_sequence = False, True
        else:
            # The ABC check is slow, and most values here are plain objects: look for items() first.
            is_mapping = getattr(cls, "items", None) is not None and isinstance(value, Mapping)
            is_sequence = not is_mapping and isinstance(
                value, (list, tuple, set, frozenset, deque, _deferred.array_type())
            )
        if not (is_mapping or is_sequence):
            return self._str(safe_repr(value, self.max_string * 4), path)
        if id(value) in active:
            return "<cyclic>"
        if depth >= self.max_depth:
            # A summary, not the repr: a repr would show the values under sensitive keys in a shape
            # the text rules cannot reliably cut ({'password': {'nested': 'secret'}}).
            self.note(path, rem=[["!limit", "x"]])
            return f"<{type_name(value)} of {len(value)} items>"
        active.add(id(value))
        try:
            if is_mapping:
                return self._mapping(value, path, depth, active)
            return self._sequence(value, path, depth, active)
        finally:
            active.discard(id(value))

    def _mapping(
        self, value: Mapping[Any, Any], path: tuple[str, ...], depth: int, active: set[int]
    ) -> dict[str, Any]:
        # For a real dict, islice over dict.items runs in C without releasing the GIL, so another
        # thread changing the dict cannot break the iteration halfway.
        items_view = dict.items(value) if isinstance(value, dict) else value.items()
        items = list(islice(items_view, self.max_breadth))
        size = len(value)
        if size > len(items):
            self.note(path, len=size)
        out: dict[str, Any] = {}
        limit = self.max_string
        scrubber = self.scrubber
        for key, item in items:
            if type(key) is str and len(key) <= MAX_KEY_LENGTH and key.isascii():
                name = key
            elif isinstance(key, str | int | float | bool) or key is None:
                name = safe_str(key, MAX_KEY_LENGTH)
            else:
                name = safe_repr(key, MAX_KEY_LENGTH)
            cls = type(item)
            empty = item is None or (cls is str and not item)  # no ==: an object's __eq__ may raise
            if scrubber is not None and not empty and scrubber.is_sensitive_key(name):
                out[name] = FILTERED
                self.note((*path, name), rem=[["!filter", "s"]])
            # Fast path for the common plain values (no function call, no path tuple).
            elif item is None or cls is bool or (cls is int and _INT_MIN <= item <= _INT_MAX):
                out[name] = item
            elif cls is str and len(item) <= limit and item.isascii():
                out[name] = item if scrubber is None else scrubber.scrub_text(item)
            else:
                out[name] = self._node(item, (*path, name), depth + 1, active)
        return out

    def _sequence(self, value: Any, path: tuple[str, ...], depth: int, active: set[int]) -> list[Any]:
        if isinstance(value, list | tuple):
            items = list(value[: self.max_breadth])
        else:
            items = list(islice(value, self.max_breadth))
        size = len(value)
        if size > len(items):
            self.note(path, len=size)
        out: list[Any] = []
        limit = self.max_string
        for i, item in enumerate(items):
            cls = type(item)
            if item is None or cls is bool or (cls is int and _INT_MIN <= item <= _INT_MAX):
                out.append(item)
            elif cls is str and len(item) <= limit and item.isascii():
                out.append(item if self.scrubber is None else self.scrubber.scrub_text(item))
            else:
                out.append(self._node(item, (*path, str(i)), depth + 1, active))
        return out


__all__ = ["MAX_BREADTH", "MAX_DEPTH", "Meta", "Serializer", "add_meta", "clean_str", "safe_repr", "safe_str"]
