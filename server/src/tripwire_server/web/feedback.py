"""The feedback page: what end users wrote, newest first, linked to the issue it is about."""

from __future__ import annotations

from starlette.responses import Response

from ..store import NotFound
from ._auth import Page
from .issues import not_found, project_of

#: Feedback shown per page.
PAGE_SIZE = 50


def feedback_list(page: Page) -> Response:
    """``GET /projects/{project}/feedback``: user feedback, paged (``?offset=``)."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    try:
        offset = max(0, min(int(page.request.query_params.get("offset", "0")), 1_000_000))
    except ValueError:
        offset = 0
    rows = page.store.feedback.list_feedback(project.id, limit=PAGE_SIZE + 1, offset=offset)
    return page.render(
        "feedback.html",
        project=project,
        feedback=rows[:PAGE_SIZE],
        older=offset + PAGE_SIZE if len(rows) > PAGE_SIZE else None,
        newer=max(0, offset - PAGE_SIZE) if offset > 0 else None,
    )
