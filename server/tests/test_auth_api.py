"""API tokens, DSN key rotation, project membership and hostile input, over real HTTP on both
backends (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from tripwire_server import api
from tripwire_server.store import Store

from .conftest import LiveServer, envelope, make_event


def _token(store: Store, username: str, **kwargs: Any) -> str:
    try:
        user = store.accounts.get_user(username)
    except LookupError:
        user = store.accounts.create_user(username, f"{username} password 123")
    return store.accounts.create_api_token(user.id, "t", **kwargs)


def _get(server: LiveServer, path: str, token: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
    return server.http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


# -- tokens -----------------------------------------------------------------------------------------


def test_the_openapi_document_describes_tokens_keys_and_members(sqlite_server: LiveServer) -> None:
    """The public OpenAPI document lists the token, key and member operations with token auth."""
    paths = sqlite_server.http.get("/api/0/openapi.json").json()["paths"]
    assert set(paths["/api/0/tokens/"]) == {"get", "post"}
    assert "delete" in paths["/api/0/tokens/{token_id}/"]
    assert set(paths["/api/0/projects/{project}/keys/"]) == {"get", "post"}
    assert "delete" in paths["/api/0/projects/{project}/keys/{public_key}/"]
    assert set(paths["/api/0/projects/{project}/members/"]) == {"get", "post"}
    assert "delete" in paths["/api/0/projects/{project}/members/{username}/"]
    revoke = paths["/api/0/tokens/{token_id}/"]["delete"]
    assert revoke["security"] == [{"bearer": []}]
    assert revoke["parameters"][0]["schema"]["type"] == "integer"


def test_a_password_change_revokes_the_users_tokens(server: LiveServer) -> None:
    """After ``set_password`` (tripwire user passwd), the user's old API tokens stop working."""
    token = _token(server.store, "alice")
    assert _get(server, "/api/0/status/", token).status_code == 200
    server.store.accounts.set_password("alice", "a brand new password")
    assert _get(server, "/api/0/status/", token).status_code == 401


def test_tokens_are_listed_created_with_an_expiry_and_revoked(server: LiveServer) -> None:
    """A user lists their tokens (never the secret), creates one that expires, and revokes it:
    the revoked token is refused at once."""
    created = server.api("/api/0/tokens/", "POST", json={"name": "ci", "expires_in_days": 7})
    assert created["token"].startswith("tw_") and created["expires_at"] is not None
    listed = server.api("/api/0/tokens/")
    assert {t["name"] for t in listed} >= {"tests", "ci"}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    assert _get(server, "/api/0/status/", created["token"]).status_code == 200
    assert server.api(f"/api/0/tokens/{created['id']}/", "DELETE") == {"revoked": created["id"]}
    assert _get(server, "/api/0/status/", created["token"]).status_code == 401
    assert created["id"] not in {t["id"] for t in server.api("/api/0/tokens/")}


def test_an_expired_token_is_refused(server: LiveServer) -> None:
    """A token past its expiry time answers 401 like an unknown one."""
    token = _token(server.store, "admin", expires_at=1.0)
    response = _get(server, "/api/0/status/", token)
    assert response.status_code == 401


def test_a_user_cannot_see_or_revoke_another_users_token(server: LiveServer) -> None:
    """Token ids of other users are not found for a non-admin, so they cannot be revoked."""
    bob = _token(server.store, "bob")
    admin_tokens = server.api("/api/0/tokens/")
    victim = admin_tokens[0]["id"]
    assert victim not in {t["id"] for t in _get(server, "/api/0/tokens/", bob).json()}
    assert _get(server, f"/api/0/tokens/{victim}/", bob, "DELETE").status_code == 404
    assert _get(server, "/api/0/status/", server.token).status_code == 200


# -- DSN keys ----------------------------------------------------------------------------------------


def test_a_rotated_key_overlaps_until_the_old_one_is_revoked(server: LiveServer) -> None:
    """Rotation adds a key: both keys ingest until the old one is revoked, which ingest refuses at
    once in this process (the key cache is invalidated)."""
    old = server.key
    new = server.api("/api/0/projects/default/keys/", "POST")
    assert new["public_key"] != old and new["dsn"].startswith(f"http://{new['public_key']}@")
    keys = {k["public_key"] for k in server.api("/api/0/projects/default/keys/")}
    assert keys == {old, new["public_key"]}
    for key in (old, new["public_key"]):
        assert server.post_envelope(envelope(("event", make_event())), key=key).status_code == 200
    assert server.api(f"/api/0/projects/default/keys/{old}/", "DELETE") == {"revoked": old}
    assert server.post_envelope(envelope(("event", make_event())), key=old).status_code == 403
    assert server.post_envelope(envelope(("event", make_event())), key=new["public_key"]).status_code == 200
    assert server.api("/api/0/projects/default/")["public_key"] == new["public_key"]


def test_the_last_key_of_a_project_cannot_be_revoked(server: LiveServer) -> None:
    """Revoking the only key would silently cut every SDK off: it is refused with 400."""
    response = _get(server, f"/api/0/projects/default/keys/{server.key}/", server.token, "DELETE")
    assert response.status_code == 400
    assert server.post_envelope(envelope(("event", make_event()))).status_code == 200


def test_a_key_revoked_by_another_process_stops_working_within_the_cache_age(server: LiveServer) -> None:
    """A key revoked through the store (the CLI, another collector) is refused once the key cache
    is older than its maximum age (``ProjectCache.max_age``, 5 s), without waiting that long here:
    the cache's clock is advanced."""
    cache = server.state.projects
    now = [1000.0]
    cache.clock = lambda: now[0]
    cache.invalidate()
    new = server.store.accounts.add_project_key(server.project.id)
    now[0] += 1.5  # a miss reloads at most once a second
    assert server.post_envelope(envelope(("event", make_event())), key=new.public_key).status_code == 200
    server.store.accounts.revoke_project_key(server.project.id, server.key)
    assert server.post_envelope(envelope(("event", make_event())), key=server.key).status_code == 200
    now[0] += cache.max_age + 0.1
    assert server.post_envelope(envelope(("event", make_event())), key=server.key).status_code == 403
    assert cache.max_age <= 5.0


# -- membership ----------------------------------------------------------------------------------------


def test_a_user_sees_only_the_projects_they_are_a_member_of(server: LiveServer) -> None:
    """A non-admin sees nothing of a project until added to it, and nothing again once removed."""
    event = make_event()
    assert server.post_envelope(envelope(("event", event))).status_code == 200
    server.wait_digested()
    issue_id = server.api("/api/0/projects/default/issues/")["issues"][0]["id"]
    carol = _token(server.store, "carol")
    paths = [
        "/api/0/projects/default/",
        "/api/0/projects/default/issues/",
        f"/api/0/issues/{issue_id}/",
        f"/api/0/events/{event['event_id']}/",
        f"/api/0/projects/default/events/{event['event_id']}/",
    ]
    assert _get(server, "/api/0/projects/", carol).json() == []
    for path in paths:
        assert _get(server, path, carol).status_code == 404, path
    assert (
        _get(server, f"/api/0/issues/{issue_id}/", carol, "PATCH", json={"status": "resolved"}).status_code
        == 404
    )
    server.api("/api/0/projects/default/members/", "POST", json={"username": "carol"})
    assert [m["username"] for m in server.api("/api/0/projects/default/members/")] == ["carol"]
    assert [p["name"] for p in _get(server, "/api/0/projects/", carol).json()] == ["default"]
    for path in paths:
        assert _get(server, path, carol).status_code == 200, path
    server.api("/api/0/projects/default/members/carol/", "DELETE")
    for path in paths:
        assert _get(server, path, carol).status_code == 404, path


def test_only_admins_manage_keys_and_members(server: LiveServer) -> None:
    """A member may read the keys of their project but not rotate, revoke or add members."""
    dave = _token(server.store, "dave")
    server.store.accounts.add_project_member(server.project.id, server.store.accounts.get_user("dave").id)
    assert _get(server, "/api/0/projects/default/keys/", dave).status_code == 200
    assert _get(server, "/api/0/projects/default/keys/", dave, "POST").status_code == 403
    assert _get(server, f"/api/0/projects/default/keys/{server.key}/", dave, "DELETE").status_code == 403
    add = _get(server, "/api/0/projects/default/members/", dave, "POST", json={"username": "dave"})
    assert add.status_code == 403


# -- hostile input ---------------------------------------------------------------------------------


def test_huge_ids_unicode_digits_and_nul_are_not_found_or_bad_requests(server: LiveServer) -> None:
    """Ids past 2^63, Unicode digits and NUL characters in paths and queries give 404/400, never 500."""
    for path in (
        "/api/0/issues/9223372036854775808/",
        "/api/0/issues/99999999999999999999999/events/",
        "/api/0/issues/" + "9" * 5000 + "/",
        "/api/0/projects/" + "9" * 5000 + "/issues/",
        "/api/0/projects/9223372036854775808/",
        "/api/0/projects/%C2%B2/",
        "/api/0/projects/%C2%B2/issues/",
        "/api/0/events/%00/",
        "/api/0/projects/default/events/ab%00cd/",
        "/api/0/projects/default/attachments/9223372036854775808/",
        "/api/0/tokens/9223372036854775808/",
    ):
        for method in ("GET", "DELETE", "PATCH"):
            response = _get(server, path, server.token, method, json={"status": "resolved"})
            assert response.status_code in (404, 405), (method, path, response.status_code)
    for query in ("query=%00", "release=a%00b", "tag=a:%00", "environment=%00"):
        response = _get(server, f"/api/0/projects/default/issues/?{query}", server.token)
        assert response.status_code == 400, (query, response.status_code)
    ingest = server.http.post("/api/" + "9" * 5000 + "/envelope/", content=b"{}\n")
    assert ingest.status_code == 404
    body = _get(server, "/api/0/projects/default/members/", server.token, "POST", json={"username": "a\x00"})
    assert body.status_code in (400, 404)


def test_an_oversized_body_is_refused_without_a_length(server: LiveServer) -> None:
    """A chunked API body past 64 KiB is refused with 413."""

    def chunks() -> Any:
        for _ in range(64):
            yield b" " * 4096

    response = _get(server, "/api/0/projects/", server.token, "POST", content=chunks())
    assert response.status_code == 413


def test_an_oversized_body_is_not_buffered_past_the_limit() -> None:
    """The API reads a body in chunks and stops at the limit: a 4 MiB body is not read whole."""
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 16384
        return {"type": "http.request", "body": b" " * 16384, "more_body": pulled < 4 * 1024 * 1024}

    from starlette.requests import Request

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}

    async def main() -> None:
        with pytest.raises(api.ApiError) as refused:
            await api.read_json_body(Request(scope, receive))
        assert refused.value.status == 413

    anyio.run(main)
    assert pulled <= api.MAX_BODY_BYTES + 16384
