"""Alert delivery settings of ``tripwire serve``: SMTP, which webhook hosts may be private, limits."""

from __future__ import annotations

import dataclasses
import ipaddress
from urllib.parse import parse_qs, unquote, urlsplit

_TRUE = {"1", "true", "yes", "on"}


@dataclasses.dataclass(frozen=True)
class SmtpSettings:
    """Where e-mail goes: parsed from ``smtp://[user:pass@]host:port[?starttls=1|tls=1]``."""

    host: str
    port: int
    username: str | None
    password: str | None = dataclasses.field(default=None, repr=False)
    starttls: bool = False
    tls: bool = False
    sender: str = "tripwire@localhost"

    @classmethod
    def from_url(cls, url: str, sender: str | None) -> SmtpSettings:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("--smtp-url must look like smtp://[user:pass@]host:port[?starttls=1|tls=1]")
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        tls = parts.scheme == "smtps" or query.get("tls") in _TRUE
        starttls = query.get("starttls") in _TRUE
        if tls and starttls:
            raise ValueError("--smtp-url: choose tls=1 (implicit TLS) or starttls=1, not both")
        port = parts.port or (465 if tls else 587 if starttls else 25)
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            starttls=starttls,
            tls=tls,
            sender=sender or f"tripwire@{parts.hostname}",
        )


@dataclasses.dataclass(frozen=True)
class AlertSettings:
    """How alerts are delivered (``tripwire serve --smtp-url ... --allow-webhook-host ...``)."""

    #: ``smtp://[user:pass@]host:port[?starttls=1|tls=1]``; None: e-mail targets fail with a clear error.
    smtp_url: str | None = dataclasses.field(default=None, repr=False)
    smtp_from: str | None = None
    #: Hosts, addresses or networks (``127.0.0.1``, ``10.0.0.0/8``, ``hooks.internal``) webhooks may
    #: reach although they are not public. Empty: only public addresses.
    allow_webhook_hosts: tuple[str, ...] = ()
    #: Seconds to connect, send and read the answer of one webhook or SMTP exchange.
    timeout: float = 10.0
    #: Bytes of a webhook's answer read at most (the rest is not read).
    max_response_bytes: int = 64 * 1024
    #: Attempts before a message is marked failed (backoff from 2 s up to 10 minutes).
    max_attempts: int = 10
    #: Seconds between two looks at the outbox when nothing is due.
    poll_interval: float = 0.5
    #: Seconds between two ticks of the cron monitor clock.
    clock_interval: float = 15.0
    #: Run the outbox worker and the monitor clock in this process.
    enabled: bool = True

    @property
    def smtp(self) -> SmtpSettings | None:
        return None if not self.smtp_url else SmtpSettings.from_url(self.smtp_url, self.smtp_from)

    def validate(self) -> None:
        """Raise ValueError for a malformed SMTP URL or allow-list entry (at start, not at send)."""
        _ = self.smtp
        if not 0 < self.timeout <= 300:
            raise ValueError("--alert-timeout must be between 0 and 300 seconds")
        for entry in self.allow_webhook_hosts:
            if "/" in entry:
                ipaddress.ip_network(entry, strict=False)
