"""The JSON API: token auth, OpenAPI, issue search, status changes, regressions, charts."""

from __future__ import annotations

import time
import uuid

import httpx

from .conftest import LiveServer, away_from_boundary, envelope, make_event, wait_until


def _send(server: LiveServer, *events: dict[str, object]) -> None:
    for event in events:
        assert server.post_envelope(envelope(("event", event))).status_code == 200
    server.wait_digested()


def _titles(server: LiveServer, **params: str) -> set[str]:
    body = server.api("/api/0/projects/default/issues/", params=params)
    assert body["total"] == len(body["issues"])
    return {i["title"] for i in body["issues"]}


def test_api_requires_a_valid_bearer_token(sqlite_server: LiveServer) -> None:
    """Without a token or with a wrong one the API answers 401; the OpenAPI document is public."""
    assert sqlite_server.http.get("/api/0/projects/").status_code == 401
    wrong = sqlite_server.http.get("/api/0/projects/", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    doc = sqlite_server.http.get("/api/0/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/api/0/projects/{project}/issues/" in doc["paths"]
    assert "patch" in doc["paths"]["/api/0/issues/{issue_id}/"]


def test_projects_are_listed_and_created_with_dsns(sqlite_server: LiveServer) -> None:
    """Projects come with DSNs that point at this collector; admins can create more."""
    (default,) = sqlite_server.api("/api/0/projects/")
    assert default["dsn"] == sqlite_server.dsn
    created = sqlite_server.api("/api/0/projects/", "POST", json={"name": "billing"})
    assert created["name"] == "billing" and created["dsn"].endswith(f"/{created['id']}")
    event = make_event()
    response = sqlite_server.post_envelope(
        envelope(("event", event)), project_id=created["id"], key=created["public_key"]
    )
    assert response.status_code == 200
    sqlite_server.wait_digested()
    assert (
        sqlite_server.api(f"/api/0/projects/billing/events/{event['event_id']}/")["project_id"]
        == created["id"]
    )


def test_issue_search_by_text_tag_level_release_environment_and_status(server: LiveServer) -> None:
    """Every search filter narrows the issue list to what matches."""
    _send(
        server,
        make_event(
            type_="TimeoutError", value="db timeout", release="1.0", environment="prod", tags={"shard": "a"}
        ),
        make_event(
            type_="KeyError",
            value="no user",
            frames=[("app.users", "get", 1)],
            release="1.1",
            environment="dev",
        ),
        make_event(
            type_="Warn", value="slow", frames=[("app.jobs", "run", 1)], level="warning", release="1.1"
        ),
    )
    assert _titles(server, query="timeout") == {"TimeoutError: db timeout"}
    assert _titles(server, query="shard:a") == {"TimeoutError: db timeout"}
    assert _titles(server, tag="shard:a") == {"TimeoutError: db timeout"}
    assert _titles(server, level="warning") == {"Warn: slow"}
    assert _titles(server, release="1.1") == {"KeyError: no user", "Warn: slow"}
    assert _titles(server, query="release:1.1 env:dev") == {"KeyError: no user"}
    assert _titles(server, environment="prod") == {"TimeoutError: db timeout"}
    assert _titles(server, query="no match at all") == set()

    issue = next(
        i for i in server.api("/api/0/projects/default/issues/")["issues"] if i["type"] == "KeyError"
    )
    server.api(f"/api/0/issues/{issue['id']}/", "PATCH", json={"status": "ignored"})
    assert _titles(server, status="ignored") == {"KeyError: no user"}
    assert _titles(server, query="is:unresolved") == {"TimeoutError: db timeout", "Warn: slow"}


def test_issue_detail_events_latest_and_hourly_counts(server: LiveServer) -> None:
    """An issue shows its tags, history, events (newest first) and an hourly chart."""
    away_from_boundary(3600)  # both events and the chart in one hour
    first, second = make_event(tags={"k": "v"}), make_event(tags={"k": "w"})
    _send(server, first, second)
    (issue,) = server.api("/api/0/projects/default/issues/")["issues"]
    detail = server.api(f"/api/0/issues/{issue['id']}/")
    assert detail["event_count"] == 2
    assert {(t["key"], t["value"]) for t in detail["tags"]} >= {("k", "v"), ("k", "w"), ("level", "error")}
    assert detail["activity"][0]["kind"] == "first_seen"
    events = server.api(f"/api/0/issues/{issue['id']}/events/")
    assert [e["event_id"] for e in events] == [second["event_id"], first["event_id"]]
    latest = server.api(f"/api/0/issues/{issue['id']}/events/latest/")
    assert latest["event_id"] == second["event_id"] and latest["data"]["tags"] == {"k": "w"}
    hourly = server.api(f"/api/0/issues/{issue['id']}/hourly/", params={"hours": "3"})
    assert len(hourly) == 3 and hourly[-1]["count"] == 2 and hourly[0]["count"] == 0
    project_hourly = server.api("/api/0/projects/default/hourly/", params={"hours": "1"})
    assert project_hourly[-1]["count"] == 2


def test_resolved_issue_regresses_when_it_comes_back(server: LiveServer) -> None:
    """A resolved issue that happens again is reopened and marked regressed."""
    _send(server, make_event(release="1.0"))
    (issue,) = server.api("/api/0/projects/default/issues/")["issues"]
    resolved = server.api(f"/api/0/issues/{issue['id']}/", "PATCH", json={"status": "resolved"})
    assert resolved["status"] == "resolved"
    _send(server, make_event(release="1.0"))
    again = server.api(f"/api/0/issues/{issue['id']}/")
    assert again["status"] == "unresolved" and again["regressed"] is True
    assert [a["kind"] for a in again["activity"]][-2:] == ["resolved", "regressed"]


def test_resolved_in_release_only_regresses_in_that_release_or_later(server: LiveServer) -> None:
    """Resolved in 1.10: events from 1.9 keep it resolved; an event from 1.10.1 reopens it."""
    _send(server, make_event(release="1.9"))
    (issue,) = server.api("/api/0/projects/default/issues/")["issues"]
    server.api(
        f"/api/0/issues/{issue['id']}/", "PATCH", json={"status": "resolved_in_release", "release": "1.10"}
    )
    _send(server, make_event(release="1.9"))
    still = server.api(f"/api/0/issues/{issue['id']}/")
    assert (still["status"], still["resolved_in_release"], still["event_count"]) == ("resolved", "1.10", 2)
    _send(server, make_event(release="1.10.1"))
    reopened = server.api(f"/api/0/issues/{issue['id']}/")
    assert reopened["status"] == "unresolved" and reopened["regressed"] is True


def test_bad_status_and_unknown_objects_are_clear_errors(sqlite_server: LiveServer) -> None:
    """Unknown issues are 404 and bad status values are 400 with a message."""
    headers = {"Authorization": f"Bearer {sqlite_server.token}"}
    assert sqlite_server.http.get("/api/0/issues/999/", headers=headers).status_code == 404
    assert sqlite_server.http.get(f"/api/0/events/{uuid.uuid4().hex}/", headers=headers).status_code == 404
    _send(sqlite_server, make_event())
    (issue,) = sqlite_server.api("/api/0/projects/default/issues/")["issues"]
    bad = sqlite_server.http.patch(f"/api/0/issues/{issue['id']}/", json={"status": "done"}, headers=headers)
    assert bad.status_code == 400 and "unknown status" in bad.json()["detail"]


def test_sessions_endpoint_reports_hourly_outcomes(sqlite_server: LiveServer) -> None:
    """Session updates and aggregates land in hourly buckets per release and environment."""
    away_from_boundary(3600)
    now = time.time()
    body = envelope(
        (
            "session",
            {
                "sid": uuid.uuid4().hex,
                "init": True,
                "started": now,
                "status": "crashed",
                "attrs": {"release": "2.0", "environment": "prod"},
            },
        ),
        (
            "sessions",
            {
                "attrs": {"release": "2.0", "environment": "prod"},
                "aggregates": [{"started": now, "exited": 5, "errored": 2}],
            },
        ),
    )
    assert sqlite_server.post_envelope(body).status_code == 200
    sqlite_server.wait_digested()
    (bucket,) = sqlite_server.api("/api/0/projects/default/sessions/", params={"release": "2.0"})
    assert (bucket["started"], bucket["healthy"], bucket["errored"], bucket["crashed"]) == (8, 5, 2, 1)
    (release,) = sqlite_server.api("/api/0/projects/default/releases/")
    assert release["crash_free_rate"] == 1 - 1 / 8


def test_retention_runs_by_itself(tmp_path: object) -> None:
    """With a cap of 3 events per project, the background sweep deletes the oldest ones."""
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    live = LiveServer(f"sqlite:///{tmp_path / 'r.sqlite3'}", retention_max_events=3, retention_interval=0.2)
    try:
        events = [make_event(value=f"e{i}") for i in range(6)]
        for event in events:
            assert live.post_envelope(envelope(("event", event))).status_code == 200
        # All six digested first: on a loaded machine the sweep may otherwise find the first three
        # alone, leave them, and the wait below would see 3 before the last three arrived.
        live.wait_digested()
        wait_until(lambda: live.store.issues.count_events() == 3, timeout=20)
        kept = {e.event_id for e in live.store.issues.list_events(live.store.issues.list_issues(1)[0].id)}
        assert kept == {e["event_id"] for e in events[3:]}
    finally:
        live.stop()


def test_health_needs_no_token(sqlite_server: LiveServer) -> None:
    """Load balancers can probe /api/0/health/ without credentials."""
    response = httpx.get(sqlite_server.url + "/api/0/health/")
    assert response.status_code == 200
    assert response.json()["ok"] is True


def test_project_quota_set_through_the_api_applies_to_ingest(sqlite_server: LiveServer) -> None:
    """PATCH a project's quota and the next envelope over it gets 429."""
    away_from_boundary(60)
    patched = sqlite_server.api("/api/0/projects/default/", "PATCH", json={"quota_per_minute": 1})
    assert patched["quota_per_minute"] == 1
    assert sqlite_server.post_envelope(envelope(("event", make_event()))).status_code == 200
    assert sqlite_server.post_envelope(envelope(("event", make_event()))).status_code == 429
    bad = sqlite_server.http.patch(
        "/api/0/projects/default/",
        json={"quota_per_minute": "many"},
        headers={"Authorization": f"Bearer {sqlite_server.token}"},
    )
    assert bad.status_code == 400
