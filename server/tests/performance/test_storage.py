"""Performance data in the store, on both backends: counted, sampled within bounds, rolled up by
minute and hour, linked to errors, and dropped by retention (whole partitions on PostgreSQL)."""

from __future__ import annotations

import random
import time
from typing import Any

from tripwire_server.store.performance import RANDOM_PER_HOUR, SLOWEST_PER_HOUR

from ..conftest import LiveServer, envelope
from .payloads import transaction


def _intake(server: LiveServer) -> dict[tuple[str, str], int]:
    rows = server.store.releases.outcomes(server.project.id, source="intake")
    return {(r.category, r.reason): r.quantity for r in rows}


def _span_v2(span_id: str, *, segment: bool, trace_id: str, now: float) -> dict[str, Any]:
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": None if segment else "a" * 16,
        "name": "GET /cart" if segment else "fetch",
        "status": "ok",
        "is_segment": segment,
        "start_timestamp": now - 0.3,
        "end_timestamp": now - 0.1,
        "attributes": {
            "sentry.segment.id": {"type": "string", "value": "a" * 16},
            "sentry.segment.name": {"type": "string", "value": "/cart"},
            "sentry.op": {"type": "string", "value": "pageload" if segment else "http.client"},
        },
    }


def test_transactions_and_span_items_are_stored_and_counted_by_item(server: LiveServer) -> None:
    """A transaction item and a span-v2 item of three spans (one orphan) are accepted and counted."""
    now = time.time()
    trace_id = "c" * 32
    spans = {
        "items": [
            _span_v2("a" * 16, segment=True, trace_id=trace_id, now=now),
            _span_v2("b" * 16, segment=False, trace_id=trace_id, now=now),
            {
                **_span_v2("d" * 16, segment=False, trace_id=trace_id, now=now),
                "attributes": {"sentry.segment.id": {"type": "string", "value": "e" * 16}},
            },
        ]
    }
    body = envelope(("transaction", transaction("/pay", 50)), ("span", spans))
    body = body.replace(
        b'{"type": "span"',
        b'{"type": "span", "item_count": 3, "content_type": "application/vnd.sentry.items.span.v2+json"',
    )
    assert server.post_envelope(body).status_code == 200
    server.wait_digested()
    counts = _intake(server)
    assert counts[("transaction", "accepted")] == 2
    assert counts[("span", "accepted")] == 2 and counts[("span", "no_segment")] == 1
    rows = {
        r["transaction"]: r
        for r in server.api("/api/0/projects/default/performance/", params={"since": "1h"})
    }
    assert rows["/cart"]["op"] == "pageload" and rows["/cart"]["count"] == 1
    trace = server.api(f"/api/0/traces/{trace_id}/")
    assert {s["op"] for s in trace["spans"]} == {"pageload", "http.client"}


def test_samples_stay_bounded_per_name_and_hour_and_keep_the_slowest(server: LiveServer) -> None:
    """200 transactions of one name in one hour keep 5 slowest + 5 random samples, the slowest among them."""
    server.store.performance.random = random.Random(7)
    hour_end = (int(time.time() // 3600)) * 3600 - 1.0  # inside the previous hour: one bucket
    durations = [float(d) for d in random.Random(1).sample(range(1, 5000), 200)]
    for start in range(0, 200, 50):
        items = [
            ("transaction", transaction("/bulk", d, end=hour_end - i * 0.01))
            for i, d in enumerate(durations[start : start + 50])
        ]
        assert server.post_envelope(envelope(*items)).status_code == 200
    server.wait_digested()
    samples = server.store.performance.list_samples(server.project.id, "/bulk", limit=100)
    assert len(samples) == SLOWEST_PER_HOUR + RANDOM_PER_HOUR
    slowest = [round(s.duration_ms, 1) for s in samples[:SLOWEST_PER_HOUR]]
    assert slowest == sorted(durations, reverse=True)[:SLOWEST_PER_HOUR]
    assert {s.kind for s in samples} == {"slow", "random"}
    (row,) = server.api("/api/0/projects/default/performance/", params={"since": "3h"})
    assert row["count"] == 200


def test_a_week_is_answered_from_day_rollups_with_the_same_counts(server: LiveServer) -> None:
    """Ranges over two days read day rows, over six hours hour rows: all count the same."""
    now = time.time()
    items = [("transaction", transaction("/w", 10 + i, end=now - 60 * i)) for i in range(20)]
    assert server.post_envelope(envelope(*items)).status_code == 200
    server.wait_digested()
    week_res, week = server.store.performance.perf_rollups(server.project.id, now - 7 * 86400, now + 1)
    minute_res, minutes = server.store.performance.perf_rollups(server.project.id, now - 3 * 3600, now + 1)
    day_res, day = server.store.performance.perf_rollups(server.project.id, now - 86400, now + 1)
    assert (week_res, day_res, minute_res) == (86400, 3600, 60)
    assert sum(r.count for r in week) == sum(r.count for r in day) == sum(r.count for r in minutes) == 20


def test_an_error_with_a_trace_id_is_linked_and_listed_in_its_trace(server: LiveServer) -> None:
    """An error event's contexts.trace links it to the trace of its transaction."""
    from ..conftest import make_event

    tx = transaction("/pay", 30)
    trace_id = tx["contexts"]["trace"]["trace_id"]
    error = make_event(
        contexts={"trace": {"trace_id": trace_id, "span_id": tx["contexts"]["trace"]["span_id"]}}
    )
    assert server.post_envelope(envelope(("transaction", tx))).status_code == 200
    assert server.post_envelope(envelope(("event", error))).status_code == 200
    server.wait_digested()
    trace = server.api(f"/api/0/traces/{trace_id}/")
    assert [e["event_id"] for e in trace["errors"]] == [error["event_id"]]
    assert trace["errors"][0]["span_id"] == tx["contexts"]["trace"]["span_id"]


def test_retention_drops_old_rollups_and_samples_and_keeps_recent_ones(server: LiveServer) -> None:
    """Data older than its retention goes (on PostgreSQL by dropping day partitions); today's stays."""
    now = time.time()
    old_end = now - 20 * 86400
    items = [
        ("transaction", transaction("/old", 40, end=old_end)),
        ("transaction", transaction("/new", 40, end=now)),
    ]
    assert server.post_envelope(envelope(*items)).status_code == 200
    server.wait_digested()
    assert server.store.performance.list_samples(server.project.id, "/old")
    removed = server.store.retention.apply_perf_retention(rollup_days=10, sample_days=10, now=now)
    assert removed > 0
    assert server.store.performance.list_samples(server.project.id, "/old") == []
    assert server.store.performance.list_samples(server.project.id, "/new")
    _res, rows = server.store.performance.perf_rollups(server.project.id, now - 30 * 86400, now + 1)
    assert {r.name for r in rows} == {"/new"}
    if server.store.backend == "postgresql":
        sql = "SELECT tablename FROM pg_tables WHERE tablename LIKE ? AND schemaname = current_schema()"
        with server.store.db.tx(write=False) as c:
            days = sorted(r[0].rsplit("_p", 1)[1] for r in c.all(sql, ("perf%",)) if "_p2" in r[0])
        # The day of the old transaction was a partition of its own: it is gone, today's is there.
        assert time.strftime("%Y%m%d", time.gmtime(old_end)) not in days
        assert time.strftime("%Y%m%d", time.gmtime(now)) in days


def test_transactions_older_than_thirty_days_are_refused_and_counted(server: LiveServer) -> None:
    """A transaction ending 40 days ago is counted too_old and creates no row (nor partition)."""
    items = [("transaction", transaction("/ancient", 40, end=time.time() - 40 * 86400))]
    assert server.post_envelope(envelope(*items)).status_code == 200
    server.wait_digested()
    assert _intake(server)[("transaction", "too_old")] == 1
    assert server.store.performance.list_samples(server.project.id, "/ancient") == []


def test_failed_transactions_are_kept_first_so_errors_link_to_a_stored_trace(server: LiveServer) -> None:
    """Among 60 fast transactions, the 3 failed ones are all sampled whatever their speed."""
    end = (int(time.time() // 3600)) * 3600 - 1.0
    items = [("transaction", transaction("/busy", 500 + i, end=end - i * 0.01)) for i in range(57)]
    items += [("transaction", transaction("/busy", 5, end=end, status="internal_error")) for _ in range(3)]
    assert server.post_envelope(envelope(*items)).status_code == 200
    server.wait_digested()
    samples = server.store.performance.list_samples(server.project.id, "/busy", limit=100)
    assert sum(1 for s in samples if s.failed) == 3
    assert len(samples) == 13  # 3 failed + 5 slowest + 5 random


def test_a_trace_shows_a_non_member_only_the_projects_they_may_see(server: LiveServer) -> None:
    """A trace across two projects: a member of one sees its spans and errors only; admins see all."""
    from ..conftest import make_event

    other = server.store.accounts.create_project("payments")
    server.state.projects.invalidate()
    front = transaction("/checkout", 40)
    trace_id = front["contexts"]["trace"]["trace_id"]
    back = transaction("/charge", 20, trace_id=trace_id, parent_span_id=front["contexts"]["trace"]["span_id"])
    error = make_event(value="card declined", contexts={"trace": {"trace_id": trace_id}})
    assert server.post_envelope(envelope(("transaction", front))).status_code == 200
    body = envelope(("transaction", back), ("event", error))
    assert server.post_envelope(body, project_id=other.id, key=other.public_key).status_code == 200
    server.wait_digested()
    user = server.store.accounts.create_user("frontend-dev", "frontend dev password 1")
    server.store.accounts.add_project_member(server.project.id, user.id)
    token = server.store.accounts.create_api_token(user.id, "dev")
    mine = server.http.get(f"/api/0/traces/{trace_id}/", headers={"Authorization": f"Bearer {token}"}).json()
    assert {s["project"] for s in mine["spans"]} == {"default"} and mine["errors"] == []
    everything = server.api(f"/api/0/traces/{trace_id}/")
    assert {s["project"] for s in everything["spans"]} == {"default", "payments"}
    assert len(everything["errors"]) == 1


def test_span_items_are_queued_not_refused_with_a_rate_limit(server: LiveServer) -> None:
    """An envelope of span items is answered 200 without an X-Sentry-Rate-Limits refusal of spans."""
    now = time.time()
    spans = {"items": [_span_v2("a" * 16, segment=True, trace_id="d" * 32, now=now)]}
    response = server.post_envelope(envelope(("span", spans)))
    assert response.status_code == 200
    assert "span" not in response.headers.get("X-Sentry-Rate-Limits", "")
    server.wait_digested()
    assert _intake(server)[("span", "accepted")] == 1


def test_serve_takes_the_performance_retention_flags() -> None:
    """`tripwire serve --performance-retention-days 7 --sample-retention-days 2` sets both."""
    from tripwire_server.cli import build_parser

    args = build_parser().parse_args(
        ["serve", "--performance-retention-days", "7", "--sample-retention-days", "2"]
    )
    assert (args.performance_retention_days, args.sample_retention_days) == (7, 2)
