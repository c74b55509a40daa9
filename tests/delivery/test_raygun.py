"""The Raygun reporter: Crash Reporting API v1 messages in the shape raygun4py sends, and its answers."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import tripwire
from tests.support.sink import Answer, Received, Sink
from tripwire.delivery import policy

API_KEY = "raygun-test-key"


def _inner() -> None:
    order = 42  # noqa: F841 - a local the frame carries
    raise LookupError("no such order")


def _outer() -> None:
    try:
        _inner()
    except LookupError as exc:
        raise RuntimeError("checkout failed") from exc


def _reporter(sink: Sink, **options: Any) -> dict[str, Any]:
    return {
        "backend": "raygun",
        "api_key": API_KEY,
        "endpoint": f"{sink.url}/entries",
        "backoff_base": 0.01,
        **options,
    }


def _shape(value: Any) -> Any:
    """Field names and nesting, without the values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _missing(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Paths raygun4py sends that tripwire's message lacks (or nests differently)."""
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [path or "/"]
        return [
            m
            for k, v in theirs.items()
            for m in (_missing(ours[k], v, f"{path}/{k}") if k in ours else [f"{path}/{k}"])
        ]
    if isinstance(theirs, list) and theirs:
        return _missing(ours[0], theirs[0], f"{path}/0") if isinstance(ours, list) and ours else [path]
    return []


def _raygun4py_message(sink: Sink, exc_info: Any) -> dict[str, Any]:
    from raygun4py import raygunprovider

    sender = raygunprovider.RaygunSender(
        API_KEY, config={"transmitGlobalVariables": False, "transmitEnvironmentVariables": False}
    )
    sender.endpointprotocol, sender.endpointhost = "http://", sink.url.split("//", 1)[1]
    sender.set_version("2.0.1")
    sender.set_user(
        {
            "identifier": "u1",
            "isAnonymous": False,
            "email": "a@example.com",
            "fullName": "Ann Lee",
            "firstName": "Ann",
        }
    )
    sent = sender.send_exception(
        exc_info=exc_info,
        tags=["region:eu"],
        userCustomData={"cart": "3 items"},
        httpRequest={
            "httpMethod": "POST",
            "url": "http://shop.example/checkout",
            "hostName": "shop.example",
            "iPAddress": "10.0.0.7",
            "queryString": {"step": "2"},
            "headers": {"Host": "shop.example"},
            "form": {},
            "rawData": None,
        },
    )
    assert sent is not None  # None only when its before-send transformation drops the message
    status, _ = sent
    assert status == 200
    return sink.requests[-1].json  # type: ignore[no-any-return]


def test_a_chained_exception_has_the_fields_and_nesting_raygun4py_sends() -> None:
    """The same exception reported by raygun4py and by tripwire: the same fields in the same nesting,
    the same error chain (innerError), the same frames; tripwire adds breadcrumbs and never sends
    environment variables or globals."""
    with Sink() as theirs, Sink() as ours:
        tripwire.init(reporters=[_reporter(ours)], release="2.0.1", send_default_pii=True)
        tripwire.set_user({"id": "u1", "email": "a@example.com", "name": "Ann Lee"})
        tripwire.set_tag("region", "eu")
        tripwire.set_extra("cart", "3 items")
        tripwire.add_breadcrumb("cart opened", category="ui", data={"items": 3})
        try:
            _outer()
        except RuntimeError as exc:
            reference = _raygun4py_message(theirs, sys.exc_info())
            tripwire.capture_exception(
                exc,
                event={
                    "request": {
                        "method": "POST",
                        "url": "http://shop.example/checkout",
                        "query_string": "step=2",
                        "headers": {"Host": "shop.example"},
                        "env": {"REMOTE_ADDR": "10.0.0.7"},
                    }
                },
            )
        assert tripwire.flush(10)
        (request,) = ours.requests
    assert request.path == "/entries"
    assert request.headers["x-apikey"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    message = request.json
    details, expected = message["details"], reference["details"]

    # Same fields, same nesting, wherever raygun4py sends a value (environment variables aside).
    expected_env = {k: v for k, v in expected["environment"].items() if k != "environmentVariables"}
    assert (
        _missing(_shape(message), _shape({**reference, "details": {**expected, "environment": expected_env}}))
        == []
    )

    # The chain: raised error, its cause as innerError, frames outermost first, as raygun4py.
    def chain(error: dict[str, Any] | None) -> list[tuple[str, str, list[tuple[int, str, str, str]]]]:
        out = []
        while error:
            frames = [
                (f["lineNumber"], f["className"], f["fileName"], f["methodName"]) for f in error["stackTrace"]
            ]
            out.append((error["className"], error["message"], frames))
            error = error.get("innerError")
        return out

    assert chain(details["error"]) == chain(expected["error"])
    assert set(details["error"]) == set(expected["error"])
    assert details["error"]["innerError"]["stackTrace"][-1]["localVariables"] == {"order": "42"}
    assert expected["error"]["innerError"]["stackTrace"][-1]["localVariables"] == {"order": "42"}

    # The same values where both know them.
    assert details["version"] == expected["version"] == "2.0.1"
    assert details["user"]["identifier"] == "u1" and details["user"]["email"] == "a@example.com"
    assert details["user"]["fullName"] == "Ann Lee" and details["user"]["isAnonymous"] is False
    assert "region:eu" in details["tags"]
    assert details["userCustomData"]["cart"] == "3 items"
    for field in ("httpMethod", "url", "hostName", "iPAddress", "queryString"):
        assert details["request"][field] == expected["request"][field], field
    assert details["breadcrumbs"][0]["message"] == "cart opened"
    assert details["breadcrumbs"][0]["customData"] == {"items": 3}
    assert isinstance(details["breadcrumbs"][0]["timestamp"], int)
    assert "environmentVariables" not in details["environment"]


@pytest.mark.parametrize(("status", "reason"), [(400, "rejected"), (403, "rejected"), (413, "too_large")])
def test_raygun_refusals_are_dropped_and_counted(status: int, reason: str) -> None:
    """400 (bad message), 403 (bad API key) and 413 (too large) are not retried; each drop is counted."""
    with Sink() as sink:
        sink.answer = Answer(status=status)
        tripwire.init(reporters=[_reporter(sink)])
        tripwire.capture_message("quota reached", "error")
        tripwire.flush(5)
        assert len(sink.attempts) == 1
    assert tripwire.stats()["dropped"].get(reason) == 1
    assert policy.classify(status, {}).action == policy.DROP


def test_raygun_rate_limit_is_waited_out_and_the_message_delivered() -> None:
    """429 with Retry-After: the message is kept, sent again after the wait, and accepted (202)."""
    answers = iter([Answer(status=429, headers={"Retry-After": "1"})])

    def answer(received: Received) -> Answer:
        return next(answers, Answer(status=202))

    with Sink() as sink:
        sink.answer = answer
        tripwire.init(reporters=[_reporter(sink)])
        tripwire.capture_message("quota reached", "error")
        assert tripwire.flush(10)
        assert [status for _, _, status in sink.attempts] == [429, 202]
    assert tripwire.stats()["sent"] == {"raygun": 1}
    assert "rate_limited" not in tripwire.stats()["dropped"]


def test_raygun_endpoint_defaults_to_rayguns_own() -> None:
    """Without endpoint= the reporter posts to Raygun's documented entries URL."""
    from tripwire.reporters.raygun import DEFAULT_ENDPOINT, RaygunReporter

    assert RaygunReporter(api_key=API_KEY).endpoint == DEFAULT_ENDPOINT == "https://api.raygun.io/entries"
    with pytest.raises(tripwire.ConfigurationError, match="api_key"):
        tripwire.init(reporters=[{"backend": "raygun", "api_key": ""}])


def test_raygun_is_registered_as_an_entry_point() -> None:
    """The package registers raygun under the tripwire.reporters entry point group, as the others."""
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="tripwire.reporters")}
    assert names["raygun"] == "tripwire.reporters.raygun:RaygunReporter"
