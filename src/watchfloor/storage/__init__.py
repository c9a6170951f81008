"""Storage: the system of record. Repositories only; every function takes a tenant id; no business rules."""

from watchfloor.storage.assets import Asset, AssetKind, AssetRepository, Criticality
from watchfloor.storage.audit import AuditEntry, AuditRepository, SecretInAuditError
from watchfloor.storage.database import Database
from watchfloor.storage.deadletters import RAW_CAP_BYTES, DeadLetterRepository, StoredDeadLetter
from watchfloor.storage.detections import Detection, DetectionRepository, NewDetection, event_key
from watchfloor.storage.errors import (
    AlreadyExistsError,
    NotFoundError,
    StorageError,
    TenantRetiredError,
    UnsupportedUrlError,
)
from watchfloor.storage.tenants import Contact, Tenant, TenantRepository, Vertical
from watchfloor.storage.tokens import CreatedToken, IntakeToken, TokenRepository

__all__ = [
    "RAW_CAP_BYTES",
    "AlreadyExistsError",
    "Asset",
    "AssetKind",
    "AssetRepository",
    "AuditEntry",
    "AuditRepository",
    "Contact",
    "CreatedToken",
    "Criticality",
    "Database",
    "DeadLetterRepository",
    "Detection",
    "DetectionRepository",
    "IntakeToken",
    "NewDetection",
    "NotFoundError",
    "SecretInAuditError",
    "StorageError",
    "StoredDeadLetter",
    "Tenant",
    "TenantRepository",
    "TenantRetiredError",
    "TokenRepository",
    "UnsupportedUrlError",
    "Vertical",
    "event_key",
]
