"""Profiles through the ingest endpoint into the store (SQLite and PostgreSQL): exact per-function
counts, continuous chunks attributed to their transactions, the release regression, honest
refusals of oversized and malformed items, and retention."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tripwire_server.profiling.model import CONTINUOUS

from ..conftest import LiveServer, envelope
from ..performance.payloads import transaction
from .payloads import MAIN_THREAD, OTHER_THREAD, chunk, transaction_profile, transaction_under

APP = ("handle", "app.views", "app/views.py")
HOT = ("hot_loop", "app.compute", "app/compute.py")
HELPER = ("helper", "app.compute", "app/compute.py")
SELECT = ("EpollSelector.select", "selectors", "selectors.py")


def _stats(server: LiveServer) -> dict[tuple[str, str], int]:
    rows = server.api("/api/0/projects/default/stats/")
    return {(r["category"], r["reason"]): r["quantity"] for r in rows}


def _functions(server: LiveServer, name: str, **params: str) -> list[dict[str, Any]]:
    return server.api(  # type: ignore[no-any-return]
        "/api/0/projects/default/profiling/functions/", params={"transaction": name, **params}
    )


def test_a_transaction_profile_gives_exact_shares_with_its_transaction(server: LiveServer) -> None:
    """A transaction and its profile in one envelope (as sentry-sdk sends them): 200 without any
    refusal header, counted as accepted, and the functions table has the exact shares."""
    tx = transaction("/compute", 1000)
    profile = transaction_profile(
        "/compute",
        [([APP, HOT], 60, MAIN_THREAD), ([APP, HELPER], 10, MAIN_THREAD), ([SELECT], 30, MAIN_THREAD),
         ([HELPER], 400, OTHER_THREAD)],
        transaction_id=tx["event_id"],
        trace_id=tx["contexts"]["trace"]["trace_id"],
    )  # fmt: skip
    response = server.post_envelope(envelope(("transaction", tx), ("profile", profile)))
    assert response.status_code == 200 and "X-Sentry-Rate-Limits" not in response.headers
    server.wait_digested()
    rows = _functions(server, "/compute")
    assert [(r["function"], r["self_share"], r["total_share"], r["samples"]) for r in rows[:2]] == [
        ("hot_loop", 0.6, 0.6, 60),
        ("helper", 0.1, 0.1, 10),
    ]
    assert all(r["samples"] == 0 for r in rows[2:])  # the waiting select is nobody's self time
    assert _stats(server)[("profile", "accepted")] == 1
    # The same envelope again (an SDK retrying): stored once, counted once.
    assert server.post_envelope(envelope(("profile", profile))).status_code == 200
    server.wait_digested()
    assert _functions(server, "/compute")[0]["samples"] == 60
    (stored,) = server.api("/api/0/projects/default/profiling/profiles/", params={"transaction": "/compute"})
    assert stored["event_id"] == tx["event_id"] and stored["kind"] == "transaction"
    assert stored["trace_id"] == tx["contexts"]["trace"]["trace_id"]
    detail = server.api(f"/api/0/projects/default/profiling/profiles/{stored['profile_id']}/")
    assert detail["tree"]["total"] == 100  # the transaction's thread only


def test_chunks_are_attributed_to_the_transactions_that_ran_during_them(server: LiveServer) -> None:
    """Two transactions under a continuous profiler and the chunk covering them: each gets the
    samples of its thread in its window; the rest is aggregated as (continuous)."""
    profiler = uuid.uuid4().hex
    start = time.time() - 10
    first = transaction_under(profiler, "/first", start + 0.0, start + 0.495)
    second = transaction_under(profiler, "/second", start + 1.0, start + 1.295)
    server.post_envelope(envelope(("transaction", first)))
    server.post_envelope(envelope(("transaction", second)))
    server.wait_digested()
    data = chunk(
        profiler,
        [([APP, HOT], 50, MAIN_THREAD), ([SELECT], 50, MAIN_THREAD), ([APP, HELPER], 30, MAIN_THREAD),
         ([APP, HOT], 20, MAIN_THREAD), ([HELPER], 10, OTHER_THREAD)],
        start=start,
    )  # fmt: skip
    assert server.post_envelope(envelope(("profile_chunk", data))).status_code == 200
    server.wait_digested()
    # Samples at start + 10 ms * i: /first holds i = 0..49 (hot_loop), /second i = 100..129 (helper).
    assert [(r["function"], r["samples"]) for r in _functions(server, "/first")[:1]] == [("hot_loop", 50)]
    assert _functions(server, "/first")[0]["self_share"] == 1.0
    assert [(r["function"], r["samples"]) for r in _functions(server, "/second")[:1]] == [("helper", 30)]
    rest = {r["function"]: r["samples"] for r in _functions(server, CONTINUOUS)}
    assert rest["hot_loop"] == 20 and rest["helper"] == 10 and rest["EpollSelector.select"] == 0
    profiles = server.api("/api/0/projects/default/profiling/profiles/")
    by_name = {p["name"]: p for p in profiles}
    assert by_name["/first"]["event_id"] == first["event_id"] and by_name["/first"]["kind"] == "chunk"
    assert by_name["/second"]["samples"] == 30
    assert _stats(server)[("profile_chunk", "accepted")] == 1


def test_the_regression_view_compares_a_release_with_the_previous_one(server: LiveServer) -> None:
    """hot_loop takes 20 % of /r in 1.0 and 70 % in 2.0: +50 points, first in the regression."""
    now = time.time()
    old = transaction_profile(
        "/r", [([APP, HOT], 20, MAIN_THREAD), ([APP], 80, MAIN_THREAD)], release="app@1.0", start=now - 7200
    )
    new = transaction_profile(
        "/r", [([APP, HOT], 70, MAIN_THREAD), ([APP], 30, MAIN_THREAD)], release="app@2.0", start=now - 60
    )
    server.post_envelope(envelope(("profile", old)))
    server.post_envelope(envelope(("profile", new)))
    server.wait_digested()
    data = server.api("/api/0/projects/default/profiling/regression/", params={"transaction": "/r"})
    assert (data["release"], data["previous_release"]) == ("app@2.0", "app@1.0")
    top = data["functions"][0]
    assert (top["function"], top["self_share"], top["previous_self_share"]) == ("hot_loop", 0.7, 0.2)
    assert abs(top["change"] - 0.5) < 1e-9
    only_old = _functions(server, "/r", release="app@1.0")
    assert only_old[0]["function"] == "handle" and only_old[0]["self_share"] == 0.8


def test_oversized_and_malformed_profiles_are_refused_and_counted(server: LiveServer) -> None:
    """A profile item over max_profile_size is a 413 at the door; one whose stacks point nowhere
    is accepted by ingest but counted invalid by the digest, and stores nothing."""
    limit = server.config.limits.max_profile_size
    big = b'{"pad": "' + b"x" * limit + b'"}'
    response = server.post_envelope(envelope(("profile", big)))
    assert response.status_code == 413 and "profile item" in response.headers["X-Sentry-Error"]
    broken = transaction_profile("/bad", [([APP], 3, MAIN_THREAD)])
    broken["profile"]["samples"][0]["stack_id"] = 99
    assert server.post_envelope(envelope(("profile", broken))).status_code == 200
    server.wait_digested()
    assert _stats(server)[("profile", "invalid")] == 1
    assert server.api("/api/0/projects/default/profiling/profiles/") == []
    assert _functions(server, "/bad") == []


def test_retention_drops_profiles_and_their_aggregates(server: LiveServer) -> None:
    """After profile_retention_days, the profiles, function rows and windows are gone."""
    server.post_envelope(envelope(("profile", transaction_profile("/old", [([APP, HOT], 5, MAIN_THREAD)]))))
    server.wait_digested()
    assert _functions(server, "/old")
    assert server.store.retention.apply_profile_retention(days=1, now=time.time() + 3 * 86400) >= 3
    assert _functions(server, "/old") == []
    assert server.api("/api/0/projects/default/profiling/profiles/") == []


def test_serve_takes_the_profile_retention_and_size_flags() -> None:
    """`tripwire serve --profile-retention-days 3 --max-profile-size 1000` sets both."""
    from tripwire_server.cli import build_parser

    args = build_parser().parse_args(["serve", "--profile-retention-days", "3", "--max-profile-size", "1000"])
    assert (args.profile_retention_days, args.limit_max_profile_size) == (3, 1000)


def test_a_transaction_arriving_after_its_chunk_takes_its_samples_back(server: LiveServer) -> None:
    """An SDK that sends the chunk first: its samples are (continuous) until the transaction comes,
    then they move to the transaction (aggregates and stored parts alike), nothing counted twice."""
    profiler = uuid.uuid4().hex
    start = time.time() - 10
    data = chunk(profiler, [([APP, HOT], 50, MAIN_THREAD), ([APP, HELPER], 50, MAIN_THREAD)], start=start)
    assert server.post_envelope(envelope(("profile_chunk", data))).status_code == 200
    server.wait_digested()
    assert {r["function"]: r["samples"] for r in _functions(server, CONTINUOUS)}["hot_loop"] == 50
    late = transaction_under(profiler, "/late", start, start + 0.495)
    server.post_envelope(envelope(("transaction", late)))
    server.wait_digested()
    assert [(r["function"], r["samples"], r["self_share"]) for r in _functions(server, "/late")[:1]] == [
        ("hot_loop", 50, 1.0)
    ]
    rest = {r["function"]: r["samples"] for r in _functions(server, CONTINUOUS)}
    assert "hot_loop" not in rest and rest["helper"] == 50
    profiles = {p["name"]: p for p in server.api("/api/0/projects/default/profiling/profiles/")}
    assert profiles["/late"]["event_id"] == late["event_id"] and profiles["/late"]["samples"] == 50
    assert profiles[CONTINUOUS]["samples"] == 50
