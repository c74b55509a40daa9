"""Settings of one collector process.

Everything has a safe default: SQLite in ``./tripwire-data``, bound to 127.0.0.1, Relay-like size
limits. The CLI fills a :class:`CollectorConfig` from its flags and the environment.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .alerts.settings import AlertSettings

KiB = 1024
MiB = 1024 * KiB


@dataclasses.dataclass(frozen=True)
class Limits:
    """Hard limits on what one request may carry (defaults follow Sentry's Relay), and on what
    all requests and connections together may hold."""

    #: Bytes on the wire (before decompression) for one envelope; an uncompressed body counts here too.
    max_envelope_compressed: int = 20 * MiB
    #: Bytes after decompression for one envelope (decompression bombs stop here).
    max_envelope_size: int = 100 * MiB
    #: Bytes of one event item (or one ``/store/`` body) after decompression.
    max_event_size: int = 1 * MiB
    #: Bytes of one ``/store/`` body on the wire.
    max_store_compressed: int = 200 * KiB
    #: Bytes of one attachment item; the collector keeps attachments up to this size.
    max_attachment_size: int = 20 * MiB
    #: Bytes of one ``profile`` or ``profile_chunk`` item (Relay's ``max_profile_size``).
    max_profile_size: int = 10 * MiB
    #: Bytes of the envelope header line and of each item header line.
    max_header_size: int = 8 * KiB
    #: Session updates per envelope (Relay drops the rest).
    max_session_items: int = 100
    #: Items of any kind per envelope.
    max_items: int = 1000
    #: Decompressed bytes per compressed byte a body may reach once past 256 KiB decompressed
    #: (0: no limit). JSON compresses about 5-20:1; a bomb of zeros 1000:1. Without this, a DSN
    #: holder makes the server inflate up to ``max_envelope_size`` per small request.
    max_inflate_ratio: int = 200

    # What all requests together, and slow clients, may hold (docs/collector.md,
    # "Deploying on the internet"). Each request above is bounded; these bound the server.

    #: Bytes of request bodies held by all ingest requests at once (0: no limit). A request that
    #: would go over waits up to ``budget_wait`` seconds for room, then gets 503 + Retry-After.
    max_bytes_in_flight: int = 128 * MiB
    #: Of ``max_bytes_in_flight``, what the requests of one project may hold at once (0: no own
    #: limit), so that one DSN holder cannot take the whole budget from the others. Keep it at
    #: least twice ``max_envelope_compressed`` (a body is counted twice while it is joined).
    max_bytes_in_flight_per_project: int = 48 * MiB
    #: Seconds a request waits for room in ``max_bytes_in_flight`` before it is refused.
    budget_wait: float = 1.0
    #: Seconds a client has to send a request's line and headers, from its first byte (or from
    #: the connection's opening) to the blank line that ends them.
    header_timeout: float = 30.0
    #: Bytes of a request's line and headers together (431 past it).
    max_request_header_size: int = 64 * KiB
    #: Bytes per second a request body must arrive at, on average, after ``body_grace`` seconds
    #: (0: no minimum). Time the server itself is not reading does not count against the client.
    body_min_rate: int = 1 * KiB
    #: Seconds of a body's upload that need not meet ``body_min_rate`` (also the longest pause).
    body_grace: float = 10.0
    #: Connections open at once; requests past it get 503 (uvicorn's ``limit_concurrency``).
    max_connections: int = 1000
    #: Refusals per second one client address may keep receiving (0: no limit); past them (and a
    #: burst of ``refusal_burst``) its connections are held ``refusal_hold`` seconds unread, then
    #: answered 429 (:mod:`~tripwire_server.refusal_limit`). Real SDKs back off after a refusal.
    refusal_rate: int = 10
    #: Refusals one client address may receive at once before ``refusal_rate`` applies.
    refusal_burst: int = 100
    #: Seconds a connection from a client address over its refusal limit is held before its 429.
    refusal_hold: float = 10.0
    #: Connections held at once per client address over its refusal limit; more are cut at once.
    refusal_max_held: int = 64


@dataclasses.dataclass(frozen=True)
class CollectorConfig:
    """Settings of one ``tripwire serve`` process (and of the CLI commands that open the store)."""

    host: str = "127.0.0.1"
    port: int = 8000
    #: Where the SQLite database lives when no ``database_url`` is given.
    data_dir: Path = Path("tripwire-data")
    #: ``postgresql://...`` to use PostgreSQL; ``sqlite:///path`` or None for SQLite in ``data_dir``.
    database_url: str | None = None
    #: The address SDKs use to reach this collector; it goes into DSNs. Defaults to http://host:port.
    public_url: str | None = None
    limits: Limits = dataclasses.field(default_factory=Limits)
    #: Default per-project quota of error/default/transaction/security items per minute (0: none).
    #: A project's own ``quota_per_minute`` overrides it.
    quota_per_minute: int = 0
    #: Default retention: events older than this many days are deleted (0 keeps them forever).
    retention_days: int = 90
    #: Default retention: at most this many events per project, oldest deleted first (0: no cap).
    retention_max_events: int = 100_000
    #: Performance rollups (and trace links) older than this many days are dropped (0: kept).
    performance_retention_days: int = 90
    #: Sampled transactions (the raw spans behind traces) older than this are dropped (0: kept).
    sample_retention_days: int = 30
    #: Profiles and their per-function aggregates older than this many days are dropped (0: kept).
    profile_retention_days: int = 30
    #: Seconds between two retention sweeps.
    retention_interval: float = 300.0
    #: Envelopes digested per database transaction, at most. A batch's fixed costs (rollup merges,
    #: the sample reservoir, the commit) are paid once for all of them: 500 instead of 200 took the
    #: digest from ~4,750 to ~5,500 transactions/s stored on PostgreSQL (bench/RESULTS.md,
    #: "Performance data"); memory stays bounded by ``digest_batch_bytes``.
    digest_batch_size: int = 500
    #: Seconds the digester lets the queue refill after a batch that was not full, when fewer
    #: than half a batch are waiting. Under steady load this turns many small batches into fewer
    #: large ones (each batch's rollup merges and commit are paid once for all its transactions);
    #: an isolated envelope is not delayed, nor is a backlog of large envelopes.
    digest_linger: float = 0.05
    #: Decompressed bytes of envelopes one digest transaction holds in memory: a batch ends after
    #: the envelope that passes this (one envelope may be up to ``max_envelope_size``).
    digest_batch_bytes: int = 32 * MiB
    #: Default attachment budget of a project: bytes stored per hour (by arrival), then bytes
    #: stored in total (retention frees room); 0 means no limit. A project's own values override.
    attachment_bytes_per_hour: int = 100 * MiB
    attachment_bytes_total: int = 1024 * MiB
    #: Envelopes committed to the ingest queue per transaction, at most.
    intake_batch_size: int = 1000
    #: When this many envelopes wait to be digested, ingest answers 429 instead of growing the
    #: backlog without bound.
    max_backlog: int = 200_000
    #: Run the background digester and retention sweeper (off: another process digests).
    run_digester: bool = True
    #: Digest in a child process instead of a thread, so that digesting does not compete with
    #: the HTTP event loop for the GIL (``tripwire serve`` does this).
    digest_process: bool = False
    #: How much lower the digest child process's CPU priority is than the server's (``os.nice``
    #: increment; 0: the same). Acknowledged requests are then served first when the CPUs are
    #: busy, and the digest catches up when ingest is idle (``max_backlog`` bounds the queue).
    digest_niceness: int = 10
    #: SQLite ``synchronous`` pragma: FULL survives power loss, NORMAL survives process crashes.
    sqlite_synchronous: str = "FULL"
    #: Alert delivery (SMTP, webhook allow-list) and the cron monitor clock: docs/alerts.md.
    alerts: AlertSettings = dataclasses.field(default_factory=AlertSettings)

    @property
    def effective_database_url(self) -> str:
        """The database this process uses: ``database_url`` or the SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tripwire.sqlite3').resolve()}"

    @property
    def effective_public_url(self) -> str:
        """The base URL that goes into DSNs and is printed at start (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def default_data_dir() -> Path:
    """``$TRIPWIRE_DATA_DIR`` or ``./tripwire-data``."""
    return Path(os.environ.get("TRIPWIRE_DATA_DIR", "tripwire-data"))


def default_database_url() -> str | None:
    """``$TRIPWIRE_DATABASE_URL`` if set."""
    return os.environ.get("TRIPWIRE_DATABASE_URL") or None
