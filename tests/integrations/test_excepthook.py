"""Uncaught exceptions in real child processes reach a loopback sink before the process exits."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tripwire
from tests.support.sink import Sink
from tripwire.reporters.capture import CapturedEvents

from .conftest import ROOT, run_python


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


def last_value(event: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = event["exception"]["values"][-1]
    return value


def test_uncaught_exception_in_main_thread_is_delivered_before_exit(sink: Sink) -> None:
    """The process dies of an error: the event is at the sink when it has exited, traceback printed."""
    proc = run_python(
        f"""
        import tripwire
        tripwire.init({sink.dsn!r}, release="r1")
        tripwire.set_tag("job", "import")
        raise RuntimeError("main thread died")
        """
    )
    assert proc.returncode == 1
    assert "RuntimeError: main thread died" in proc.stderr  # the previous hook still printed it
    (event,) = sink.events
    value = last_value(event)
    assert value["type"] == "RuntimeError"
    assert value["mechanism"] == {"type": "excepthook", "handled": False}
    assert event["level"] == "fatal"
    assert event["tags"]["job"] == "import"


def test_uncaught_exception_in_thread_is_delivered_before_exit(sink: Sink) -> None:
    """A thread dies, the main thread ends normally: the thread's error still reaches the sink."""
    proc = run_python(
        f"""
        import threading, tripwire
        tripwire.init({sink.dsn!r})
        def work():
            raise ValueError("worker died")
        thread = threading.Thread(target=work, name="loader")
        thread.start()
        thread.join()
        print("main done")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "main done" in proc.stdout
    assert "ValueError: worker died" in proc.stderr  # the default thread hook still printed it
    (event,) = sink.events
    value = last_value(event)
    assert value["type"] == "ValueError"
    assert value["mechanism"] == {"type": "threading", "handled": False}
    assert event["contexts"]["thread"]["name"] == "loader"


def test_previous_hooks_are_chained(sink: Sink) -> None:
    """Hooks installed before init() still run after tripwire has reported."""
    proc = run_python(
        f"""
        import sys, threading, tripwire
        def mine(t, v, tb):
            print("app hook saw", t.__name__, flush=True)
        def mine_thread(args):
            print("app thread hook saw", args.exc_type.__name__, flush=True)
        sys.excepthook = mine
        threading.excepthook = mine_thread
        tripwire.init({sink.dsn!r})
        t = threading.Thread(target=lambda: 1 / 0)
        t.start(); t.join()
        raise KeyError("k")
        """
    )
    assert "app thread hook saw ZeroDivisionError" in proc.stdout
    assert "app hook saw KeyError" in proc.stdout
    assert sorted(last_value(e)["type"] for e in sink.events) == ["KeyError", "ZeroDivisionError"]


def test_keyboard_interrupt_and_system_exit_are_not_reported(sink: Sink) -> None:
    """Ctrl-C in the main thread and SystemExit in a thread are not errors."""
    proc = run_python(
        f"""
        import sys, threading, tripwire
        tripwire.init({sink.dsn!r})
        t = threading.Thread(target=lambda: sys.exit(3))
        t.start(); t.join()
        raise KeyboardInterrupt
        """
    )
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in proc.stderr
    assert sink.events == []


def test_same_exception_through_handler_logging_and_excepthook_is_reported_once(sink: Sink) -> None:
    """capture_exception in a handler, logger.exception and the dying excepthook: one event."""
    proc = run_python(
        f"""
        import logging, tripwire
        tripwire.init({sink.dsn!r})
        log = logging.getLogger("app")
        try:
            int("not a number")
        except ValueError:
            tripwire.capture_exception()
            log.exception("parse failed")
            raise
        """
    )
    assert proc.returncode == 1
    assert "ValueError" in proc.stderr
    events = sink.events
    assert len(events) == 1
    assert last_value(events[0])["mechanism"]["handled"] is True


def test_close_restores_both_hooks(start: Callable[..., CapturedEvents]) -> None:
    """After close(), sys.excepthook and threading.excepthook are the ones from before init()."""
    before, before_thread = sys.excepthook, threading.excepthook
    start()
    assert sys.excepthook is not before
    assert threading.excepthook is not before_thread
    tripwire.close()
    assert sys.excepthook is before
    assert threading.excepthook is before_thread


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_thread_hook_reports_in_process(start: Callable[..., CapturedEvents]) -> None:
    """A crashing thread in this process is reported with its name while the app keeps running."""
    events = start()

    def work() -> None:
        raise LookupError("gone")

    thread = threading.Thread(target=work, name="t-crash")
    thread.start()
    thread.join()
    tripwire.flush(5)
    (event,) = events
    assert last_value(event)["type"] == "LookupError"
    assert event["contexts"]["thread"]["name"] == "t-crash"


def test_crash_ends_a_running_session_as_crashed(sink: Sink) -> None:
    """A script that started a session and dies of an uncaught error sends that session as crashed."""
    proc = run_python(
        f"""
        import tripwire
        tripwire.init({sink.dsn!r}, release="etl@3")
        tripwire.start_session()
        raise RuntimeError("etl died")
        """
    )
    assert proc.returncode == 1
    (session,) = sink.items("session")
    assert session["status"] == "crashed"
    assert session["errors"] == 1


def test_errors_typed_in_an_interactive_interpreter_are_not_reported(sink: Sink) -> None:
    """In a REPL (sys.ps1 set) an uncaught exception is a typo, not an incident: nothing is sent."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    env["PYTHONPATH"] = str(ROOT / "src")
    proc = subprocess.run(
        [sys.executable, "-i", "-c", f"import tripwire; tripwire.init({sink.dsn!r})"],
        input="raise ValueError('typo')\nimport tripwire; print('flushed', tripwire.flush(5))\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert "ValueError: typo" in proc.stderr
    assert "flushed True" in proc.stdout
    assert sink.events == []
