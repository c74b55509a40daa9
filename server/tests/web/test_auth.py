"""Logins, sessions, CSRF and security headers of the dashboard, over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx

from tripwire_server.web._render import CONTENT_SECURITY_POLICY

from .conftest import PASSWORD, Collector, csrf_of, login, post_envelope, running_collector


def test_every_page_redirects_to_login_without_a_session(collector: Collector) -> None:
    """Without logging in, every dashboard page answers with a redirect to the login form."""
    paths = [
        "/",
        "/projects/1/issues",
        "/projects/1/releases",
        "/projects/1/settings",
        "/issues/1",
        "/issues/1/events/" + "0" * 32,
        "/issues/1/events/" + "0" * 32 + "/json",
        "/issues/1/events/" + "0" * 32 + "/md",
    ]
    with httpx.Client(base_url=collector.url) as client:
        for path in paths:
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next="), path
        assert (
            "/login?next=/projects/1/issues%3Fstatus%3Dall"
            in client.get("/projects/1/issues?status=all").headers["location"]
        )


def _next_of(html: str) -> str:
    match = re.search(r'name="next" value="([^"]*)"', html)
    assert match
    return match.group(1)


def test_wrong_password_is_refused_without_a_session(collector: Collector) -> None:
    """A wrong password shows the form again with an error, and no session cookie is set; the
    retry still returns to the page first asked for."""
    with httpx.Client(base_url=collector.url) as client:
        form = client.get("/login?next=/projects/1/releases")
        response = client.post(
            "/login",
            data={
                "csrf_token": csrf_of(form.text),
                "username": "admin",
                "password": "not the password",
                "next": "/projects/1/releases",
            },
        )
        assert response.status_code == 401
        assert "Wrong username or password." in response.text
        assert "tripwire_session" not in response.headers.get("set-cookie", "")
        assert client.get("/").status_code == 303
        retry = client.post(
            "/login",
            data={
                "csrf_token": csrf_of(response.text),
                "username": "admin",
                "password": PASSWORD,
                "next": _next_of(response.text),
            },
        )
        assert retry.headers["location"] == "/projects/1/releases"


def test_login_sets_a_httponly_samesite_cookie_and_returns_to_next(collector: Collector) -> None:
    """Logging in sets an HttpOnly, SameSite=Lax session cookie and goes back to the page asked for."""
    with httpx.Client(base_url=collector.url) as client:
        form = client.get("/login?next=/projects/1/settings")
        response = client.post(
            "/login",
            data={
                "csrf_token": csrf_of(form.text),
                "username": "admin",
                "password": PASSWORD,
                "next": "/projects/1/settings",
            },
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/projects/1/settings"
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("tripwire_session="))
        assert "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        assert client.get("/projects/1/settings").status_code == 200


def test_login_never_redirects_to_another_site(collector: Collector) -> None:
    """A ``next`` pointing to another host is replaced by the dashboard home."""
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        with httpx.Client(base_url=collector.url) as client:
            form = client.get("/login")
            response = client.post(
                "/login",
                data={
                    "csrf_token": csrf_of(form.text),
                    "username": "admin",
                    "password": PASSWORD,
                    "next": target,
                },
            )
            assert response.headers["location"] == "/", target


def test_login_without_its_csrf_token_is_refused(collector: Collector) -> None:
    """A login POST that did not come from our form (no matching CSRF cookie and field) is refused."""
    with httpx.Client(base_url=collector.url) as client:
        response = client.post("/login", data={"username": "admin", "password": PASSWORD})
        assert response.status_code == 403
        assert client.get("/").status_code == 303


def test_post_with_a_wrong_csrf_token_changes_nothing(collector: Collector, web: httpx.Client) -> None:
    """A logged-in POST with a missing or foreign CSRF token gets 403 and the issue keeps its status."""
    project = collector.new_project("csrf")
    post_envelope(collector, project, [({"type": "event"}, {"message": "csrf target", "level": "error"})])
    collector.wait_events(project, 1)
    issue = collector.store.issues.list_issues(project.id)[0]
    for token in ("", "0" * 64):
        response = web.post(f"/issues/{issue.id}/status", data={"action": "resolve", "csrf_token": token})
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert collector.store.issues.get_issue(issue.id).status == "unresolved"


def test_logout_ends_the_session(collector: Collector) -> None:
    """After logging out, the old session cookie no longer opens any page."""
    with httpx.Client(base_url=collector.url) as client:
        login(client)
        old = client.cookies.get("tripwire_session")
        page = client.get("/projects/1/settings")
        response = client.post("/logout", data={"csrf_token": csrf_of(page.text)})
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
    with httpx.Client(base_url=collector.url, cookies={"tripwire_session": old or ""}) as stale:
        assert stale.get("/projects/1/settings").status_code == 303


def test_html_pages_carry_a_strict_content_security_policy(collector: Collector, web: httpx.Client) -> None:
    """Every HTML answer, the login form included, forbids inline scripts and framing."""
    for response in (
        httpx.get(f"{collector.url}/login"),
        web.get("/projects/1/issues"),
        web.get("/projects/1/settings"),
        web.get("/issues/999999"),
    ):
        csp = response.headers["content-security-policy"]
        assert csp == CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert web.get("/issues/999999").status_code == 404


def test_repeated_wrong_passwords_are_throttled(tmp_path: Path) -> None:
    """After 20 failed logins from one address, even the right password is refused for a while."""
    with running_collector(tmp_path, run_digester=False) as own, httpx.Client(base_url=own.url) as client:
        page = client.get("/login")
        statuses = []
        for _ in range(21):
            page = client.post(
                "/login", data={"csrf_token": csrf_of(page.text), "username": "admin", "password": "nope"}
            )
            statuses.append(page.status_code)
        assert statuses[:20] == [401] * 20
        assert statuses[20] == 429
        response = client.post(
            "/login", data={"csrf_token": csrf_of(page.text), "username": "admin", "password": PASSWORD}
        )
        assert response.status_code == 429
        assert re.search(r"Too many failed logins", response.text)


def test_oversized_or_unbounded_forms_are_refused(collector: Collector) -> None:
    """A form body over 64 KiB, or one sent without a length, is refused before it is read."""
    with httpx.Client(base_url=collector.url) as client:
        big = client.post("/login", data={"username": "a" * 70_000, "password": "x"})
        assert big.status_code == 413

        def chunks() -> Iterator[bytes]:
            yield b"username=admin&"
            yield b"password=x"

        unbounded = client.post(
            "/login", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert unbounded.status_code == 411
