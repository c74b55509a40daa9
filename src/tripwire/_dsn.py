"""Parse Sentry-style DSNs: ``{scheme}://{public_key}@{host}[:port][/path]/{project_id}``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ._exceptions import ConfigurationError


@dataclass(frozen=True)
class Dsn:
    """A parsed DSN; ``str(dsn)`` gives it back without the secret."""

    scheme: str
    public_key: str
    host: str
    port: int | None
    path: str
    project_id: str

    @classmethod
    def parse(cls, value: str, *, option: str = "dsn") -> Dsn:
        try:
            parts = urlsplit(value.strip())
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"{option}: malformed DSN {value!r}: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise ConfigurationError(f"{option}: DSN scheme must be http or https, got {value!r}")
        if not parts.username:
            raise ConfigurationError(f"{option}: DSN has no public key before '@': {value!r}")
        if not parts.hostname:
            raise ConfigurationError(f"{option}: DSN has no host: {value!r}")
        path, _, project_id = parts.path.rstrip("/").rpartition("/")
        if not project_id.isdigit():
            raise ConfigurationError(
                f"{option}: DSN must end with a numeric project id, got {value!r}"
            )
        return cls(parts.scheme, parts.username, parts.hostname, port, path, project_id)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    @property
    def envelope_url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}/api/{self.project_id}/envelope/"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.public_key}@{self.netloc}{self.path}/{self.project_id}"
