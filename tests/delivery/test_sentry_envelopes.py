"""What the Sentry reporter puts on the wire, read back by the official sentry-sdk's own parser."""

from __future__ import annotations

import gzip
import json

from sentry_sdk.envelope import Envelope

import tripwire
from tests.support.sink import Sink
from tripwire._types import SessionBatch
from tripwire.reporters.sentry import SentryReporter

from .conftest import raise_and_capture


def _envelopes(sink: Sink) -> list[Envelope]:
    return [Envelope.deserialize(gzip.decompress(r.body)) for r in sink.requests]


def test_event_envelopes_parse_with_sentry_sdk(sink: Sink) -> None:
    """Every event envelope is gzip, authenticated, and sentry-sdk reads its header and event back."""
    tripwire.init(sink.dsn, release="9.9.9", environment="staging")
    ids = raise_and_capture(3)
    assert tripwire.flush(10)
    assert len(sink.requests) == 3
    for request, envelope in zip(sink.requests, _envelopes(sink), strict=True):
        assert request.path == "/api/1/envelope/"
        assert request.headers["content-encoding"] == "gzip"
        assert request.headers["content-type"] == "application/x-sentry-envelope"
        auth = request.headers["x-sentry-auth"]
        assert auth.startswith(
            "Sentry sentry_version=7, sentry_key=publickey, sentry_client=tripwire.python/"
        )
        assert envelope.headers["event_id"] in ids
        assert envelope.headers["dsn"] == sink.dsn
        assert envelope.headers["sdk"]["name"] == "tripwire.python"
        assert envelope.headers["sent_at"].endswith("Z")
        event = envelope.get_event()
        assert event is not None
        assert event["event_id"] == envelope.headers["event_id"]
        assert event["release"] == "9.9.9"
        assert event["exception"]["values"][-1]["type"] == "ValueError"
        assert [item.data_category for item in envelope.items] == ["error"]


def test_session_envelopes_parse_with_sentry_sdk(sink: Sink) -> None:
    """Aggregated and single sessions go out as sessions/session items sentry-sdk can read."""
    tripwire.init(sink.dsn, release="1.0")
    client = tripwire.get_client()
    assert client is not None
    aggregate = {
        "attrs": {"release": "1.0", "environment": "production"},
        "aggregates": [{"started": "2026-11-21T05:28:00Z", "exited": 3, "errored": 1, "crashed": 2}],
    }
    update = {
        "sid": "a" * 32,
        "init": True,
        "started": "2026-11-21T05:28:01Z",
        "status": "exited",
        "attrs": {"release": "1.0"},
    }
    assert client.submit_sessions(SessionBatch(aggregates=[aggregate], updates=[update]))
    assert tripwire.flush(10)
    session_envelopes = [
        e for e in _envelopes(sink) if any(i.type in ("session", "sessions") for i in e.items)
    ]
    assert len(session_envelopes) == 1
    envelope = session_envelopes[0]
    assert "event_id" not in envelope.headers
    types = [item.type for item in envelope.items]
    assert types == ["sessions", "session"]
    assert json.loads(envelope.items[0].payload.get_bytes()) == aggregate
    assert json.loads(envelope.items[1].payload.get_bytes()) == update
    assert {item.data_category for item in envelope.items} == {"session"}


def test_more_than_100_sessions_are_split_into_envelopes(sink: Sink) -> None:
    """A batch of 250 session updates becomes envelopes of at most 100 items, none lost."""
    tripwire.init(sink.dsn, release="1.0")
    client = tripwire.get_client()
    assert client is not None
    updates = [
        {"sid": f"{i:032x}", "init": True, "status": "exited", "attrs": {"release": "1.0"}}
        for i in range(250)
    ]
    client.submit_sessions(SessionBatch(updates=updates))
    assert tripwire.flush(10)
    counts = [len(e.items) for e in _envelopes(sink)]
    assert sorted(counts) == [50, 100, 100]


def test_client_reports_carry_drops_with_sentry_reason_names(sink: Sink) -> None:
    """Drops (before_send, queue overflow of sessions) reach the server as a client_report on flush."""
    tripwire.init(sink.dsn, before_send=lambda event, hint: None)
    raise_and_capture(4)
    assert tripwire.flush(10)
    reports = [item for e in _envelopes(sink) for item in e.items if item.type == "client_report"]
    assert len(reports) == 1
    report = json.loads(reports[0].payload.get_bytes())
    assert report["discarded_events"] == [{"reason": "before_send", "category": "error", "quantity": 4}]
    assert isinstance(report["timestamp"], float)
    # Reported once: the next flush has nothing new to say.
    assert tripwire.flush(10)
    assert len([i for e in _envelopes(sink) for i in e.items if i.type == "client_report"]) == 1


def test_client_reports_can_be_turned_off(sink: Sink) -> None:
    """With send_client_reports=False drops are still counted locally but never sent."""
    tripwire.init(sink.dsn, before_send=lambda event, hint: None, send_client_reports=False)
    raise_and_capture(2)
    assert tripwire.flush(10)
    assert sink.requests == []
    assert tripwire.stats()["dropped"] == {"before_send": 2}


def test_event_payload_is_valid_json_with_length(sink: Sink) -> None:
    """Each item header's length is the exact byte length of its JSON payload, even for non-ASCII text."""
    tripwire.init(sink.dsn)
    tripwire.capture_message("héllo wörld ✓")
    assert tripwire.flush(10)
    (request,) = sink.requests
    ((header, payload),) = request.items
    assert header["length"] == len(payload)
    assert json.loads(payload)["logentry"]["formatted"] == "héllo wörld ✓"


def test_client_reports_ride_along_once_30_seconds_have_passed(sink: Sink) -> None:
    """Without any flush, the drops are reported with the first event 30 s after the last report."""
    client = tripwire.init(sink.dsn)
    reporter = client.reporters[0]
    assert isinstance(reporter, SentryReporter)
    client.stats.record("sample_rate", quantity=7)
    tripwire.capture_message("early", "error")
    assert client._worker.flush(5) and sink.wait_until(lambda: len(sink.requests) == 1, 5)
    reporter._last_report -= 31  # as if 31 s had passed
    client.capture_message("later", "error")
    assert sink.wait_until(lambda: len(sink.requests) >= 2 and bool(sink.items("client_report")), 5)
    (report,) = sink.items("client_report")
    assert {"reason": "sample_rate", "category": "error", "quantity": 7} in report["discarded_events"]


def test_client_reports_are_sent_when_nothing_else_is(sink: Sink) -> None:
    """When every event is filtered out, the drops still reach the server on the idle timer (60 s)."""
    reporter = SentryReporter(sink.dsn)
    reporter.idle_interval = 0.2  # 60 s by default
    tripwire.init(reporters=[reporter], before_send=lambda e, h: None)
    raise_and_capture(3)
    assert sink.wait_until(lambda: bool(sink.items("client_report")), 5)
    (report,) = sink.items("client_report")
    assert report["discarded_events"] == [{"reason": "before_send", "category": "error", "quantity": 3}]
    assert sink.events == []


def test_events_and_transactions_arrive_through_pycurl(sink: Sink) -> None:
    """http_client="pycurl": the same envelopes reach the server (an error and a transaction)."""
    tripwire.init(reporters=[SentryReporter(sink.dsn, http_client="pycurl")], traces_sample_rate=1.0)
    raise_and_capture(1)
    with tripwire.start_span(op="job", name="nightly"):
        pass
    assert tripwire.flush(10)
    assert sink.wait_until(lambda: len(sink.events) == 1 and len(sink.items("transaction")) == 1, 10)
    assert sink.items("transaction")[0]["transaction"] == "nightly"


def test_an_unknown_http_client_is_a_configuration_error() -> None:
    """http_client names one of the senders; anything else is refused when the reporter is made."""
    import pytest

    from tripwire import ConfigurationError

    with pytest.raises(ConfigurationError, match="http_client"):
        SentryReporter("http://k@127.0.0.1:9/1", http_client="urllib3")
