"""tripwire's own logger: the plain `tripwire` logging.Logger, naming the SDK code that logged."""

from __future__ import annotations

import logging
import sys

import pytest

from tripwire._log import logger


def test_sdk_log_lines_are_tripwire_records_naming_the_code_that_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A warning through the SDK logger is a 'tripwire' record whose function and line are the caller's."""
    with caplog.at_level(logging.DEBUG, logger="tripwire"):
        line = sys._getframe().f_lineno + 1
        logger.warning("tripwire: reporter %s failed", "sentry")
        logger.debug("tripwire: detail %d", 7)
    first, second = caplog.records
    assert (first.name, first.levelno, first.getMessage()) == (
        "tripwire",
        logging.WARNING,
        "tripwire: reporter sentry failed",
    )
    assert first.funcName == "test_sdk_log_lines_are_tripwire_records_naming_the_code_that_logged"
    assert (first.filename, first.lineno) == ("test_log.py", line)
    assert (second.levelno, second.getMessage()) == (logging.DEBUG, "tripwire: detail 7")


def test_sdk_exception_lines_carry_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """logger.exception() inside an except block logs at ERROR with the exception attached."""
    with caplog.at_level(logging.ERROR, logger="tripwire"):
        try:
            raise KeyError("hook")
        except KeyError:
            logger.exception("tripwire: before_send raised")
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
    assert record.funcName == "test_sdk_exception_lines_carry_the_traceback"


def test_levels_set_on_the_tripwire_logger_apply(caplog: pytest.LogCaptureFixture) -> None:
    """Configuring logging.getLogger('tripwire') (the app's usual way) filters the SDK's lines."""
    real = logging.getLogger("tripwire")
    old = real.level
    real.setLevel(logging.ERROR)
    try:
        logger.warning("tripwire: not shown")
        logger.error("tripwire: shown")
    finally:
        real.setLevel(old)
    assert [r.getMessage() for r in caplog.records] == ["tripwire: shown"]
