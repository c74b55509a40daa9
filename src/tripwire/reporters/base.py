"""The reporter interface: where finished events go.

A reporter receives events that are already built, scrubbed, trimmed and passed through
``before_send``; it encodes them for its backend and delivers them. The client calls every reporter
in turn from its worker thread, so ``send_event`` must return quickly: a reporter that does network
I/O queues the encoded payload for its own sender thread (see ``tripwire.reporters.http``).

A failure in one reporter is logged and counted by the client and never reaches the others.

Write your own by subclassing :class:`Reporter` and registering it under the entry point group
``tripwire.reporters``; see docs/reporters.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._types import Event, SessionBatch

if TYPE_CHECKING:
    from typing import Any

    from .._options import Options
    from .._stats import DropCounter


class Reporter:
    """Base class of all reporters. Override :meth:`send_event`; the rest is optional."""

    #: A short name used in logs and drop counters (``stats()["dropped_by"][i]["reporter"]``).
    name: str = "reporter"
    #: The release this backend names when the app sets none (BugSnag's ``app_version``): the
    #: client then uses it for release health, so ``start_session()`` works without ``release=``.
    default_release: str | None = None
    #: Leave an ``error`` breadcrumb (class, message, severity) for every error reported, as the
    #: backend's own SDK does (BugSnag).
    error_breadcrumbs: bool = False
    #: Put the session an error counted on into the event (``contexts.session``: id, start,
    #: handled/unhandled), for a backend that links errors to sessions by it (BugSnag).
    links_sessions: bool = False
    #: Takes a transaction's profile with it (``send_transaction(..., profile=...)``); the client
    #: never passes ``profile`` to a reporter that leaves this False.
    accepts_profiles: bool = False

    def configure(self, options: Options) -> None:
        """Called once by the client before :meth:`bind`, with its options.

        HTTP reporters take the delivery settings they were not given (``http_timeout``,
        ``spool_dir``, ...) from here. The default does nothing.
        """

    def bind(self, stats: DropCounter) -> None:
        """Called once by the client that owns this reporter, before anything is sent."""
        self.stats = stats

    def send_event(self, event: Event) -> None:
        """Encode and deliver (or queue for delivery) one finished event. Must not block for long."""
        raise NotImplementedError

    def send_transaction(
        self,
        transaction: Event,
        trace: dict[str, str] | None = None,
        profile: dict[str, Any] | None = None,
    ) -> None:
        """Deliver a performance ``transaction`` event (see docs/tracing.md); ``trace`` is its
        dynamic sampling context (the envelope header's ``trace``); ``profile`` its Sentry ``profile``
        payload, given only to reporters with ``accepts_profiles``. Reporters without performance
        monitoring (BugSnag, logging) ignore it."""

    def send_spans(self, spans: list[dict[str, Any]]) -> None:
        """Deliver spans that finished after their transaction was sent (Sentry's span v2 shape,
        linked to it by ``trace_id`` and ``parent_span_id``). Reporters without performance
        monitoring ignore them."""

    def send_profile_chunk(self, chunk: dict[str, Any]) -> None:
        """Deliver a continuous-profiling chunk (Sentry ``profile_chunk`` v2). Others ignore it."""

    def send_sessions(self, batch: SessionBatch) -> None:
        """Deliver release-health data. Reporters without release health ignore it."""

    def send_checkin(self, checkin: dict[str, Any]) -> None:
        """Deliver a cron monitor check-in (Sentry ``check_in`` shape). Others ignore it."""

    def send_feedback(self, feedback: dict[str, Any]) -> None:
        """Deliver user feedback (a Sentry ``feedback`` event). Others ignore it."""

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything handed over so far is delivered; False on timeout."""
        return True

    def close(self, timeout: float | None) -> None:
        """Flush (up to ``timeout``) and release threads, sockets and files."""
        self.flush(timeout)
