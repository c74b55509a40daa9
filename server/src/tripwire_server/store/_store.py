"""The store: one database and the repositories over it, one per concern.

Each repository holds a reference to the :class:`~.database.Database` and is what its consumers
depend on: the ingest writer takes the :class:`~.queue.IngestQueue`, the digester the queue and
:class:`~.retention.Retention`, the key cache :class:`~.accounts.Accounts`, the outbox
:class:`~.alerts.Alerts`; the API, the dashboard and the CLI reach them through the store
(``store.issues.list_issues(...)``).
"""

from __future__ import annotations

from .accounts import Accounts
from .alerts import Alerts
from .batch_writer import BatchWriter
from .database import Database
from .digest_alerts import DigestAlerts
from .feedback import UserFeedback
from .issues import Issues
from .latency_alerts import LatencyAlerts
from .logs import Logs
from .monitors import Monitors
from .performance import Performance
from .profiles import Profiles
from .queue import IngestQueue
from .releases import Releases
from .retention import Retention


class Store:
    """Everything the collector keeps: one :class:`Database` and a repository per concern.

    One store per process, shared by the ingest writer, the digester, the JSON API, the CLI and the
    dashboard; every repository is thread-safe (each call borrows a pooled connection).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.accounts = Accounts(db)
        self.issues = Issues(db)
        self.releases = Releases(db)
        self.alerts = Alerts(db)
        self.monitors = Monitors(db, self.alerts)
        self.feedback = UserFeedback(db)
        self.logs = Logs(db)
        self.performance = Performance(db)
        self.profiles = Profiles(db)
        writer = BatchWriter(
            db,
            digest_alerts=DigestAlerts(self.alerts),
            latency_alerts=LatencyAlerts(self.alerts),
            monitors=self.monitors,
            feedback=self.feedback,
            logs=self.logs,
            performance=self.performance,
            profiles=self.profiles,
        )
        self.queue = IngestQueue(db, writer)
        self.retention = Retention(db, self.accounts, self.queue)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.db.backend

    def migrate(self) -> list[int]:
        """Apply pending schema migrations (safe with concurrent processes); the versions applied."""
        return self.db.migrate()

    def schema_version(self) -> int:
        """The highest applied migration version."""
        return self.db.schema_version()

    def close(self) -> None:
        """Close every pooled connection; the store is not used after this."""
        self.db.close()
