"""One scrubbing mechanism for every field of an event: secrets by key, secrets inside text, and PII.

Rules (docs/events.md has the user-facing version):

* **Keys.** A mapping key is sensitive when, lowercased and with ``-``, ``_``, ``.`` and spaces removed,
  it contains one of :data:`DEFAULT_KEYS` or a user's ``scrub_keys``: ``X-Api-Key``, ``db_password``,
  ``sessionid``, ``Authorization``, ``private_key``, ``credit-card``... Its value becomes ``[Filtered]``,
  whatever it is (a string, a dict, a list). This applies in extra, contexts, tags, user, breadcrumb
  data, frame locals, request headers, cookies, query strings, bodies and environment.
* **Text.** Every string value (and exception values and messages) is searched for ``key=value`` /
  ``"key": "value"`` pairs with a sensitive key, ``scheme://user:password@`` URLs, ``Bearer <token>``
  credentials and the user's ``scrub_patterns``; the secret part becomes ``[Filtered]``.
* **PII.** ``send_default_pii`` governs only what the SDK collects on its own: without it, request
  cookies, client IP headers and the ``REMOTE_ADDR`` environment entry are removed (noted in
  ``_meta``). The ``user`` the app sets is the app's explicit choice and is sent as set, secrets
  filtered like anywhere else (Sentry's documented rule).

Each client builds one :class:`Scrubber` from its options (``Client.scrubber``); the event builder,
the ASGI connection and the integrations that put data into breadcrumbs use that one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import _deferred
from ._serialize import FILTERED, Meta, add_meta

if TYPE_CHECKING:
    from ._options import Options

#: Substrings that make a key sensitive (compared lowercased, without ``-_. ``).
DEFAULT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "auth",
    "cookie",
    "session",
    "csrf",
    "xsrf",
    "creditcard",
    "cardnumber",
    "privatekey",
)

# The same list as regex fragments that tolerate the separators users write inside keys.
_KEY_FRAGMENTS = (
    r"pass(?:word|wd)",
    r"secret",
    r"token",
    r"api[-_ ]?key",
    r"auth",
    r"cookie",
    r"session",
    r"csrf",
    r"xsrf",
    r"credit[-_ ]?card",
    r"card[-_ ]?number",
    r"private[-_ ]?key",
)

#: Request headers that carry the client's address: sent only with send_default_pii.
IP_HEADERS = frozenset(
    {
        "x-forwarded-for",
        "x-real-ip",
        "forwarded",
        "cf-connecting-ip",
        "true-client-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
    }
)

# The rules are compiled by Scrubber(), which the client builds on first use, and not at import:
# compiling these three costs ``import tripwire`` 0.6 ms (``re`` caches them for later scrubbers).
_URL_USERINFO_RULE = r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/@:]*:)(?P<secret>[^\s/@]+)(?=@)"
# "Bearer <token>" outside a key=value pair. The token must look like one (a digit or one of ._~+/=)
# so that prose ("bearer bonds") is left alone; "Authorization: Basic ..." is caught by the pair rule.
_CREDENTIAL_RULE = r"\bbearer\s+(?P<secret>(?=[a-z0-9\-._~+/]*[0-9._~+/=])[a-z0-9\-._~+/]{8,}=*)"
_STRIP = str.maketrans("", "", "-_. ")


def _normalize(key: str) -> str:
    return key.lower().translate(_STRIP)


class Scrubber:
    """Scrubbing rules built from the options; one instance per client, used on the worker."""

    def __init__(
        self,
        extra_keys: Iterable[str] = (),
        patterns: Iterable[re.Pattern[str]] = (),
        *,
        send_default_pii: bool = False,
    ) -> None:
        extra = tuple(k for k in extra_keys if k)
        self.keys = DEFAULT_KEYS + tuple(_normalize(k) for k in extra)
        self.patterns = tuple(patterns)
        self.send_default_pii = send_default_pii
        fragments = _KEY_FRAGMENTS + tuple(re.escape(k.lower()) for k in extra)
        # The pair rule starts at the key fragment (the rest of the key is left alone), so the regex
        # engine can scan for it quickly. It runs on the lowercased text; see scrub_text.
        pairs = (
            r"(?:" + "|".join(fragments) + r")[\w.\-]*"
            r"[\"']?\s*[=:]\s*[\"']?"
            r"(?P<secret>\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)"
            r"|(?:(?:bearer|basic|digest|token)\s+)?[^\s&#\"',;)}\]]+)"
        )
        self._pairs = re.compile(pairs)
        self._pairs_any_case = re.compile("(?i)" + pairs)
        self._url_userinfo = re.compile(_URL_USERINFO_RULE)
        self._credential = re.compile("(?i)" + _CREDENTIAL_RULE)
        self._credential_lower = re.compile(_CREDENTIAL_RULE)
        # A cheap first look: most strings contain none of these (lowercase) words.
        self._needles = (
            "://",
            "bearer",
            "pass",
            "secret",
            "token",
            "api",
            "auth",
            "cookie",
            "session",
            "csrf",
            "xsrf",
            "card",
            "private",
        ) + tuple(k.lower() for k in extra)
        self._key_cache: dict[str, bool] = {}
        self._text_cache: dict[str, str] = {}

    # -- keys and text ------------------------------------------------------------------------

    def is_sensitive_key(self, key: str) -> bool:
        """True if values under ``key`` must be filtered."""
        cached = self._key_cache.get(key)
        if cached is not None:
            return cached
        norm = _normalize(key)
        result = any(fragment in norm for fragment in self.keys)
        if len(self._key_cache) > 4096:
            self._key_cache.clear()
        self._key_cache[key] = result
        return result

    def scrub_text(self, text: str) -> str:
        """``text`` with secrets inside it (key=value pairs, URL passwords, tokens, patterns) filtered."""
        short = len(text) <= 200
        if short:
            # The same short values (methods, paths, names) come back in every event.
            cached = self._text_cache.get(text)
            if cached is not None:
                return cached
        original = text
        low = text.lower()
        if any(needle in low for needle in self._needles):
            if "://" in text:
                text = self._url_userinfo.sub(lambda m: m["head"] + FILTERED, text)
                low = text.lower()
            if len(low) == len(text):
                # Case-insensitive regexes are slow in `re`; match the lowercased text instead and
                # replace the same spans in the original (same length, so the offsets agree).
                text = _replace_spans(text, low, self._pairs)
                text = _replace_spans(text, text.lower(), self._credential_lower)
            else:  # a few characters change length when lowercased: take the slow path
                text = self._pairs_any_case.sub(_replace_secret, text)
                text = self._credential.sub(_replace_secret, text)
        for pattern in self.patterns:
            text = pattern.sub(FILTERED, text)
        if short:
            if len(self._text_cache) > 10_000:
                self._text_cache.clear()
            self._text_cache[original] = text
        return text

    # -- JSON-safe data ----------------------------------------------------------------------

    def scrub(self, value: Any, meta: Meta | None = None, path: tuple[str, ...] = ()) -> Any:
        """A scrubbed copy of JSON-safe ``value`` (dicts, lists, strings); filters noted in ``meta``."""
        cls = type(value)
        if cls is str or isinstance(value, str):
            return self.scrub_text(value)
        if cls is dict or isinstance(value, dict):
            out: dict[str, Any] = {}
            sensitive = self.is_sensitive_key
            for key, item in value.items():
                kind = type(item)
                # (no == on the value: an arbitrary object's __eq__ may raise)
                empty = item is None or (kind is str and not item)
                if type(key) is str and not empty and sensitive(key):
                    out[key] = FILTERED
                    if meta is not None:
                        add_meta(meta, (*path, key), rem=[["!filter", "s"]])
                elif kind is str:
                    out[key] = self.scrub_text(item)
                elif kind is dict or kind is list or isinstance(item, dict | list | tuple | str):
                    out[key] = self.scrub(item, meta, (*path, str(key)))
                else:
                    out[key] = item
            return out
        if cls is list or isinstance(value, list | tuple):
            items: list[Any] = []
            for i, item in enumerate(value):
                kind = type(item)
                if kind is str:
                    items.append(self.scrub_text(item))
                elif kind is dict or kind is list or isinstance(item, dict | list | tuple | str):
                    items.append(self.scrub(item, meta, (*path, str(i))))
                else:
                    items.append(item)
            return items
        return value

    def scrub_user(self, user: Mapping[str, Any], meta: Meta | None = None) -> dict[str, Any]:
        """The user as the app set it (identities included, whatever send_default_pii), secrets filtered."""
        out: dict[str, Any] = {}
        for key, value in user.items():
            if key == "id":
                out[key] = value
            else:
                out[key] = self.scrub({key: value}, meta, ("user",))[key]
        return out

    # -- request parts -------------------------------------------------------------------------

    def scrub_query_string(self, query: str) -> str:
        """``a=1&token=x`` → ``a=1&token=[Filtered]``; also applies the text rules to each value."""
        if not query:
            return query
        parts = []
        for part in re.split(r"([&;])", query):
            if part in ("&", ";") or "=" not in part:
                parts.append(part)
                continue
            key, _, value = part.partition("=")
            if self.is_sensitive_key(_unquote(key)):
                parts.append(f"{key}={FILTERED}")
            else:
                parts.append(f"{key}={self.scrub_text(value)}")
        return "".join(parts)

    def scrub_url(self, url: str) -> str:
        """The URL without a userinfo password and with sensitive query parameters filtered."""
        url = self._url_userinfo.sub(lambda m: m["head"] + FILTERED, url)
        base, sep, rest = url.partition("?")
        if not sep:
            return url
        query, hsep, fragment = rest.partition("#")
        return f"{base}?{self.scrub_query_string(query)}{hsep}{fragment}"

    def scrub_headers(self, headers: Any) -> dict[str, Any]:
        """Headers (a mapping or a list of pairs) as a dict, secrets filtered, PII headers dropped."""
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        out: dict[str, Any] = {}
        for key, value in pairs:
            name = key.decode("latin-1") if isinstance(key, bytes) else str(key)
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            lower = name.lower()
            if not self.send_default_pii and (lower in IP_HEADERS or "cookie" in lower):
                continue
            if self.is_sensitive_key(name):
                out[name] = FILTERED
            else:
                out[name] = self.scrub_text(text) if isinstance(text, str) else text
        return out

    def scrub_mapping(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A scrubbed copy of a mapping (nested mappings and lists included)."""
        result = self.scrub(dict(data))
        return result if isinstance(result, dict) else {}

    def scrub_request(self, request: dict[str, Any], meta: Meta | None = None) -> dict[str, Any]:
        """The ``request`` interface with every part scrubbed (see the module docstring)."""
        out: dict[str, Any] = {}
        for key, value in request.items():
            if key == "url" and isinstance(value, str):
                out[key] = self.scrub_url(value)
            elif key == "query_string" and isinstance(value, str):
                out[key] = self.scrub_query_string(value)
            elif key == "headers" and isinstance(value, Mapping | list):
                out[key] = self.scrub_headers(value)
            elif key == "cookies":
                if not self.send_default_pii:
                    if meta is not None:
                        add_meta(meta, ("request", "cookies"), rem=[["!pii", "x"]])
                    continue
                out[key] = self.scrub_query_string(value) if isinstance(value, str) else self.scrub(value)
            elif key == "env" and isinstance(value, dict):
                env = {k: v for k, v in value.items() if self.send_default_pii or k != "REMOTE_ADDR"}
                out[key] = self.scrub(env, meta, ("request", "env"))
            else:
                out[key] = self.scrub(value, meta, ("request", key))
        return out


def _replace_secret(match: re.Match[str]) -> str:
    start, end = match.span("secret")
    if match["secret"].startswith("[Filtered"):
        return match[0]
    offset = match.start()
    return match[0][: start - offset] + FILTERED + match[0][end - offset :]


def _replace_spans(text: str, low: str, regex: re.Pattern[str]) -> str:
    """``text`` with the ``secret`` group of every match of ``regex`` in ``low`` filtered."""
    pieces: list[str] = []
    last = 0
    for match in regex.finditer(low):
        start, end = match.span("secret")
        if low.startswith("[filtered", start):
            continue
        pieces.append(text[last:start])
        pieces.append(FILTERED)
        last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _unquote(text: str) -> str:
    if "%" not in text and "+" not in text:
        return text
    return _deferred.unquote_plus(text)


def build_scrubber(options: Options) -> Scrubber:
    """The :class:`Scrubber` for ``options``; the client builds one, on first use, and keeps it."""
    return Scrubber(options.scrub_keys, options.scrub_patterns, send_default_pii=options.send_default_pii)


__all__ = ["DEFAULT_KEYS", "FILTERED", "Scrubber", "build_scrubber"]
