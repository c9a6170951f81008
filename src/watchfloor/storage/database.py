"""`Database`: one handle on the system of record, with a repository per kind of record."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Engine

from watchfloor.storage.alerts import AlertRepository, SuppressionRepository
from watchfloor.storage.assets import AssetRepository
from watchfloor.storage.audit import AuditRepository
from watchfloor.storage.columns import utc_now
from watchfloor.storage.deadletters import DeadLetterRepository
from watchfloor.storage.detections import DetectionRepository
from watchfloor.storage.edl import EdlRepository
from watchfloor.storage.engine import (
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    Clock,
    Store,
    create_store_engine,
    current_revision,
    upgrade_to_head,
)
from watchfloor.storage.health import SourceHealthRepository
from watchfloor.storage.incidents import IncidentRepository, SlaRepository, TenantSettingsRepository
from watchfloor.storage.respond import ResponseRepository
from watchfloor.storage.tenants import TenantRepository
from watchfloor.storage.tokens import TokenRepository

MIGRATION_WAIT = 120.0  # seconds a starting process waits for another one's migration


class Database:
    """The system of record. `Database.open(url)` connects and migrates to the newest schema.

    Repositories: `tenants`, `assets`, `tokens`, `detections`, `dead_letters`, `audit`, `health`, `alerts`,
    `suppressions`, `incidents`, `sla`, `settings`, `edl`, `response`. Each call is one
    transaction; state changes write their audit entry in that same transaction.
    """

    __slots__ = (
        "_store",
        "alerts",
        "assets",
        "audit",
        "dead_letters",
        "detections",
        "edl",
        "health",
        "incidents",
        "response",
        "settings",
        "sla",
        "suppressions",
        "tenants",
        "tokens",
    )

    def __init__(self, store: Store) -> None:
        """Wrap an engine that is already migrated; use `Database.open` instead."""
        self._store = store
        self.tenants = TenantRepository(store)
        self.assets = AssetRepository(store)
        self.tokens = TokenRepository(store)
        self.detections = DetectionRepository(store)
        self.dead_letters = DeadLetterRepository(store)
        self.audit = AuditRepository(store)
        self.health = SourceHealthRepository(store)
        self.alerts = AlertRepository(store)
        self.suppressions = SuppressionRepository(store)
        self.incidents = IncidentRepository(store)
        self.sla = SlaRepository(store)
        self.settings = TenantSettingsRepository(store)
        self.edl = EdlRepository(store)
        self.response = ResponseRepository(store)

    @property
    def store(self) -> Store:
        """The engine + clock, for services that compose several writes in one transaction."""
        return self._store

    @classmethod
    def open(
        cls,
        url: str,
        *,
        token_pepper: bytes | None = None,
        clock: Clock = utc_now,
        busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
        migrate: bool = True,
    ) -> Self:
        """Connect to `sqlite:///path` or `postgresql://...` and migrate to head (unless `migrate=False`).

        `token_pepper`: a server secret; when given, new intake tokens are stored as HMAC-SHA256 with it, and
        resolving them needs the same pepper.
        """
        if token_pepper is not None and len(token_pepper) < 16:
            msg = "token_pepper must be at least 16 bytes of secret"
            raise ValueError(msg)
        if migrate:
            # Processes starting together queue behind one migration, which may take longer than a
            # normal write on a busy machine: migrate with a generous busy timeout of its own.
            wait = max(busy_timeout_seconds, MIGRATION_WAIT)
            migrator = create_store_engine(url, busy_timeout_seconds=wait)
            try:
                upgrade_to_head(migrator)
            finally:
                migrator.dispose()
        engine = create_store_engine(url, busy_timeout_seconds=busy_timeout_seconds)
        return cls(Store(engine, clock=clock, token_pepper=token_pepper))

    @property
    def engine(self) -> Engine:
        return self._store.engine

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._store.engine.dialect.name

    def schema_revision(self) -> str | None:
        """The migration revision the database is at."""
        return current_revision(self._store.engine)

    def close(self) -> None:
        """Close every pooled connection. The object must not be used afterwards."""
        self._store.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        url = self._store.engine.url.render_as_string(hide_password=True)
        return f"Database({url!r})"
