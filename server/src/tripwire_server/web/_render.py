"""Template rendering for the dashboard: one Jinja2 environment, autoescaped, and the headers every
HTML answer carries.

Everything shown on these pages may come from an event, so from whoever holds a DSN: autoescape is
on for every template, nothing from an event is ever marked safe, and the Content-Security-Policy
forbids inline scripts and styles so that a missed escape still cannot run code.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

_HERE = Path(__file__).parent
TEMPLATES_DIR = _HERE / "templates"
STATIC_DIR = _HERE / "static"

#: Sent with every HTML page: no inline script or style, no framing, forms only to ourselves.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def timesince(ts: float | None, now: float | None = None) -> str:
    """``ts`` as a short relative time: "just now", "5 min ago", "3 h ago", "12 days ago"."""
    if ts is None:
        return "never"
    delta = (time.time() if now is None else now) - float(ts)
    if delta < 45:
        return "just now"
    if delta < 3600:
        return f"{max(1, round(delta / 60))} min ago"
    if delta < 86400:
        return f"{round(delta / 3600)} h ago"
    days = round(delta / 86400)
    return f"{days} day{'s' if days != 1 else ''} ago"


def isotime(ts: float | None) -> str:
    """``ts`` as an ISO 8601 UTC time to the second."""
    if ts is None:
        return ""
    try:
        moment = _dt.datetime.fromtimestamp(float(ts), tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(ts)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def clocktime(value: Any) -> str:
    """A breadcrumb timestamp (Unix seconds or an ISO string) as ``HH:MM:SS.mmm``."""
    if isinstance(value, (int, float)):
        try:
            moment = _dt.datetime.fromtimestamp(float(value), tz=_dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return str(value)
        return moment.strftime("%H:%M:%S.%f")[:-3]
    if isinstance(value, str):
        try:
            moment = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return moment.strftime("%H:%M:%S.%f")[:-3]
    return ""


def pretty(value: Any) -> str:
    """Any JSON value as readable text: strings as they are, the rest as indented JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def compact(value: int | float | None) -> str:
    """A count as a short string: 999, 1.2k, 34k, 5.6M."""
    if value is None:
        return "0"
    n = float(value)
    if n < 1000:
        return str(int(n))
    if n < 1_000_000:
        return f"{n / 1000:.1f}k" if n < 10_000 else f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


def percent(value: float | None) -> str:
    """A share in [0, 1] as a percentage with up to two decimals ("99.95%"), or an em dash."""
    if value is None:
        return "—"
    text = f"{value * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def ms(value: float | None) -> str:
    """A duration in milliseconds: "12.3 ms", "1.25 s", or an em dash."""
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.1f} ms"
    return f"{value / 1000:.2f} s"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        # Every template, whatever its name: event data is hostile.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        timesince=timesince,
        isotime=isotime,
        clocktime=clocktime,
        pretty=pretty,
        compact=compact,
        percent=percent,
        ms=ms,
    )
    return env


ENV = _environment()


def render(
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` with ``context`` into an HTML response carrying the security headers."""
    body = ENV.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})})
