"""The Settings forms that change who and what may reach a project: DSN keys and members (admins).

Each is a POST from the Settings page that answers with a redirect back to it.
"""

from __future__ import annotations

from starlette.responses import Response

from ..store import NotFound, StoreError
from ._auth import Page, redirect
from .issues import not_found, project_of


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
            page.store.add_project_key(project.id)
        elif change == "revoke":
            page.store.revoke_project_key(project.id, page.form.get("public_key", ""))
        else:
            user = page.store.get_user(page.form.get("username", "").strip())
            if change == "add":
                page.store.add_project_member(project.id, user.id)
            else:
                page.store.remove_project_member(project.id, user.id)
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
