"""The Settings forms that change who and what may reach a project: DSN keys and members
(admins), and the user's own API tokens.

Each is a POST from the Settings page that answers with a redirect back to it, except creating a
token, which shows the page with the new token's secret (the only time it is ever shown).
"""

from __future__ import annotations

import time

from starlette.responses import Response

from ..store import NotFound, StoreError
from ._auth import Page, redirect
from .issues import not_found, project_of
from .projects import render_settings


def _admin_only(page: Page) -> Response | None:
    if page.user.is_admin:
        return None
    return page.render("error.html", status_code=403, status=403, message="Only admins can do this.")


def _change(page: Page, change: str) -> Response:
    refused = _admin_only(page)
    if refused is not None:
        return refused
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    try:
        if change == "rotate":
            page.store.accounts.add_project_key(project.id)
        elif change == "revoke":
            page.store.accounts.revoke_project_key(project.id, page.form.get("public_key", ""))
        else:
            user = page.store.accounts.get_user(page.form.get("username", "").strip())
            if change == "add":
                page.store.accounts.add_project_member(project.id, user.id)
            else:
                page.store.accounts.remove_project_member(project.id, user.id)
    except StoreError as exc:  # NotFound included: an unknown key or user is the form's mistake
        return page.render("error.html", status_code=400, status=400, message=str(exc))
    if change in ("rotate", "revoke"):
        page.keys_changed()
    return redirect(f"/projects/{project.id}/settings")


def rotate_key(page: Page) -> Response:
    """``POST /projects/{project}/keys/rotate``: add a DSN key (the old ones keep working)."""
    return _change(page, "rotate")


def revoke_key(page: Page) -> Response:
    """``POST /projects/{project}/keys/revoke``: stop accepting one DSN key (not the last)."""
    return _change(page, "revoke")


def add_member(page: Page) -> Response:
    """``POST /projects/{project}/members/add``: let a user see and triage the project."""
    return _change(page, "add")


def remove_member(page: Page) -> Response:
    """``POST /projects/{project}/members/remove``: take the project away from a user."""
    return _change(page, "remove")


def create_token(page: Page) -> Response:
    """``POST /projects/{project}/tokens/create``: an API token for the logged-in user, with an
    optional expiry in days; the page shows its secret once."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    name = page.form.get("name", "").strip()
    days = page.form.get("expires_in_days", "").strip()
    if len(name) > 200 or (days and not (days.isascii() and days.isdigit() and len(days) <= 4)):
        message = "A token needs a name of at most 200 characters and an expiry of 1 to 3650 days (or none)."
        return page.render("error.html", status_code=400, status=400, message=message)
    if days and not 1 <= int(days) <= 3650:
        message = "A token's expiry is 1 to 3650 days (or none)."
        return page.render("error.html", status_code=400, status=400, message=message)
    expires_at = time.time() + int(days) * 86400 if days else None
    _, secret = page.store.accounts.issue_api_token(page.user.id, name, expires_at=expires_at)
    return render_settings(page, project, new_token=secret, status_code=201)


def revoke_token(page: Page) -> Response:
    """``POST /projects/{project}/tokens/revoke``: revoke one of the user's API tokens (admins:
    anyone's)."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    token_id = page.form.get("token_id", "")
    try:
        if not (token_id.isascii() and token_id.isdigit() and len(token_id) <= 19):
            raise NotFound("no such API token")
        page.store.accounts.revoke_api_token(
            int(token_id), user_id=None if page.user.is_admin else page.user.id
        )
    except NotFound as exc:
        return page.render("error.html", status_code=400, status=400, message=str(exc))
    return redirect(f"/projects/{project.id}/settings")
