"""Storage errors: one family under `WatchfloorError`, each with a stable code and the tenant it concerns.

Messages never contain connection passwords or token secrets.
"""

from __future__ import annotations

from watchfloor.core.errors import Location, WatchfloorError


class StorageError(WatchfloorError):
    """The system of record refused or failed an operation."""

    code = "storage.error"


class UnsupportedUrlError(StorageError):
    """A database URL names a backend or driver we do not support."""

    code = "storage.url_unsupported"


class NotFoundError(StorageError):
    """The tenant or object does not exist (for this tenant)."""

    code = "storage.not_found"


class AlreadyExistsError(StorageError):
    """An object with the same identity exists already."""

    code = "storage.already_exists"


class TenantRetiredError(StorageError):
    """The tenant is retired: it keeps its history but accepts no new tokens or changes."""

    code = "storage.tenant_retired"


def where(tenant: str | None, table: str, object_id: object = None) -> Location:
    """A `Location` for storage errors: the tenant plus `table` or `table/object_id`."""
    path = table if object_id is None else f"{table}/{object_id}"
    return Location(tenant=tenant, path=path)
