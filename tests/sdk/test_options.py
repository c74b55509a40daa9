"""Options of tripwire.init: defaults, environment variables, and validation that names the option."""

from __future__ import annotations

import re
from typing import Any

import pytest

import tripwire
from tripwire._options import OPTION_NAMES, Options, build_options

# (option, a value of the right type but out of range or malformed)
BAD_VALUES: list[tuple[str, Any]] = [
    ("dsn", "not a dsn"),
    ("dsn", "ftp://key@127.0.0.1/1"),
    ("dsn", "http://127.0.0.1/1"),
    ("dsn", "http://key@127.0.0.1/project"),
    ("dsn", "http://key@127.0.0.1:99999/1"),
    ("reporters", "sentry"),
    ("reporters", [{"backend": "no-such-backend"}]),
    ("reporters", [{"no": "backend"}]),
    ("release", 1.0),
    ("environment", ["prod"]),
    ("server_name", 7),
    ("debug", "yes"),
    ("sample_rate", 1.5),
    ("sample_rate", -0.1),
    ("sample_rate", True),
    ("ignore_errors", "ValueError"),
    ("ignore_errors", [int]),
    ("before_send", "drop"),
    ("before_breadcrumb", 3),
    ("max_breadcrumbs", -1),
    ("max_breadcrumbs", 2.5),
    ("send_default_pii", 1),
    ("project_root", 3),
    ("in_app_include", "myapp"),
    ("in_app_include", ["myapp", 3]),
    ("in_app_exclude", "lib"),
    ("include_local_variables", None),
    ("include_source_context", "no"),
    ("context_lines", -1),
    ("attach_modules", 1),
    ("max_event_bytes", 1000),
    ("max_event_bytes", "1mb"),
    ("max_value_length", 4),
    ("scrub_keys", "token"),
    ("scrub_keys", [None]),
    ("scrub_patterns", ["(unclosed"]),
    ("scrub_patterns", [5]),
    ("scrub_patterns", "token=.*"),
    ("max_queue_size", 0),
    ("shutdown_timeout", -1),
    ("http_timeout", 0),
    ("spool_dir", 5),
    ("spool_max_bytes", -1),
    ("send_client_reports", "true"),
    ("default_integrations", 0),
    ("integrations", "logging"),
    ("disabled_integrations", "logging"),
    ("auto_session_tracking", None),
    ("extensions", ["not", "a", "mapping"]),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_VALUES])
def test_bad_value_raises_configuration_error_naming_the_option(name: str, value: Any) -> None:
    """A malformed or out-of-range value fails at init with a ValueError whose message names it."""
    with pytest.raises(tripwire.ConfigurationError, match=rf"^{re.escape(name)}\b") as info:
        tripwire.init(**{name: value})
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", sorted(OPTION_NAMES))
def test_every_option_rejects_a_value_of_the_wrong_type(name: str) -> None:
    """Every option (including ones added later) validates its type and names itself."""
    with pytest.raises(tripwire.ConfigurationError, match=re.escape(name)):
        build_options(**{name: object()})


def test_unknown_option_is_named() -> None:
    """A misspelt option is rejected with its name, not silently ignored."""
    with pytest.raises(tripwire.ConfigurationError, match="'sample_rat'"):
        tripwire.init(sample_rat=0.5)


def test_defaults_are_the_documented_ones() -> None:
    """Without arguments the defaults in docs/options.md apply."""
    opts = build_options()
    assert opts.max_breadcrumbs == 100
    assert opts.send_default_pii is False
    assert opts.include_local_variables is True
    assert opts.include_source_context is True
    assert opts.context_lines == 5
    assert opts.sample_rate == 1.0
    assert opts.environment == "production"
    assert opts.max_event_bytes == 200_000
    assert opts.attach_modules is False
    assert opts.server_name  # the host name
    assert opts.project_root  # the working directory


def test_values_are_normalised() -> None:
    """Lists become tuples, regex strings are compiled, numbers keep their value."""
    opts = build_options(
        in_app_include=["myapp"], scrub_patterns=[r"sk_live_\w+"], sample_rate=1, context_lines=0
    )
    assert opts.in_app_include == ("myapp",)
    assert opts.scrub_patterns[0].pattern == r"sk_live_\w+"
    assert opts.sample_rate == 1.0
    assert opts.context_lines == 0
    assert isinstance(opts, Options)


def test_dsn_release_environment_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """TRIPWIRE_DSN, TRIPWIRE_RELEASE and TRIPWIRE_ENVIRONMENT are used when not given."""
    monkeypatch.setenv("TRIPWIRE_DSN", "http://public@127.0.0.1:9/42")
    monkeypatch.setenv("TRIPWIRE_RELEASE", "2.0.1")
    monkeypatch.setenv("TRIPWIRE_ENVIRONMENT", "staging")
    opts = build_options()
    assert opts.dsn is not None and opts.dsn.project_id == "42"
    assert opts.release == "2.0.1"
    assert opts.environment == "staging"
    assert build_options(release="explicit").release == "explicit"


def test_malformed_dsn_from_the_environment_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken TRIPWIRE_DSN fails at init just like a broken argument."""
    monkeypatch.setenv("TRIPWIRE_DSN", "http://no-project-id@127.0.0.1/")
    with pytest.raises(tripwire.ConfigurationError, match="^dsn"):
        tripwire.init()


def test_without_dsn_or_reporters_tripwire_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DSN and no reporter: init succeeds, nothing is captured and capture returns None."""
    monkeypatch.delenv("TRIPWIRE_DSN", raising=False)
    tripwire.init()
    assert tripwire.get_client() is None
    try:
        raise RuntimeError("nowhere to go")
    except RuntimeError:
        assert tripwire.capture_exception() is None
    assert tripwire.capture_message("hello") is None
