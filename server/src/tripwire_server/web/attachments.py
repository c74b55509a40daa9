"""Attachments on the event page: listed with size and type, downloaded (never rendered), and text,
JSON and log files previewed, bounded and escaped.

An attachment's bytes and its declared content type come from whoever holds the DSN: a download
is always ``application/octet-stream`` with ``Content-Disposition: attachment``, ``nosniff`` and a
sandboxing CSP, so a browser never runs an uploaded page; the preview is text put through the
template's escaping.
"""

from __future__ import annotations

import dataclasses
import json

from starlette.responses import Response

from ..store import Attachment, NotFound, Store
from ._auth import Page
from ._render import SECURITY_HEADERS
from .issues import not_found

#: Characters of an attachment shown in its preview.
PREVIEW_CHARS = 16 * 1024
#: Attachments larger than this are not read for a preview (the page must stay quick).
PREVIEW_MAX_BYTES = 1024 * 1024
#: Attachments previewed on one page.
PREVIEW_MAX_COUNT = 10
_TEXT_TYPES = ("text/", "application/json", "application/x-ndjson", "application/xml", "application/x-log")
_TEXT_SUFFIXES = (".txt", ".log", ".json", ".ndjson", ".csv", ".xml", ".yaml", ".yml", ".ini", ".cfg", ".md")


@dataclasses.dataclass(frozen=True)
class AttachmentView:
    """One attachment as the event page shows it."""

    attachment: Attachment
    #: The first :data:`PREVIEW_CHARS` characters (JSON pretty-printed), or None.
    preview: str | None
    truncated: bool
    #: Why there is no preview ("" when there is one or the type is not text).
    note: str


def is_text(attachment: Attachment) -> bool:
    """Whether an attachment is text, JSON or a log, by its content type or its file name."""
    content_type = attachment.content_type.lower()
    name = attachment.filename.lower()
    return content_type.startswith(_TEXT_TYPES) or name.endswith(_TEXT_SUFFIXES)


def _preview(data: bytes) -> tuple[str, bool]:
    text = data.decode("utf-8", errors="replace")
    try:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    return text[:PREVIEW_CHARS], len(text) > PREVIEW_CHARS


def attachment_views(store: Store, project_id: int, event_id: str) -> list[AttachmentView]:
    """The attachments of an event with previews of the first few text ones."""
    views = []
    previewed = 0
    for attachment in store.issues.list_attachments(project_id, event_id):
        preview, truncated, note = None, False, ""
        if is_text(attachment):
            if attachment.size > PREVIEW_MAX_BYTES:
                note = "too large to preview: download it"
            elif previewed >= PREVIEW_MAX_COUNT:
                note = "not previewed (too many attachments): download it"
            else:
                previewed += 1
                _, data = store.issues.get_attachment_data(project_id, attachment.id)
                preview, truncated = _preview(data)
        views.append(AttachmentView(attachment, preview, truncated, note))
    return views


def attachment_download(page: Page) -> Response:
    """``GET /issues/{issue_id}/events/{event_id}/attachments/{attachment_id}``: the bytes, as a
    download of type ``application/octet-stream`` whatever the client declared."""
    store = page.store
    params = page.request.path_params
    try:
        issue = store.issues.get_issue(int(params["issue_id"]))
        event = store.issues.get_event(str(params["event_id"]), issue.project_id)
        meta, data = store.issues.get_attachment_data(issue.project_id, int(params["attachment_id"]))
    except (NotFound, ValueError):
        return not_found(page, "Attachment")
    # The URL's parts must belong together: no attachment of another event under this one.
    if event.issue_id != issue.id or meta.event_id != event.event_id:
        return not_found(page, "Attachment")
    safe_name = "".join(ch for ch in meta.filename if ch.isalnum() or ch in "._-") or "attachment"
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Content-Disposition": f'attachment; filename="{safe_name}"',
    }
    return Response(data, media_type="application/octet-stream", headers=headers)
