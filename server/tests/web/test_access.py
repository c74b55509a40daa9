"""Project membership, DSN key rotation and hostile input on the dashboard, over real HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Collector, csrf_of, login, post_envelope, running_collector

MEMBER_PASSWORD = "member password 123"


@pytest.fixture
def outsider(collector: Collector) -> Iterator[httpx.Client]:
    """A logged-in non-admin user who is a member of no project."""
    name = f"outsider{time.monotonic_ns()}"
    collector.store.accounts.create_user(name, MEMBER_PASSWORD)
    with httpx.Client(base_url=collector.url, timeout=10) as client:
        assert login(client, name, MEMBER_PASSWORD).status_code == 303
        client.headers["X-Test-User"] = name
        yield client


def _issue_of(collector: Collector, name: str) -> tuple[int, int, str]:
    project = collector.new_project(name)
    event_id = "ab" * 16
    post_envelope(
        collector,
        project,
        [({"type": "event"}, {"event_id": event_id, "message": f"secret of {name}", "level": "error"})],
    )
    collector.wait_events(project, 1)
    return project.id, collector.store.issues.list_issues(project.id)[0].id, event_id


def test_a_non_member_sees_nothing_of_a_project(collector: Collector, outsider: httpx.Client) -> None:
    """Every page of a project a user is not a member of is a 404, and its name is not listed."""
    project_id, issue_id, event_id = _issue_of(collector, "hidden")
    name = collector.store.accounts.get_project(project_id).name
    for path in (
        f"/projects/{project_id}/issues",
        f"/projects/{name}/issues",
        f"/projects/{project_id}/releases",
        f"/projects/{project_id}/settings",
        f"/issues/{issue_id}",
        f"/issues/{issue_id}/events/{event_id}",
        f"/issues/{issue_id}/events/{event_id}/json",
        f"/issues/{issue_id}/events/{event_id}/md",
    ):
        response = outsider.get(path)
        assert response.status_code == 404, path
        assert "secret of hidden" not in response.text
        assert name not in response.text, path
    csrf = _csrf(outsider)
    status = outsider.post(f"/issues/{issue_id}/status", data={"action": "resolve", "csrf_token": csrf})
    assert status.status_code == 404
    assert collector.store.issues.get_issue(issue_id).status == "unresolved"


def _csrf(client: httpx.Client) -> str:
    """The CSRF token of a logged-in client (any page with a form: the logout button)."""
    page = client.get("/", follow_redirects=True)
    return csrf_of(page.text)


def test_a_member_sees_the_project_until_removed(collector: Collector, outsider: httpx.Client) -> None:
    """Adding a user to a project opens its pages; removing them closes them again."""
    project_id, issue_id, _ = _issue_of(collector, "shared")
    user = collector.store.accounts.get_user(outsider.headers["X-Test-User"])
    collector.store.accounts.add_project_member(project_id, user.id)
    assert outsider.get(f"/issues/{issue_id}").status_code == 200
    assert f"/projects/{project_id}/issues" in outsider.get(f"/projects/{project_id}/issues").text
    collector.store.accounts.remove_project_member(project_id, user.id)
    assert outsider.get(f"/issues/{issue_id}").status_code == 404


def test_the_settings_page_rotates_and_revokes_keys_and_manages_members(
    collector: Collector, web: httpx.Client
) -> None:
    """An admin rotates the DSN key, revokes the old one and adds and removes a member from the
    project's Settings page."""
    project = collector.new_project("keys")
    old = project.public_key
    page = web.get(f"/projects/{project.id}/settings")
    assert old in page.text
    rotated = web.post(f"/projects/{project.id}/keys/rotate", data={"csrf_token": csrf_of(page.text)})
    assert rotated.status_code == 303
    keys = {k.public_key for k in collector.store.accounts.list_project_keys(project.id)}
    (new,) = keys - {old}
    page = web.get(f"/projects/{project.id}/settings")
    assert old in page.text and new in page.text
    revoked = web.post(
        f"/projects/{project.id}/keys/revoke", data={"csrf_token": csrf_of(page.text), "public_key": old}
    )
    assert revoked.status_code == 303
    assert [k.public_key for k in collector.store.accounts.list_project_keys(project.id)] == [new]
    last = web.post(
        f"/projects/{project.id}/keys/revoke", data={"csrf_token": csrf_of(page.text), "public_key": new}
    )
    assert last.status_code == 400
    name = f"member{time.monotonic_ns()}"
    collector.store.accounts.create_user(name, MEMBER_PASSWORD)
    added = web.post(
        f"/projects/{project.id}/members/add", data={"csrf_token": csrf_of(page.text), "username": name}
    )
    assert added.status_code == 303
    assert name in web.get(f"/projects/{project.id}/settings").text
    removed = web.post(
        f"/projects/{project.id}/members/remove", data={"csrf_token": csrf_of(page.text), "username": name}
    )
    assert removed.status_code == 303
    assert [m.username for m in collector.store.accounts.list_project_members(project.id)] == []


def test_a_member_cannot_rotate_keys_or_add_members(collector: Collector, outsider: httpx.Client) -> None:
    """The key and member forms are for admins: a member gets 403 and nothing changes."""
    project = collector.new_project("member-only")
    user = collector.store.accounts.get_user(outsider.headers["X-Test-User"])
    collector.store.accounts.add_project_member(project.id, user.id)
    page = outsider.get(f"/projects/{project.id}/settings")
    assert page.status_code == 200
    assert "/keys/rotate" not in page.text
    csrf = csrf_of(page.text)
    assert outsider.post(f"/projects/{project.id}/keys/rotate", data={"csrf_token": csrf}).status_code == 403
    add = outsider.post(f"/projects/{project.id}/members/add", data={"csrf_token": csrf, "username": "admin"})
    assert add.status_code == 403
    assert len(collector.store.accounts.list_project_keys(project.id)) == 1


def _hostile_inputs(web: httpx.Client) -> None:
    for path in (
        "/issues/9223372036854775808",
        "/issues/99999999999999999999999/events/" + "0" * 32,
        "/issues/" + "9" * 5000,
        "/projects/" + "9" * 5000 + "/settings",
        "/projects/9223372036854775808/issues",
        "/projects/%C2%B2/issues",
        "/projects/%C2%B2/settings",
        "/issues/1/events/ab%00cd",
    ):
        assert web.get(path).status_code == 404, path
    for query in ("query=%00", "release=a%00b", "environment=%00", "level=%00"):
        assert web.get(f"/projects/1/issues?{query}").status_code == 400, query
    csrf = csrf_of(web.get("/projects/1/issues").text)
    for value in ("\u00b2", "99999999999999999999999", "9223372036854775808", "9" * 5000):
        response = web.post(
            "/projects/1/issues/bulk", data={"csrf_token": csrf, "action": "resolve", "issue_1": value}
        )
        assert response.status_code in (303, 400), (value, response.status_code)
    nul = web.post("/projects/1/issues/bulk", data={"csrf_token": csrf, "action": "re\x00solve"})
    assert nul.status_code == 400
    assert re.search("error", nul.text, re.I)
    for days in ("\u00b2", "0", "99999", "9" * 5000):
        response = web.post("/projects/1/tokens/create", data={"csrf_token": csrf, "expires_in_days": days})
        assert response.status_code == 400, days
    for token_id in ("\u00b2", "9" * 5000, "99999999999999999999"):
        response = web.post("/projects/1/tokens/revoke", data={"csrf_token": csrf, "token_id": token_id})
        assert response.status_code == 400, token_id
    for form in ({"public_key": "\u00b2"}, {"username": "\u00b2"}, {"username": "9" * 30}):
        path = "/projects/1/keys/revoke" if "public_key" in form else "/projects/1/members/add"
        assert web.post(path, data={"csrf_token": csrf, **form}).status_code == 400, form


def test_huge_ids_unicode_digits_and_nul_are_404_or_400(web: httpx.Client) -> None:
    """Ids past 2^63, Unicode digits and NUL in paths, queries and forms never give a 500 (SQLite)."""
    _hostile_inputs(web)


@pytest.mark.postgres
def test_huge_ids_unicode_digits_and_nul_are_404_or_400_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """The same hostile paths, queries and forms never give a 500 on PostgreSQL either."""
    with (
        running_collector(tmp_path, database_url=pg_url) as running,
        httpx.Client(base_url=running.url, timeout=10) as web,
    ):
        assert login(web).status_code == 303
        _hostile_inputs(web)


def test_api_tokens_are_created_listed_and_revoked_on_the_settings_page(
    collector: Collector, outsider: httpx.Client
) -> None:
    """A user creates an API token on a Settings page (its secret shown once, with its expiry),
    sees it listed without the secret, and revokes it: the API then refuses it. Another user's
    token cannot be revoked from there."""
    project = collector.new_project("tokens")
    user = collector.store.accounts.get_user(outsider.headers["X-Test-User"])
    collector.store.accounts.add_project_member(project.id, user.id)
    url = f"/projects/{project.id}/settings"
    page = outsider.get(url)
    created = outsider.post(
        f"/projects/{project.id}/tokens/create",
        data={"csrf_token": csrf_of(page.text), "name": "laptop", "expires_in_days": "30"},
    )
    assert created.status_code == 201
    secret = re.search(r'id="new-token"[^>]*value="(tw_[^"]+)"', created.text)
    assert secret, "the new token is shown once"
    bearer = {"Authorization": f"Bearer {secret.group(1)}"}
    assert httpx.get(f"{collector.url}/api/0/status/", headers=bearer).status_code == 200
    listing = outsider.get(url).text
    assert "laptop" in listing and secret.group(1) not in listing
    (token,) = [t for t in collector.store.accounts.list_api_tokens(user.id) if t.name == "laptop"]
    assert token.expires_at is not None and token.expires_at > time.time() + 29 * 86400
    admin_token, _ = collector.store.accounts.issue_api_token(
        collector.store.accounts.get_user("admin").id, "admin's"
    )
    csrf = csrf_of(listing)
    foreign = outsider.post(
        f"/projects/{project.id}/tokens/revoke", data={"csrf_token": csrf, "token_id": str(admin_token.id)}
    )
    assert foreign.status_code == 400
    assert admin_token in collector.store.accounts.list_api_tokens()
    revoked = outsider.post(
        f"/projects/{project.id}/tokens/revoke", data={"csrf_token": csrf, "token_id": str(token.id)}
    )
    assert revoked.status_code == 303
    assert httpx.get(f"{collector.url}/api/0/status/", headers=bearer).status_code == 401
