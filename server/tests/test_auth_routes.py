"""Every route of the collector, listed from the app's own router, against missing, forged and
other users' credentials (SQLite and PostgreSQL).

A route added later is covered without editing this file: it is enumerated like the others, and
it must either refuse every credential below or be added to ``PUBLIC`` with a reason. A route
naming an object of a project in its path (a parameter in ``access.SCOPES``: ``{project}``,
``{issue_id}``, and whatever other modules register) must answer 404 to a non-member; a path
parameter that is in neither ``access.SCOPES`` nor the reviewed ``UNSCOPED`` fails the suite.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route

from tests.support.figures import record
from tripwire_server import access
from tripwire_server.alerts.rules import spec_from_json
from tripwire_server.ingest.bugsnag import BugsnagEndpoint
from tripwire_server.web._auth import CSRF_FIELD, SESSION_COOKIE, csrf_token_for

from .conftest import LiveServer, envelope, make_event

pytestmark = pytest.mark.reliability

#: Routes anyone may call, and why.
PUBLIC = {
    "/login": "the login form itself",
    "/api/0/openapi.json": "the API description (no data)",
    "/api/0/health/": "a liveness probe (no data)",
    "/static": "the stylesheet and script",
    "/v1/traces": "OTLP trace ingest: only with a DSN key (X-Sentry-Auth), like the envelope endpoint",
}
#: Ingest: public, but only with a DSN key of the project in the path.
INGEST_PREFIX = "/api/{project_id:id}/"
#: Path parameters that are not in ``access.SCOPES`` (no membership check of their own), and why
#: that is safe. A new parameter must be added to one or the other: that is the review.
UNSCOPED = {
    "project_id": "ingest only: the DSN key of that project is the credential",
    "event_id": "with {project} or {issue_id}; alone, searched only in the caller's projects",
    "attachment_id": "always with {project}",
    "public_key": "always with {project}",
    "username": "always with {project}",
    "slug": "always with {project}: a monitor is found by (project, slug)",
    "profile_id": "always with {project}: a profile is looked up by (project id, profile id)",
    "token_id": "a token is the caller's own (admins: anyone's)",
    "trace_id": "a trace crosses projects: only the spans and errors of the caller's projects are shown",
}
#: Of those, the ones that must only appear next to a scoped parameter.
NEEDS_A_SCOPED_NEIGHBOUR = {"attachment_id", "public_key", "username", "slug"}


@dataclasses.dataclass
class World:
    server: LiveServer
    victim_project: Any
    victim_issue: int
    victim_event: str
    victim_token: str
    victim_token_id: int
    victim_session: str
    other_token: str
    other_project: Any
    revoked_key: str
    victim_rule: int
    secrets: tuple[str, ...]


@pytest.fixture
def world(server: LiveServer) -> Iterator[World]:
    store = server.store
    victim = server.project
    marker = f"victim-secret-{uuid.uuid4().hex[:8]}"
    event = make_event(value=marker)
    assert server.post_envelope(envelope(("event", event))).status_code == 200
    server.wait_digested()
    issue = store.issues.list_issues(victim.id)[0]
    admin = store.accounts.get_user("admin")
    victim_token_row, victim_token = store.accounts.issue_api_token(admin.id, "victim")
    other_user = store.accounts.create_user("mallory", "mallory password 1")
    other_project = store.accounts.create_project("mallorys")
    store.accounts.add_project_member(other_project.id, other_user.id)
    rule = store.alerts.create_alert_rule(
        victim.id, spec_from_json({"on": "new-issue", "webhook": f"https://hooks.example/{marker}"})
    )
    revoked_key = store.accounts.add_project_key(victim.id).public_key
    store.accounts.revoke_project_key(victim.id, revoked_key)
    server.state.projects.invalidate()
    yield World(
        server=server,
        victim_project=victim,
        victim_issue=issue.id,
        victim_event=event["event_id"],
        victim_token=victim_token,
        victim_token_id=victim_token_row.id,
        victim_session=store.accounts.create_web_session(admin.id),
        other_token=store.accounts.create_api_token(other_user.id, "mallory"),
        other_project=other_project,
        revoked_key=revoked_key,
        victim_rule=rule.id,
        secrets=(marker, victim.public_key, event["event_id"]),
    )


def _path(route: Route, w: World) -> str:
    values = {
        "project": str(w.victim_project.id),
        "project_id": str(w.victim_project.id),
        "issue_id": str(w.victim_issue),
        "event_id": w.victim_event,
        "attachment_id": "1",
        "token_id": str(w.victim_token_id),
        "public_key": w.victim_project.public_key,
        "username": "admin",
        "rule_id": str(w.victim_rule),
    }
    path = route.path
    names = set(route.param_convertors)
    for name, convertor in route.param_convertors.items():
        assert name in access.SCOPES or name in UNSCOPED, (
            f"{route.path}: path parameter {name!r} is neither in access.SCOPES (checked against the"
            " caller's projects) nor reviewed in UNSCOPED"
        )
        if name in NEEDS_A_SCOPED_NEIGHBOUR:
            assert names & set(access.SCOPES), f"{route.path}: {name!r} without a project or issue"
        suffix = {"IntegerConvertor": ":int", "IdConvertor": ":id"}.get(type(convertor).__name__, "")
        # A scope registered later gets a plain value (no such object: still a 404 for a non-member).
        value = values.get(name, "1" if suffix else "x")
        path = path.replace("{" + name + suffix + "}", value)
    return path


def _forged_api(w: World) -> dict[str, dict[str, Any]]:
    store = w.server.store
    admin = store.accounts.get_user("admin")
    expired = store.accounts.create_api_token(admin.id, "expired", expires_at=time.time() - 1)
    revoked_row, revoked = store.accounts.issue_api_token(admin.id, "revoked")
    store.accounts.revoke_api_token(revoked_row.id)
    tampered = w.victim_token[:-1] + ("A" if w.victim_token[-1] != "A" else "B")
    return {
        "no credentials": {},
        "a forged token": {"headers": {"Authorization": "Bearer tw_" + "x" * 43}},
        "a tampered token": {"headers": {"Authorization": f"Bearer {tampered}"}},
        "an expired token": {"headers": {"Authorization": f"Bearer {expired}"}},
        "a revoked token": {"headers": {"Authorization": f"Bearer {revoked}"}},
        "a DSN key as a token": {"headers": {"Authorization": f"Bearer {w.victim_project.public_key}"}},
        "a Sentry auth header": {
            "headers": {"X-Sentry-Auth": f"Sentry sentry_key={w.victim_project.public_key}"}
        },
        "a token in the query string": {"params": {"token": w.victim_token}},
        "basic auth with the admin's name": {"auth": ("admin", w.victim_token)},
        "the admin's session cookie (no CSRF-safe cookie auth on the API)": {
            "cookies": {SESSION_COOKIE: w.victim_session}
        },
    }


def _forged_web(w: World) -> dict[str, dict[str, Any]]:
    store = w.server.store
    admin = store.accounts.get_user("admin")
    expired = store.accounts.create_web_session(admin.id, ttl=-1)
    tampered = w.victim_session[:-1] + ("A" if w.victim_session[-1] != "A" else "B")
    return {
        "no credentials": {},
        "a forged session cookie": {"cookies": {SESSION_COOKIE: "tws_" + "x" * 43}},
        "a tampered session cookie": {"cookies": {SESSION_COOKIE: tampered}},
        "an expired session cookie": {"cookies": {SESSION_COOKIE: expired}},
        "an API token as the cookie": {"cookies": {SESSION_COOKIE: w.victim_token}},
        "an API token as a bearer header": {"headers": {"Authorization": f"Bearer {w.victim_token}"}},
    }


def _send(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request; ``cookies`` go in a Cookie header (the client keeps no cookie jar state)."""
    cookies = kwargs.pop("cookies", None)
    headers = dict(kwargs.pop("headers", {}))
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    http.cookies.clear()
    return http.request(method, path, headers=headers, **kwargs)


def _routes(w: World) -> list[tuple[str, Route]]:
    out = []
    for route in w.server.app.routes:
        if isinstance(route, Mount):
            assert route.path in PUBLIC, f"a mounted app at {route.path} is not reviewed"
            continue
        assert isinstance(route, Route), route
        for method in sorted(route.methods or ()):
            out.append((method, route))
    return out


def _victim_unchanged(w: World, before: dict[str, Any]) -> None:
    store = w.server.store
    assert store.issues.get_issue(w.victim_issue).status == "unresolved"
    assert store.accounts.list_project_keys(w.victim_project.id) == before["keys"]
    assert store.accounts.list_project_members(w.victim_project.id) == before["members"]
    assert store.accounts.verify_api_token(w.victim_token) is not None
    assert len(store.accounts.list_projects()) == before["projects"]


@pytest.mark.slow  # 44 routes x 8 credential variants on each backend: 5-8 s under coverage
def test_every_route_refuses_missing_forged_and_other_users_credentials(world: World) -> None:
    """Each route of the router refuses each forged credential (API: 401; dashboard: a redirect to
    the login form; ingest: 401/403 without the project's key), a non-member gets a 404 for the
    victim's project or issue and sees none of its data elsewhere, and nothing of the victim's
    changes."""
    w = world
    http = w.server.http
    store = w.server.store
    before = {
        "keys": store.accounts.list_project_keys(w.victim_project.id),
        "members": store.accounts.list_project_members(w.victim_project.id),
        "projects": len(store.accounts.list_projects()),
    }
    forged_api, forged_web = _forged_api(w), _forged_web(w)
    other_user = store.accounts.get_user("mallory")
    requests = 0
    checked_routes = set()
    for method, route in _routes(w):
        path = _path(route, w)
        checked_routes.add(route.path)
        body: dict[str, Any] = {"json": {"status": "resolved", "name": "x", "username": "mallory"}}
        if route.path in PUBLIC:
            continue
        if isinstance(route.endpoint, BugsnagEndpoint):
            # BugSnag ingest (POST / and /sessions): the Bugsnag-Api-Key is the credential. The
            # path names no project, so another project's key is simply a report to that project.
            if method == "OPTIONS":
                continue
            payload = {"events": [{"exceptions": [{"errorClass": "E"}]}], "sessionCounts": []}
            for name, headers in (
                ("no key", {}),
                ("a forged key", {"Bugsnag-Api-Key": "0" * 32}),
                ("a revoked key", {"Bugsnag-Api-Key": w.revoked_key}),
                ("an API token as the key", {"Bugsnag-Api-Key": w.victim_token}),
            ):
                response = http.request(method, path, json=payload, headers=headers)
                requests += 1
                assert response.status_code in (401, 403), (method, path, name, response.status_code)
            continue
        if route.path.startswith(INGEST_PREFIX):
            if method == "OPTIONS":
                continue  # the CORS preflight carries no data
            event = make_event()
            data = json.dumps(event).encode() if "/store" in route.path else envelope(("event", event))
            for name, headers in (
                ("no key", {}),
                ("a forged key", {"X-Sentry-Auth": "Sentry sentry_key=" + "0" * 32}),
                ("a revoked key", {"X-Sentry-Auth": f"Sentry sentry_key={w.revoked_key}"}),
                (
                    "another project's key",
                    {"X-Sentry-Auth": f"Sentry sentry_key={w.other_project.public_key}"},
                ),
                ("an API token as the key", {"X-Sentry-Auth": f"Sentry sentry_key={w.victim_token}"}),
            ):
                response = http.request(method, path, content=data, headers=headers)
                requests += 1
                assert response.status_code in (401, 403), (method, path, name, response.status_code)
            continue
        if route.path.startswith("/api/0/"):
            for name, kwargs in forged_api.items():
                response = _send(http, method, path, **{**body, **kwargs})
                requests += 1
                assert response.status_code == 401, (method, path, name, response.status_code)
            response = http.request(
                method, path, headers={"Authorization": f"Bearer {w.other_token}"}, **body
            )
            requests += 1
            _assert_nothing_of_the_victim(w, method, route, response)
            continue
        for name, kwargs in forged_web.items():
            response = _send(http, method, path, data={CSRF_FIELD: "x"}, **kwargs)
            requests += 1
            assert response.status_code == 303, (method, path, name, response.status_code)
            assert response.headers["location"].startswith("/login"), (method, path, name)
        # A fresh session each time: POST /logout ends the one it is sent with.
        other_session = store.accounts.create_web_session(other_user.id)
        other_csrf = csrf_token_for(other_session)
        response = _send(
            http,
            method,
            path,
            cookies={SESSION_COOKIE: other_session},
            data={CSRF_FIELD: other_csrf, "action": "resolve", "username": "mallory", "public_key": "x"},
        )
        requests += 1
        _assert_nothing_of_the_victim(w, method, route, response)
    _victim_unchanged(w, before)
    assert len(checked_routes) >= 40
    backend = f" ({store.backend})"
    record("routes", "routes enumerated from the router" + backend, len(checked_routes))
    record(
        "routes",
        "forged credential variants per route" + backend,
        f"{len(forged_api)} API, {len(forged_web)} dashboard, 5 ingest, + another user",
    )
    record("routes", "requests with wrong credentials" + backend, requests)
    record("routes", "requests wrongly accepted" + backend, 0)


def _assert_nothing_of_the_victim(w: World, method: str, route: Route, response: httpx.Response) -> None:
    scoped = set(access.SCOPES) & set(route.param_convertors)
    where = (method, route.path, response.status_code, response.headers.get("location"))
    if scoped:
        assert response.status_code == 404, where
    else:
        assert response.status_code < 500, where
    if method != "HEAD":
        # A secret the request itself named (an event id in the path) may be echoed in the error.
        for secret in (s for s in w.secrets if s not in str(response.request.url)):
            assert secret not in response.text, (*where, secret)
        if route.path.startswith("/api/0/") or "/projects/" in response.text:
            assert f"/projects/{w.victim_project.id}/" not in response.text, where
