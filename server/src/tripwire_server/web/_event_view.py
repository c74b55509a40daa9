"""Turn a stored event (the Sentry event schema, sent by anyone holding a DSN) into plain view data.

Pure functions, and forgiving: a field of an unexpected type is shown as text or skipped, never an
error page. Nothing here escapes HTML; the templates do, always.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._render import pretty


def dict_of(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict, else an empty one."""
    return value if isinstance(value, dict) else {}


def values_of(value: Any) -> list[Any]:
    """A Sentry list field that may be a bare list or ``{"values": [...]}``."""
    if isinstance(value, dict):
        value = value.get("values")
    return list(value) if isinstance(value, list) else []


def pairs_of(value: Any) -> list[tuple[str, Any]]:
    """A mapping field that may be a dict or a list of ``[key, value]`` pairs."""
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                out.append((str(item[0]), item[1]))
        return out
    return []


def text_of(value: Any) -> str:
    """A scalar as text ("" for None); structures as readable JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return pretty(value)


@dataclasses.dataclass
class SourceLine:
    """One line of source context around a frame."""

    lineno: int | None
    text: str
    current: bool


@dataclasses.dataclass
class FrameView:
    """One stack frame, ready to show."""

    filename: str
    function: str
    lineno: int | None
    module: str
    in_app: bool
    context_line: str
    source: list[SourceLine]
    variables: list[tuple[str, str]]
    #: The frame to open by default (the last in-app frame of the raised exception).
    culprit: bool = False


@dataclasses.dataclass
class FrameGroup:
    """Consecutive frames shown together: app frames open, library frames folded."""

    in_app: bool
    frames: list[FrameView]


@dataclasses.dataclass
class ExceptionView:
    """One exception of the chain (or of an exception group)."""

    type: str
    value: str
    module: str
    mechanism: str
    handled: bool | None
    #: How this exception relates to the one shown above it ("" for the first).
    relation: str
    depth: int
    is_group: bool
    groups: list[FrameGroup]

    @property
    def frame_count(self) -> int:
        """How many frames the exception has."""
        return sum(len(group.frames) for group in self.groups)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def frame_view(frame: dict[str, Any], assume_in_app: bool) -> FrameView:
    """A frame dict as view data; ``assume_in_app`` applies when the SDK did not say."""
    lineno = _int(frame.get("lineno"))
    pre = [text_of(line) for line in values_of(frame.get("pre_context")) if line is not None]
    post = [text_of(line) for line in values_of(frame.get("post_context")) if line is not None]
    context_line = text_of(frame.get("context_line"))
    source: list[SourceLine] = []
    if context_line or pre or post:
        start = lineno - len(pre) if lineno is not None else None
        for offset, line in enumerate([*pre, context_line, *post]):
            number = start + offset if start is not None else None
            source.append(SourceLine(number, line, offset == len(pre)))
    raw_vars = frame.get("vars")
    variables = [(name, text_of(value)) for name, value in pairs_of(raw_vars)]
    in_app = frame.get("in_app")
    return FrameView(
        filename=text_of(frame.get("filename") or frame.get("abs_path") or frame.get("module"))
        or "<unknown>",
        function=text_of(frame.get("function")) or "<module>",
        lineno=lineno,
        module=text_of(frame.get("module")),
        in_app=assume_in_app if in_app is None else bool(in_app),
        context_line=context_line.strip(),
        source=source,
        variables=variables,
    )


def _group_frames(frames: list[FrameView]) -> list[FrameGroup]:
    groups: list[FrameGroup] = []
    for frame in frames:
        if groups and groups[-1].in_app == frame.in_app:
            groups[-1].frames.append(frame)
        else:
            groups.append(FrameGroup(frame.in_app, [frame]))
    return groups


def _relation(mechanism: dict[str, Any], index: int) -> str:
    source = text_of(mechanism.get("source"))
    if index == 0:
        return ""
    if source == "__cause__":
        return "Caused by"
    if source == "__context__":
        return "Raised while handling"
    if source.startswith("exceptions["):
        return f"In the exception group, {source}"
    # sentry-sdk does not say which of the two it was.
    return "Cause or context of the exception above"


def exception_views(data: dict[str, Any]) -> list[ExceptionView]:
    """The exception chain, the raised exception first (SDKs send it last)."""
    raw = [value for value in values_of(data.get("exception")) if isinstance(value, dict)]
    raw.reverse()
    # An SDK that marks no frame at all gives us nothing to fold: show everything as app code.
    any_marked = any(
        isinstance(frame, dict) and frame.get("in_app") is not None
        for value in raw
        for frame in values_of(dict_of(value.get("stacktrace")).get("frames"))
    )
    # Indent exception-group members under their group; a cause or context stays at its level.
    parents: dict[int, tuple[int, bool]] = {}
    for value in raw:
        mechanism = dict_of(value.get("mechanism"))
        exception_id = _int(mechanism.get("exception_id"))
        parent_id = _int(mechanism.get("parent_id"))
        if exception_id is not None and parent_id is not None:
            member = text_of(mechanism.get("source")).startswith("exceptions[")
            parents[exception_id] = (parent_id, member)

    def depth(exception_id: int | None) -> int:
        level, seen = 0, set()
        while exception_id in parents and exception_id not in seen:
            seen.add(exception_id)
            exception_id, member = parents[exception_id]
            level += int(member)
        return min(level, 6)

    views: list[ExceptionView] = []
    for index, value in enumerate(raw):
        mechanism = dict_of(value.get("mechanism"))
        stacktrace = dict_of(value.get("stacktrace"))
        frames = [
            frame_view(frame, assume_in_app=not any_marked)
            for frame in values_of(stacktrace.get("frames"))
            if isinstance(frame, dict)
        ]
        handled = mechanism.get("handled")
        views.append(
            ExceptionView(
                type=text_of(value.get("type")) or "Error",
                value=text_of(value.get("value")),
                module=text_of(value.get("module")),
                mechanism=text_of(mechanism.get("type")),
                handled=handled if isinstance(handled, bool) else None,
                relation=_relation(mechanism, index),
                depth=depth(_int(mechanism.get("exception_id"))),
                is_group=bool(mechanism.get("is_exception_group")),
                groups=_group_frames(frames),
            )
        )
    if views:
        app_frames = [f for group in views[0].groups if group.in_app for f in group.frames]
        if app_frames:
            app_frames[-1].culprit = True
    return views


def stack_views(data: dict[str, Any]) -> list[ExceptionView]:
    """Stack traces that belong to no exception: threads (``attach_stacktrace``) or a bare
    ``stacktrace``, shown like an exception without a value."""
    sources: list[tuple[str, str, Any]] = []
    for thread in values_of(data.get("threads")):
        if isinstance(thread, dict) and isinstance(thread.get("stacktrace"), dict):
            name = text_of(thread.get("name")) or text_of(thread.get("id"))
            label = "Crashed thread" if thread.get("crashed") else "Thread"
            sources.append((label, name, thread["stacktrace"]))
    if isinstance(data.get("stacktrace"), dict):
        sources.append(("Stack trace", "", data["stacktrace"]))
    views = []
    for label, name, stacktrace in sources:
        raw_frames = [f for f in values_of(stacktrace.get("frames")) if isinstance(f, dict)]
        any_marked = any(f.get("in_app") is not None for f in raw_frames)
        frames = [frame_view(f, assume_in_app=not any_marked) for f in raw_frames]
        if frames:
            views.append(
                ExceptionView(
                    type=label,
                    value=name,
                    module="",
                    mechanism="",
                    handled=None,
                    relation="",
                    depth=0,
                    is_group=False,
                    groups=_group_frames(frames),
                )
            )
    return views


@dataclasses.dataclass
class Breadcrumb:
    """One breadcrumb row."""

    time: Any
    category: str
    level: str
    message: str
    data: str


def breadcrumbs(data: dict[str, Any]) -> list[Breadcrumb]:
    """The event's breadcrumbs, oldest first."""
    out = []
    for crumb in values_of(data.get("breadcrumbs")):
        if not isinstance(crumb, dict):
            continue
        category = text_of(crumb.get("category")) or text_of(crumb.get("type")) or "default"
        payload = crumb.get("data")
        out.append(
            Breadcrumb(
                time=crumb.get("timestamp"),
                category=category,
                level=text_of(crumb.get("level")) or "info",
                message=text_of(crumb.get("message")),
                data=pretty(payload) if payload else "",
            )
        )
    return out


def message_of(data: dict[str, Any]) -> str:
    """The event's log message (formatted if the SDK sent it formatted)."""
    logentry = data.get("logentry")
    if isinstance(logentry, dict):
        return text_of(logentry.get("formatted") or logentry.get("message"))
    message = data.get("message")
    if isinstance(message, dict):
        return text_of(message.get("formatted") or message.get("message"))
    return text_of(message)


@dataclasses.dataclass
class RequestView:
    """The HTTP request an event happened in."""

    method: str
    url: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    cookies: list[tuple[str, str]]
    data: str
    env: list[tuple[str, str]]


def request_view(data: dict[str, Any]) -> RequestView | None:
    """The request section, or None when the event has none."""
    request = data.get("request")
    if not isinstance(request, dict) or not request:
        return None
    query_raw = request.get("query_string")
    if isinstance(query_raw, str):
        from urllib.parse import parse_qsl

        query = [(k, v) for k, v in parse_qsl(query_raw, keep_blank_values=True)]
    else:
        query = [(k, text_of(v)) for k, v in pairs_of(query_raw)]
    cookies_raw = request.get("cookies")
    if isinstance(cookies_raw, str):
        cookies = [
            (part.partition("=")[0].strip(), part.partition("=")[2])
            for part in cookies_raw.split(";")
            if part.strip()
        ]
    else:
        cookies = [(k, text_of(v)) for k, v in pairs_of(cookies_raw)]
    body = request.get("data")
    return RequestView(
        method=text_of(request.get("method")),
        url=text_of(request.get("url")),
        query=query,
        headers=[(k, text_of(v)) for k, v in pairs_of(request.get("headers"))],
        cookies=cookies,
        data="" if body is None or body == "" else text_of(body),
        env=[(k, text_of(v)) for k, v in pairs_of(request.get("env"))],
    )


@dataclasses.dataclass
class EventView:
    """Everything the event page shows, as plain data."""

    message: str
    exceptions: list[ExceptionView]
    breadcrumbs: list[Breadcrumb]
    request: RequestView | None
    user: list[tuple[str, str]]
    tags: list[tuple[str, str]]
    contexts: list[tuple[str, list[tuple[str, str]]]]
    extra: list[tuple[str, str]]
    sdk: str
    facts: list[tuple[str, str]]


def event_view(data: dict[str, Any]) -> EventView:
    """Build the view of one stored event payload."""
    contexts = []
    for name, context in pairs_of(data.get("contexts")):
        if isinstance(context, dict):
            contexts.append((name, [(k, text_of(v)) for k, v in context.items() if k != "type"]))
        else:
            contexts.append((name, [("value", text_of(context))]))
    sdk = dict_of(data.get("sdk"))
    facts = [
        (label, text_of(data.get(key)))
        for label, key in (
            ("Level", "level"),
            ("Logger", "logger"),
            ("Transaction", "transaction"),
            ("Release", "release"),
            ("Environment", "environment"),
            ("Server", "server_name"),
            ("Platform", "platform"),
        )
        if data.get(key) not in (None, "")
    ]
    return EventView(
        message=message_of(data),
        exceptions=exception_views(data) + stack_views(data),
        breadcrumbs=breadcrumbs(data),
        request=request_view(data),
        user=[(k, text_of(v)) for k, v in pairs_of(data.get("user")) if v not in (None, "")],
        tags=[(k, text_of(v)) for k, v in pairs_of(data.get("tags"))],
        contexts=contexts,
        extra=[(k, text_of(v)) for k, v in pairs_of(data.get("extra"))],
        sdk=" ".join(p for p in (text_of(sdk.get("name")), text_of(sdk.get("version"))) if p),
        facts=facts,
    )
