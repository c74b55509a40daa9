"""Choosing reporters: config dicts by entry point name, third-party plug-ins, and the logging one."""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from pathlib import Path

import pytest

import tripwire
from tests.support.sink import Sink
from tripwire import ConfigurationError
from tripwire.reporters.bugsnag import BugsnagReporter
from tripwire.reporters.logging import LoggingReporter
from tripwire.reporters.sentry import SentryReporter


def test_config_dicts_name_builtin_backends(sink: Sink) -> None:
    """{"backend": "sentry", ...} and {"backend": "bugsnag", ...} build the built-in reporters."""
    client = tripwire.init(
        reporters=[
            {"backend": "sentry", "dsn": sink.dsn, "http_timeout": 2.0},
            {"backend": "bugsnag", "api_key": "k" * 32, "endpoint": sink.url},
            {"backend": "logging", "level": "warning"},
        ]
    )
    sentry, bugsnag, log = client.reporters
    assert isinstance(sentry, SentryReporter) and sentry.http_timeout == 2.0
    assert isinstance(bugsnag, BugsnagReporter) and bugsnag.http_timeout == 5.0  # from init's options
    assert isinstance(log, LoggingReporter) and log.level == logging.WARNING


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"backend": "sentry", "dsn": "not a dsn"}, r"reporters\[sentry\]\.dsn"),
        ({"backend": "bugsnag"}, "bugsnag"),
        ({"backend": "bugsnag", "api_key": "k", "endpoint": "notify.example"}, "endpoint"),
        ({"backend": "nope"}, "no backend named 'nope'"),
        ({"backend": "logging", "level": "LOUD"}, "unknown level"),
    ],
)
def test_bad_reporter_configs_fail_at_init(spec: dict[str, str], message: str) -> None:
    """A wrong reporter config raises ConfigurationError at init, naming what is wrong."""
    with pytest.raises(ConfigurationError, match=message):
        tripwire.init(reporters=[spec])


PLUGIN = """
from tripwire.reporters import Reporter

RECEIVED = []


class EchoReporter(Reporter):
    name = "echo"

    def __init__(self, prefix="", **_):
        self.prefix = prefix

    def send_event(self, event):
        RECEIVED.append(self.prefix + event["logentry"]["formatted"])
"""


def test_third_party_reporter_found_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package that declares a `tripwire.reporters` entry point is usable as {"backend": name}."""
    (tmp_path / "tw_echo_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = tmp_path / "tw_echo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tw-echo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tripwire.reporters]\necho = tw_echo_plugin:EchoReporter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        tripwire.init(reporters=[{"backend": "echo", "prefix": "> "}])
        tripwire.capture_message("from a plug-in")
        assert tripwire.flush(5)
        plugin = sys.modules["tw_echo_plugin"]
        assert plugin.RECEIVED == ["> from a plug-in"]
    finally:
        sys.modules.pop("tw_echo_plugin", None)


def test_logging_reporter_writes_a_readable_report(caplog: pytest.LogCaptureFixture) -> None:
    """The logging reporter logs the error, its traceback and context as one multi-line record."""
    tripwire.init(reporters=[{"backend": "logging"}], release="4.2")
    tripwire.set_tag("tenant", "acme")
    with caplog.at_level(logging.DEBUG, logger="tripwire.events"):
        try:
            # An empty literal (mypy types it dict[Never, Never]): the report quotes this line, below.
            {}["missing"]  # type: ignore[index]
        except KeyError:
            event_id = tripwire.capture_exception()
        assert tripwire.flush(5)
    (record,) = [r for r in caplog.records if r.name == "tripwire.events"]
    assert record.levelno == logging.ERROR
    text = record.getMessage()
    assert text.splitlines()[0].startswith("tripwire: KeyError: 'missing'")
    assert f"event {event_id}" in text and "release 4.2" in text
    assert "tenant=acme" in text
    assert "Traceback (most recent call last):" in text
    assert '{}["missing"]' in text
    assert record.__dict__["tripwire_ignore"] is True


def test_logging_reports_are_never_captured_again(sink: Sink) -> None:
    """With the logging integration on, the logging reporter's records do not become new events."""
    logger = logging.getLogger("myapp.errors")
    logger.propagate = False
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        tripwire.init(
            sink.dsn, reporters=[{"backend": "logging", "logger": "myapp.errors"}], send_client_reports=False
        )
        tripwire.capture_message("only once", "error")
        assert tripwire.flush(5)
        logging.getLogger("other").error("a normal log error")  # the integration does capture this
        assert tripwire.flush(5)
        messages = [e.get("logentry", {}).get("formatted") for e in sink.events]
        assert sorted(messages) == ["a normal log error", "only once"]
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
