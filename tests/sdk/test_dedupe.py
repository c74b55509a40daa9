"""The once-only rule leaves the exception as the app made it: picklable, copyable, same attributes.

A Celery worker, a ``multiprocessing`` pool or a cache pickles the errors it has logged; tripwire's
mark must not travel with them (nor break them), and it must not keep them alive.
"""

from __future__ import annotations

import copy
import gc
import logging
import multiprocessing
import pickle
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

import tripwire
from tests.support.sink import Sink
from tripwire._dedupe import ReportedRegistry
from tripwire.reporters.capture import CapturedEvents, CaptureReporter


class PaymentDeclined(Exception):
    """An application error with its own attributes (and, being a class of ours, weak references)."""

    def __init__(self, order: int, reason: str) -> None:
        super().__init__(order, reason)
        self.order = order
        self.reason = reason


def _builtin() -> BaseException:
    return ValueError("card number has 15 digits")


def _os_error() -> BaseException:
    return FileNotFoundError(2, "No such file or directory", "/etc/app.toml")


def _custom() -> BaseException:
    return PaymentDeclined(1234, "insufficient funds")


def _noted() -> BaseException:
    error = KeyError("user")
    # What add_note() does (3.11+); mypy checks as for 3.10, where BaseException has no __notes__.
    error.__notes__ = ["while loading the session"]  # type: ignore[attr-defined]
    return error


MAKERS: dict[str, Callable[[], BaseException]] = {
    "builtin": _builtin,
    "oserror": _os_error,
    "custom": _custom,
    "with-note": _noted,
}


def _raised(make: Callable[[], BaseException]) -> BaseException:
    try:
        raise make()
    except BaseException as exc:
        return exc


def _report_by_handler(exc: BaseException) -> None:
    tripwire.capture_exception(exc)


def _report_by_logging(exc: BaseException) -> None:
    logging.getLogger("tests.sdk.dedupe").error("payment failed", exc_info=exc)


REPORTERS = {"capture_exception": _report_by_handler, "logging": _report_by_logging}


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    captured = CapturedEvents()
    tripwire.init(reporters=[CaptureReporter(captured)], release=None)
    yield captured
    tripwire.flush(5)


def _state(exc: BaseException) -> tuple[object, ...]:
    """What an app can see of an exception's value (not its identity)."""
    return (type(exc), exc.args, str(exc), vars(exc))


@pytest.mark.parametrize("how", sorted(REPORTERS))
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_reported_exception_pickles_to_what_the_app_raised(
    events: CapturedEvents, kind: str, how: str
) -> None:
    """After tripwire reported it, pickle.loads(pickle.dumps(exc)) gives the app's exception back."""
    error = _raised(MAKERS[kind])
    REPORTERS[how](error)
    assert tripwire.flush(5) and len(events) == 1
    twin = _raised(MAKERS[kind])
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert _state(pickle.loads(pickle.dumps(error, protocol))) == _state(twin)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_reported_exception_deep_copies(events: CapturedEvents, kind: str) -> None:
    """copy.copy and copy.deepcopy of a reported exception work and equal an unreported one."""
    error = _raised(MAKERS[kind])
    _report_by_logging(error)
    twin = _raised(MAKERS[kind])
    assert _state(copy.deepcopy(error)) == _state(twin)
    assert _state(copy.copy(error)) == _state(twin)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_vars_of_a_reported_exception_are_what_the_app_set(events: CapturedEvents, kind: str) -> None:
    """vars(exc) after reporting is exactly what it is without tripwire: no private key in it."""
    error = _raised(MAKERS[kind])
    before = dict(vars(error))
    _report_by_handler(error)
    _report_by_logging(error)
    assert vars(error) == before == vars(_raised(MAKERS[kind]))
    assert tripwire.flush(5) and len(events) == 1


def test_the_once_only_rule_still_holds_after_the_mark_moved(events: CapturedEvents) -> None:
    """Handler, logging and capture again on one builtin and one custom error: one event each."""
    builtin, custom = _raised(_builtin), _raised(_custom)
    for error in (builtin, custom):
        _report_by_handler(error)
        _report_by_logging(error)
        assert tripwire.capture_exception(error) is None
    assert tripwire.flush(5)
    assert [e["exception"]["values"][-1]["type"] for e in events] == ["ValueError", "PaymentDeclined"]
    assert tripwire.stats()["dropped"]["deduplicated"] == 4


def test_a_copy_of_a_reported_exception_is_a_new_error(events: CapturedEvents) -> None:
    """Identity decides: an unpickled copy raised again (another process, a cache) is reported."""
    error = _raised(_custom)
    _report_by_handler(error)
    copy_ = pickle.loads(pickle.dumps(error))
    _report_by_handler(copy_)
    assert tripwire.flush(5) and len(events) == 2


@pytest.mark.parametrize("kind", ["builtin", "custom"])
def test_reported_exceptions_are_not_kept_alive(events: CapturedEvents, kind: str) -> None:
    """Once the app drops a reported exception (builtin or its own class), its frames are freed."""

    class Frame:
        """A local of the failing frame, to see whether the frame (and its locals) was freed."""

    witnesses: list[weakref.ref[Frame]] = []

    def fail() -> None:
        local = Frame()
        witnesses.append(weakref.ref(local))
        raise MAKERS[kind]()

    for _ in range(50):
        try:
            fail()
        except BaseException:
            tripwire.capture_exception()
    assert tripwire.flush(5) and len(events) == 50
    deadline = time.monotonic() + 5
    while any(w() is not None for w in witnesses) and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert [w for w in witnesses if w() is not None] == []


def test_the_registry_is_bounded_while_the_app_keeps_its_errors() -> None:
    """An app holding 20,000 reported errors alive costs the registry a bounded number of entries."""
    registry = ReportedRegistry()
    kept = [_raised(kind) for _ in range(10_000) for kind in (_builtin, _custom)]
    for error in kept:
        registry.mark(error)
    assert len(registry) <= ReportedRegistry.MAX_ENTRIES
    # The newest are still known: the once-only rule holds for what is being handled now.
    assert all(registry.seen(error) for error in kept[-100:])


def test_the_registry_forgets_dead_builtin_errors_without_waiting_for_the_bound() -> None:
    """Builtin exceptions (no weak references) that died are swept, so the registry stays small."""
    registry = ReportedRegistry()
    for _ in range(5_000):
        registry.mark(_raised(_builtin))
    assert len(registry) < 1_000


def test_a_new_error_at_a_dead_errors_address_is_not_taken_as_reported() -> None:
    """Identity is exact: 2,000 errors raised one after another (same memory reused) are all new."""
    registry = ReportedRegistry()
    fresh = 0
    for i in range(2_000):
        error = _raised(_builtin if i % 2 else _custom)
        if not registry.seen(error):
            fresh += 1
        registry.mark(error)
        del error
    assert fresh == 2_000


# -- across processes ---------------------------------------------------------------------------------


def _failing_job(n: int) -> int:
    """Runs in a pool worker: fails, and logs the failure (so tripwire reports it) before raising."""
    try:
        raise PaymentDeclined(n, "card expired") if n % 2 else ValueError(f"order {n} is empty")
    except Exception:
        logging.getLogger("tests.sdk.jobs").exception("job %d failed", n)
        raise


def _expect_real_errors(results: list[BaseException]) -> None:
    assert [type(e).__name__ for e in results] == ["ValueError", "PaymentDeclined"]
    assert str(results[0]) == "order 2 is empty"
    assert vars(results[1]) == {"order": 3, "reason": "card expired"}


def test_a_multiprocessing_pool_returns_the_logged_error_itself(sink: Sink) -> None:
    """A pool worker logs and raises: the parent gets that error (no MaybeEncodingError), reported once."""
    tripwire.init(sink.dsn, send_client_reports=False, release=None)
    results: list[BaseException] = []
    with multiprocessing.get_context("fork").Pool(1) as pool:
        for n in (2, 3):
            with pytest.raises(Exception) as raised:
                pool.apply(_failing_job, (n,))
            results.append(raised.value)
        # The children's events are sent by their own worker threads: wait before the pool ends.
        assert sink.wait_until(lambda: len(sink.events) >= 2, 5)
    _expect_real_errors(results)
    assert sorted(e["exception"]["values"][-1]["type"] for e in sink.events) == [
        "PaymentDeclined",
        "ValueError",
    ]


def test_a_process_pool_executor_returns_the_logged_error_itself(sink: Sink) -> None:
    """ProcessPoolExecutor.result() raises the error the child logged and raised, reported once."""
    tripwire.init(sink.dsn, send_client_reports=False, release=None)
    results: list[BaseException] = []
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        for n in (2, 3):
            error = pool.submit(_failing_job, n).exception(timeout=5)
            assert error is not None
            results.append(error)
        assert sink.wait_until(lambda: len(sink.events) >= 2, 5)
    _expect_real_errors(results)
    assert len(sink.events) == 2


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running
