"""The size budget: oversized events are trimmed in a fixed order, never dropped, and say so."""

from __future__ import annotations

import json
from typing import Any

import tripwire
import tripwire.testing
from tripwire._budget import TRIMMED_KEY, encoded_size, enforce

from ._support import frames, one_event


def _fail_with_big_locals(depth: int, blob: str) -> None:
    big_local = [blob] * 40  # noqa: F841 - what the budget must trim first
    if depth == 0:
        raise ValueError("big")
    _fail_with_big_locals(depth - 1, blob)


def _capture_big(depth: int = 5, crumbs: int = 0, extra_kb: int = 0) -> None:
    for i in range(crumbs):
        tripwire.add_breadcrumb(f"crumb {i} " + "c" * 900)
    if extra_kb:
        tripwire.set_extra("small", "kept")
        tripwire.set_extra("huge", ["e" * 1000] * 40)
    try:
        _fail_with_big_locals(depth, "v" * 1000)
    except ValueError:
        tripwire.capture_exception()


def _size(event: dict[str, Any]) -> int:
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())


def test_small_events_are_not_touched() -> None:
    """An event within the budget carries no trimming record."""
    event = one_event(lambda: tripwire.capture_message("small"))
    assert TRIMMED_KEY not in event.get("extra", {})


def test_locals_go_first_and_the_crashing_frame_keeps_its_own_longest() -> None:
    """Over budget, library/older frames lose vars first; the crashing frame's vars go last."""
    event = one_event(lambda: _capture_big(depth=5), max_event_bytes=100_000)
    assert _size(event) <= 100_000
    stack = frames(event)
    assert "vars" in stack[-1]
    assert any("vars" not in f for f in stack[:-1])
    assert event["extra"][TRIMMED_KEY] == ["vars"]
    assert all("pre_context" in f for f in stack)
    dropped = [i for i, f in enumerate(stack) if "vars" not in f]
    meta_frames = event["_meta"]["exception"]["values"]["0"]["stacktrace"]["frames"]
    assert meta_frames[str(dropped[0])]["vars"][""]["rem"] == [["!budget", "x"]]


def test_then_context_lines_then_breadcrumbs_then_extras() -> None:
    """A tight budget trims vars, then source lines, then oldest breadcrumbs, then the largest extras."""
    event = one_event(lambda: _capture_big(depth=3, crumbs=60, extra_kb=40), max_event_bytes=8_000)
    assert _size(event) <= 8_000
    steps = event["extra"][TRIMMED_KEY]
    assert steps[:4] == ["vars", "context_lines", "breadcrumbs", "extra"]
    assert "huge" not in event["extra"] and event["extra"]["small"] == "kept"
    assert event["exception"]["values"][-1]["value"] == "big"
    assert event["_meta"]["breadcrumbs"]["values"][""]["len"] == 60


def test_breadcrumbs_are_dropped_oldest_first() -> None:
    """When breadcrumbs must go, the newest survive."""
    event = one_event(
        lambda: _capture_big(depth=0, crumbs=100), max_event_bytes=30_000, include_local_variables=False
    )
    crumbs = event["breadcrumbs"]["values"]
    assert crumbs and crumbs[-1]["message"].startswith("crumb 99 ")
    assert int(crumbs[0]["message"].split()[1]) > 0


def test_an_event_is_never_dropped_even_at_the_smallest_budget() -> None:
    """At the minimum budget (4096 bytes) a huge event still arrives, reduced to its essentials."""
    with tripwire.testing.capture_events(max_event_bytes=4096, release="r" * 1000) as events:
        tripwire.set_tags({f"t{i}": "x" * 200 for i in range(100)})
        tripwire.set_context("big", {"k": ["x" * 1000] * 50})
        _capture_big(depth=50, crumbs=100, extra_kb=40)
    (event,) = events
    assert _size(event) <= 4096
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    assert event["event_id"] and event["timestamp"]


def test_before_send_that_bloats_the_event_is_trimmed_again() -> None:
    """What before_send adds is also held to the budget."""

    def bloat(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        event["extra"] = {"blob": ["z" * 1000] * 50}
        return event

    event = one_event(lambda: tripwire.capture_message("x"), max_event_bytes=10_000, before_send=bloat)
    assert _size(event) <= 10_000
    assert event["extra"][TRIMMED_KEY]


def test_enforce_makes_foreign_objects_json() -> None:
    """enforce() turns anything that is not JSON into bounded data before measuring."""
    event = enforce({"event_id": "a" * 32, "extra": {"o": object(), "s": {1, 2}}}, 10_000)
    assert encoded_size(event) <= 10_000
    assert event["extra"]["s"] == [1, 2]


def test_long_stacks_keep_their_ends_when_frames_must_go() -> None:
    """After locals and source lines, a long stack is cut to its oldest 5 and newest 15 frames."""

    def recurse(n: int) -> None:
        if n == 0:
            raise ValueError("bottom")
        recurse(n - 1)

    def go() -> None:
        try:
            recurse(150)
        except ValueError:
            tripwire.capture_exception()

    event = one_event(go, max_event_bytes=8_000)
    assert _size(event) <= 8_000
    assert event["extra"][TRIMMED_KEY][-1] == "frames"
    stack = frames(event)
    assert len(stack) == 20
    assert (
        stack[0]["function"].endswith("go")
        and stack[-1]["context_line"].strip() == 'raise ValueError("bottom")'
    )
    # 150 recursion frames + go + recurse(0): the original count survives both cuts.
    assert event["_meta"]["exception"]["values"]["0"]["stacktrace"]["frames"][""]["len"] == 152
