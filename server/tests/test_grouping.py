"""Grouping: the same bug lands in one issue, different bugs in different issues, and why."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.coverage_env import without_coverage
from tripwire_server.grouping import LEGACY_VERSION, VERSION, group, legacy_hash, normalize_message
from tripwire_server.normalize import describe, normalize_event

from .conftest import LiveServer, envelope, make_event


def _exception_event(
    frames: list[tuple[str, str, int]], type_: str = "KeyError", value: str = "x", source: bool = True
) -> Any:
    """An exception event whose frames carry their source line (as Python SDKs send) if ``source``."""
    event = make_event(type_=type_, value=value, frames=frames)
    if source:
        for frame in event["exception"]["values"][0]["stacktrace"]["frames"]:
            frame["context_line"] = f"    {frame['function']}_step()"
    return {"exception": event["exception"]}


def _message_event(template: str | None, formatted: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"formatted": formatted}
    if template is not None:
        entry["message"] = template
    return {"logentry": entry}


def test_same_bug_from_different_line_numbers_groups_together() -> None:
    """Editing code above the bug (line numbers move, the source line stays) keeps the same issue."""
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
    assert "tenant-1" in group(a).components
    assert "shop.views:checkout `checkout_step()`" in group(a).components
    plain = _exception_event([("shop.views", "checkout", 40)])
    plain["fingerprint"] = ["{{default}}"]
    assert group(plain).hash == group(_exception_event([("shop.views", "checkout", 1)])).hash


def test_explanation_names_version_strategy_and_frames() -> None:
    """Every grouping carries its version and a readable explanation."""
    g = group(_exception_event([("shop.views", "checkout", 40), ("shop.cart", "total", 12)]))
    assert g.version == VERSION
    assert g.explanation()["components"] == [
        "KeyError",
        "shop.views:checkout `checkout_step()`",
        "shop.cart:total `total_step()`",
    ]
    assert "shop.views:checkout `checkout_step()` → shop.cart:total `total_step()`" in g.description


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
        for frame in event["exception"]["values"][0]["stacktrace"]["frames"]:
            frame["context_line"] = "    order = orders[order_id]"
        assert server.post_envelope(envelope(("event", event))).status_code == 200
    server.wait_digested()
    issues = server.api("/api/0/projects/default/issues/", params={"sort": "first_seen"})["issues"]
    counts = sorted(i["event_count"] for i in issues)
    assert counts == [1, 1, 2]
    detail = server.api(f"/api/0/issues/{issues[-1]['id']}/")
    assert detail["grouping_explanation"]["strategy"] == "exception"
    assert "shop.views:checkout" in detail["grouping_explanation"]["description"]
    assert detail["grouping_version"] == VERSION


def test_same_function_different_lines_without_source_are_separate() -> None:
    """Two errors of one type raised at different lines of one function, with no source line
    (no context_line), are two issues: the line number tells them apart."""
    a = group(_exception_event([("shop.views", "checkout", 40)], source=False))
    b = group(_exception_event([("shop.views", "checkout", 57)], source=False))
    assert a.hash != b.hash
    assert "shop.views:checkout line 40" in a.description


def test_same_function_different_source_lines_are_separate() -> None:
    """Different source lines in one function are different issues, whatever their line numbers."""
    a = _exception_event([("shop.views", "checkout", 40)])
    b = copy.deepcopy(a)
    b["exception"]["values"][0]["stacktrace"]["frames"][0]["context_line"] = "    total = cart.total()"
    assert group(a).hash != group(b).hash


def test_library_frames_do_not_add_line_numbers() -> None:
    """Only in-app frames add their line: a library's line numbers move with its releases."""
    frame = {"module": "requests.api", "function": "get", "in_app": False}
    a = {"exception": {"values": [{"type": "E", "stacktrace": {"frames": [{**frame, "lineno": 5}]}}]}}
    b = {"exception": {"values": [{"type": "E", "stacktrace": {"frames": [{**frame, "lineno": 9}]}}]}}
    assert group(a).hash == group(b).hash


def test_version_1_ignores_lines_and_is_kept_for_old_issues() -> None:
    """The previous version's key (line-blind) is still computed, to find issues created under it."""
    a = _exception_event([("shop.views", "checkout", 40)], source=False)
    b = _exception_event([("shop.views", "checkout", 57)], source=False)
    assert legacy_hash(a) == legacy_hash(b) == group(a, LEGACY_VERSION).hash
    assert group(a, LEGACY_VERSION).version == "tripwire:1"
    assert VERSION == "tripwire:2"


def test_an_issue_created_under_version_1_keeps_its_events(server: LiveServer) -> None:
    """An issue grouped under version 1 (line-blind) still receives events that version 2 would
    split by line: existing issues keep their grouping; new ones get version 2."""
    old = make_event(type_="KeyError", value="a", frames=[("shop.views", "checkout", 40)])
    server.store.migrate()
    # The issue as the previous release of tripwire created it.
    legacy = group({"exception": old["exception"], "platform": "python"}, LEGACY_VERSION)
    with server.store.db.tx() as c:
        c.ex(
            "INSERT INTO issues (project_id, grouping_version, grouping_hash, grouping_explanation,"
            " title, culprit, type, value, level, first_seen, last_seen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (server.project.id, LEGACY_VERSION, legacy.hash, "{}", "KeyError: a", "", "KeyError", "a",
             "error", 1.0, 1.0),
        )  # fmt: skip
    later = make_event(type_="KeyError", value="b", frames=[("shop.views", "checkout", 57)])
    other = make_event(type_="KeyError", value="c", frames=[("shop.views", "refund", 12)])
    for event in (old, later, other):
        assert server.post_envelope(envelope(("event", event))).status_code == 200
    server.wait_digested()
    issues = server.api("/api/0/projects/default/issues/", params={"sort": "first_seen"})["issues"]
    by_version = {server.api(f"/api/0/issues/{i['id']}/")["grouping_version"]: i for i in issues}
    assert by_version[LEGACY_VERSION]["event_count"] == 2
    assert by_version[VERSION]["event_count"] == 1


def test_synthetic_exception_groups_and_titles_by_message() -> None:
    """A JavaScript captureMessage (message + a synthetic exception with no type) is titled and
    grouped by its message, not "Error: ..." and its frames."""

    def event(text: str, function: str) -> dict[str, Any]:
        return {
            "platform": "javascript",
            "logentry": {"formatted": text},
            "exception": {
                "values": [
                    {
                        "value": text,
                        "mechanism": {"type": "generic", "handled": True, "synthetic": True},
                        "stacktrace": {"frames": [{"filename": "app.js", "function": function, "lineno": 3}]},
                    }
                ]
            },
        }

    a, b = group(event("checkout failed for 12", "a")), group(event("checkout failed for 99", "b"))
    assert a.hash == b.hash
    assert a.strategy == "message" and "synthetic" in a.description
    title, _culprit, type_, _value = describe(event("checkout failed for 12", "a"))
    assert title == "checkout failed for 12" and type_ == "message"


# -- real JavaScript SDK output (server/tests/fixtures/js_events.json, recorded by the JS tests) --

_JS = json.loads((Path(__file__).parent / "fixtures" / "js_events.json").read_text())


def test_a_rebuilt_minified_bundle_keeps_its_group() -> None:
    """Two builds of a minified bundle (new file hash, moved columns, renamed functions) raising
    the same error from @sentry/browser group together; version 1 split them."""
    a, b = _JS["browser_unhandled_build_0"], _JS["browser_unhandled_build_1"]
    assert group(a).hash == group(b).hash
    assert legacy_hash(a) != legacy_hash(b)


def test_mangled_names_and_sdk_frames_are_not_in_the_key() -> None:
    """The key of a browser error names neither the minifier's function names nor the SDK bundle's
    wrapper frame."""
    g = group(_JS["browser_unhandled_build_0"])
    assert "sentry.bundle" not in g.description
    assert len(g.components) > 1  # not vacuous: the key has frame components to check
    assert all(":?" in c for c in g.components[1:])


def test_real_js_capture_message_groups_by_message() -> None:
    """captureMessage from @sentry/browser and @sentry/node (a synthetic exception) groups by the
    message and is titled by it."""
    for name, text in (
        ("browser_capture_message", "cart total 1234 does not match the server"),
        ("node_capture_message", "inventory sync took 9000 ms"),
    ):
        event = _JS[name]
        assert group(event).strategy == "message"
        assert describe(event)[0] == text


def test_node_modules_and_sdk_bundle_frames_are_not_in_app() -> None:
    """Normalizing a JavaScript event marks frames of node_modules and of SDK bundles not in-app,
    even when the SDK said they were; the app's own files (even sentry_node.mjs) stay in-app."""
    data = copy.deepcopy(_JS["node_capture_exception"])
    frames = data["exception"]["values"][-1]["stacktrace"]["frames"]
    frames.insert(
        0, {"filename": "/srv/app/node_modules/express/lib/router.js", "function": "handle", "in_app": True}
    )
    frames.insert(0, {"filename": "https://cdn.example/bugsnag.min.js", "function": "x", "in_app": True})
    ev = normalize_event(
        data, event_id=None, received_at=data["timestamp"], remote_addr=None, max_size=1 << 20
    )
    out = ev["exception"]["values"][-1]["stacktrace"]["frames"]
    assert out[0]["in_app"] is False and out[1]["in_app"] is False
    assert [f["function"] for f in out if f.get("in_app")][-1] == "chargeCard"


def test_sentry_sdk_errors_at_two_lines_without_source_are_two_issues(sqlite_server: LiveServer) -> None:
    """Two ValueErrors raised at different lines of one function whose source sentry-sdk cannot
    read (no context line) are two issues, each explained by its line number."""
    client = Path(__file__).with_name("sdk_lines_client.py")
    command = [sys.executable, str(client), sqlite_server.dsn]
    # sentry-sdk only: nothing of ours to measure
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=True, env=without_coverage()
    )
    first, second = json.loads(out.stdout.strip().splitlines()[-1])
    sqlite_server.wait_digested()
    a, b = (sqlite_server.api(f"/api/0/events/{event_id}/") for event_id in (first, second))
    frame = a["data"]["exception"]["values"][-1]["stacktrace"]["frames"][-1]
    assert not frame.get("context_line") and frame["in_app"] is True, frame
    assert a["issue_id"] != b["issue_id"]
    why = sqlite_server.api(f"/api/0/issues/{a['issue_id']}/")["grouping_explanation"]["description"]
    assert "checkout line 4" in why
