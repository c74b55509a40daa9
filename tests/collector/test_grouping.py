"""Grouping: the same bug lands in one issue, different bugs in different issues, and why."""

from __future__ import annotations

import copy
from typing import Any

from tripwire.collector.grouping import VERSION, group, normalize_message

from .conftest import LiveServer, envelope, make_event


def _exception_event(frames: list[tuple[str, str, int]], type_: str = "KeyError", value: str = "x") -> Any:
    event = make_event(type_=type_, value=value, frames=frames)
    return {"exception": event["exception"]}


def _message_event(template: str | None, formatted: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"formatted": formatted}
    if template is not None:
        entry["message"] = template
    return {"logentry": entry}


def test_same_bug_from_different_line_numbers_groups_together() -> None:
    """Editing code above the bug (line numbers move) keeps the same issue."""
    before = group(_exception_event([("shop.views", "checkout", 40), ("shop.cart", "total", 12)]))
    after = group(_exception_event([("shop.views", "checkout", 57), ("shop.cart", "total", 19)]))
    assert before.hash == after.hash


def test_same_bug_with_different_ids_in_the_message_groups_together() -> None:
    """Exception values with different ids and no stack trace still group."""
    a = group({"exception": {"values": [{"type": "KeyError", "value": "'user-1234' missing at 0x7f3a2b"}]}})
    b = group({"exception": {"values": [{"type": "KeyError", "value": "'user-98' missing at 0xdeadbeef"}]}})
    assert a.hash == b.hash


def test_different_code_paths_with_the_same_exception_type_are_separate() -> None:
    """The same exception type raised from different code is a different issue."""
    a = group(_exception_event([("shop.views", "checkout", 40)]))
    b = group(_exception_event([("shop.views", "refund", 40)]))
    assert a.hash != b.hash


def test_library_frames_are_ignored_when_in_app_frames_exist() -> None:
    """Only in-app frames count: a library upgrade that changes its frames keeps the issue."""
    event = _exception_event([("shop.views", "checkout", 40)])
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    with_lib = copy.deepcopy(event)
    with_lib["exception"]["values"][0]["stacktrace"]["frames"] = [
        *frames,
        {"module": "requests.api", "function": "get", "lineno": 5, "in_app": False},
    ]
    assert group(event).hash == group(with_lib).hash


def test_all_frames_are_used_when_none_is_in_app() -> None:
    """Without in-app frames, all frames make the key (two library paths stay apart)."""
    a = {
        "exception": {
            "values": [{"type": "E", "stacktrace": {"frames": [{"module": "lib", "function": "a"}]}}]
        }
    }
    b = {
        "exception": {
            "values": [{"type": "E", "stacktrace": {"frames": [{"module": "lib", "function": "b"}]}}]
        }
    }
    assert group(a).hash != group(b).hash
    assert "none is marked in-app" in group(a).description


def test_messages_group_by_template_not_formatted_text() -> None:
    """Log messages with the same template group, whatever their arguments."""
    a = group(_message_event("payment %s failed after %d ms", "payment 77 failed after 2500 ms"))
    b = group(_message_event("payment %s failed after %d ms", "payment 98 failed after 10 ms"))
    c = group(_message_event("refund %s failed", "refund 1 failed"))
    assert a.hash == b.hash != c.hash
    assert a.strategy == "message"


def test_formatted_messages_have_variable_parts_normalized() -> None:
    """Numbers, hex, UUIDs, e-mails, IPs, URLs, dates and quoted strings do not split issues."""
    text = (
        "user ada@example.com (id 42, req 6f1c2a9e-0a4b-4c1e-9b8e-3a1f2d4c5b6a) from 10.0.0.7"
        " got 'nope' at https://api.example/x?y=1 token deadbeef1234 on 2026-11-21T05:00:00Z"
    )
    other = (
        "user bob@example.org (id 7, req 0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b) from 192.168.1.20"
        " got 'other' at https://api.example/z token 0badf00d9876 on 2025-01-02T03:04:05Z"
    )
    assert normalize_message(text) == normalize_message(other)
    assert group(_message_event(None, text)).hash == group(_message_event(None, other)).hash
    assert normalize_message(text) == (
        "user <email> (id <num>, req <uuid>) from <ip> got <quoted> at <url> token <hex> on <date>"
    )


def test_fingerprint_overrides_and_default_expands() -> None:
    """A client fingerprint decides the group; {{ default }} inserts the default key."""
    a = _exception_event([("shop.views", "checkout", 40)])
    b = _exception_event([("shop.views", "refund", 40)])
    a["fingerprint"] = b["fingerprint"] = ["payment-gateway"]
    assert group(a).hash == group(b).hash
    assert group(a).strategy == "fingerprint"

    a["fingerprint"] = b["fingerprint"] = ["{{ default }}", "tenant-1"]
    assert group(a).hash != group(b).hash  # the default part differs
    c = _exception_event([("shop.views", "checkout", 99)])
    c["fingerprint"] = ["{{ default }}", "tenant-2"]
    assert group(a).hash != group(c).hash  # the extra part differs
    assert "tenant-1" in group(a).components and "shop.views:checkout" in group(a).components
    plain = _exception_event([("shop.views", "checkout", 40)])
    plain["fingerprint"] = ["{{default}}"]
    assert group(plain).hash == group(_exception_event([("shop.views", "checkout", 1)])).hash


def test_explanation_names_version_strategy_and_frames() -> None:
    """Every grouping carries its version and a readable explanation."""
    g = group(_exception_event([("shop.views", "checkout", 40), ("shop.cart", "total", 12)]))
    assert g.version == VERSION
    assert g.explanation()["components"] == ["KeyError", "shop.views:checkout", "shop.cart:total"]
    assert "shop.views:checkout → shop.cart:total" in g.description


def test_grouping_end_to_end_creates_the_expected_issues(server: LiveServer) -> None:
    """Over HTTP: line-number and id variants share an issue; another code path gets its own."""
    events = [
        make_event(type_="KeyError", value="'order-1' missing", frames=[("shop.views", "checkout", 40)]),
        make_event(type_="KeyError", value="'order-2' missing", frames=[("shop.views", "checkout", 44)]),
        make_event(type_="KeyError", value="'order-3' missing", frames=[("shop.views", "refund", 40)]),
        make_event(
            type_="KeyError",
            value="x",
            frames=[("shop.views", "refund", 80)],
            fingerprint=["{{ default }}", "eu"],
        ),
    ]
    for event in events:
        assert server.post_envelope(envelope(("event", event))).status_code == 200
    server.wait_digested()
    issues = server.api("/api/0/projects/default/issues/", params={"sort": "first_seen"})["issues"]
    counts = sorted(i["event_count"] for i in issues)
    assert counts == [1, 1, 2]
    detail = server.api(f"/api/0/issues/{issues[-1]['id']}/")
    assert detail["grouping_explanation"]["strategy"] == "exception"
    assert "shop.views:checkout" in detail["grouping_explanation"]["description"]
    assert detail["grouping_version"] == VERSION
