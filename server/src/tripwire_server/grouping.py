"""Grouping: which issue an event belongs to, and a human explanation of why.

Strategies, first match wins (version :data:`VERSION`; the version is stored with every issue so a
future change of rules never silently merges old and new issues):

1. ``fingerprint``: the client's fingerprint; ``{{ default }}`` expands to the default components.
2. ``exception``: the type of the raised exception (the last one of the chain) plus the in-app
   frames of its stack trace as ``module:function`` (all frames when none is in-app). Without a
   stack trace: type plus the normalized value.
3. ``message``: the message template (``logentry.message``, not the formatted text), with variable
   parts (numbers, hex, UUIDs, e-mails, IPs, URLs, dates, quoted strings) normalized. A
   *synthetic* exception (``mechanism.synthetic``: the stack trace JavaScript SDKs attach to
   ``captureMessage``) names no real error type, so such an event groups by its message.
4. ``fallback``: events with neither, by transaction.

Version 2 (``tripwire:2``) differs from version 1 in frames only:

- an in-app frame adds its line's source text (``context_line``), else its line number, so two
  errors raised in one function at different lines stay apart, while an edit above the bug (which
  moves line numbers but not the text) keeps the issue;
- JavaScript frames never use line numbers (a rebuild of the bundle moves them) and drop mangled
  function names (``t``, ``Xe``: a rebuild renames them); frames of ``node_modules`` and of the
  Sentry/BugSnag SDKs are not in-app, and SDK wrapper frames are left out of the key.

An event whose version-2 key has no issue yet but whose version-1 key has one joins that issue
(:func:`legacy_hash`): existing issues keep their grouping.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

VERSION = "tripwire:2"
LEGACY_VERSION = "tripwire:1"
_JS_PLATFORMS = frozenset({"javascript", "node"})
#: Files of packages and SDK bundles: never the app's own code.
_NOT_IN_APP_FILE = re.compile(
    r"node_modules/|@sentry/|@bugsnag/|sentry-cdn\.com/|(?:^|/)(?:sentry|bugsnag)(?:\.[\w-]+)*\.js(?:$|\?)"
)
#: Function names of SDK wrappers that sit between the browser and the app's handler.
_SDK_WRAPPERS = frozenset({"sentryWrapped", "wrapped", "callback", "wrap", "wrapper", "captureException"})
#: What a minifier makes of a function name: one to three characters (``t``, ``Xe``, ``$a``).
_MANGLED = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,2}$")
#: Minified bundles put a whole program on one line: such a context line is no fingerprint.
_MAX_CONTEXT_LINE = 120

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


def _frame_key(frame: dict[str, Any], version: str, js: bool) -> str:
    where = frame.get("module")
    if not where:
        filename = frame.get("filename") or frame.get("abs_path") or "?"
        # Keep the file name only: paths differ between machines, hashes between builds.
        where = _FILE_NOISE.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1])
    function = frame.get("function") or "?"
    if " at 0x" in function:  # the regex only when it can match: this runs for every frame
        function = _ADDRESS.sub("", function)
    if version == LEGACY_VERSION:
        return f"{where}:{function}"
    if js:
        function = function.rsplit(".", 1)[-1]  # "Object.t", "HTMLButtonElement.r": the receiver varies
        if _MANGLED.match(function):
            function = "?"
    key = f"{where}:{function}"
    if frame.get("in_app") is True:
        line = frame.get("context_line")
        if isinstance(line, str) and line.strip() and len(line.strip()) <= _MAX_CONTEXT_LINE:
            key += " `" + line.strip() + "`"
        elif not js and isinstance(frame.get("lineno"), int):
            key += f" line {frame['lineno']}"
    return key


def is_sdk_frame(frame: dict[str, Any]) -> bool:
    """Whether a (JavaScript) frame belongs to a package or an SDK bundle rather than the app."""
    path = frame.get("abs_path") or frame.get("filename") or frame.get("module") or ""
    return isinstance(path, str) and bool(_NOT_IN_APP_FILE.search(path.replace("\\", "/")))


def _exception_components(
    exc: dict[str, Any], version: str, js: bool, with_type: bool = True
) -> tuple[list[str], str]:
    type_ = exc.get("type") or "Error"
    frames = exc.get("stacktrace", {}).get("frames", [])
    if js and version != LEGACY_VERSION:
        frames = [
            f
            for f in frames
            if not is_sdk_frame(f) and (f.get("function") or "").rsplit(".", 1)[-1] not in _SDK_WRAPPERS
        ]
    in_app = [f for f in frames if f.get("in_app") is True]
    used = in_app or frames
    keys: list[str] = []
    for frame in used:
        key = _frame_key(frame, version, js)
        if not keys or keys[-1] != key:  # recursion depth must not split an issue
            keys.append(key)
    head = [type_] if with_type else []
    named = f"exception type {type_} and its" if with_type else "its synthetic exception's"
    if keys:
        which = "in-app frames" if in_app else "frames (none is marked in-app)"
        desc = f"{named} {len(keys)} {which}: " + " → ".join(keys)
        return [*head, *keys], desc
    value = normalize_message(exc.get("value") or "")
    return [*head, value], f"{named} normalized message {value!r} (no stack trace)"


def is_synthetic(exc: dict[str, Any]) -> bool:
    """Whether an exception was made up by the SDK (a stack trace for a message, no real error)."""
    mechanism = exc.get("mechanism")
    return isinstance(mechanism, dict) and mechanism.get("synthetic") is True


def _default(event: dict[str, Any], version: str = VERSION) -> tuple[str, list[str], str]:
    values = event.get("exception", {}).get("values", [])
    js = event.get("platform") in _JS_PLATFORMS
    log = event.get("logentry") or {}
    synthetic = version != LEGACY_VERSION and bool(values) and is_synthetic(values[-1])
    if values and not (synthetic and (log.get("message") or log.get("formatted"))):
        if synthetic:
            components, desc = _exception_components(values[-1], version, js, with_type=False)
            return "exception", ["<synthetic>", *components], "Grouped by " + desc
        components, desc = _exception_components(values[-1], version, js)
        return "exception", components, "Grouped by " + desc
    template = log.get("message") or log.get("formatted")
    if template:
        normalized = normalize_message(template)
        source = "message template" if log.get("message") else "message"
        note = " (its exception is synthetic: made up by the SDK for the message)" if synthetic else ""
        return "message", [normalized], f"Grouped by the {source}, normalized: {normalized!r}{note}"
    transaction = event.get("transaction") or ""
    return (
        "fallback",
        ["<no exception or message>", transaction],
        f"No exception or message; grouped by transaction {transaction!r}",
    )


def legacy_hash(event: dict[str, Any]) -> str:
    """The key the event had under version 1, to find an issue created before version 2."""
    return group(event, LEGACY_VERSION).hash


def group(event: dict[str, Any], version: str = VERSION) -> Grouping:
    """The grouping of a normalized event (pure, deterministic)."""
    strategy, components, description = _default(event, version)
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
    key = "\x00".join([version, strategy, *components])
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return Grouping(version, digest, strategy, tuple(components), description)
