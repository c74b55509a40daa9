"""Safe serialization: hostile values become bounded JSON, and every cut is recorded in _meta."""

from __future__ import annotations

import array
import collections
import datetime
import decimal
import json
import math
import re
import sys
import threading
from typing import Any

import tripwire
from tripwire._serialize import MAX_BREADTH, MAX_DEPTH, Serializer, safe_repr, safe_str

from ._support import one_event


def ser(value: Any, **limits: Any) -> tuple[Any, dict[str, Any]]:
    meta: dict[str, Any] = {}
    out = Serializer(meta, **limits).serialize(value, ("x",))
    json.dumps(out, allow_nan=False)
    return out, meta


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")

    __str__ = __repr__


class WrongRepr:
    def __repr__(self) -> Any:
        return 42


class BrokenStr(str):
    def __str__(self) -> str:
        raise RuntimeError("nope")


def test_plain_json_values_pass_through() -> None:
    """None, bools, ints, floats, strings, lists and dicts come out unchanged."""
    value = {"a": [1, 2.5, None, True, "s"], "b": {"c": "d"}}
    assert ser(value) == (value, {})


def test_cycles_become_a_marker() -> None:
    """A container that contains itself is cut at the repeat, not followed forever."""
    loop: list[Any] = [1]
    loop.append(loop)
    d: dict[str, Any] = {"name": "d"}
    d["self"] = d
    assert ser(loop)[0] == [1, "<cyclic>"]
    assert ser(d)[0] == {"name": "d", "self": "<cyclic>"}


def test_shared_but_acyclic_references_are_kept() -> None:
    """The same list used twice (not a cycle) is shown twice."""
    shared = [1, 2]
    assert ser({"a": shared, "b": shared})[0] == {"a": [1, 2], "b": [1, 2]}


def test_broken_repr_and_str_become_a_description() -> None:
    """Objects whose __repr__/__str__ raise or return a non-string are described, not fatal."""
    out = ser([BrokenRepr(), WrongRepr()])[0]
    assert re.fullmatch(r"<.*BrokenRepr object \(repr failed: RuntimeError\)>", out[0])
    assert "WrongRepr object (repr failed: TypeError)" in out[1]
    assert safe_str(BrokenRepr(), 100).startswith("<")
    assert safe_repr(BrokenRepr(), 100).startswith("<")


def test_str_subclass_with_broken_str_keeps_its_data() -> None:
    """A str subclass is taken as its character data, whatever its __str__ does."""
    assert ser(BrokenStr("payload"))[0] == "payload"


def test_bytes_are_decoded_with_invalid_utf8_escaped() -> None:
    """bytes become text; bytes that are not UTF-8 are shown as escapes."""
    assert ser(b"caf\xc3\xa9")[0] == "café"
    assert ser(b"\xff\xfe ok")[0] == "\\xff\\xfe ok"
    assert ser(bytearray(b"abc"))[0] == "abc"


def test_lone_surrogates_are_escaped() -> None:
    """Strings with lone surrogates (which UTF-8 cannot encode) are escaped, so the JSON is valid."""
    out = ser({"k\udcff": "bad \ud800 text"})[0]
    text = json.dumps(out, ensure_ascii=False).encode("utf-8")
    assert b"\\\\ud800" in text


def test_nan_and_infinity_become_strings() -> None:
    """NaN and ±inf, which strict JSON cannot hold, become 'nan'/'inf'/'-inf'."""
    assert ser([math.nan, math.inf, -math.inf, 1.5])[0] == ["nan", "inf", "-inf", 1.5]


def test_huge_integers_become_strings() -> None:
    """Integers beyond 64 bits become strings; enormous ones are summarised, never slow or failing."""
    assert ser(2**70)[0] == str(2**70)
    assert ser(10**5000)[0] == f"<int of {(10**5000).bit_length()} bits>"
    assert ser(-(2**63))[0] == -(2**63)


def test_long_strings_are_cut_and_recorded() -> None:
    """A string over max_value_length is cut with '...' and _meta records its original length."""
    out, meta = ser("x" * 5000, max_string=100)
    assert out == "x" * 97 + "..."
    assert meta == {"x": {"": {"len": 5000, "rem": [["!limit", "s", 97, 100]]}}}


def test_huge_containers_keep_the_first_items_and_record_the_length() -> None:
    """Only MAX_BREADTH items of a big list or dict are kept; _meta has the real length."""
    big_list, meta = ser(list(range(100_000)))
    assert big_list == list(range(MAX_BREADTH))
    assert meta["x"][""]["len"] == 100_000
    big_dict, meta = ser({str(i): i for i in range(1000)})
    assert len(big_dict) == MAX_BREADTH and meta["x"][""]["len"] == 1000


def test_deep_nesting_is_cut_at_max_depth() -> None:
    """Containers nested deeper than MAX_DEPTH become a summary (never their repr), recorded in _meta."""
    deep: Any = "bottom"
    for _ in range(200):
        deep = [deep]
    out, meta = ser(deep)
    level = out
    for _ in range(MAX_DEPTH):
        level = level[0]
    assert level == "<list of 1 items>"
    path = meta["x"]
    for _ in range(MAX_DEPTH):
        path = path["0"]
    assert path[""]["rem"] == [["!limit", "x"]]


def test_objects_from_c_extensions_and_the_stdlib_are_represented() -> None:
    """Locks, datetimes, decimals, modules and frames become bounded strings; arrays become lists."""
    values = [
        threading.Lock(),
        array.array("i", [1, 2]),
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        decimal.Decimal("1.10"),
        sys,
        sys._getframe(),
        re.compile("x"),
        memoryview(b"abc"),
        collections.OrderedDict(a=1),
        collections.deque([1, 2]),
        frozenset({3}),
        (1, "t"),
    ]
    out = ser(values)[0]
    assert out[0].startswith("<unlocked _thread.lock")
    assert out[1] == [1, 2]  # arrays and dict views item by item: their repr holds every element
    assert out[2] == "datetime.datetime(2024, 1, 2, 3, 4, 5)"
    assert out[3] == "Decimal('1.10')"
    assert out[4] == "<module 'sys' (built-in)>"
    assert out[5].startswith("<frame at")
    assert out[8] == {"a": 1} and out[9] == [1, 2] and out[10] == [3] and out[11] == [1, "t"]


def test_non_string_keys_are_represented() -> None:
    """Mapping keys of any type become strings (tuples and objects by repr)."""
    out = ser({1: "a", None: "b", (1, 2): "c", BrokenRepr(): "d"})[0]
    assert out["1"] == "a" and out["None"] == "b" and out["(1, 2)"] == "c"
    assert any("BrokenRepr" in k for k in out)


def test_mapping_that_fails_while_iterating_is_described() -> None:
    """A Mapping whose items() raises becomes '<unrepresentable ...>' instead of failing the event."""
    from collections.abc import Mapping

    class Broken(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise KeyError(key)

        def __iter__(self) -> Any:
            raise RuntimeError("cannot iterate")

        def __len__(self) -> int:
            return 1

    assert ser({"m": Broken()})[0]["m"].startswith("<unrepresentable")


def test_hostile_values_in_every_user_field_give_a_valid_event() -> None:
    """Extras, contexts, user, tags and breadcrumb data full of hostile values still send valid JSON."""
    loop: list[Any] = []
    loop.append(loop)
    hostile = {
        "cycle": loop,
        "broken": BrokenRepr(),
        "nan": math.nan,
        "bytes": b"\xff",
        "surrogate": "\udc80",
        "deep": [[[[[[[[[["x"]]]]]]]]]],
    }

    def go() -> None:
        tripwire.set_extra("h", hostile)
        tripwire.set_context("ctx", hostile)
        tripwire.set_user({"id": BrokenRepr(), "data": hostile})
        tripwire.set_tag("t", BrokenRepr())
        tripwire.add_breadcrumb("crumb", data=hostile)
        try:
            raise ValueError(BrokenRepr())
        except ValueError:
            tripwire.capture_exception()

    event = one_event(go)
    assert event["extra"]["h"]["nan"] == "nan"
    assert event["contexts"]["ctx"]["cycle"] == ["<cyclic>"]
    assert event["exception"]["values"][-1]["value"].startswith("<")
    assert event["tags"]["t"].startswith("<unprintable")


def test_a_huge_string_is_cut_before_it_is_scrubbed() -> None:
    """A 50 MB local is cut before the secret search runs, so its cost is bounded by what is kept."""
    from tripwire._scrub import Scrubber

    seen: list[int] = []

    class Recording(Scrubber):
        def scrub_text(self, text: str) -> str:
            seen.append(len(text))
            return super().scrub_text(text)

    meta: dict[str, Any] = {}
    serializer = Serializer(meta, max_string=1024, scrubber=Recording())
    out = serializer.serialize({"blob": "password=x " + "y" * 50_000_000}, ("x",))
    assert max(seen) <= 1024 + 256
    assert out["blob"].startswith("password=[Filtered] yyy") and len(out["blob"]) == 1024
    assert meta["x"]["blob"][""]["len"] == 50_000_011


def test_huge_dict_views_and_arrays_are_cut_not_repr_d() -> None:
    """A view of a million-key dict or a big array shows its first items and its length."""
    big = {i: i for i in range(1_000_000)}
    out, meta = ser({"keys": big.keys(), "items": big.items(), "arr": array.array("b", bytes(10**6))})
    assert out["keys"] == list(range(MAX_BREADTH))
    assert out["items"][0] == [0, 0]
    assert out["arr"] == [0] * MAX_BREADTH
    assert meta["x"]["keys"][""]["len"] == 1_000_000 and meta["x"]["arr"][""]["len"] == 10**6
