"""Browser, OS and device contexts from an event's User-Agent, as Relay derives them.

Browser SDKs send the page's ``User-Agent`` in ``request.headers`` and no ``browser`` or ``os``
context; the collector fills those in (never overwriting what the SDK sent), so an issue's tags
show which browsers fail and ``browser:"Chrome 120"`` finds them. Parsing uses the maintained
rules of the ``ua-parser`` project (``ua-parser`` with its compiled ``regex`` backend).
"""

from __future__ import annotations

import functools
from typing import Any

from ua_parser import parse

#: A User-Agent longer than this is not a browser's; it is not parsed (bounded work per event).
MAX_USER_AGENT = 512


def _version(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


@functools.lru_cache(maxsize=512)
def _parse(user_agent: str) -> dict[str, dict[str, Any]]:
    result = parse(user_agent)
    out: dict[str, dict[str, Any]] = {}
    ua = result.user_agent
    if ua is not None and ua.family != "Other":
        out["browser"] = {"type": "browser", "name": ua.family}
        version = _version(ua.major, ua.minor, ua.patch)
        if version:
            out["browser"]["version"] = version
    os_ = result.os
    if os_ is not None and os_.family != "Other":
        out["os"] = {"type": "os", "name": os_.family}
        version = _version(os_.major, os_.minor, os_.patch)
        if version:
            out["os"]["version"] = version
    device = result.device
    if device is not None and device.family != "Other":
        out["device"] = {"type": "device", "family": device.family}
        if device.brand:
            out["device"]["brand"] = device.brand
        if device.model:
            out["device"]["model"] = device.model
    return out


def request_user_agent(event: dict[str, Any]) -> str | None:
    """The ``User-Agent`` header of the event's request, if it has one."""
    request = event.get("request")
    if not isinstance(request, dict):
        return None
    headers = request.get("headers")
    pairs: list[Any] = []
    if isinstance(headers, dict):
        pairs = list(headers.items())
    elif isinstance(headers, list):
        pairs = [h for h in headers if isinstance(h, (list, tuple)) and len(h) == 2]
    for name, value in pairs:
        if isinstance(name, str) and name.lower() == "user-agent" and isinstance(value, str):
            return value
    return None


def add_contexts(event: dict[str, Any]) -> None:
    """Fill the ``browser``, ``os`` and ``device`` contexts of ``event`` from its User-Agent."""
    user_agent = request_user_agent(event)
    if not user_agent or len(user_agent) > MAX_USER_AGENT:
        return
    parsed = _parse(user_agent)
    if not parsed:
        return
    contexts = event.setdefault("contexts", {})
    for name, context in parsed.items():
        if not isinstance(contexts.get(name), dict):
            contexts[name] = dict(context)


def tags(event: dict[str, Any]) -> dict[str, str]:
    """``browser``/``os`` tags (name and major version, e.g. ``Chrome 120``), their ``.name`` tags
    and ``device``, from the event's contexts."""
    out: dict[str, str] = {}
    contexts = event.get("contexts") or {}
    for name in ("browser", "os"):
        context = contexts.get(name)
        if not isinstance(context, dict) or not isinstance(context.get("name"), str):
            continue
        # Only the browser/OS type of context: a server's "os" context from a Python SDK counts too.
        major = str(context.get("version") or "").split(".", 1)[0]
        out[name] = f"{context['name']} {major}".strip()
        out[f"{name}.name"] = context["name"]
    device = contexts.get("device")
    if isinstance(device, dict) and isinstance(device.get("family"), str):
        out["device"] = device["family"]
    return out
