"""Password hashing (scrypt) and opaque tokens: only hashes are ever stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt cost: about 20 ms and 16 MiB per check on a small machine; enough against offline guessing
# of a leaked database, cheap enough for a login form.
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """An scrypt hash of ``password`` in the form ``scrypt$N$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    fields = ("scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest))
    return "$".join(fields)


def unmatchable_hash() -> str:
    """A hash in :func:`hash_password`'s form that no password matches: checking against it costs
    what a real check costs (same scrypt parameters), so a login for an unknown user takes as long
    as one for a known user. Its digest is random bytes rather than an scrypt result, so making it
    costs nothing: no scrypt run at import (~45 ms in every process that imported the store), and
    made per check it always has the current parameters."""
    salt, digest = secrets.token_bytes(16), secrets.token_bytes(32)
    return "$".join(("scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest)))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches the stored ``encoded`` hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt_b64),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def new_token(prefix: str) -> str:
    """A fresh random secret such as ``tw_...`` (256 bits)."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a token: its SHA-256 (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_public_key() -> str:
    """A DSN public key: 32 lowercase hex digits, like Sentry's."""
    return secrets.token_hex(16)
