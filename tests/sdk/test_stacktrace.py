"""Stack traces: frame order and fields, source context, in_app, locals, chains and groups."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import tripwire
import tripwire.testing

from ._support import frames, one_event


def _level_three(x: int) -> None:
    local_three = x * 3
    raise ValueError(f"deep {local_three}")


def _level_two(x: int) -> None:
    local_two = x * 2
    _level_three(local_two)


def _level_one() -> None:
    try:
        _level_two(1)
    except ValueError:
        tripwire.capture_exception()


def test_frames_run_oldest_first_with_the_crashing_frame_last() -> None:
    """Frames are ordered caller → callee; the last frame is where the exception was raised."""
    event = one_event(_level_one)
    names = [f["function"] for f in frames(event)]
    assert names == ["_level_one", "_level_two", "_level_three"]


def test_frame_fields_match_the_source() -> None:
    """Each frame has filename (relative), abs_path, module, function, lineno, colno and source lines."""
    event = one_event(_level_one, project_root=str(Path(__file__).parents[2]))
    last = frames(event)[-1]
    assert last["abs_path"] == os.path.abspath(__file__)
    assert last["filename"] == os.path.join("tests", "sdk", "test_stacktrace.py")
    assert last["module"] == __name__
    assert last["function"] == "_level_three"
    assert last["context_line"] == '    raise ValueError(f"deep {local_three}")'
    assert last["lineno"] == _level_three.__code__.co_firstlineno + 2
    if sys.version_info >= (3, 11):
        assert last["colno"] == 5  # 1-based column of `raise`
    assert last["pre_context"][-1] == "    local_three = x * 3"
    assert len(last["pre_context"]) == 5 and len(last["post_context"]) == 5
    assert last["in_app"] is True


def test_context_lines_option_and_disabling_source() -> None:
    """context_lines sets how many lines around; include_source_context=False sends none."""
    two = frames(one_event(_level_one, context_lines=2))[-1]
    assert len(two["pre_context"]) == 2 and len(two["post_context"]) == 2
    none = frames(one_event(_level_one, include_source_context=False))[-1]
    assert "context_line" not in none and "pre_context" not in none


@pytest.mark.skipif(sys.version_info < (3, 11), reason="co_qualname needs Python 3.11")
def test_qualified_function_names() -> None:
    """Methods show their class (co_qualname) so two `run` methods are told apart."""

    class Job:
        def run(self) -> None:
            raise RuntimeError("job")

    def go() -> None:
        try:
            Job().run()
        except RuntimeError:
            tripwire.capture_exception()

    assert frames(one_event(go))[-1]["function"].endswith("Job.run")


def test_locals_of_finished_frames_are_their_values_when_they_raised() -> None:
    """Frames below the catcher show the values their variables had at the raise."""
    last_two = frames(one_event(_level_one))[-2:]
    assert last_two[0]["vars"] == {"x": 1, "local_two": 2}
    assert last_two[1]["vars"] == {"x": 2, "local_three": 6}


def test_catching_frame_locals_are_snapshotted_at_capture_time() -> None:
    """The still-running catching frame reports values at the capture, not later rebinds."""

    def handler() -> None:
        status = "before capture"
        try:
            raise KeyError("k")
        except KeyError:
            tripwire.capture_exception()
            status = "changed after capture"  # noqa: F841 - the value the event must NOT show
            for _ in range(3):
                pass

    event = one_event(handler)
    catching = frames(event)[0]
    assert catching["function"].endswith("handler")
    assert catching["vars"]["status"] == "before capture"


def test_locals_are_represented_on_the_worker_not_the_caller() -> None:
    """Turning locals into text (repr) happens on the worker thread, off the calling thread."""
    threads: list[str] = []

    class Watched:
        def __repr__(self) -> str:
            threads.append(threading.current_thread().name)
            return "Watched()"

    def fails() -> None:
        watched = Watched()  # noqa: F841
        raise ValueError("x")

    def handler() -> None:
        try:
            fails()
        except ValueError:
            tripwire.capture_exception()

    event = one_event(handler)
    assert frames(event)[-1]["vars"]["watched"] == "Watched()"
    assert threads and threading.current_thread().name not in threads


def test_include_local_variables_false_sends_no_vars() -> None:
    """With include_local_variables=False no frame has vars."""
    event = one_event(_level_one, include_local_variables=False)
    stack = frames(event)
    assert stack  # not vacuous: there are frames, and none of them has vars
    assert all("vars" not in f for f in stack)


def test_async_frames_have_their_locals() -> None:
    """Coroutine frames that raised keep their locals for the worker."""

    async def fetch(item_id: int) -> None:
        await asyncio.sleep(0)
        attempt = 2  # noqa: F841
        raise ConnectionError(f"item {item_id}")

    async def view() -> None:
        try:
            await fetch(17)
        except ConnectionError:
            tripwire.capture_exception()

    event = one_event(lambda: asyncio.run(view()))
    last = frames(event)[-1]
    assert last["function"].endswith("fetch")
    assert last["vars"] == {"item_id": 17, "attempt": 2}


def test_tripwire_frames_and_traceback_hide_are_hidden() -> None:
    """tripwire's own frames and frames with __traceback_hide__ do not appear."""

    def helper() -> None:
        __traceback_hide__ = True
        raise ValueError("hidden helper")

    def go() -> None:
        try:
            helper()
        except ValueError:
            tripwire.capture_exception()

    names = [f["function"] for f in frames(one_event(go))]
    assert names and names[-1].endswith("go")  # the frames are there, only the hidden one is not
    assert not any(n.endswith("helper") for n in names)
    stack = frames(one_event(_level_one))
    assert stack
    assert all(not (f.get("module") or "").startswith("tripwire.") for f in stack)


def _write_module(root: Path, rel: str, body: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))


def _call_and_capture(module: str, func: str = "fail") -> None:
    mod = importlib.import_module(module)
    try:
        getattr(mod, func)()
    except Exception:
        tripwire.capture_exception()


def test_in_app_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Project code is in app; site-packages never is; include/exclude override by module prefix."""
    project = tmp_path / "project"
    libs = tmp_path / "venv" / "lib" / "site-packages"
    _write_module(project, "tw_app_mod/views.py", "def fail():\n    raise ValueError('app')\n")
    _write_module(project, "tw_app_mod/__init__.py", "")
    _write_module(libs, "tw_lib_mod.py", "def fail():\n    raise ValueError('lib')\n")
    vendored = ".venv/lib/python3/site-packages/tw_vendored.py"
    _write_module(project, vendored, "def fail():\n    raise ValueError('v')\n")
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.syspath_prepend(str(libs))
    monkeypatch.syspath_prepend(str(project / ".venv/lib/python3/site-packages"))

    def last(module: str, **options: Any) -> dict[str, Any]:
        return frames(one_event(lambda: _call_and_capture(module), project_root=str(project), **options))[-1]

    app = last("tw_app_mod.views")
    assert app["in_app"] is True
    assert app["filename"] == os.path.join("tw_app_mod", "views.py")
    lib = last("tw_lib_mod")
    assert lib["in_app"] is False
    assert lib["filename"] == "tw_lib_mod.py"  # relative to its sys.path entry
    assert last("tw_vendored")["in_app"] is False  # site-packages inside the project root
    assert last("tw_lib_mod", in_app_include=["tw_lib_mod"])["in_app"] is True
    assert last("tw_app_mod.views", in_app_exclude=["tw_app_mod"])["in_app"] is False


def test_exception_chain_oldest_first_with_cause_and_context() -> None:
    """__cause__ and __context__ are followed; the raised exception is last and carries the mechanism."""

    def go() -> None:
        try:
            try:
                raise KeyError("first")
            except KeyError as exc:
                raise ValueError("second") from exc
        except ValueError:
            try:
                raise RuntimeError("third")
            except RuntimeError:
                tripwire.capture_exception()

    values = one_event(go)["exception"]["values"]
    assert [v["type"] for v in values] == ["KeyError", "ValueError", "RuntimeError"]
    assert values[-1]["mechanism"] == {"type": "generic", "handled": True}
    assert values[0]["mechanism"]["type"] == "chained"
    assert "exception_id" not in values[-1]["mechanism"]


def test_suppressed_context_is_not_reported() -> None:
    """`raise X from None` hides the context, as Python's own traceback does."""

    def go() -> None:
        try:
            try:
                raise KeyError("internal")
            except KeyError:
                raise LookupError("public") from None
        except LookupError:
            tripwire.capture_exception()

    values = one_event(go)["exception"]["values"]
    assert [v["type"] for v in values] == ["LookupError"]


def test_cyclic_chain_terminates() -> None:
    """An exception whose context points back to itself is reported once, not forever."""
    a = ValueError("a")
    b = KeyError("b")
    a.__context__ = b
    b.__context__ = a
    values = one_event(lambda: tripwire.capture_exception(a))["exception"]["values"]
    assert [v["type"] for v in values] == ["KeyError", "ValueError"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is new in 3.11")
def test_exception_group_members_link_to_their_parent() -> None:
    """Group members are reported with exception_id, parent_id and source exceptions[i]."""

    def go() -> None:
        try:
            # A builtin from 3.11 on (the mark skips older Pythons); mypy and ruff check as for 3.10.
            raise ExceptionGroup("many", [ValueError("v"), TypeError("t")])  # type: ignore[name-defined]  # noqa: F821
        except Exception:
            tripwire.capture_exception()

    values = one_event(go)["exception"]["values"]
    by_type = {v["type"]: v["mechanism"] for v in values}
    assert values[-1]["type"] == "ExceptionGroup"
    group = by_type["ExceptionGroup"]
    assert group["exception_id"] == 0 and group["is_exception_group"] is True
    assert group["type"] == "generic"
    assert by_type["ValueError"]["parent_id"] == 0 and by_type["ValueError"]["source"] == "exceptions[0]"
    assert by_type["TypeError"]["source"] == "exceptions[1]"
    assert len({m["exception_id"] for m in by_type.values()}) == 3


def test_notes_are_appended_to_the_value() -> None:
    """__notes__ (add_note) follow the message, one per line."""

    def go() -> None:
        try:
            err = ValueError("bad input")
            # What add_note() does; mypy checks as for 3.10, where BaseException has no __notes__.
            err.__notes__ = ["while importing row 7", "file orders.csv"]  # type: ignore[attr-defined]
            raise err
        except ValueError:
            tripwire.capture_exception()

    value = one_event(go)["exception"]["values"][-1]["value"]
    assert value == "bad input\nwhile importing row 7\nfile orders.csv"


def test_deep_recursion_keeps_both_ends_of_the_stack() -> None:
    """A 500-frame recursion keeps the oldest and newest frames and records the original count."""

    def recurse(n: int) -> None:
        if n == 0:
            raise RecursionError("bottom")
        recurse(n - 1)

    def go() -> None:
        try:
            recurse(500)
        except RecursionError:
            tripwire.capture_exception()

    event = one_event(go)
    stack = frames(event)
    assert len(stack) == 100
    assert stack[0]["function"].endswith("go") and stack[-1]["vars"]["n"] == 0
    assert event["_meta"]["exception"]["values"]["0"]["stacktrace"]["frames"][""]["len"] == 502


def test_mechanism_from_the_caller_is_kept() -> None:
    """An integration's mechanism {type, handled: False} reaches the event on the raised exception."""
    client = tripwire.init(reporters=[tripwire.testing.CaptureReporter()])
    with tripwire.testing.capture_events() as events:
        try:
            raise ValueError("unhandled")
        except ValueError as exc:
            client.capture_exception(exc, mechanism={"type": "asgi", "handled": False})
    assert events[0]["exception"]["values"][-1]["mechanism"] == {"type": "asgi", "handled": False}


def test_standard_library_frames_are_never_in_app() -> None:
    """With project_root="/" (a container's WORKDIR) the standard library is still not app code."""
    import json

    def go() -> None:
        try:
            json.loads("{broken")
        except ValueError:
            tripwire.capture_exception()

    stack = frames(one_event(go, project_root="/"))
    json_frames = [f for f in stack if (f.get("module") or "").startswith("json")]
    assert json_frames and all(f["in_app"] is False for f in json_frames)
    assert stack[0]["in_app"] is True  # this test file, under "/"


def test_library_frames_get_shallow_locals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With library_frame_locals, frames outside the app keep locals to 2 levels, 10 items and 200
    characters; app frames keep more."""
    libs = tmp_path / "site-packages"
    body = """
        def fail(callback):
            nested = {"a": {"b": {"c": 1}}}
            items = list(range(30))
            text = "t" * 1000
            callback()
    """
    _write_module(libs, "tw_shallow_lib.py", body)
    monkeypatch.syspath_prepend(str(libs))
    lib = importlib.import_module("tw_shallow_lib")

    def app_code() -> None:
        nested = {"a": {"b": {"c": 1}}}  # noqa: F841
        items = list(range(30))  # noqa: F841
        raise ValueError("in app")

    def go() -> None:
        try:
            lib.fail(app_code)
        except ValueError:
            tripwire.capture_exception()

    library_frame, app_frame = frames(one_event(go, library_frame_locals=True))[-2:]
    assert library_frame["in_app"] is False and app_frame["in_app"] is True
    assert library_frame["vars"]["nested"] == {"a": "<dict of 1 items>"}
    assert len(library_frame["vars"]["items"]) == 10
    assert len(library_frame["vars"]["text"]) == 200
    assert app_frame["vars"]["nested"] == {"a": {"b": {"c": 1}}}
    assert len(app_frame["vars"]["items"]) == 30


def test_library_frames_have_no_locals_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default only app frames carry vars: a library frame has its source and line but no locals."""
    libs = tmp_path / "site-packages"
    _write_module(
        libs,
        "tw_quiet_lib.py",
        """
        def call(callback):
            token_count = 3
            callback()
    """,
    )
    monkeypatch.syspath_prepend(str(libs))
    lib = importlib.import_module("tw_quiet_lib")

    def app_code() -> None:
        order_id = 42  # noqa: F841
        raise ValueError("in app")

    def go() -> None:
        try:
            lib.call(app_code)
        except ValueError:
            tripwire.capture_exception()

    library_frame, app_frame = frames(one_event(go))[-2:]
    assert library_frame["in_app"] is False and "vars" not in library_frame
    assert library_frame["context_line"].strip() == "callback()"
    assert app_frame["vars"] == {"order_id": 42}


def test_an_object_held_by_several_frames_is_sent_once() -> None:
    """The same object in several frames' locals is represented in the newest frame; older frames name it."""
    shared = {"path": "/orders/7", "items": list(range(5))}

    def inner(request: dict[str, int]) -> None:
        raise ValueError("inner")

    def outer(request: dict[str, int]) -> None:
        alias = request  # noqa: F841
        inner(request)

    def go() -> None:
        try:
            outer(shared)  # type: ignore[arg-type]
        except ValueError:
            tripwire.capture_exception()

    stack = frames(one_event(go))
    newest, older = stack[-1], stack[-2]
    assert newest["vars"] == {"request": {"path": "/orders/7", "items": [0, 1, 2, 3, 4]}}
    reference = f"<same as frame {len(stack) - 1} 'request'>"
    assert older["vars"]["request"] == reference and older["vars"]["alias"] == reference


def test_a_shared_object_under_a_sensitive_name_is_not_a_reference_point() -> None:
    """An object filtered under a secret name in one frame is shown in full in a frame naming it plainly."""
    shared = {"user": "ann"}

    def inner(session: dict[str, str]) -> None:
        raise ValueError("inner")

    def outer(data: dict[str, str]) -> None:
        inner(data)

    def go() -> None:
        try:
            outer(shared)
        except ValueError:
            tripwire.capture_exception()

    stack = frames(one_event(go))
    assert stack[-1]["vars"] == {"session": "[Filtered]"}
    assert stack[-2]["vars"]["data"] == {"user": "ann"}


def test_every_running_frame_of_the_traceback_is_snapshotted() -> None:
    """An exception re-raised in a helper and caught there: both running frames show capture-time values."""

    def failing() -> None:
        raise KeyError("k")

    def helper(error: BaseException) -> None:
        step = "helper at capture"
        try:
            raise error  # the traceback now starts at this frame, then the outer one
        except KeyError:
            tripwire.capture_exception()
        step = "helper later"  # noqa: F841

    def outer() -> None:
        state = "outer at capture"
        try:
            failing()
        except KeyError as exc:
            helper(exc)
            state = "outer later"  # noqa: F841

    stack = frames(one_event(outer))
    by_function = {f["function"].rsplit(".", 1)[-1]: f for f in stack}
    assert by_function["helper"]["vars"]["step"] == "helper at capture"
    assert by_function["outer"]["vars"]["state"] == "outer at capture"


def test_a_running_frame_after_a_finished_one_is_snapshotted() -> None:
    """The catching frame is snapshotted even when a finished frame precedes it in the traceback."""

    def failing() -> None:
        raise KeyError("k")

    def reraise(error: BaseException) -> None:
        try:
            raise error
        except KeyError:
            pass  # returns: this frame is finished, but stays first in the traceback

    def outer() -> None:
        state = "at capture"
        try:
            failing()
        except KeyError as exc:
            reraise(exc)
            tripwire.capture_exception(exc)
            state = "later"  # noqa: F841

    stack = frames(one_event(outer))
    assert [f["function"].rsplit(".", 1)[-1] for f in stack] == ["reraise", "outer", "failing"]
    assert stack[1]["vars"]["state"] == "at capture"
