"""Parse Sentry-style DSNs: ``{scheme}://{public_key}@{host}[:port][/path]/{project_id}``."""

# No ``from __future__ import annotations`` here: typing.NamedTuple would compile each string
# annotation into a ForwardRef at import (measured: 0.5 ms for Options alone).

from typing import NamedTuple

from ._exceptions import ConfigurationError


class Dsn(NamedTuple):
    """A parsed DSN; ``str(dsn)`` gives it back without the secret."""

    scheme: str
    public_key: str
    host: str
    port: int | None
    path: str
    project_id: str

    @classmethod
    def parse(cls, value: str, *, option: str = "dsn") -> "Dsn":
        # Parsed by hand: urllib.parse (and the ipaddress module it imports) would add ~5 ms to
        # tripwire.init(), and a DSN is a very small grammar.
        text = value.strip()
        scheme, sep, rest = text.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise ConfigurationError(f"{option}: DSN scheme must be http or https, got {value!r}")
        for mark in ("#", "?"):
            rest = rest.partition(mark)[0]
        netloc, _, path = rest.partition("/")
        userinfo, at, hostport = netloc.rpartition("@")
        public_key = userinfo.partition(":")[0]
        if not at or not public_key:
            raise ConfigurationError(f"{option}: DSN has no public key before '@': {value!r}")
        if hostport.startswith("["):
            host, bracket, after = hostport[1:].partition("]")
            if not bracket or (after and not after.startswith(":")):
                raise ConfigurationError(f"{option}: malformed DSN {value!r}: bad IPv6 host")
            port_text = after[1:]
        else:
            host, colon, port_text = hostport.partition(":")
            if colon and not port_text:
                port_text = "x"  # "host:" has an empty port: malformed
        if not host:
            raise ConfigurationError(f"{option}: DSN has no host: {value!r}")
        port: int | None = None
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ConfigurationError(f"{option}: malformed DSN {value!r}: bad port {port_text!r}")
            port = int(port_text)
        prefix, _, project_id = ("/" + path).rstrip("/").rpartition("/")
        if not project_id.isdigit():
            raise ConfigurationError(f"{option}: DSN must end with a numeric project id, got {value!r}")
        return cls(scheme.lower(), public_key, host.lower(), port, prefix, project_id)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    @property
    def envelope_url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}/api/{self.project_id}/envelope/"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.public_key}@{self.netloc}{self.path}/{self.project_id}"
