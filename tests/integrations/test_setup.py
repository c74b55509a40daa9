"""Choosing, installing and uninstalling integrations; release detection; what init() imports."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

import pytest

import tripwire
import tripwire._globals
from tripwire import ConfigurationError
from tripwire.integrations import Integration, installed
from tripwire.integrations.context import RELEASE_ENV_VARS, ContextIntegration
from tripwire.integrations.logging import LoggingIntegration
from tripwire.reporters.capture import CapturedEvents, CaptureReporter

from .conftest import run_python

Start = Callable[..., CapturedEvents]

DEFAULTS = [
    "context",
    "logging",
    "excepthook",
    "threading",
    "asyncio",
    "stdlib",
    "httpx",
    "aiohttp",
    "tornado",
    "sanic",
    "celery",
    "rq",
]


def test_defaults_are_installed_by_init_and_removed_by_close(start: Start) -> None:
    """init() installs every default integration once; close() uninstalls them all."""
    start()
    assert installed() == DEFAULTS
    tripwire.close()
    assert installed() == []


def test_nothing_is_installed_without_a_dsn() -> None:
    """A disabled tripwire (no DSN, no reporters) installs no hook at all."""
    hook = sys.excepthook
    tripwire.init()
    assert installed() == []
    assert sys.excepthook is hook


def test_default_integrations_false_installs_only_given_ones(start: Start) -> None:
    """default_integrations=False: only the integrations passed in are installed."""
    start(default_integrations=False, integrations=[LoggingIntegration()])
    assert installed() == ["logging"]


def test_disabled_integrations_are_skipped(start: Start) -> None:
    """disabled_integrations=[...] removes those names, even when given as objects."""
    start(disabled_integrations=["excepthook", "logging"], integrations=[LoggingIntegration()])
    assert "excepthook" not in installed()
    assert "logging" not in installed()
    assert "threading" in installed()


def test_given_instance_replaces_the_default(start: Start) -> None:
    """An integration object replaces the default of the same name, with its settings."""
    mine = LoggingIntegration(event_level=logging.WARNING)
    events = start(integrations=[mine])
    assert installed().count("logging") == 1
    logging.getLogger("it.setup").warning("now an event")
    tripwire.flush(5)
    assert [e["logentry"]["message"] for e in events] == ["now an event"]


def test_wrong_integration_settings_raise_configuration_error(start: Start) -> None:
    """Unknown names and non-integrations raise ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError, match="disabled_integrations"):
        start(disabled_integrations=["logginng"])
    with pytest.raises(ConfigurationError, match="integrations"):
        start(integrations=[object()])
    with pytest.raises(ConfigurationError, match="LoggingIntegration"):
        LoggingIntegration(event_level="LOUD")


def test_custom_integration_is_installed_and_uninstalled(start: Start) -> None:
    """A third-party Integration subclass gets install() at init and uninstall() at close."""
    calls: list[str] = []

    class Custom(Integration):
        identifier = "custom"

        def install(self) -> None:
            calls.append("install")

        def uninstall(self) -> None:
            calls.append("uninstall")

    start(integrations=[Custom()])
    assert "custom" in installed()
    tripwire.close()
    assert calls == ["install", "uninstall"]


def test_failing_integration_does_not_break_init(start: Start) -> None:
    """An integration whose install() raises is logged and skipped; the others work."""

    class Broken(Integration):
        identifier = "broken"

        def install(self) -> None:
            raise RuntimeError("cannot hook")

    start(integrations=[Broken()])
    assert "broken" not in installed()
    assert "logging" in installed()


def test_reinit_does_not_stack_hooks(start: Start) -> None:
    """Calling init() twice leaves one wrapper around each hook, not two."""
    original = logging.Logger.callHandlers
    start()
    start()
    assert logging.Logger.callHandlers.__wrapped__ is original  # type: ignore[attr-defined]
    tripwire.close()
    assert logging.Logger.callHandlers is original


def test_reset_restores_every_hook(start: Start) -> None:
    """tripwire._globals.reset() (what tests use) puts every patched hook back."""
    originals = (sys.excepthook, threading.excepthook, logging.Logger.callHandlers, threading.Thread.start)
    start()
    tripwire._globals.reset()
    assert (sys.excepthook, threading.excepthook, logging.Logger.callHandlers, threading.Thread.start) == (
        originals
    )


@pytest.fixture
def clean_release_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in RELEASE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_release_is_detected_from_ci_variables(clean_release_env: pytest.MonkeyPatch) -> None:
    """With no release given, a CI/PaaS commit variable becomes the release of events."""
    clean_release_env.setenv("HEROKU_SLUG_COMMIT", "abc123")
    events = CapturedEvents()
    client = tripwire.init(reporters=[CaptureReporter(events)])
    assert client.options.release == "abc123"
    tripwire.capture_message("released")
    tripwire.flush(5)
    assert events[0]["release"] == "abc123"


def test_tripwire_release_wins_and_explicit_none_turns_detection_off(
    clean_release_env: pytest.MonkeyPatch,
) -> None:
    """TRIPWIRE_RELEASE beats CI variables; release=None or disabling 'context' means no release."""
    clean_release_env.setenv("GITHUB_SHA", "from-ci")
    clean_release_env.setenv("TRIPWIRE_RELEASE", "1.2.3")
    assert tripwire.init(reporters=[CaptureReporter()]).options.release == "1.2.3"
    clean_release_env.delenv("TRIPWIRE_RELEASE")
    assert tripwire.init(reporters=[CaptureReporter()]).options.release == "from-ci"
    assert tripwire.init(reporters=[CaptureReporter()], release=None).options.release is None
    client = tripwire.init(reporters=[CaptureReporter()], disabled_integrations=["context"])
    assert client.options.release is None
    off = ContextIntegration(detect_release=False)
    client = tripwire.init(reporters=[CaptureReporter()], integrations=[off])
    assert client.options.release is None


def test_argv_is_attached_only_when_asked(start: Start) -> None:
    """ContextIntegration(argv=True) puts sys.argv in extra; by default it is not there."""
    events = start()
    tripwire.capture_message("plain")
    tripwire.flush(5)
    assert "sys.argv" not in events[0].get("extra", {})
    events = start(integrations=[ContextIntegration(argv=True)])
    tripwire.capture_message("with argv")
    tripwire.flush(5)
    assert events[0]["extra"]["sys.argv"] == sys.argv


def test_sentrys_argv_and_modules_integration_names_attach_argv_and_modules_only_when_passed(
    start: Start,
) -> None:
    """ArgvIntegration() and ModulesIntegration() (Sentry's names) attach sys.argv and the installed
    distributions; without them neither is sent."""
    from tripwire.integrations import ArgvIntegration, ModulesIntegration

    events = start()
    tripwire.capture_message("plain")
    tripwire.flush(5)
    assert "sys.argv" not in events[0].get("extra", {}) and "modules" not in events[0]
    events = start(integrations=[ArgvIntegration(), ModulesIntegration()])
    tripwire.capture_message("with both")
    tripwire.flush(5)
    assert events[0]["extra"]["sys.argv"] == sys.argv
    assert events[0]["modules"]["pytest"] == pytest.__version__
    events = start(disabled_integrations=["argv", "modules"])  # the names are known to init()
    tripwire.capture_message("names known")
    tripwire.flush(5)
    assert "modules" not in events[0]


def test_import_and_init_import_nothing_the_app_does_not_use() -> None:
    """import tripwire + init(dsn) loads none of the heavy modules it defers (see tripwire._deferred)."""
    proc = run_python(
        """
        import sys
        before = set(sys.modules)  # whatever the interpreter's startup loaded (coverage, say)
        hook = sys.excepthook
        import tripwire
        assert sys.excepthook is hook, "import must not install anything"
        tripwire.init("http://key@127.0.0.1:9/1")
        heavy = ["asyncio", "http.client", "urllib.request", "httpx", "concurrent.futures.thread",
                 "celery", "rq",
                 "importlib.metadata", "email", "ssl", "json", "random", "uuid", "hashlib", "platform",
                 "zlib", "importlib", "inspect", "dataclasses", "tripwire._event_builder",
                 "array", "math", "fnmatch", "tripwire.integrations.stdlib", "tripwire.integrations.httpx",
                 "tripwire.integrations.aiohttp", "tripwire.integrations.sanic",
                 "tripwire.integrations.celery", "tripwire.integrations.rq"]
        print(sorted(m for m in heavy if m in sys.modules and m not in before))
        print(sys.excepthook is not hook)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[]", "True"]


def test_modules_imported_after_init_get_patched() -> None:
    """http.client, the thread pool and httpx imported after init() are patched on import."""
    proc = run_python(
        """
        import tripwire
        tripwire.init("http://key@127.0.0.1:9/1")
        from tripwire.integrations import _imports
        print(_imports.watching())
        import http.client, httpx, logging
        from concurrent.futures import ThreadPoolExecutor
        print(hasattr(http.client.HTTPConnection.getresponse, "__wrapped__"),
              hasattr(ThreadPoolExecutor.submit, "__wrapped__"),
              hasattr(httpx.Client.send, "__wrapped__"),
              hasattr(logging.Logger.callHandlers, "__wrapped__"))
        print(_imports.watching())
        tripwire.close()
        print(hasattr(http.client.HTTPConnection.getresponse, "__wrapped__"),
              hasattr(logging.Logger.callHandlers, "__wrapped__"))
        """
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    watched = [
        "aiohttp.client",
        "asyncio.base_events",
        "celery",
        "concurrent.futures.thread",
        "http.client",
        "httpx",
        "rq.worker",
        "sanic.handlers.error",
        "tornado.web",
        "uvloop",
    ]
    assert lines[0] == repr(watched)
    still = (
        "['aiohttp.client', 'asyncio.base_events', 'celery', 'rq.worker', 'sanic.handlers.error', "
        "'tornado.web', 'uvloop']"
    )
    assert lines[1:] == ["True True True True", still, "False False"]
