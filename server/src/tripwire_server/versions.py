"""Ordering of release names, for "resolved in release X" and regressions."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\d+|[A-Za-z]+")
# A version that starts with a package name ("myapp@1.2.3") is compared on the part after "@".
_PACKAGE = re.compile(r"^[^@]+@")


def version_key(release: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key: numbers compare numerically, words alphabetically, and a pre-release word such
    as "rc" sorts before the release it precedes (1.0rc1 < 1.0)."""
    parts: list[tuple[int, int | str]] = []
    for token in _TOKEN.findall(_PACKAGE.sub("", release)):
        if token.isdigit():
            parts.append((1, int(token)))
        else:
            parts.append((0, token.lower()))
    # The end of a version sorts after a pre-release word and before a further number.
    parts.append((0, "~"))
    return tuple(parts)


def is_at_or_after(release: str, reference: str) -> bool:
    """True if ``release`` is ``reference`` or a later version of it."""
    if release == reference:
        return True
    same_package = _PACKAGE.match(release) and _PACKAGE.match(reference)
    if same_package and release.split("@", 1)[0] != reference.split("@", 1)[0]:
        return False
    return version_key(release) >= version_key(reference)
