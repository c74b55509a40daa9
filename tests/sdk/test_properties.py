"""Property: whatever objects users put into an event, capture never raises and the event is strict
JSON within the size budget."""

from __future__ import annotations

import array
import decimal
import json
import math
import threading
from collections import OrderedDict, deque
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tripwire
import tripwire.testing

# The huge values have huge reprs; hypothesis warns when it prints them for a report.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("broken repr")

    __str__ = __repr__


class ReprReturnsBytes:
    def __repr__(self) -> Any:
        return b"not a str"


class HugeRepr:
    def __repr__(self) -> str:
        return "h" * 300_000


class BrokenEq:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    __hash__ = object.__hash__


def _cyclic_list() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


def _cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["me"] = {"parent": d}
    return d


surrogates = st.lists(st.integers(0xD800, 0xDFFF).map(chr), min_size=1, max_size=4).map("".join)
weird_text = st.one_of(
    st.text(max_size=50), surrogates, st.builds(lambda: "x" * 200_000), st.just('\x00\n\t"')
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.builds(lambda: 10**5000),
    st.floats(allow_nan=True, allow_infinity=True),
    weird_text,
    st.binary(max_size=64),
    st.builds(lambda: b"\xff" * 100_000),
    st.builds(BrokenRepr),
    st.builds(ReprReturnsBytes),
    st.builds(HugeRepr),
    st.builds(BrokenEq),
    st.builds(_cyclic_list),
    st.builds(_cyclic_dict),
    st.just(threading.Lock()),
    st.just(array.array("d", [math.nan])),
    st.just(decimal.Decimal("NaN")),
    st.builds(lambda: list(range(100_000))),
    st.builds(lambda: {i: str(i) for i in range(5_000)}),
    st.just(object),
    st.just(math),
)
keys = st.one_of(weird_text, st.integers(), st.builds(BrokenRepr), st.tuples(st.integers()))


def _deep(n: int) -> Any:
    value: Any = "bottom"
    for _ in range(n):
        value = {"d": [value]}
    return value


values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=5),
        st.builds(OrderedDict, st.dictionaries(st.text(max_size=5), children, max_size=3)),
        st.builds(deque, st.lists(children, max_size=3)),
        st.frozensets(st.integers(), max_size=3),
        st.integers(0, 300).map(_deep),
    ),
    max_leaves=20,
)


def _raise_with_locals(local_value: Any, other: Any) -> None:
    nested = {"value": local_value, "other": other}  # noqa: F841
    raise ValueError(local_value)  # the message itself is hostile too


def _capture_everything(value: Any, other: Any, key: Any) -> None:
    with tripwire.new_scope():
        tripwire.set_tag(key, value)
        tripwire.set_tags({key: other})
        tripwire.set_extra(key, value)
        tripwire.set_context("ctx", {"k": value, "o": other})
        tripwire.set_context(key, value)
        tripwire.set_user({"id": value, "email": other, "data": value})
        tripwire.set_fingerprint([value, other])
        tripwire.add_breadcrumb(value, category=other, data={"k": value, key: other})
        tripwire.set_transaction(value)
        try:
            _raise_with_locals(value, other)
        except ValueError:
            tripwire.capture_exception(extras={"again": other}, tags={"t": value})


def _check(max_event_bytes: int, value: Any, other: Any, key: Any) -> None:
    with tripwire.testing.capture_events(max_event_bytes=max_event_bytes) as events:
        _capture_everything(value, other, key)
        tripwire.flush()
        dropped = tripwire.stats()["dropped"]
    assert dropped == {}, dropped
    assert len(events) == 1
    encoded = json.dumps(events[0], allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    assert len(encoded.encode("utf-8")) <= max_event_bytes
    assert events[0]["exception"]["values"][-1]["type"] == "ValueError"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values, other=values, key=keys)
def test_any_object_anywhere_gives_a_valid_event_within_the_default_budget(
    value: Any, other: Any, key: Any
) -> None:
    """Arbitrary objects in tags, extras, contexts, user, breadcrumbs and locals: one valid JSON event."""
    _check(200_000, value, other, key)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values, other=values, key=keys)
def test_any_object_anywhere_fits_the_smallest_budget(value: Any, other: Any, key: Any) -> None:
    """The same at the minimum max_event_bytes (4096): trimmed, never dropped, never over."""
    _check(4096, value, other, key)


SECRET = "S3CR3T-VALUE-0xDEADBEEF"
sensitive_keys = st.sampled_from(
    [
        "password",
        "db_passwd",
        "X-Api-Key",
        "apiKey",
        "Authorization",
        "session_id",
        "csrftoken",
        "credit card",
    ]
)
plain_keys = st.sampled_from(["id", "name", "items", "meta", "value", "n"])
plain_leaves = st.one_of(st.integers(), st.sampled_from(["ok", "bob", "x y"]), st.none())


def _secret_holder(key: str, shape: int) -> dict[str, Any]:
    value: Any = [SECRET, SECRET, {"SECRET": SECRET}, (SECRET,), {"deeper": [SECRET]}][shape]
    return {key: value}


holders = st.builds(_secret_holder, sensitive_keys, st.integers(0, 4))
trees = st.recursive(
    st.one_of(plain_leaves, holders),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(plain_keys, children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees)
def test_values_under_sensitive_keys_never_leave_the_process(tree: Any) -> None:
    """However deep a sensitive key sits, in any field or local, its value is never sent."""

    def fail(payload: Any) -> None:
        raise ValueError("failed")

    def go() -> None:
        tripwire.set_extra("tree", tree)
        tripwire.set_context("ctx", {"tree": tree})
        tripwire.add_breadcrumb("crumb", data={"tree": tree})
        try:
            fail(tree)
        except ValueError:
            tripwire.capture_exception(user={"id": "1", "tree": tree})

    with tripwire.testing.capture_events(include_source_context=False) as events:
        go()
    assert len(events) == 1
    assert SECRET not in json.dumps(events[0])
