"""Transaction profiles: a Starlette app under uvicorn, profiled at 100 %, reporting to a loopback sink."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sentry_sdk.envelope import Envelope

import tripwire
from tests.asgi.servers import serve
from tests.profiling.apps import starlette_app
from tests.profiling.support import envelopes_with, leaf_counts, stack_functions
from tests.support.sink import Sink, decode_body
from tripwire.asgi import TripwireMiddleware

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _profiled_request(sink: Sink, path: str = "/slow?ms=400", **options: Any) -> list[Any]:
    tripwire.init(sink.dsn, traces_sample_rate=1.0, release="1.0", environment="test", **options)
    with serve(starlette_app(TripwireMiddleware), "uvicorn") as server:
        _get(server.url + path)
    tripwire.flush(5)
    return envelopes_with(sink, "transaction")


def test_profile_arrives_in_the_envelope_of_its_transaction_with_the_slow_function_on_top(sink: Sink) -> None:
    """A profiled request's envelope holds its transaction and its profile, and the slow function is the
    leaf of most samples of the request's thread."""
    envelopes = _profiled_request(sink, profiles_sample_rate=1.0)
    assert len(envelopes) == 1
    header, items = envelopes[0]
    kinds = [h["type"] for h, _ in items]
    assert sorted(kinds) == ["profile", "transaction"]
    txn = next(p for h, p in items if h["type"] == "transaction")
    profile = next(p for h, p in items if h["type"] == "profile")
    assert txn["transaction"] == "/slow"
    assert profile["transaction"]["id"] == txn["event_id"] == header["event_id"]
    assert profile["transaction"]["trace_id"] == txn["contexts"]["trace"]["trace_id"]
    assert profile["version"] == "1" and profile["platform"] == "python"
    assert profile["release"] == "1.0" and profile["environment"] == "test"
    active = profile["transaction"]["active_thread_id"]
    assert active in profile["profile"]["thread_metadata"]
    counts = leaf_counts(profile, active)
    total = sum(counts.values())
    assert total >= 10, counts  # 400 ms at 101 Hz, even on a busy machine
    hottest, hits = counts.most_common(1)[0]
    assert hottest == "slow_checksum" and hits >= total / 2, counts
    # The stack goes from the function down through the middleware to the event loop.
    sample = next(s for s in profile["profile"]["samples"] if s["thread_id"] == active)
    functions = stack_functions(profile, sample)
    assert "TripwireMiddleware.__call__" in functions
    slow_frame = next(f for f in profile["profile"]["frames"] if f["function"] == "slow_checksum")
    assert slow_frame["module"] == "tests.profiling.apps" and slow_frame["in_app"] is True
    assert slow_frame["abs_path"].endswith("tests/profiling/apps.py")


def test_the_official_sentry_sdk_reads_our_profile_envelope(sink: Sink) -> None:
    """sentry-sdk's Envelope parser reads the transaction + profile envelope byte for byte."""
    _profiled_request(sink, profiles_sample_rate=1.0)
    request = next(r for r in sink.requests if any(h.get("type") == "profile" for h, _ in r.items))
    envelope = Envelope.deserialize(decode_body(request.body, request.headers.get("content-encoding")))
    assert sorted(item.type or "" for item in envelope.items) == ["profile", "transaction"]
    profile_item = next(item for item in envelope.items if item.type == "profile")
    assert profile_item.data_category == "profile"
    payload = json.loads(profile_item.payload.get_bytes())
    assert payload["profile"]["samples"] and payload["platform"] == "python"


@pytest.mark.slow  # a sentry-sdk process: ~3 s to import, profile and flush
def test_profile_has_the_shape_sentry_sdk_sends(sink: Sink) -> None:
    """Every key (and its JSON type) sentry-sdk's own transaction profile has, ours has too."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "tests.profiling.sentry_profiled", sink.dsn, "transaction"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=30,
    )
    assert sink.wait_until(lambda: bool(sink.items("profile")), 10)
    theirs = sink.items("profile")[0]
    with sink._cond:
        sink.requests.clear()
    _profiled_request(sink, profiles_sample_rate=1.0)
    ours = sink.items("profile")[0]

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shape(value[0])] if value else []
        return type(value).__name__

    def missing(want: Any, have: Any, path: str = "") -> list[str]:
        if isinstance(want, dict):
            if not isinstance(have, dict):
                return [path]
            if path.endswith("thread_metadata"):  # keyed by thread id: compare one entry
                return missing(next(iter(want.values())), next(iter(have.values())), path + ".*")
            return [m for k, v in want.items() for m in missing(v, have.get(k, KeyError), f"{path}.{k}")]
        if isinstance(want, list):
            return missing(want[0], have[0], path + "[]") if want and have else []
        if want == "NoneType" or have == "NoneType":  # module None for a frame sentry could not name
            return []
        return [] if want == have else [f"{path}: {want} != {have}"]

    assert missing(shape(theirs), shape(ours)) == []


def test_sample_rate_zero_profiles_nothing_and_counts_it(sink: Sink) -> None:
    """With profiles_sample_rate=0 the transaction goes alone, no sampler thread runs, and the
    unprofiled transaction is counted in stats()."""
    envelopes = _profiled_request(sink, profiles_sample_rate=0.0)
    assert [[h["type"] for h, _ in items] for _, items in envelopes] == [["transaction"]]
    assert not any(t.name == "tripwire-profiler" for t in threading.enumerate())
    drops = tripwire.stats()["dropped_by"]
    assert {"reason": "sample_rate", "category": "profile", "reporter": None, "quantity": 1} in drops


def test_profiles_sampler_decides_per_transaction(sink: Sink) -> None:
    """profiles_sampler gets the transaction's context; returning False leaves it unprofiled."""
    seen: list[dict[str, Any]] = []

    def sampler(context: dict[str, Any]) -> bool:
        seen.append(context)
        return False

    envelopes = _profiled_request(sink, profiles_sampler=sampler)
    assert [[h["type"] for h, _ in items] for _, items in envelopes] == [["transaction"]]
    assert seen and "transaction_context" in seen[0]


def test_reporters_without_profiles_get_the_transaction_alone(sink: Sink) -> None:
    """A reporter that does not take profiles (the logging reporter, a plug-in) still gets every
    transaction, called without a profile argument."""
    got: list[tuple[Any, ...]] = []

    class Plain(tripwire.reporters.base.Reporter):
        name = "plain"

        def send_event(self, event: Any) -> None:
            pass

        def send_transaction(self, transaction: Any, trace: Any = None) -> None:  # type: ignore[override]
            got.append((transaction["transaction"], trace is not None))

    _profiled_request(sink, profiles_sample_rate=1.0, reporters=[Plain()])
    assert got == [("/slow", True)]
    assert len(sink.items("profile")) == 1
    assert json.dumps(tripwire.stats()["dropped"]) == "{}"


def test_without_profiling_options_only_the_transaction_is_sent(sink: Sink) -> None:
    """Tracing without a profiling option sends transactions alone and makes no profiler."""
    envelopes = _profiled_request(sink)
    assert [[h["type"] for h, _ in items] for _, items in envelopes] == [["transaction"]]
    client = tripwire.get_client()
    assert client is not None and client.profiler is None
    assert not any(t.name == "tripwire-profiler" for t in threading.enumerate())


def test_a_sync_endpoint_makes_its_pool_thread_the_active_thread(sink: Sink) -> None:
    """A sync Starlette endpoint runs in anyio's thread pool: that thread is the profile's active
    thread, and the slow function tops its samples."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tests.profiling.apps import slow_checksum

    def slow_sync(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(slow_checksum(0.4)))

    app = TripwireMiddleware(Starlette(routes=[Route("/slow-sync", slow_sync)]))
    tripwire.init(sink.dsn, traces_sample_rate=1.0, profiles_sample_rate=1.0)
    with serve(app, "uvicorn") as server:
        _get(server.url + "/slow-sync")
    tripwire.flush(5)
    profile = sink.items("profile")[0]
    active = profile["transaction"]["active_thread_id"]
    assert profile["profile"]["thread_metadata"][active]["name"] != "test-uvicorn"  # not the event loop
    counts = leaf_counts(profile, active)
    assert counts.most_common(1)[0][0] == "slow_checksum", counts


def test_a_server_refusing_profiles_still_gets_every_transaction(sink: Sink) -> None:
    """When the server rate-limits the profile category (the collector before profiling, or an
    exhausted quota), transactions keep arriving without their profile, and the profiles left out
    are counted as rate_limited."""
    from tests.support.sink import Answer

    sink.answer = Answer(headers={"X-Sentry-Rate-Limits": "3600:profile:project:not_stored"})
    tripwire.init(sink.dsn, traces_sample_rate=1.0, profiles_sample_rate=1.0)
    with serve(starlette_app(TripwireMiddleware), "uvicorn") as server:
        for _ in range(3):
            _get(server.url + "/slow?ms=100")
            tripwire.flush(5)  # one at a time: the limit is known before the next one is encoded
    transactions = sink.items("transaction")
    assert len(transactions) == 3
    assert len(sink.items("profile")) == 1  # only the first, sent before the answer said no
    drops = tripwire.stats()["dropped_by"]
    assert {"reason": "rate_limited", "category": "profile", "reporter": "sentry", "quantity": 2} in drops


def test_unprofiled_transactions_reach_the_server_as_client_reports(sink: Sink) -> None:
    """Profiles not taken are reported to the server in a client report, under a data category
    Sentry's own relay library knows."""
    from sentry_relay.consts import DataCategory

    _profiled_request(sink, profiles_sample_rate=0.0)
    assert sink.wait_until(lambda: bool(sink.items("client_report")), 5)
    discarded = [d for report in sink.items("client_report") for d in report["discarded_events"]]
    assert {"reason": "sample_rate", "category": "profile", "quantity": 1} in discarded
    assert all(DataCategory.parse(d["category"]) is not None for d in discarded)
