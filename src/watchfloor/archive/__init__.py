"""Per-tenant event archive: Parquet files per tenant and day, searched with DuckDB, pruned by tier.

Contract: `ArchiveWriter.append(ArchivedEvent)` -> durable `part-*.parquet` files after `flush()`;
`search`/`iter_rows`/`retrohunt` read one tenant's days only and return each `event_key` once.
"""

from watchfloor.archive.model import (
    ARCHIVE_SCHEMA,
    ArchivedEvent,
    ArchiveError,
    SearchQueryError,
    event_from_raw,
    logsource_of,
    make_event_key,
)
from watchfloor.archive.query import And, Condition, Not, Or, compile_where, parse_where, render
from watchfloor.archive.retention import (
    DEFAULT_RETENTION_DAYS_BY_TIER,
    RetentionResult,
    apply_retention,
    apply_retention_by_tier,
    is_expired,
    retention_days,
)
from watchfloor.archive.retrohunt import RetroHit, RetroHuntStats, retrohunt
from watchfloor.archive.search import ArchiveRow, iter_rows, partition_files, search
from watchfloor.archive.writer import ArchiveWriter, WriterStats

__all__ = [
    "ARCHIVE_SCHEMA",
    "DEFAULT_RETENTION_DAYS_BY_TIER",
    "And",
    "ArchiveError",
    "ArchiveRow",
    "ArchiveWriter",
    "ArchivedEvent",
    "Condition",
    "Not",
    "Or",
    "RetentionResult",
    "RetroHit",
    "RetroHuntStats",
    "SearchQueryError",
    "WriterStats",
    "apply_retention",
    "apply_retention_by_tier",
    "compile_where",
    "event_from_raw",
    "is_expired",
    "iter_rows",
    "logsource_of",
    "make_event_key",
    "parse_where",
    "partition_files",
    "render",
    "retention_days",
    "retrohunt",
    "search",
]
