"""The logs page: a project's structured logs, searchable by level, text and attribute."""

from __future__ import annotations

from starlette.responses import Response

from ..logs import LEVELS, parse_attributes
from ..store import NotFound
from ..store.log_records import LogQuery
from ._auth import Page
from .issues import not_found, project_of

PAGE_SIZE = 100


def log_list(page: Page) -> Response:
    """``GET /projects/{project}/logs?level=&q=&attr=key=value&offset=``: newest first."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    params = page.request.query_params
    level = params.get("level") or None
    try:
        offset = max(0, min(int(params.get("offset", "0")), 1_000_000))
    except ValueError:
        offset = 0
    text = (params.get("q") or "")[:200]
    attr = (params.get("attr") or "")[:500]
    query = LogQuery(
        level=level if level in LEVELS else None,
        text=text,
        attributes=parse_attributes(attr),
        limit=PAGE_SIZE + 1,
        offset=offset,
    )
    rows = page.store.logs.list_logs(project.id, query)
    return page.render(
        "logs.html",
        project=project,
        logs=rows[:PAGE_SIZE],
        levels=LEVELS,
        level=query.level or "",
        q=text,
        attr=attr,
        older=offset + PAGE_SIZE if len(rows) > PAGE_SIZE else None,
        newer=max(0, offset - PAGE_SIZE) if offset > 0 else None,
    )
