"""One event as Markdown, to paste into a ticket or a chat: what happened, where, to whom.

Pure text built from :class:`~._event_view.EventView`; it is served as ``text/plain`` so nothing in
it is ever interpreted by the browser.
"""

from __future__ import annotations

import re

from ..store import Event, Issue
from ._event_view import EventView, ExceptionView
from ._render import clocktime, isotime

_BACKTICKS = re.compile(r"`+")


def _fence(text: str) -> str:
    """A fence longer than any backtick run inside ``text``, so the block cannot be closed early."""
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def _block(text: str, lang: str = "") -> list[str]:
    fence = _fence(text)
    return [f"{fence}{lang}", text, fence]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")[:200]


def _traceback(exc: ExceptionView) -> str:
    lines = ["Traceback (most recent call last):"]
    for group in exc.groups:
        for frame in group.frames:
            where = f'  File "{frame.filename}"'
            if frame.lineno is not None:
                where += f", line {frame.lineno}"
            lines.append(f"{where}, in {frame.function}{'' if frame.in_app else '  [library]'}")
            if frame.context_line:
                lines.append(f"    {frame.context_line}")
    lines.append(f"{exc.type}: {exc.value}" if exc.value else exc.type)
    return "\n".join(lines)


def event_markdown(issue: Issue, event: Event, view: EventView, url: str) -> str:
    """The Markdown summary of ``event`` (of ``issue``); ``url`` links back to the event page."""
    title = issue.title or "event"
    out = [f"# {' '.join(title.split())}", ""]
    out.append(
        f"- Issue #{issue.id}: {issue.status}, {issue.event_count} events, first seen "
        f"{isotime(issue.first_seen)}, last seen {isotime(issue.last_seen)}"
    )
    out.append(f"- Event `{event.event_id}` at {isotime(event.timestamp)}: <{url}>")
    for label, value in view.facts:
        out.append(f"- {label}: {_cell(value)}")
    if view.user:
        out.append("- User: " + ", ".join(f"{k}={_cell(v)}" for k, v in view.user))
    if view.tags:
        out.append("- Tags: " + ", ".join(f"{k}={_cell(v)}" for k, v in view.tags))
    if view.message:
        out += ["", "## Message", "", *_block(view.message)]
    for exc in view.exceptions:
        heading = f"{exc.relation}: {exc.type}" if exc.relation else exc.type
        out += ["", f"## {_cell(heading)}", "", *_block(_traceback(exc), "python")]
    if view.breadcrumbs:
        out += ["", "## Breadcrumbs", "", "| time | category | level | message |", "|---|---|---|---|"]
        for crumb in view.breadcrumbs[-30:]:
            message = crumb.message or crumb.data
            out.append(
                f"| {clocktime(crumb.time)} | {_cell(crumb.category)} | {_cell(crumb.level)} |"
                f" {_cell(message)} |"
            )
    if view.request is not None:
        out += ["", "## Request", "", f"{_cell(view.request.method)} {_cell(view.request.url)}"]
    return "\n".join(out) + "\n"
