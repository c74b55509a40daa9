"""The JSON API under ``/api/0/``: token auth (``Authorization: Bearer <token>``) and OpenAPI.

Every endpoint is declared once in :data:`ENDPOINTS` (method, path, summary, query parameters);
the routes and the OpenAPI document at ``/api/0/openapi.json`` are both built from that table.

Before any handler runs, :func:`_wrap` authenticates the token, refuses inputs no database can
hold (:func:`~.access.invalid_input`) and checks that the user may see the project and issue named
in the path (:func:`~.access.check_path`): a non-member gets the same 404 as for a missing project.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import access
from ._version import __version__
from .ingest.request import header_safe
from .search import parse_query
from .store.base import (
    ApiToken,
    Event,
    EventSummary,
    Issue,
    IssueQuery,
    NotFound,
    Project,
    ProjectKey,
    Release,
    StoreError,
    User,
)

if TYPE_CHECKING:
    from .state import CollectorState

Handler = Callable[[Request, "CollectorState", User], Awaitable[Any]]

#: API bodies are small JSON objects; a bigger one is refused while it is read (413).
MAX_BODY_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    handler: Handler
    query: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    #: JSON schema of the body (OpenAPI); an object of any fields when None.
    schema: dict[str, Any] | None = None


ENDPOINTS: list[Endpoint] = []


def _endpoint(
    method: str,
    path: str,
    summary: str,
    query: tuple[tuple[str, str], ...] = (),
    body: str | None = None,
    schema: dict[str, Any] | None = None,
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ENDPOINTS.append(Endpoint(method, path, summary, fn, query, body, schema))
        return fn

    return register


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, default=str, ensure_ascii=False),
        status_code=status,
        media_type="application/json",
    )


async def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


def _int(request: Request, name: str, default: int, lo: int = 0, hi: int = 10_000) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return max(lo, min(hi, int(raw)))
    except ValueError:
        raise ApiError(400, f"query parameter {name} must be an integer") from None


# -- serializers ------------------------------------------------------------------------------------


def project_json(project: Project, public_url: str) -> dict[str, Any]:
    out = dataclasses.asdict(project)
    out["dsn"] = project.dsn(public_url)
    return out


def issue_json(issue: Issue) -> dict[str, Any]:
    return dataclasses.asdict(issue)


def event_json(event: EventSummary) -> dict[str, Any]:
    return dataclasses.asdict(event)


def release_json(release: Release) -> dict[str, Any]:
    out = dataclasses.asdict(release)
    out["crash_free_rate"] = release.crash_free_rate
    return out


async def _project(state: CollectorState, ref: str) -> Project:
    # _wrap has already checked that the user may see it (access.check_path).
    return await _run(state.store.accounts.get_project, ref)  # type: ignore[no-any-return]


def _admin(user: User, what: str) -> None:
    if not user.is_admin:
        raise ApiError(403, f"only admins can {what}")


# -- endpoints --------------------------------------------------------------------------------------


@_endpoint("GET", "/api/0/status/", "Collector status: backend, queue depth, counters")
async def status(request: Request, state: CollectorState, user: User) -> Any:
    depth = await _run(state.store.queue.queue_depth)
    return {
        "version": __version__,
        "backend": state.store.backend,
        "schema_version": await _run(state.store.schema_version),
        "queue_depth": depth,
        "dead_letters": await _run(state.store.queue.dead_letter_count),
        "committed_by_this_process": state.writer.committed,
        "digested_by_this_process": state.digester.digested if state.digester else 0,
        "events": await _run(state.store.issues.count_events),
    }


@_endpoint("GET", "/api/0/projects/", "List projects with their DSNs")
async def list_projects(request: Request, state: CollectorState, user: User) -> Any:
    projects = await _run(access.visible_projects, state.store, user)
    return [project_json(p, state.public_url) for p in projects]


@_endpoint("POST", "/api/0/projects/", "Create a project (admin)", body='{"name": "my-service"}')
async def create_project(request: Request, state: CollectorState, user: User) -> Any:
    _admin(user, "create projects")
    body = await _body(request)
    project = await _run(state.store.accounts.create_project, str(body.get("name") or ""))
    state.projects.invalidate()
    return 201, project_json(project, state.public_url)


@_endpoint("GET", "/api/0/projects/{project}/", "A project by id or name")
async def get_project(request: Request, state: CollectorState, user: User) -> Any:
    return project_json(await _project(state, request.path_params["project"]), state.public_url)


#: What ``PATCH /api/0/projects/{project}/`` sets: (field, largest value, how to say it).
_PROJECT_FIELDS = (
    ("quota_per_minute", 2**31, "2^31"),
    ("retention_days", 2**31, "2^31"),
    ("retention_max_events", 2**31, "2^31"),
    # Bytes: up to 1 PiB, the Settings form's bound too.
    ("attachment_bytes_per_hour", 2**50, "2^50"),
    ("attachment_bytes_total", 2**50, "2^50"),
)


@_endpoint(
    "PATCH",
    "/api/0/projects/{project}/",
    "Set a project's quota, retention and attachment budget (admin)",
    body='{"quota_per_minute": 600, "retention_days": 30, "retention_max_events": 50000,'
    ' "attachment_bytes_per_hour": 104857600, "attachment_bytes_total": 1073741824}'
    " (0: no limit, -1: back to the server default)",
)
async def update_project(request: Request, state: CollectorState, user: User) -> Any:
    _admin(user, "change projects")
    project = await _project(state, request.path_params["project"])
    body = await _body(request)
    changes: dict[str, int] = {}
    for field, bound, name in _PROJECT_FIELDS:
        if field in body:
            value = body[field]
            if not isinstance(value, int) or isinstance(value, bool) or not -1 <= value <= bound:
                raise ApiError(400, f"{field} must be an integer from -1 to {name}")
            changes[field] = value
    updated = await _run(state.store.accounts.update_project, project.id, **changes)
    state.projects.invalidate()
    return project_json(updated, state.public_url)


_ISSUE_QUERY = (
    ("query", "search: free text, is:STATUS, level:, release:, environment:, key:value tags"),
    ("status", "unresolved | resolved | ignored"),
    ("level", "fatal | error | warning | info | debug"),
    ("release", "issues seen in this release"),
    ("environment", "issues seen in this environment"),
    ("tag", "key:value, repeatable"),
    ("sort", "last_seen (default) | first_seen | event_count"),
    ("limit", "page size, default 100"),
    ("offset", "rows to skip"),
)


@_endpoint("GET", "/api/0/projects/{project}/issues/", "Search the issues of a project", _ISSUE_QUERY)
async def list_issues(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    p = request.query_params
    tags = []
    for tag in p.getlist("tag"):
        key, sep, value = tag.partition(":")
        if not sep:
            raise ApiError(400, "tag must be key:value")
        tags.append((key, value))
    sort = p.get("sort") or "last_seen"
    if sort not in ("last_seen", "first_seen", "event_count"):
        raise ApiError(400, "sort must be last_seen, first_seen or event_count")
    base = IssueQuery(
        status=p.get("status") or None,
        level=p.get("level") or None,
        release=p.get("release") or None,
        environment=p.get("environment") or None,
        tags=tuple(tags),
        sort=sort,  # type: ignore[arg-type]
        limit=_int(request, "limit", 100, 1, 1000),
        offset=_int(request, "offset", 0, 0, 10**9),
    )
    query = parse_query(p.get("query") or "", base)
    issues = await _run(state.store.issues.list_issues, project.id, query)
    total = await _run(state.store.issues.count_issues, project.id, query)
    return {"total": total, "issues": [issue_json(i) for i in issues]}


@_endpoint("GET", "/api/0/issues/{issue_id:id}/", "An issue with its grouping explanation, tags and history")
async def get_issue(request: Request, state: CollectorState, user: User) -> Any:
    issue_id = request.path_params["issue_id"]
    issue = await _run(state.store.issues.get_issue, issue_id)
    out = issue_json(issue)
    out["tags"] = [dataclasses.asdict(t) for t in await _run(state.store.issues.issue_tags, issue_id)]
    out["activity"] = [dataclasses.asdict(a) for a in await _run(state.store.issues.issue_activity, issue_id)]
    return out


@_endpoint(
    "PATCH",
    "/api/0/issues/{issue_id:id}/",
    "Change an issue's status",
    body='{"status": "resolved", "resolved_in_release": "1.4.0"}  (status: unresolved | resolved | ignored)',
)
async def update_issue(request: Request, state: CollectorState, user: User) -> Any:
    body = await _body(request)
    status_ = body.get("status")
    release = body.get("resolved_in_release") or body.get("release")
    if status_ == "resolved_in_release":
        status_ = "resolved"
        if not release:
            raise ApiError(400, "resolved_in_release needs a release")
    if not isinstance(status_, str):
        raise ApiError(400, "body must contain a status")
    issue = await _run(
        state.store.issues.set_issue_status,
        request.path_params["issue_id"],
        status_,
        resolved_in_release=str(release) if release else None,
    )
    return issue_json(issue)


@_endpoint(
    "GET",
    "/api/0/issues/{issue_id:id}/events/",
    "Stored events of an issue, newest first",
    (("limit", "page size, default 50"), ("offset", "rows to skip")),
)
async def issue_events(request: Request, state: CollectorState, user: User) -> Any:
    issue_id = request.path_params["issue_id"]
    await _run(state.store.issues.get_issue, issue_id)
    events = await _run(
        state.store.issues.list_events,
        issue_id,
        limit=_int(request, "limit", 50, 1, 1000),
        offset=_int(request, "offset", 0, 0, 10**9),
    )
    return [event_json(e) for e in events]


@_endpoint("GET", "/api/0/issues/{issue_id:id}/events/latest/", "The latest event of an issue")
async def latest_event(request: Request, state: CollectorState, user: User) -> Any:
    event: Event | None = await _run(state.store.issues.latest_event, request.path_params["issue_id"])
    if event is None:
        raise ApiError(404, "this issue has no stored event")
    return event_json(event)


_HOURS = (("hours", "how many hours back, default 24, at most 2160"),)


def _hourly(rows: list[Any], hours: int, now: float) -> list[dict[str, Any]]:
    end = int(now // 3600) * 3600
    counts = {int(r.hour): r.count for r in rows}
    return [
        {"hour": float(h), "count": counts.get(h, 0)}
        for h in range(end - (hours - 1) * 3600, end + 3600, 3600)
    ]


@_endpoint("GET", "/api/0/issues/{issue_id:id}/hourly/", "Events per hour of an issue", _HOURS)
async def issue_hourly(request: Request, state: CollectorState, user: User) -> Any:
    issue = await _run(state.store.issues.get_issue, request.path_params["issue_id"])
    hours = _int(request, "hours", 24, 1, 2160)
    now = time.time()
    rows = await _run(
        state.store.issues.hourly_counts,
        issue.project_id,
        issue_id=issue.id,
        since=now - hours * 3600,
        until=now + 3600,
    )
    return _hourly(rows, hours, now)


@_endpoint("GET", "/api/0/projects/{project}/hourly/", "Events per hour of a project", _HOURS)
async def project_hourly(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    hours = _int(request, "hours", 24, 1, 2160)
    now = time.time()
    rows = await _run(
        state.store.issues.hourly_counts, project.id, since=now - hours * 3600, until=now + 3600
    )
    return _hourly(rows, hours, now)


@_endpoint("GET", "/api/0/projects/{project}/events/{event_id}/", "An event by id: the full normalized JSON")
async def project_event(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    event = await _run(state.store.issues.get_event, request.path_params["event_id"], project.id)
    return event_json(event)


@_endpoint("GET", "/api/0/events/{event_id}/", "An event by id in any project")
async def any_event(request: Request, state: CollectorState, user: User) -> Any:
    event_id = request.path_params["event_id"]
    if user.is_admin:
        return event_json(await _run(state.store.issues.get_event, event_id))
    for project in await _run(access.visible_projects, state.store, user):
        try:
            return event_json(await _run(state.store.issues.get_event, event_id, project.id))
        except NotFound:
            continue
    raise NotFound(f"no event {event_id}")


@_endpoint(
    "GET",
    "/api/0/projects/{project}/events/{event_id}/attachments/",
    "Attachments stored with an event",
)
async def event_attachments(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    rows = await _run(state.store.issues.list_attachments, project.id, request.path_params["event_id"])
    return [dataclasses.asdict(a) for a in rows]


@_endpoint(
    "GET",
    "/api/0/projects/{project}/attachments/{attachment_id:id}/",
    "Download an attachment (its bytes, with its content type)",
)
async def attachment_data(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    meta, data = await _run(
        state.store.issues.get_attachment_data, project.id, request.path_params["attachment_id"]
    )
    # Served as a download, never rendered: the bytes come from an untrusted client.
    safe_name = "".join(ch for ch in meta.filename if ch.isalnum() or ch in "._-") or "attachment"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{safe_name}"',
            "X-Content-Type-Options": "nosniff",
            "X-Original-Content-Type": header_safe(meta.content_type),
        },
    )


@_endpoint("GET", "/api/0/projects/{project}/releases/", "Releases with session counts and crash-free rate")
async def releases(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    return [release_json(r) for r in await _run(state.store.releases.list_releases, project.id)]


@_endpoint(
    "GET",
    "/api/0/projects/{project}/sessions/",
    "Hourly session outcomes",
    (("release", "only this release"), ("hours", "how many hours back, default 24")),
)
async def sessions(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    since = time.time() - _int(request, "hours", 24, 1, 24 * 400) * 3600
    rows = await _run(
        state.store.releases.session_buckets,
        project.id,
        release=request.query_params.get("release"),
        since=since,
    )
    return [dataclasses.asdict(r) for r in rows]


_SINCE = (("hours", "how many hours back, default 720"),)


@_endpoint(
    "GET", "/api/0/projects/{project}/client-reports/", "What SDKs reported dropping (client reports)", _SINCE
)
async def client_reports(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    since = time.time() - _int(request, "hours", 720, 1, 24 * 400) * 3600
    rows = await _run(state.store.releases.outcomes, project.id, source="client", since=since)
    return [dataclasses.asdict(r) for r in rows]


@_endpoint(
    "GET",
    "/api/0/projects/{project}/stats/",
    "What the collector accepted, dropped or rejected, per item type and reason",
    _SINCE,
)
async def intake_stats(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    since = time.time() - _int(request, "hours", 720, 1, 24 * 400) * 3600
    rows = await _run(state.store.releases.outcomes, project.id, source="intake", since=since)
    return [dataclasses.asdict(r) for r in rows]


# -- API tokens -------------------------------------------------------------------------------------


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "user": token.username,
        "name": token.name,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
    }


@_endpoint("GET", "/api/0/tokens/", "Your API tokens (admins: everyone's), never their secrets")
async def list_tokens(request: Request, state: CollectorState, user: User) -> Any:
    tokens = await _run(state.store.accounts.list_api_tokens, None if user.is_admin else user.id)
    return [token_json(t) for t in tokens]


_TOKEN_BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "expires_in_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650},
    },
}


@_endpoint(
    "POST",
    "/api/0/tokens/",
    "Create an API token for yourself (the secret is in this answer only)",
    body='{"name": "ci", "expires_in_days": 90}  (expires_in_days: optional, 1..3650)',
    schema=_TOKEN_BODY,
)
async def create_token(request: Request, state: CollectorState, user: User) -> Any:
    body = await _body(request)
    name = body.get("name", "")
    days = body.get("expires_in_days")
    if not isinstance(name, str) or len(name) > 200:
        raise ApiError(400, "name must be a string of at most 200 characters")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3650):
        raise ApiError(400, "expires_in_days must be an integer from 1 to 3650")
    expires_at = time.time() + days * 86400 if days else None
    listed, secret = await _run(state.store.accounts.issue_api_token, user.id, name, expires_at=expires_at)
    return 201, {**token_json(listed), "token": secret}


@_endpoint("DELETE", "/api/0/tokens/{token_id:id}/", "Revoke an API token (yours; admins: anyone's)")
async def revoke_token(request: Request, state: CollectorState, user: User) -> Any:
    token_id = request.path_params["token_id"]
    await _run(state.store.accounts.revoke_api_token, token_id, user_id=None if user.is_admin else user.id)
    return {"revoked": token_id}


# -- DSN keys and members of a project -------------------------------------------------------------


def key_json(key: ProjectKey, public_url: str) -> dict[str, Any]:
    return {"public_key": key.public_key, "created_at": key.created_at, "dsn": key.dsn(public_url)}


@_endpoint("GET", "/api/0/projects/{project}/keys/", "The DSN keys of a project (all ingest)")
async def list_keys(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    return [
        key_json(k, state.public_url) for k in await _run(state.store.accounts.list_project_keys, project.id)
    ]


@_endpoint(
    "POST",
    "/api/0/projects/{project}/keys/",
    "Rotate: add a DSN key, shown in DSNs from now on; the old keys keep working until revoked (admin)",
)
async def rotate_key(request: Request, state: CollectorState, user: User) -> Any:
    _admin(user, "rotate DSN keys")
    project = await _project(state, request.path_params["project"])
    key = await _run(state.store.accounts.add_project_key, project.id)
    state.projects.invalidate()
    return 201, key_json(key, state.public_url)


@_endpoint(
    "DELETE",
    "/api/0/projects/{project}/keys/{public_key}/",
    "Revoke a DSN key: ingest refuses it at once here, within 5 s on other collectors (admin)",
)
async def revoke_key(request: Request, state: CollectorState, user: User) -> Any:
    _admin(user, "revoke DSN keys")
    project = await _project(state, request.path_params["project"])
    public_key = request.path_params["public_key"]
    await _run(state.store.accounts.revoke_project_key, project.id, public_key)
    state.projects.invalidate()
    return {"revoked": public_key}


def member_json(member: User) -> dict[str, Any]:
    return {"username": member.username, "is_admin": member.is_admin}


@_endpoint("GET", "/api/0/projects/{project}/members/", "The users who may see a project (besides admins)")
async def list_members(request: Request, state: CollectorState, user: User) -> Any:
    project = await _project(state, request.path_params["project"])
    return [member_json(m) for m in await _run(state.store.accounts.list_project_members, project.id)]


@_endpoint(
    "POST",
    "/api/0/projects/{project}/members/",
    "Let a user see and triage a project (admin)",
    body='{"username": "alice"}',
    schema={"type": "object", "properties": {"username": {"type": "string"}}, "required": ["username"]},
)
async def add_member(request: Request, state: CollectorState, user: User) -> Any:
    _admin(user, "change project members")
    project = await _project(state, request.path_params["project"])
    body = await _body(request)
    username = body.get("username")
    if not isinstance(username, str) or not username:
        raise ApiError(400, "body must contain a username")
    member = await _run(state.store.accounts.get_user, username)
    await _run(state.store.accounts.add_project_member, project.id, member.id)
    return 201, member_json(member)


@_endpoint(
    "DELETE",
    "/api/0/projects/{project}/members/{username}/",
    "Take a project away from a user (admin)",
)
async def remove_member(request: Request, state: CollectorState, user: User) -> Any:
    _admin(user, "change project members")
    project = await _project(state, request.path_params["project"])
    member = await _run(state.store.accounts.get_user, request.path_params["username"])
    await _run(state.store.accounts.remove_project_member, project.id, member.id)
    return {"removed": member.username}


# -- plumbing -----------------------------------------------------------------------------------------


async def read_json_body(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The JSON object in the request body, read in chunks and refused (413) as soon as it passes
    ``limit`` bytes, so no more than that is ever buffered."""
    length = request.headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            raise ApiError(400, "invalid Content-Length")
        if int(length) > limit:
            raise ApiError(413, f"request body over {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ApiError(413, f"request body over {limit} bytes")
    try:
        body = json.loads(bytes(raw) or b"{}")
    except ValueError:
        raise ApiError(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    reason = access.invalid_json(body)
    if reason:
        raise ApiError(400, f"invalid body: {reason}")
    return body


#: The name the endpoint modules use (api_alerts imports it).
_body = read_json_body


async def authenticate(request: Request, state: CollectorState) -> User:
    """The user of the request's bearer token; ApiError 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing API token: send Authorization: Bearer <token>")
    user: User | None = await _run(state.store.accounts.verify_api_token, token.strip())
    if user is None:
        raise ApiError(401, "invalid API token")
    return user


def _wrap(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        state: CollectorState = request.app.state.collector
        try:
            user = await authenticate(request, state)
            refused = access.invalid_input(request.path_params, request.query_params.multi_items())
            if refused == 404:
                raise NotFound("not found")
            if refused:
                raise ApiError(refused, "query parameters must not contain NUL characters")
            await _run(access.check_path, state.store, user, request.path_params)
            result = await endpoint.handler(request, state, user)
        except ApiError as exc:
            return _json({"detail": exc.message}, exc.status)
        except NotFound as exc:
            return _json({"detail": str(exc)}, 404)
        except StoreError as exc:
            return _json({"detail": str(exc)}, 400)
        if isinstance(result, Response):
            return result
        if isinstance(result, tuple):
            return _json(result[1], result[0])
        return _json(result)

    handle.__name__ = endpoint.handler.__name__
    handle.__doc__ = endpoint.summary
    return handle


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of :data:`ENDPOINTS`."""
    paths: dict[str, Any] = {}
    for ep in ENDPOINTS:
        path = ep.path.replace(":int}", "}").replace(":id}", "}")
        params = [
            {
                "name": name.partition(":")[0],
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 0}
                if name.endswith((":int", ":id"))
                else {"type": "string", "minLength": 1},
            }
            for name in (part[1:-1] for part in ep.path.split("/") if part.startswith("{"))
        ]
        params += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": desc,
                "schema": {"type": "string"},
            }
            for name, desc in ep.query
        ]
        op: dict[str, Any] = {
            "summary": ep.summary,
            "operationId": ep.handler.__name__,
            "parameters": params,
            "security": [{"bearer": []}],
            "responses": {
                "200": {"description": "OK (JSON)"},
                "201": {"description": "created (JSON)"},
                "400": {"description": "invalid input"},
                "401": {"description": "missing, invalid, expired or revoked token"},
                "403": {"description": "admins only"},
                "404": {"description": "not found, or a project you are not a member of"},
                "413": {"description": "body over 64 KiB"},
            },
        }
        if ep.body:
            op["requestBody"] = {
                "required": True,
                "description": ep.body,
                "content": {"application/json": {"schema": ep.schema or {"type": "object"}}},
            }
        paths.setdefault(path, {})[ep.method.lower()] = op
    paths["/api/{project_id}/envelope/"] = {
        "post": {
            "summary": "Sentry envelope ingest (auth: X-Sentry-Auth, ?sentry_key= or the envelope's dsn)",
            "operationId": "ingest_envelope",
            "security": [],
            "parameters": [
                {"name": "project_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": {
                "200": {"description": "committed to the durable queue"},
                "400": {"description": "malformed envelope"},
                "401": {"description": "no key"},
                "403": {"description": "wrong key"},
                "413": {"description": "too large"},
                "429": {"description": "over quota (Retry-After, X-Sentry-Rate-Limits)"},
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "tripwire collector API", "version": __version__},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


async def openapi_endpoint(request: Request) -> Response:
    """``GET /api/0/openapi.json`` (no token needed)."""
    return _json(openapi())


async def health_endpoint(request: Request) -> Response:
    """``GET /api/0/health/``: 200 when the process serves (no token needed), with the refusals
    this process counted that belong to no project (docs/collector.md, "Refusals")."""
    refusals = request.app.state.collector.refusals
    return _json(
        {"ok": True, "pid": os.getpid(), "refusals": refusals.snapshot(), "refusals_since": refusals.since}
    )


def routes() -> list[Route]:
    """The API routes, built from :data:`ENDPOINTS`."""
    out = [
        Route("/api/0/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/api/0/health/", health_endpoint, methods=["GET"]),
    ]
    out += [Route(ep.path, _wrap(ep), methods=[ep.method]) for ep in ENDPOINTS]
    return out
