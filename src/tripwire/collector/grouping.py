"""Grouping: which issue an event belongs to, and a human explanation of why.

Strategies, first match wins (version :data:`VERSION`; the version is stored with every issue so a
future change of rules never silently merges old and new issues):

1. ``fingerprint``: the client's fingerprint; ``{{ default }}`` expands to the default components.
2. ``exception``: the type of the raised exception (the last one of the chain) plus the in-app
   frames of its stack trace as ``module:function`` (all frames when none is in-app). Line numbers
   are ignored so edits above the bug do not split an issue. Without a stack trace: type plus the
   normalized value.
3. ``message``: the message template (``logentry.message``, not the formatted text), with variable
   parts (numbers, hex, UUIDs, e-mails, IPs, URLs, dates, quoted strings) normalized.
4. ``fallback``: events with neither, by transaction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

VERSION = "tripwire:1"

# Order matters: URLs contain hosts and numbers, e-mails contain dots, UUIDs contain hex.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+"), "<url>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (
        re.compile(r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"),
        "<uuid>",
    ),
    (
        re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"),
        "<date>",
    ),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""), "<quoted>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<num>"),
]
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_DEFAULT = re.compile(r"^\{\{\s*default\s*\}\}$", re.IGNORECASE)
_FILE_NOISE = re.compile(r"[0-9a-fA-F]{8,}|\?.*$")


@dataclasses.dataclass(frozen=True)
class Grouping:
    """The result of grouping one event."""

    version: str
    hash: str
    strategy: str
    components: tuple[str, ...]
    description: str

    def explanation(self) -> dict[str, Any]:
        """What the issue page shows under "why grouped"."""
        return {
            "version": self.version,
            "strategy": self.strategy,
            "components": list(self.components),
            "description": self.description,
        }


def normalize_message(text: str) -> str:
    """``text`` with its variable parts replaced by placeholders such as ``<num>`` and ``<uuid>``."""
    text = text.strip()[:2000]
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def _frame_key(frame: dict[str, Any]) -> str:
    where = frame.get("module")
    if not where:
        filename = frame.get("filename") or frame.get("abs_path") or "?"
        # Keep the file name only: paths differ between machines, hashes between builds.
        where = _FILE_NOISE.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1])
    function = frame.get("function") or "?"
    if " at 0x" in function:  # the regex only when it can match: this runs for every frame
        function = _ADDRESS.sub("", function)
    return f"{where}:{function}"


def _exception_components(exc: dict[str, Any]) -> tuple[list[str], str]:
    type_ = exc.get("type") or "Error"
    frames = exc.get("stacktrace", {}).get("frames", [])
    in_app = [f for f in frames if f.get("in_app") is True]
    used = in_app or frames
    keys: list[str] = []
    for frame in used:
        key = _frame_key(frame)
        if not keys or keys[-1] != key:  # recursion depth must not split an issue
            keys.append(key)
    if keys:
        which = "in-app frames" if in_app else "frames (none is marked in-app)"
        desc = f"exception type {type_} and its {len(keys)} {which}: " + " → ".join(keys)
        return [type_, *keys], desc
    value = normalize_message(exc.get("value") or "")
    return [type_, value], f"exception type {type_} and its normalized message {value!r} (no stack trace)"


def _default(event: dict[str, Any]) -> tuple[str, list[str], str]:
    values = event.get("exception", {}).get("values", [])
    if values:
        components, desc = _exception_components(values[-1])
        return "exception", components, "Grouped by " + desc
    log = event.get("logentry") or {}
    template = log.get("message") or log.get("formatted")
    if template:
        normalized = normalize_message(template)
        source = "message template" if log.get("message") else "message"
        return "message", [normalized], f"Grouped by the {source}, normalized: {normalized!r}"
    transaction = event.get("transaction") or ""
    return (
        "fallback",
        ["<no exception or message>", transaction],
        f"No exception or message; grouped by transaction {transaction!r}",
    )


def group(event: dict[str, Any]) -> Grouping:
    """The grouping of a normalized event (pure, deterministic)."""
    strategy, components, description = _default(event)
    fingerprint = event.get("fingerprint")
    if fingerprint and not all(_DEFAULT.match(str(p).strip()) for p in fingerprint):
        parts: list[str] = []
        uses_default = False
        for part in fingerprint:
            if _DEFAULT.match(str(part).strip()):
                uses_default = True
                parts.extend(components)
            else:
                parts.append(str(part))
        shown = ", ".join(repr(str(p)) for p in fingerprint)
        if uses_default:
            description = f"Grouped by the client fingerprint [{shown}], where {{{{ default }}}} is: " + (
                description[0].lower() + description[1:]
            )
        else:
            description = f"Grouped by the client fingerprint [{shown}] only"
        strategy, components = "fingerprint", parts
    # NUL-separated: cheaper than JSON, and no component contains a NUL in practice.
    key = "\x00".join([VERSION, strategy, *components])
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return Grouping(VERSION, digest, strategy, tuple(components), description)
