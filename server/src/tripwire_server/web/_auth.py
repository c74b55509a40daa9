"""Dashboard logins: the session cookie, CSRF tokens and the wrapper every page goes through.

- The session cookie holds a random token from :meth:`Accounts.create_web_session
  <tripwire_server.store.accounts.Accounts.create_web_session>` (the store keeps only its hash);
  it is HttpOnly, SameSite=Lax, and Secure when the page was served over HTTPS.
- Every POST carries a CSRF token. Logged in, it is an HMAC of the session token, so it needs no
  storage and dies with the session; on the login form (no session yet) it is a double-submit cookie.
- Failed logins are throttled per client address and per account (:class:`LoginThrottle`), so a
  password cannot be guessed at full speed from one address or from many.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .. import access
from ..config import CollectorConfig
from ..refusals import Refusals
from ..state import CollectorState
from ..store import NotFound, Store, User
from ._render import SECURITY_HEADERS, render

SESSION_COOKIE = "tripwire_session"
LOGIN_CSRF_COOKIE = "tripwire_login_csrf"
CSRF_FIELD = "csrf_token"
SESSION_TTL = 14 * 86400.0
#: Dashboard forms are tiny; anything bigger is not ours.
MAX_FORM_BYTES = 64 * 1024


@dataclasses.dataclass
class Page:
    """What a page handler gets: the request, the logged-in user, the store and the config."""

    request: Request
    store: Store
    config: CollectorConfig
    user: User
    csrf_token: str
    #: The submitted fields of a POST (strings only), else an empty dict.
    form: dict[str, str]
    #: Makes ingest see changed DSN keys at once (the collector's key cache).
    keys_changed: Callable[[], None] = lambda: None
    #: This process's refusals that no project's counters hold (the Server page shows them).
    refusals: Refusals = dataclasses.field(default_factory=Refusals)

    def render(self, template: str, status_code: int = 200, **context: Any) -> Response:
        """Render a dashboard template with the common context (user, CSRF token, projects)."""
        base = {
            "user": self.user,
            "csrf_token": self.csrf_token,
            "projects": access.visible_projects(self.store, self.user),
            "path": self.request.url.path,
        }
        return render(template, {**base, **context}, status_code=status_code)


PageHandler = Callable[[Page], Response]


def csrf_token_for(session_token: str) -> str:
    """The CSRF token of a logged-in session (an HMAC of its secret cookie)."""
    return hmac.new(session_token.encode(), b"tripwire-dashboard-csrf", hashlib.sha256).hexdigest()


def safe_next(target: str | None) -> str:
    """A post-login redirect target that stays on this site (no ``//host`` or ``scheme:`` URLs)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def redirect(url: str) -> RedirectResponse:
    """A 303 redirect (the answer to a successful POST) with the security headers."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


async def _read_form(request: Request) -> dict[str, str] | Response:
    # Browsers always send a length with a form; without one we could not bound what we read.
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        return render("error.html", _error_context(411, "A form needs a Content-Length."), status_code=411)
    if int(length) > MAX_FORM_BYTES:
        return render("error.html", _error_context(413, "Form too large."), status_code=413)
    async with request.form(max_files=0, max_fields=50) as form:
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if access.invalid_input({}, fields.items()):
        return render("error.html", _error_context(400, "Form fields must not contain NUL."), status_code=400)
    return fields


def _error_context(status: int, message: str) -> dict[str, Any]:
    return {"user": None, "csrf_token": "", "projects": [], "path": "", "status": status, "message": message}


def login_required(state: CollectorState, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page handler: no session means a redirect to the login form, a POST without the
    right CSRF token is refused with 403, and the handler itself runs in a worker thread (the
    store is synchronous)."""

    async def endpoint(request: Request) -> Response:
        form: dict[str, str] = {}
        if request.method == "POST":
            parsed = await _read_form(request)
            if isinstance(parsed, Response):
                return parsed
            form = parsed
        return await run_in_threadpool(_dispatch, state, handler, request, form)

    endpoint.__name__ = getattr(handler, "__name__", "page")
    return endpoint


def _dispatch(
    state: CollectorState, handler: PageHandler, request: Request, form: dict[str, str]
) -> Response:
    store = state.store
    token = request.cookies.get(SESSION_COOKIE, "")
    user = store.accounts.get_web_session_user(token) if token else None
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/"
        return redirect(f"/login?next={quote(target, safe='/')}")
    csrf = csrf_token_for(token)
    if request.method == "POST" and not hmac.compare_digest(form.get(CSRF_FIELD, ""), csrf):
        return render(
            "error.html",
            _error_context(
                403,
                "This form has expired or did not come from this dashboard (CSRF "
                "check failed). Go back, reload the page and try again.",
            ),
            status_code=403,
        )
    page = Page(
        request=request,
        store=store,
        config=state.config,
        user=user,
        csrf_token=csrf,
        form=form,
        keys_changed=state.projects.invalidate,
        refusals=state.refusals,
    )
    refused = access.invalid_input(request.path_params, request.query_params.multi_items())
    if refused == 400:
        return page.render("error.html", status_code=400, status=400, message="Invalid query parameter.")
    try:
        if refused:
            raise NotFound("not found")
        # A project the user may not see is answered like a missing one.
        access.check_path(store, user, request.path_params)
    except NotFound:
        return page.render("error.html", status_code=404, status=404, message="Not found.")
    return handler(page)


class LoginThrottle:
    """Refuses logins once an address or an account has ``limit`` failed or pending attempts in
    the last ``window`` seconds.

    A slot is taken *before* the password is checked (so racing requests cannot all pass the
    check before any failure is counted), stays counted when the password is wrong and is given
    back when it is right. A success never forgets earlier failures, of its own account or of
    anyone else's: an attacker holding a low-privilege account cannot reset the count of the
    address by logging in between guesses. Counts are kept per address and per account name
    (lower-cased), so spreading guesses over many addresses does not help either; and they are
    kept in the database, so collectors sharing it share them (and a restart forgets nothing).
    """

    def __init__(
        self, store: Store, limit: int = 20, window: float = 600.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.limit = limit
        self.window = window
        # Wall-clock time: it is compared with other processes' attempts.
        self._clock = clock

    def acquire(self, address: str, username: str) -> int | None:
        """A slot for one password check, or None when the address or the account is locked."""
        # The account is kept as a hash: people type passwords into the user name field.
        account = hashlib.sha256(username.strip().lower().encode(errors="replace")).hexdigest()
        return self.store.accounts.take_login_slot(
            address[:200],
            account,
            limit=self.limit,
            window=self.window,
            now=self._clock(),
        )

    def failed(self, slot: int) -> None:
        """The password was wrong: the slot stays counted until the window passes."""

    def succeeded(self, slot: int) -> None:
        """The password was right: give this one slot back (earlier failures stay counted)."""
        self.store.accounts.release_login_slot(slot)


def login_endpoints(state: CollectorState) -> tuple[Callable[[Request], Awaitable[Response]], ...]:
    """The login form (GET and POST) and logout endpoints bound to ``state``."""
    throttle = LoginThrottle(state.store)

    def show_form(
        request: Request, error: str = "", status: int = 200, username: str = "", target: str | None = None
    ) -> Response:
        csrf = secrets.token_urlsafe(24)
        context: dict[str, Any] = {
            "user": None,
            "csrf_token": csrf,
            "projects": [],
            "path": "/login",
            "next": safe_next(target if target is not None else request.query_params.get("next")),
            "error": error,
            "username": username,
        }
        response = render("login.html", context, status_code=status)
        _set_cookie(response, request, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
        return response

    async def login(request: Request) -> Response:
        store = state.store
        if request.method == "GET":
            token = request.cookies.get(SESSION_COOKIE, "")
            current = await run_in_threadpool(store.accounts.get_web_session_user, token) if token else None
            if current is not None:
                return redirect(safe_next(request.query_params.get("next")))
            return show_form(request)
        parsed = await _read_form(request)
        if isinstance(parsed, Response):
            return parsed
        target = parsed.get("next")
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(parsed.get(CSRF_FIELD, ""), expected):
            return show_form(request, "Your login form expired. Please try again.", 403, target=target)
        # Behind a reverse proxy, uvicorn puts the forwarded client address here when the proxy
        # is trusted (--forwarded-allow-ips / $FORWARDED_ALLOW_IPS); see docs/collector.md.
        client = request.client.host if request.client else "unknown"
        username = parsed.get("username", "").strip()[:200]
        slot = await run_in_threadpool(throttle.acquire, client, username)
        if slot is None:
            return show_form(request, "Too many failed logins. Wait a few minutes.", 429, username, target)
        user = await run_in_threadpool(store.accounts.verify_password, username, parsed.get("password", ""))
        if user is None:
            throttle.failed(slot)
            return show_form(request, "Wrong username or password.", 401, username, target)
        await run_in_threadpool(throttle.succeeded, slot)
        token = await run_in_threadpool(store.accounts.create_web_session, user.id, SESSION_TTL)
        response = redirect(safe_next(parsed.get("next")))
        _set_cookie(response, request, SESSION_COOKIE, token, max_age=int(SESSION_TTL))
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    def logout(page: Page) -> Response:
        token = page.request.cookies.get(SESSION_COOKIE, "")
        page.store.accounts.delete_web_session(token)
        response = redirect("/login")
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
        return response

    return login, login_required(state, logout)
