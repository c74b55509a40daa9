"""Scopes: isolation between concurrent tasks and threads, new_scope forks, breadcrumbs and hooks."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import tripwire
import tripwire.testing


def test_concurrent_asyncio_tasks_never_see_each_others_data() -> None:
    """200 tasks in isolation scopes, interleaving at every await, each report only their own data."""

    async def unit_of_work(n: int) -> None:
        with tripwire.isolation_scope():
            tripwire.set_tag("task", str(n))
            await asyncio.sleep(0)
            tripwire.set_user({"id": f"user-{n}"})
            tripwire.add_breadcrumb(f"step one of {n}")
            await asyncio.sleep(0)
            tripwire.add_breadcrumb(f"step two of {n}")
            await asyncio.sleep(0)
            tripwire.capture_message(f"done {n}", extras={"n": n})

    async def main() -> None:
        await asyncio.gather(*(unit_of_work(n) for n in range(200)))

    with tripwire.testing.capture_events() as events:
        asyncio.run(main())
    assert len(events) == 200
    for event in events:
        n = event["extra"]["n"]
        assert event["tags"] == {"task": str(n)}
        assert event["user"] == {"id": f"user-{n}"}
        crumbs = [c["message"] for c in event["breadcrumbs"]["values"]]
        assert crumbs == [f"step one of {n}", f"step two of {n}"]


def test_concurrent_threads_never_see_each_others_data() -> None:
    """Threads that interleave set/capture in isolation scopes report only their own tags and crumbs."""
    barrier = threading.Barrier(16)

    def work(n: int) -> None:
        with tripwire.isolation_scope():
            tripwire.set_tag("thread", str(n))
            barrier.wait()
            tripwire.add_breadcrumb(f"crumb {n}")
            tripwire.set_user({"id": str(n)})
            barrier.wait()
            tripwire.capture_message("thread done", extras={"n": n})

    with tripwire.testing.capture_events() as events:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(events) == 16
    for event in events:
        n = event["extra"]["n"]
        assert event["tags"] == {"thread": str(n)}
        assert event["user"] == {"id": str(n)}
        assert [c["message"] for c in event["breadcrumbs"]["values"]] == [f"crumb {n}"]


def test_plain_threads_do_not_share_process_breadcrumbs_with_isolated_units() -> None:
    """What a unit of work records stays inside it; the process scope is untouched."""
    with tripwire.testing.capture_events() as events:
        tripwire.set_tag("service", "api")
        with tripwire.isolation_scope():
            tripwire.set_tag("request", "r1")
            tripwire.add_breadcrumb("inside")
        tripwire.capture_message("outside")
    assert events[0]["tags"] == {"service": "api"}
    assert "breadcrumbs" not in events[0]


def test_isolation_scope_inherits_tags_but_not_breadcrumbs() -> None:
    """A new unit of work starts with the process tags/user but no breadcrumbs of earlier work."""
    with tripwire.testing.capture_events() as events:
        tripwire.set_tag("service", "api")
        tripwire.add_breadcrumb("startup")
        with tripwire.isolation_scope():
            tripwire.capture_message("in request")
    assert events[0]["tags"] == {"service": "api"}
    assert "breadcrumbs" not in events[0]


def test_new_scope_forks_and_undoes() -> None:
    """Setters inside new_scope() change only the fork; on exit the outer scope is as before."""
    with tripwire.testing.capture_events() as events:
        tripwire.set_tag("a", "outer")
        with tripwire.new_scope():
            tripwire.set_tag("a", "inner")
            tripwire.set_tag("b", "only-inner")
            tripwire.set_user({"id": "inner"})
            tripwire.set_level("warning")
            tripwire.set_fingerprint(["custom"])
            tripwire.capture_message("inside", level="info")
        tripwire.capture_message("after")
    inside, after = events
    assert inside["tags"] == {"a": "inner", "b": "only-inner"}
    assert inside["user"] == {"id": "inner"}
    assert inside["level"] == "warning"
    assert inside["fingerprint"] == ["custom"]
    assert after["tags"] == {"a": "outer"}
    assert "user" not in after and "fingerprint" not in after
    assert after["level"] == "info"


def test_new_scope_sees_outer_changes_made_before_it() -> None:
    """A fork starts from the current data, breadcrumbs included."""
    with tripwire.testing.capture_events() as events:
        tripwire.add_breadcrumb("before fork")
        with tripwire.new_scope():
            tripwire.add_breadcrumb("in fork")
            tripwire.capture_message("x")
        tripwire.capture_message("y")
    assert [c["message"] for c in events[0]["breadcrumbs"]["values"]] == ["before fork", "in fork"]
    assert [c["message"] for c in events[1]["breadcrumbs"]["values"]] == ["before fork"]


def test_set_context_extra_and_removal() -> None:
    """set_context/set_extra attach data; set_context(name, None) removes it; set_user(None) clears."""
    with tripwire.testing.capture_events() as events:
        tripwire.set_context("job", {"queue": "emails"})
        tripwire.set_context("gone", {"x": 1})
        tripwire.set_context("gone", None)
        tripwire.set_extra("attempt", 3)
        tripwire.set_user({"id": "1"})
        tripwire.set_user(None)
        tripwire.set_transaction("/orders/{id}")
        tripwire.capture_message("x")
    event = events[0]
    assert event["contexts"]["job"] == {"queue": "emails"}
    assert "gone" not in event["contexts"]
    assert event["extra"] == {"attempt": 3}
    assert "user" not in event
    assert event["transaction"] == "/orders/{id}"


def test_tags_are_strings_bounded_to_200_characters() -> None:
    """Tag values are converted to strings and cut to the 200 characters servers accept."""
    with tripwire.testing.capture_events() as events:
        tripwire.set_tag("number", 42)
        tripwire.set_tags({"long": "x" * 500, "none": None})
        tripwire.capture_message("x")
    tags = events[0]["tags"]
    assert tags["number"] == "42" and tags["none"] == "None"
    assert len(tags["long"]) == 200


def test_max_breadcrumbs_keeps_the_newest() -> None:
    """Only the newest max_breadcrumbs breadcrumbs are kept, oldest dropped first."""
    with tripwire.testing.capture_events(max_breadcrumbs=3) as events:
        for i in range(10):
            tripwire.add_breadcrumb(f"crumb {i}", category="test", data={"i": i})
        tripwire.capture_message("x")
    crumbs = events[0]["breadcrumbs"]["values"]
    assert [c["message"] for c in crumbs] == ["crumb 7", "crumb 8", "crumb 9"]
    assert crumbs[0]["category"] == "test" and crumbs[0]["data"] == {"i": 7}
    assert isinstance(crumbs[0]["timestamp"], float) and crumbs[0]["type"] == "default"


def test_with_breadcrumb_keeps_every_other_field_and_trims_to_the_limit() -> None:
    """ScopeData.with_breadcrumb (built field by field) changes the breadcrumbs only, newest last."""
    from tripwire._scope import ScopeData

    def processor(event: Any, hint: Any) -> Any:
        return event

    data = ScopeData(
        tags={"t": "1"},
        extras={"e": 2},
        contexts={"c": {}},
        user={"id": "u"},
        level="warning",
        fingerprint=("f",),
        transaction="GET /",
        processors=(processor,),
    )
    one = data.with_breadcrumb({"message": "a"}, 1).with_breadcrumb({"message": "b"}, 1)
    assert type(one) is ScopeData
    assert one._replace(breadcrumbs=()) == data
    assert one.breadcrumbs == ({"message": "b"},)
    many = data
    for i in range(5):
        many = many.with_breadcrumb({"message": str(i)}, 10)
    # A limit lowered below what is held keeps the newest limit - 1, then the new one.
    assert [c["message"] for c in many.with_breadcrumb({"message": "x"}, 2).breadcrumbs] == ["4", "x"]
    assert data.with_breadcrumb({"message": "x"}, 0) is data


def test_max_breadcrumbs_zero_records_none() -> None:
    """max_breadcrumbs=0 turns breadcrumbs off."""
    with tripwire.testing.capture_events(max_breadcrumbs=0) as events:
        tripwire.add_breadcrumb("ignored")
        tripwire.capture_message("x")
    assert "breadcrumbs" not in events[0]


def test_before_breadcrumb_can_change_drop_and_gets_the_hint() -> None:
    """before_breadcrumb edits crumbs, drops them with None, and receives the hint it was given."""
    hints: list[dict[str, Any]] = []

    def hook(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        hints.append(hint)
        if crumb.get("message") == "drop me":
            return None
        crumb["message"] = crumb["message"].upper()
        return crumb

    record = logging.LogRecord("app", logging.INFO, __file__, 1, "msg", None, None)
    with tripwire.testing.capture_events(before_breadcrumb=hook) as events:
        tripwire.add_breadcrumb("keep me", hint={"log_record": record})
        tripwire.add_breadcrumb("drop me")
        tripwire.capture_message("x")
    assert [c["message"] for c in events[0]["breadcrumbs"]["values"]] == ["KEEP ME"]
    assert hints[0]["log_record"] is record


def test_before_breadcrumb_that_raises_keeps_the_crumb(caplog: pytest.LogCaptureFixture) -> None:
    """A failing before_breadcrumb is logged and the original breadcrumb is kept."""

    def hook(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("hook bug")

    with (
        caplog.at_level(logging.ERROR, logger="tripwire"),
        tripwire.testing.capture_events(before_breadcrumb=hook) as events,
    ):
        tripwire.add_breadcrumb("kept")
        tripwire.capture_message("x")
    assert [c["message"] for c in events[0]["breadcrumbs"]["values"]] == ["kept"]
    assert "before_breadcrumb raised" in caplog.text


def test_scope_is_snapshotted_at_capture_time() -> None:
    """Changes made right after capture_* returns do not leak into the event being built."""
    with tripwire.testing.capture_events() as events:
        tripwire.set_tag("when", "before")
        tripwire.capture_message("x")
        tripwire.set_tag("when", "after")
        tripwire.add_breadcrumb("later")
    assert events[0]["tags"] == {"when": "before"}
    assert "breadcrumbs" not in events[0]


def test_last_event_id_is_per_unit_of_work() -> None:
    """last_event_id() inside an isolation scope is that unit's; outside it is unaffected."""
    with tripwire.testing.capture_events():
        outer = tripwire.capture_message("outer")
        with tripwire.isolation_scope():
            assert tripwire.last_event_id() is None
            inner = tripwire.capture_message("inner")
            assert tripwire.last_event_id() == inner
        assert tripwire.last_event_id() == outer


def test_trace_id_is_shared_within_a_unit_of_work_and_differs_between_them() -> None:
    """Events of one request share contexts.trace.trace_id; another request gets a new one."""
    with tripwire.testing.capture_events() as events:
        with tripwire.isolation_scope():
            tripwire.capture_message("a1")
            tripwire.capture_message("a2")
        with tripwire.isolation_scope():
            tripwire.capture_message("b1")
    a1, a2, b1 = (e["contexts"]["trace"] for e in events)
    assert a1["trace_id"] == a2["trace_id"] != b1["trace_id"]
    assert a1["span_id"] != a2["span_id"]
