"""The logging integration and tripwire.logging's handler and filter, with real logging configuration."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tripwire
import tripwire.logging
from tripwire.integrations import logging as logging_integration
from tripwire.integrations.logging import (
    _MAX_IGNORED_NAMES,
    LoggingIntegration,
    _unignore_logger,
    ignore_logger,
)
from tripwire.reporters.capture import CapturedEvents

from .conftest import run_python

Start = Callable[..., CapturedEvents]


@pytest.fixture(autouse=True)
def _isolated_loggers() -> Iterator[None]:
    """Each test configures its own ``it.*`` loggers; put them (and the root logger) back afterwards.

    The loggers a test made are taken out of logging's registry again: every logger left there costs
    each ``setLevel`` anywhere in the process (it clears the cache of every logger) and each later
    test's log capture (pytest walks the registry in every phase of every test), and one test here
    makes 1,074 of them (resetting those with ``setLevel`` after each later test was 10 s of CPU).
    """
    manager = logging.root.manager
    before = set(manager.loggerDict)
    root_level, root_handlers = logging.root.level, list(logging.root.handlers)
    yield
    logging.root.setLevel(root_level)
    logging.root.handlers[:] = root_handlers
    for name, logger in list(manager.loggerDict.items()):
        if not name.startswith("it."):
            continue
        if name not in before:
            del manager.loggerDict[name]
        elif isinstance(logger, logging.Logger):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            for flt in list(logger.filters):
                logger.removeFilter(flt)
            if logger.level != logging.NOTSET:
                logger.setLevel(logging.NOTSET)
            logger.propagate = True


def configure(loggers: dict[str, Any], handlers: dict[str, Any] | None = None, **extra: Any) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": handlers or {"null": {"class": "logging.NullHandler"}},
            "loggers": loggers,
            **extra,
        }
    )


def crumbs(event: dict[str, Any]) -> list[dict[str, Any]]:
    return list(event.get("breadcrumbs", {}).get("values", []))


def test_error_record_becomes_message_event_grouped_by_template(start: Start) -> None:
    """logger.error("user %s failed", x) sends logentry.message = the template, formatted = the text."""
    configure({"it.jobs": {"level": "INFO", "handlers": ["null"], "propagate": False}})
    events = start()
    log = logging.getLogger("it.jobs")
    log.error("user %s failed", "alice")
    log.error("user %s failed", "bob")
    tripwire.flush(5)
    assert len(events) == 2
    for event, who in zip(events, ["alice", "bob"], strict=True):
        assert event["logentry"]["message"] == "user %s failed"
        assert event["logentry"]["formatted"] == f"user {who} failed"
        assert event["logger"] == "it.jobs"
        assert event["level"] == "error"
        assert "exception" not in event


def test_an_error_log_storm_is_limited_by_template(start: Start) -> None:
    """Error lines repeated with other arguments are one error for repeat_limit; another template is not."""
    configure({"it.storm": {"level": "INFO", "handlers": ["null"], "propagate": False}})
    events = start(repeat_limit=4)
    log = logging.getLogger("it.storm")
    for i in range(30):
        log.error("payment %s declined", i)
    for i in range(3):
        log.error("refund %s failed", i)
    tripwire.flush(5)
    messages = [e["logentry"]["message"] for e in events]
    assert messages.count("payment %s declined") == 5  # the budget, then at flush the final count
    assert events[-1]["contexts"]["repeats"]["coalesced"] == 25
    assert messages.count("refund %s failed") == 3
    assert tripwire.stats()["dropped"]["repeat_limit"] == 25  # 26 coalesced, the last one sent as the final


def test_exception_record_becomes_exception_event_with_logging_mechanism(start: Start) -> None:
    """logger.exception() inside except sends the exception, mechanism logging and handled."""
    configure({"it.exc": {"level": "INFO", "handlers": ["null"], "propagate": False}})
    events = start()
    try:
        {"present": 1}["missing"]
    except KeyError:
        logging.getLogger("it.exc").exception("lookup of %s failed", "missing")
    tripwire.flush(5)
    (event,) = events
    value = event["exception"]["values"][-1]
    assert value["type"] == "KeyError"
    assert value["mechanism"] == {"type": "logging", "handled": True}
    assert event["logentry"]["message"] == "lookup of %s failed"


def test_critical_maps_to_fatal_and_warning_is_only_a_breadcrumb(start: Start) -> None:
    """CRITICAL records are fatal events; WARNING records below event_level become breadcrumbs only."""
    configure({"it.lv": {"level": "DEBUG", "handlers": ["null"], "propagate": False}})
    events = start()
    log = logging.getLogger("it.lv")
    log.debug("debug detail")
    log.info("step one")
    log.warning("disk at %d%%", 91)
    log.critical("down")
    tripwire.flush(5)
    (event,) = events
    assert event["level"] == "fatal"
    trail = crumbs(event)
    assert [(c["message"], c["level"], c["category"], c["type"]) for c in trail] == [
        ("step one", "info", "it.lv", "log"),
        ("disk at 91%", "warning", "it.lv", "log"),
    ]


def test_levels_are_configurable_and_none_turns_a_part_off(start: Start) -> None:
    """LoggingIntegration(breadcrumb_level=None, event_level="WARNING") reports warnings, no crumbs."""
    configure({"it.cfg": {"level": "DEBUG", "handlers": ["null"], "propagate": False}})
    events = start(integrations=[LoggingIntegration(breadcrumb_level=None, event_level="WARNING")])
    log = logging.getLogger("it.cfg")
    log.info("quiet")
    log.warning("loud")
    tripwire.flush(5)
    (event,) = events
    assert event["logentry"]["formatted"] == "loud"
    assert event["level"] == "warning"
    assert crumbs(event) == []


def test_records_of_loggers_that_do_not_propagate_are_seen(start: Start) -> None:
    """dictConfig with propagate=False and its own handler does not hide records from tripwire."""
    configure(
        {"it.private": {"level": "INFO", "handlers": ["null"], "propagate": False}},
        root={"level": "CRITICAL", "handlers": []},
    )
    events = start()
    logging.getLogger("it.private").error("hidden from root")
    tripwire.flush(5)
    assert [e["logentry"]["formatted"] for e in events] == ["hidden from root"]


def test_app_handlers_still_get_every_record(start: Start) -> None:
    """The app's own handlers receive the records exactly as before."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    start()
    log = logging.getLogger("it.keep")
    log.propagate = False
    log.addHandler(Keep())
    log.setLevel(logging.INFO)
    log.info("a")
    log.error("b")
    assert seen == ["a", "b"]


def test_extra_attributes_are_attached_only_when_asked_and_scrubbed(start: Start) -> None:
    """extra= fields appear (with secrets masked) only with attach_extra=True."""
    configure({"it.extra": {"level": "INFO", "handlers": ["null"], "propagate": False}})
    log = logging.getLogger("it.extra")
    events = start()
    log.info("ctx", extra={"order_id": 7})
    log.error("failed", extra={"order_id": 7, "api_token": "s3cr3t-value"})
    tripwire.flush(5)
    (plain,) = events
    assert "order_id" not in plain.get("extra", {})
    assert "data" not in crumbs(plain)[0]

    events = start(integrations=[LoggingIntegration(attach_extra=True)])
    log.info("ctx", extra={"order_id": 8, "password": "hunter2"})
    log.error("failed", extra={"order_id": 7, "api_token": "s3cr3t-value"})
    tripwire.flush(5)
    (event,) = events
    assert event["extra"]["order_id"] == 7
    assert event["extra"]["api_token"] == "[Filtered]"
    crumb = crumbs(event)[-1]
    assert crumb["message"] == "ctx"
    assert crumb["data"]["order_id"] == 8
    assert crumb["data"]["password"] == "[Filtered]"
    assert "s3cr3t-value" not in repr(event) and "hunter2" not in repr(event)


def test_sdk_own_logger_never_feeds_back(start: Start) -> None:
    """Records of the 'tripwire' logger (and below) never become events or breadcrumbs."""
    events = start()
    logging.getLogger("tripwire").error("internal trouble")
    logging.getLogger("tripwire.reporters").error("more trouble")
    tripwire.capture_message("probe")
    tripwire.flush(5)
    (event,) = events
    assert event["logentry"]["message"] == "probe"
    assert crumbs(event) == []


def test_failing_before_send_logs_but_does_not_loop(start: Start) -> None:
    """before_send raising logs to 'tripwire' on the worker; that record is not reported again."""

    def broken(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("hook bug")

    events = start(before_send=broken)
    logging.getLogger("it.loop").error("original")
    tripwire.flush(5)
    tripwire.capture_message("after")
    tripwire.flush(5)
    assert [e["logentry"]["message"] for e in events] == ["original", "after"]


def test_ignored_loggers_and_records_are_skipped(start: Start) -> None:
    """ignore_logger("noisy.*") and extra={"tripwire_ignore": True} keep records out."""
    events = start()
    ignore_logger("it.noisy.*")
    logging.getLogger("it.noisy.sub").error("skip me")
    logging.getLogger("it.quiet").error("skip me too", extra={"tripwire_ignore": True})
    logging.getLogger("it.quiet").error("report me")
    tripwire.flush(5)
    assert [e["logentry"]["message"] for e in events] == ["report me"]


def test_ignore_logger_applies_to_loggers_that_already_logged(start: Start) -> None:
    """Whether a logger is ignored is remembered by name; ignore_logger() and undoing it still apply."""
    events = start()
    log = logging.getLogger("it.late.sub")
    log.error("before")
    ignore_logger("it.late.*")
    try:
        log.error("ignored")
    finally:
        _unignore_logger("it.late.*")
    log.error("again")
    tripwire.flush(5)
    assert [e["logentry"]["message"] for e in events] == ["before", "again"]


def test_remembered_logger_names_are_bounded(start: Start) -> None:
    """Loggers named per job or tenant do not grow what the integration remembers without bound."""
    start()
    for i in range(_MAX_IGNORED_NAMES + 50):
        logging.getLogger(f"it.tenant.{i}").info("seen")
    assert len(logging_integration._ignored_names) <= _MAX_IGNORED_NAMES


def test_handler_and_filter_configured_with_dictconfig(start: Start) -> None:
    """TripwireHandler and BreadcrumbFilter set up by dictConfig report once, with the crumbs."""
    events = start(disabled_integrations=["logging"])
    configure(
        {
            "it.manual": {
                "level": "DEBUG",
                "handlers": ["tripwire"],
                "filters": ["crumbs"],
                "propagate": False,
            }
        },
        handlers={"tripwire": {"class": "tripwire.logging.TripwireHandler", "level": "ERROR"}},
        filters={"crumbs": {"()": "tripwire.logging.BreadcrumbFilter", "level": "INFO"}},
    )
    log = logging.getLogger("it.manual")
    log.debug("too low")
    log.info("loaded %d rows", 3)
    log.error("sync of %s failed", "acct-1")
    logging.getLogger("it.other").error("no handler here")
    tripwire.flush(5)
    (event,) = events
    assert event["logentry"] == {"message": "sync of %s failed", "formatted": "sync of acct-1 failed"}
    # The filter runs before the handler, so the error is the last crumb of its own event (as in BugSnag).
    assert [c["message"] for c in crumbs(event)] == ["loaded 3 rows", "sync of acct-1 failed"]


def test_handler_together_with_integration_reports_once(start: Start) -> None:
    """A record seen by TripwireHandler/BreadcrumbFilter and by the integration is one event, one crumb."""
    events = start()
    log = logging.getLogger("it.both")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(tripwire.logging.TripwireHandler())
    log.addFilter(tripwire.logging.BreadcrumbFilter())
    log.info("first")
    log.error("second")
    log.error("third")
    tripwire.flush(5)
    assert [e["logentry"]["message"] for e in events] == ["second", "third"]
    assert [c["message"] for c in crumbs(events[1])] == ["first", "second", "third"]


def test_handler_does_nothing_before_init() -> None:
    """TripwireHandler without an active client neither raises nor reports."""
    log = logging.getLogger("it.early")
    log.propagate = False
    log.addHandler(tripwire.logging.TripwireHandler())
    log.error("before init")
    assert tripwire.get_client() is None


def test_disabled_integration_leaves_logging_untouched(start: Start) -> None:
    """disabled_integrations=["logging"] keeps Logger.callHandlers as it was."""
    original = logging.Logger.callHandlers
    events = start(disabled_integrations=["logging"])
    assert logging.Logger.callHandlers is original
    logging.getLogger("it.off").error("not reported")
    tripwire.flush(5)
    assert list(events) == []


def test_close_restores_logging(start: Start) -> None:
    """After close(), Logger.callHandlers is the original again and records are not reported."""
    original = logging.Logger.callHandlers
    start()
    assert logging.Logger.callHandlers is not original
    tripwire.close()
    assert logging.Logger.callHandlers is original


def test_records_logged_by_before_send_do_not_loop(start: Start) -> None:
    """A before_send hook that logs an error (on tripwire's worker) does not create new events."""
    calls: list[str] = []

    def chatty(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        calls.append(event["logentry"]["message"])
        logging.getLogger("it.hook").error("hook saw %s", event["event_id"])
        return event

    events = start(before_send=chatty)
    logging.getLogger("it.app").error("real problem")
    tripwire.flush(5)
    tripwire.flush(5)
    assert [e["logentry"]["message"] for e in events] == ["real problem"]
    assert calls == ["real problem"]


def test_concurrent_tasks_get_only_their_own_log_breadcrumbs(start: Start) -> None:
    """Log breadcrumbs land in the unit of work that logged them: concurrent tasks never mix."""
    import asyncio

    events = start()
    log = logging.getLogger("it.tasks")
    log.setLevel(logging.INFO)

    async def unit(name: str) -> None:
        with tripwire.isolation_scope():
            for step in range(3):
                log.info("%s step %d", name, step)
                await asyncio.sleep(0)
            log.error("%s failed", name)

    async def main() -> None:
        await asyncio.gather(unit("a"), unit("b"))

    asyncio.run(main())
    tripwire.flush(5)
    trails = {e["logentry"]["formatted"]: [c["message"] for c in crumbs(e)] for e in events}
    assert trails == {
        "a failed": ["a step 0", "a step 1", "a step 2"],
        "b failed": ["b step 0", "b step 1", "b step 2"],
    }


def test_a_fresh_process_is_hooked_from_its_first_record() -> None:
    """In a process that logs only after init(), the first error record is reported, with crumbs."""
    proc = run_python(
        """
        import sys
        import tripwire, tripwire.testing
        events = tripwire.testing.CapturedEvents()
        tripwire.init(reporters=[tripwire.testing.CaptureReporter(events)], release=None)
        print("logging" in sys.modules)
        import logging
        log = logging.getLogger("late")
        log.setLevel(logging.INFO)
        log.info("opening %s", "/data")
        log.error("disk %s full", "/data")
        logging.getLogger("tripwire").error("tripwire: the SDK's own line is never an event")
        assert tripwire.flush(5)
        (event,) = events
        print(event["logentry"]["message"], event["logger"], event["level"])
        print([c["message"] for c in event["breadcrumbs"]["values"]])
        """
    )
    assert proc.returncode == 0, proc.stderr
    # tripwire imports logging itself (its own logger), so the hook is in place at init.
    assert proc.stdout.splitlines() == ["True", "disk %s full late error", "['opening /data']"]
