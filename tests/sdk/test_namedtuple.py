"""tripwire._namedtuple.NamedTuple: the records typing.NamedTuple would build, without importing typing."""

from __future__ import annotations

import pickle
import typing

import pytest

from tripwire._namedtuple import NamedTuple


class Point(NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None

    def moved(self, dx: int) -> Point:
        return self._replace(x=self.x + dx)

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


class TypingPoint(typing.NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None


def test_record_has_the_fields_defaults_and_methods_of_typing_namedtuple() -> None:
    """Fields, defaults, repr, equality, _replace, methods and docstring match typing.NamedTuple's."""
    p = Point(1)
    assert Point._fields == TypingPoint._fields == ("x", "y", "label")
    assert Point._field_defaults == TypingPoint._field_defaults == {"y": 0, "label": None}
    assert repr(p) == "Point(x=1, y=0, label=None)"
    assert p == (1, 0, None) == TypingPoint(1)
    assert isinstance(p, tuple)
    assert p.moved(2) == Point(3, 0, None) and type(p.moved(2)) is Point
    assert Point(-2, 3).norm1 == 5
    assert Point.__doc__ == "A point."
    assert (Point.__module__, Point.__qualname__) == (__name__, "Point")
    assert list(Point.__annotations__) == ["x", "y", "label"]
    assert p._asdict() == {"x": 1, "y": 0, "label": None}
    with pytest.raises(AttributeError):
        p.x = 5  # type: ignore[misc]


def test_record_survives_pickling() -> None:
    """A record pickles and unpickles to an equal record of the same class."""
    p = Point(4, 5, "home")
    assert pickle.loads(pickle.dumps(p)) == p
    assert type(pickle.loads(pickle.dumps(p))) is Point


def test_field_without_default_after_one_with_default_is_rejected() -> None:
    """As with typing.NamedTuple, a field without default cannot follow one with a default."""
    with pytest.raises(TypeError, match="cannot follow"):

        class Bad(NamedTuple):
            a: int = 1
            b: int


def test_record_cannot_override_namedtuple_machinery() -> None:
    """Defining _replace (or another namedtuple method) in the body is an error, as in typing."""
    with pytest.raises(AttributeError, match="_replace"):

        class Bad(NamedTuple):
            a: int

            def _replace(self, **kwargs: int) -> Bad:
                return self
