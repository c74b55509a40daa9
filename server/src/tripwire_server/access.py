"""Who may see which project, and the request inputs that can never name a stored object.

Both the JSON API and the dashboard check every request against these before a handler runs, by
the names of the route's path parameters (:data:`SCOPES`: ``{project}``, ``{issue_id}``): a route
added later with those names is covered without doing anything. A project that a user may not see is answered
exactly like one that does not exist (404), so its name and id cannot be probed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.convertors import Convertor, register_url_convertor

from .store import MAX_ID, NotFound, Project, Store, User

__all__ = ["MAX_ID", "SCOPES", "can_see", "check_path", "invalid_input", "invalid_json", "visible_projects"]


class IdConvertor(Convertor[int]):
    """``{name:id}`` in a route: a database id, at most 19 ASCII digits.

    Starlette's ``:int`` matches any number of digits and calls ``int()`` on them, which raises
    past 4,300 digits (a 500 before any handler runs); a longer number simply matches no route.
    Ids past 2^63 still match and are answered 404 by :func:`invalid_input`.
    """

    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("id", IdConvertor())


def can_see(store: Store, user: User, project_id: int) -> bool:
    """True if ``user`` may read and triage project ``project_id``."""
    return user.is_admin or project_id in store.accounts.member_project_ids(user.id)


def visible_projects(store: Store, user: User) -> list[Project]:
    """The projects ``user`` may see, by id."""
    projects = store.accounts.list_projects()
    if user.is_admin:
        return projects
    mine = store.accounts.member_project_ids(user.id)
    return [p for p in projects if p.id in mine]


#: Path parameters that name an object of one project -> how to find that project's id. A module
#: adding routes with its own object ids registers them here (``SCOPES["rule_id"] = ...``); the
#: route-enumeration test refuses a path parameter that is neither here nor reviewed as unscoped.
SCOPES: dict[str, Callable[[Store, Any], int]] = {
    "project": lambda store, ref: store.accounts.get_project(str(ref)).id,
    "issue_id": lambda store, ref: store.issues.get_issue(int(ref)).project_id,
    "rule_id": lambda store, ref: store.alerts.get_alert_rule(int(ref)).project_id,
}


def check_path(store: Store, user: User, params: Mapping[str, Any]) -> None:
    """NotFound unless ``user`` may see the project of every object named in a route's path."""
    for name, value in params.items():
        resolve = SCOPES.get(name)
        if resolve is not None and not can_see(store, user, resolve(store, value)):
            raise NotFound("not found")


def _bad_text(text: str) -> bool:
    # PostgreSQL cannot hold NUL in text; no stored name, key or id contains one.
    return "\x00" in text


def invalid_input(path_params: Mapping[str, Any], query: Iterable[tuple[str, str]]) -> int | None:
    """404 for a path parameter no database row can match (an id past 2^63, a NUL), 400 for a
    query parameter with a NUL; None when the request may go on."""
    for value in path_params.values():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            return 404
        if isinstance(value, str) and _bad_text(value):
            return 404
    for key, value in query:
        if _bad_text(key) or _bad_text(value):
            return 400
    return None


def invalid_json(value: Any) -> str | None:
    """Why a parsed JSON body cannot be stored (a NUL in a string, an integer past 64 bits), or None."""
    if isinstance(value, str):
        return "strings must not contain NUL characters" if _bad_text(value) else None
    if isinstance(value, (bool, float)):
        return None
    if isinstance(value, int):
        return None if -MAX_ID <= value <= MAX_ID else "integers must fit in 64 bits"
    if isinstance(value, dict):
        for key, item in value.items():
            reason = invalid_json(key) or invalid_json(item)
            if reason:
                return reason
    if isinstance(value, list):
        for item in value:
            reason = invalid_json(item)
            if reason:
                return reason
    return None
