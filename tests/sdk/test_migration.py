"""Code and configuration copied from a sentry-sdk, bugsnag or asphalt-exceptions app work unchanged."""

from __future__ import annotations

import http.client
import logging
from typing import Any

import pytest

import tripwire
import tripwire.testing
from tests.support.sink import Sink
from tripwire.integrations.logging import LoggingIntegration
from tripwire.integrations.threading import ThreadingIntegration
from tripwire.reporters.bugsnag import BugsnagReporter
from tripwire.reporters.capture import CaptureReporter


def _boom() -> None:
    raise ValueError("card declined")


def _capture(**kwargs: Any) -> str | None:
    try:
        _boom()
    except ValueError as exc:
        return tripwire.capture_exception(exc, **kwargs)
    return None


# -- options ------------------------------------------------------------------------------------


def test_sentrys_logging_integration_level_is_the_breadcrumb_level() -> None:
    """LoggingIntegration(level=WARNING, event_level=ERROR), as in sentry-sdk's docs, keeps info lines
    out of the breadcrumbs."""
    integration = LoggingIntegration(level=logging.WARNING, event_level=logging.ERROR)
    assert integration.breadcrumb_level == logging.WARNING
    assert integration.event_level == logging.ERROR


def test_threading_integration_propagate_hub_false_turns_propagation_off() -> None:
    """ThreadingIntegration(propagate_hub=False), sentry-sdk 1.x's spelling, is propagate_scope=False."""
    assert ThreadingIntegration(propagate_hub=False).propagate_scope is False
    assert ThreadingIntegration(propagate_hub=True).propagate_scope is True
    assert ThreadingIntegration().propagate_scope is True


def test_profiling_options_are_taken_as_sentry_sdk_means_them(caplog: pytest.LogCaptureFixture) -> None:
    """profiles_sample_rate / profile_session_sample_rate / profile_lifecycle copied from a sentry-sdk
    configuration start profiling, with no warning."""
    options: dict[str, Any] = {
        "profiles_sample_rate": 1.0,
        "profile_session_sample_rate": 0.5,
        "profile_lifecycle": "trace",
    }
    with caplog.at_level(logging.WARNING, logger="tripwire"), tripwire.testing.capture_events(**options):
        client = tripwire.get_client()
        assert client is not None and client.profiler is not None and client.profiler.transaction_mode
    assert [r.getMessage() for r in caplog.records if "profil" in r.getMessage()] == []


def test_renamed_options_are_mapped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """with_locals=False (sentry-sdk) and app_version / release_stage (bugsnag) mean tripwire's
    include_local_variables, release and environment, and the warning names the new option."""
    with (
        caplog.at_level(logging.WARNING, logger="tripwire"),
        tripwire.testing.capture_events(with_locals=False, app_version="4.2", release_stage="beta") as events,
    ):
        _capture()
    (event,) = events
    assert event["release"] == "4.2" and event["environment"] == "beta"
    assert "vars" not in event["exception"]["values"][-1]["stacktrace"]["frames"][-1]
    assert any("'include_local_variables'" in r.getMessage() for r in caplog.records)


def test_enable_tracing_from_a_copied_sentry_config_traces_every_request() -> None:
    """enable_tracing=True (sentry-sdk's older switch) starts tripwire with traces_sample_rate=1.0,
    and an explicit rate given beside it wins."""
    client = tripwire.init("http://key@127.0.0.1:9/1", enable_tracing=True)
    assert client is not None and client.options.traces_sample_rate == 1.0
    client = tripwire.init("http://key@127.0.0.1:9/1", enable_tracing=True, traces_sample_rate=0.25)
    assert client is not None and client.options.traces_sample_rate == 0.25
    tripwire.close()


def test_an_unimplemented_option_raises_naming_it_and_the_migration_page() -> None:
    """keep_alive (a sentry-sdk option tripwire does not have) is a ConfigurationError that names it
    and points to docs/migrating.md."""
    with pytest.raises(tripwire.ConfigurationError) as raised:
        tripwire.init("http://key@127.0.0.1:9/1", keep_alive=True)
    assert "'keep_alive'" in str(raised.value) and "docs/migrating.md" in str(raised.value)


def test_enabled_breadcrumb_types_keeps_only_those_types() -> None:
    """enabled_breadcrumb_types=["log", "request"] (bugsnag) drops state and manual breadcrumbs."""
    with tripwire.testing.capture_events(enabled_breadcrumb_types=["log", "request"]) as events:
        tripwire.add_breadcrumb("GET /cart", type="http")
        tripwire.add_breadcrumb("cart loaded", type="state")
        tripwire.add_breadcrumb("clicked", category="ui.click")
        tripwire.add_breadcrumb("queue low", category="log.worker", type="log")
        tripwire.capture_message("x")
    assert [c["message"] for c in events[0]["breadcrumbs"]["values"]] == ["GET /cart", "queue low"]
    with pytest.raises(tripwire.ConfigurationError, match="enabled_breadcrumb_types"):
        tripwire.init("http://key@127.0.0.1:9/1", enabled_breadcrumb_types=["clicks"])


def test_http_breadcrumb_hints_carry_sentrys_names() -> None:
    """A before_breadcrumb hook copied from sentry-sdk finds hint["httplib_request"] (and the response)."""
    seen: list[dict[str, Any]] = []

    def hook(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        if crumb.get("category") == "httplib":
            seen.append(hint)
        return crumb

    with Sink() as sink:
        tripwire.init(reporters=[{"backend": "capture"}], before_breadcrumb=hook)
        conn = http.client.HTTPConnection("127.0.0.1", int(sink.url.rsplit(":", 1)[1]))
        conn.request("POST", "/anything", body=b"{}")
        response = conn.getresponse()
        response.read()
        conn.close()
    (hint,) = seen
    assert hint["httplib_request"] is conn
    assert hint["httplib_response"] is response


# -- the scope API ------------------------------------------------------------------------------


def test_the_sentry_docs_scope_user_example_sends_the_user() -> None:
    """scope = get_current_scope(); scope.user = {"email": ...}: the event carries that user."""
    with tripwire.testing.capture_events() as events, tripwire.isolation_scope():
        scope = tripwire.get_current_scope()
        scope.user = {"email": "jane.doe@example.com"}
        _capture()
    assert events[0]["user"] == {"email": "jane.doe@example.com"}


def test_a_scope_object_sets_everything_a_sentry_scope_does() -> None:
    """set_tag / set_extra / set_context / set_user / set_level / fingerprint / add_breadcrumb /
    add_event_processor on the isolation scope reach the event; clear_breadcrumbs empties them."""
    with tripwire.testing.capture_events() as events, tripwire.isolation_scope():
        scope = tripwire.get_isolation_scope()
        scope.set_tag("region", "eu")
        scope.set_extra("cart", [1, 2])
        scope.set_context("order", {"id": 7})
        scope.set_user({"id": "u1"})
        scope.set_level("warning")
        scope.fingerprint = ["checkout", "{{ default }}"]
        scope.add_breadcrumb({"message": "dropped", "category": "x"})
        scope.clear_breadcrumbs()
        scope.add_breadcrumb({"message": "kept", "category": "cart"})
        scope.add_event_processor(lambda event, hint: {**event, "tags": {**event["tags"], "seen": "yes"}})
        _capture()
    (event,) = events
    assert event["tags"] == {"region": "eu", "seen": "yes"}
    assert event["extra"]["cart"] == [1, 2]
    assert event["contexts"]["order"] == {"id": 7}
    assert event["user"] == {"id": "u1"}
    assert event["level"] == "warning"
    assert event["fingerprint"] == ["checkout", "{{ default }}"]
    assert [c["message"] for c in event["breadcrumbs"]["values"]] == ["kept"]


def test_push_scope_and_configure_scope_work_as_in_sentry_sdk_1() -> None:
    """with push_scope() as scope: changes stay inside; with configure_scope() as scope: they stay."""
    with tripwire.testing.capture_events() as events, tripwire.isolation_scope():
        with tripwire.configure_scope() as scope:
            scope.set_tag("tenant", "acme")
        with tripwire.push_scope() as scope:
            scope.set_tag("step", "import")
            _capture()
        _capture()
    inside, after = events
    assert inside["tags"] == {"tenant": "acme", "step": "import"}
    assert after["tags"] == {"tenant": "acme"}


def test_global_event_processors_receive_event_and_hint_and_may_drop() -> None:
    """tripwire.add_event_processor(fn): fn(event, hint) runs on every event; None drops it."""
    hints: list[Any] = []

    def processor(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        hints.append(hint)
        return None if event.get("level") == "debug" else event

    tripwire.add_event_processor(processor)
    with tripwire.testing.capture_events() as events:
        _capture()
        tripwire.capture_message("noise", level="debug")
    assert len(events) == 1
    assert hints[0]["exc_info"][0] is ValueError


def test_add_breadcrumb_takes_a_breadcrumb_dict_positionally() -> None:
    """add_breadcrumb({"category": "auth", "message": "login", "level": "info"}), sentry-sdk's form."""
    with tripwire.testing.capture_events() as events:
        tripwire.add_breadcrumb({"category": "auth", "message": "login", "level": "warning", "type": "user"})
        tripwire.capture_message("x")
    (crumb,) = events[0]["breadcrumbs"]["values"]
    assert (crumb["category"], crumb["message"], crumb["level"], crumb["type"]) == (
        "auth",
        "login",
        "warning",
        "user",
    )


# -- bugsnag's notify() and asphalt's message ---------------------------------------------------


def test_bugsnag_notify_keywords_reach_the_event() -> None:
    """tripwire.notify(exc, context=, metadata=, severity=, user=, grouping_hash=) as bugsnag.notify."""
    with tripwire.testing.capture_events() as events:
        try:
            _boom()
        except ValueError as exc:
            assert tripwire.notify(
                exc,
                context="checkout/pay",
                metadata={"order": {"id": 7}, "note": "vip"},
                severity="warning",
                user={"id": "u1", "name": "Ann"},
                grouping_hash="card-declined",
            )
    (event,) = events
    assert event["transaction"] == "checkout/pay"
    assert event["contexts"]["order"] == {"id": 7}
    assert event["extra"]["note"] == "vip"
    assert event["level"] == "warning"
    assert event["user"] == {"id": "u1", "name": "Ann"}
    assert event["fingerprint"] == ["card-declined"]


def test_capture_exception_takes_bugsnag_metadata_and_context(caplog: pytest.LogCaptureFixture) -> None:
    """capture_exception(exc, context=..., metadata=...) keeps them (no 'ignoring' log line)."""
    with caplog.at_level(logging.WARNING, logger="tripwire"), tripwire.testing.capture_events() as events:
        _capture(context="worker/sync", metadata={"job": {"id": 3}})
    assert events[0]["transaction"] == "worker/sync"
    assert events[0]["contexts"]["job"] == {"id": 3}
    assert not [r for r in caplog.records if "ignoring" in r.getMessage()]


def test_a_message_travels_with_the_exception() -> None:
    """capture_exception(exc, message="syncing invoices") (asphalt's report_exception): the event has
    the exception and the message as its logentry."""
    with tripwire.testing.capture_events() as events:
        _capture(message="syncing invoices")
    (event,) = events
    assert event["logentry"]["formatted"] == "syncing invoices"
    assert event["exception"]["values"][-1]["value"] == "card declined"


# -- asphalt-exceptions: per-reporter extras, configuration from a file -------------------------


def bugsnag_only_extras(event: dict[str, Any], reporter: Any) -> dict[str, Any] | None:
    """An extras hook (asphalt's ExtrasProvider.get_extras): data for the BugSnag reporter only."""
    return {"bugsnag_team": "payments"} if reporter.name == "bugsnag" else None


def tag_everything(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    return {**event, "tags": {**event.get("tags", {}), "from_file": "yes"}}


def test_an_extras_hook_adds_data_for_one_reporter_only() -> None:
    """extras= on a reporter adds its data to that backend's events; the others get the event as it was."""
    with Sink() as sink:
        tripwire.init(
            sink.dsn,
            reporters=[
                {
                    "backend": "bugsnag",
                    "api_key": "0" * 32,
                    "endpoint": f"{sink.url}/notify",
                    "extras": bugsnag_only_extras,
                }
            ],
            send_client_reports=False,
        )
        _capture()
        assert tripwire.flush(10)
        (bugsnag,) = sink.bugsnag_events
        (sentry,) = sink.events
    assert bugsnag["metaData"]["extra"] == {"bugsnag_team": "payments"}
    assert "bugsnag_team" not in sentry.get("extra", {})


def test_reporters_hooks_and_integrations_configure_from_a_file() -> None:
    """A JSON file as asphalt writes it: reporters, hooks and integrations as "module:attribute" strings
    and {"type", "args", "kwargs"} dicts, and reporter_defaults given to every reporter."""
    import json

    config = json.loads(
        """{
        "reporters": [
            {"type": "tripwire.reporters.capture:CaptureReporter"},
            {"backend": "bugsnag", "api_key": "%s", "extras": "tests.sdk.test_migration:bugsnag_only_extras"}
        ],
        "reporter_defaults": {"http_timeout": 1.5},
        "before_send": "tests.sdk.test_migration:tag_everything",
        "integrations": [
            {"type": "tripwire.integrations.logging:LoggingIntegration", "kwargs": {"level": 30}}
        ]
    }"""
        % ("0" * 32)
    )
    client = tripwire.init(**config)
    capture, bugsnag = client.reporters
    assert type(capture).__name__ == "CaptureReporter"
    assert isinstance(capture, CaptureReporter) and isinstance(bugsnag, BugsnagReporter)
    assert bugsnag.extras is bugsnag_only_extras and bugsnag.http_timeout == 1.5
    assert client.options.before_send is tag_everything
    (logging_integration,) = [i for i in client.options.integrations]
    assert logging_integration.breadcrumb_level == logging.WARNING
    tripwire.capture_message("configured")
    assert tripwire.get_client() is client
    client.process_pending(5)
    assert capture.events[0]["tags"]["from_file"] == "yes"


def test_a_wrong_reference_names_the_option() -> None:
    """before_send="no.such.module:hook" is a ConfigurationError naming before_send."""
    with pytest.raises(tripwire.ConfigurationError, match="before_send"):
        tripwire.init("http://key@127.0.0.1:9/1", before_send="no.such.module:hook")


def test_sentrys_modules_and_argv_integrations_attach_what_they_say() -> None:
    """integrations=[ModulesIntegration(), ArgvIntegration()] (sentry-sdk's names) attach the installed
    modules and sys.argv; disabled_integrations=["modules", "argv"] is accepted."""
    from tripwire.integrations import ArgvIntegration, ModulesIntegration

    client = tripwire.init(
        reporters=[{"backend": "capture"}], integrations=[ModulesIntegration(), ArgvIntegration()]
    )
    tripwire.capture_message("x")
    client.process_pending(5)
    (event,) = client.reporters[0].events  # type: ignore[attr-defined]
    assert event["modules"]["pytest"]
    assert event["extra"]["sys.argv"]
    client = tripwire.init(reporters=[{"backend": "capture"}], disabled_integrations=["modules", "argv"])
    tripwire.capture_message("x")
    client.process_pending(5)
    (event,) = client.reporters[0].events  # type: ignore[attr-defined]
    assert "modules" not in event and "sys.argv" not in event.get("extra", {})


def test_the_scope_api_never_raises_into_the_app() -> None:
    """Wrong types given to a Scope are logged and ignored, as the flat setters do; capture still works."""
    with tripwire.testing.capture_events() as events:
        scope = tripwire.get_current_scope()
        scope.set_tags(None)  # type: ignore[arg-type]
        scope.set_user(42)  # type: ignore[arg-type]
        scope.set_level("loud")
        scope.fingerprint = 7  # type: ignore[assignment]
        scope.add_breadcrumb(42)  # type: ignore[arg-type]
        tripwire.add_breadcrumb({"message": "unreadable data"}, data=5)  # type: ignore[arg-type]
        tripwire.add_breadcrumb({"message": "ok"})
        tripwire.capture_message("still works")
    (event,) = events
    assert event["logentry"]["formatted"] == "still works"
    assert [c["message"] for c in event["breadcrumbs"]["values"]] == ["ok"]
    assert event["level"] == "info" and "fingerprint" not in event and "user" not in event


def test_the_message_reaches_bugsnag_metadata_and_raygun_custom_data() -> None:
    """capture_exception(exc, message=...) reaches BugSnag as the log metadata tab and Raygun as
    userCustomData.message, beside the exception."""
    with Sink() as sink:
        tripwire.init(
            reporters=[
                {"backend": "bugsnag", "api_key": "0" * 32, "endpoint": f"{sink.url}/notify"},
                {"backend": "raygun", "api_key": "k", "endpoint": f"{sink.url}/entries"},
            ]
        )
        _capture(message="syncing invoices")
        assert tripwire.flush(10)
        (bugsnag,) = sink.bugsnag_events
        (raygun,) = [r.json for r in sink.requests if r.path == "/entries"]
    assert bugsnag["metaData"]["log"]["formatted"] == "syncing invoices"
    assert bugsnag["exceptions"][0]["errorClass"] == "ValueError"
    assert raygun["details"]["userCustomData"]["message"] == "syncing invoices"
    assert raygun["details"]["error"]["className"] == "ValueError"
