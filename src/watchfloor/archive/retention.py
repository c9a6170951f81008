"""Retention: delete whole day partitions of a tenant once they are older than the tenant's tier allows.

Definition (tested at the boundary): a partition for UTC day `D` is *expired* on day `today` when
`(today - D).days > keep_days`. A partition exactly `keep_days` old is kept, so every event stays searchable
for at least `keep_days` full days after the end of its day (today's partition plus `keep_days` earlier
days are on disk: `keep_days + 1` partitions at most).

Deletion is atomic for readers: the folder is first renamed to a hidden `.deleting-date=...` name (one
`rename`), then removed. A search that listed files before the rename may fail with `archive.read_failed`
and can simply be retried; it never sees a half-deleted day. Hidden leftovers of an interrupted deletion
are removed by the next run.

The tier -> days mapping belongs to the caller (service tiers live in `service/`); this module only documents
a default, `DEFAULT_RETENTION_DAYS_BY_TIER`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Final

from watchfloor.archive.model import ArchiveError, parse_partition_date, tenant_dir, valid_tenant
from watchfloor.core.errors import Location
from watchfloor.core.types import TenantId

__all__ = [
    "DEFAULT_RETENTION_DAYS_BY_TIER",
    "RetentionResult",
    "apply_retention",
    "apply_retention_by_tier",
    "is_expired",
    "retention_days",
]

DEFAULT_RETENTION_DAYS_BY_TIER: Final[Mapping[str, int]] = MappingProxyType(
    {"essentials": 30, "standard": 90, "premium": 365}
)
DELETING_PREFIX: Final = ".deleting-"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionResult:
    tenant: TenantId
    keep_days: int
    deleted: tuple[date, ...] = ()
    kept: tuple[date, ...] = ()
    bytes_freed: int = 0
    leftovers_removed: int = 0
    skipped: tuple[str, ...] = field(default=())  # folders that are not ours (never touched)


def is_expired(day: date, *, keep_days: int, today: date) -> bool:
    """True when the partition of `day` is past retention on `today` (see the module docstring)."""
    return (today - day).days > keep_days


def retention_days(tier: str, retention_days_by_tier: Mapping[str, int]) -> int:
    """Days to keep for `tier`; an unknown tier is an error rather than a silent default."""
    try:
        days = retention_days_by_tier[tier]
    except KeyError:
        known = ", ".join(sorted(retention_days_by_tier))
        raise ArchiveError(
            f"no retention configured for tier {tier!r} (known: {known})", code="archive.unknown_tier"
        ) from None
    _check_keep_days(days)
    return days


def _check_keep_days(keep_days: int) -> None:
    if isinstance(keep_days, bool) or not isinstance(keep_days, int) or keep_days < 1:
        message = f"keep_days must be a whole number of days >= 1, got {keep_days!r}"
        raise ArchiveError(message, code="archive.invalid_setting")


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(dirpath) / name).stat().st_size
            except OSError:
                continue
    return total


def apply_retention(root: Path, tenant: str, keep_days: int, today: date) -> RetentionResult:
    """Delete `tenant`'s day partitions that `is_expired` on `today`; other tenants are never touched."""
    tid = valid_tenant(tenant)
    _check_keep_days(keep_days)
    base = tenant_dir(root, tid)
    if not base.is_dir():
        return RetentionResult(tenant=tid, keep_days=keep_days)
    deleted: list[date] = []
    kept: list[date] = []
    skipped: list[str] = []
    freed = 0
    leftovers = 0
    for entry in sorted(base.iterdir()):
        if entry.name.startswith(DELETING_PREFIX) and entry.is_dir():
            freed += _size(entry)
            shutil.rmtree(entry, ignore_errors=True)
            leftovers += 1
            continue
        day = parse_partition_date(entry.name)
        if day is None or not entry.is_dir():
            skipped.append(entry.name)
            continue
        if not is_expired(day, keep_days=keep_days, today=today):
            kept.append(day)
            continue
        doomed = base / f"{DELETING_PREFIX}{entry.name}"
        try:
            size = _size(entry)
            entry.rename(doomed)
            shutil.rmtree(doomed)
        except OSError as exc:
            raise ArchiveError(
                f"cannot delete expired partition {entry.name}: {exc.strerror or exc}",
                location=Location(path=str(entry), tenant=tid),
                code="archive.retention_failed",
            ) from None
        freed += size
        deleted.append(day)
    return RetentionResult(
        tenant=tid,
        keep_days=keep_days,
        deleted=tuple(deleted),
        kept=tuple(kept),
        bytes_freed=freed,
        leftovers_removed=leftovers,
        skipped=tuple(skipped),
    )


def apply_retention_by_tier(
    root: Path,
    tiers: Mapping[str, str],
    today: date,
    retention_days_by_tier: Mapping[str, int] = DEFAULT_RETENTION_DAYS_BY_TIER,
) -> list[RetentionResult]:
    """Apply each tenant's tier retention (`tiers`: tenant id -> tier name).

    Tenants with archive folders but no entry in `tiers` are left alone: deleting data because a tenant
    is missing from a lookup would be the wrong failure.
    """
    return [
        apply_retention(root, tenant, retention_days(tier, retention_days_by_tier), today)
        for tenant, tier in sorted(tiers.items())
    ]
