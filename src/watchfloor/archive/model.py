"""The archived event, its Parquet schema, the on-disk layout, and the archive error family.

Layout (hive style, one folder per tenant and UTC day of `event_time`):

    <root>/tenant=<tenant id>/date=<YYYY-MM-DD>/part-<uuid>.parquet

Tenant ids pass `core.types.tenant_id` before they become a path, so a tenant can never name a folder
outside its own (`../`, `/`, `*` and upper case are refused). Dates are rendered by us from `date` objects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa

from watchfloor.core.errors import WatchfloorError
from watchfloor.core.types import TenantId, tenant_id
from watchfloor.normalize.model import SourceKey
from watchfloor.normalize.shapes import classify, flatten, record_id, timestamp

__all__ = [
    "ARCHIVE_SCHEMA",
    "FORMAT_VERSION",
    "ArchiveError",
    "ArchivedEvent",
    "FieldValue",
    "SearchQueryError",
    "day_partition",
    "days_between",
    "event_from_raw",
    "logsource_of",
    "make_event_key",
    "tenant_dir",
    "valid_tenant",
]

FORMAT_VERSION: Final = "1"

Scalar = str | int | float | bool | None
FieldValue = Scalar | list[Scalar]

# `tenant` and `date` are not stored in the files: they are the hive partition columns of the path.
ARCHIVE_SCHEMA: Final = pa.schema(
    [
        pa.field("event_key", pa.string(), nullable=False),
        pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("received_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("record_id", pa.string()),
        pa.field("logsource", pa.string(), nullable=False),
        pa.field("fields", pa.string(), nullable=False),  # JSON object text: field name -> value
        pa.field("raw", pa.binary(), nullable=False),
    ],
    metadata={"watchfloor.archive.format": FORMAT_VERSION},
)


class ArchiveError(WatchfloorError):
    """The archive could not be written, read or pruned."""

    code = "archive.error"


class SearchQueryError(ArchiveError):
    """A `--where` condition does not parse or names something that cannot be searched.

    `offset` is 0-based into the query text and `column` is 1-based, as an editor shows it.
    """

    code = "search.invalid_query"

    def __init__(self, message: str, *, query: str, offset: int) -> None:
        offset = max(0, min(offset, len(query)))
        self.query = query
        self.offset = offset
        self.column = offset + 1
        super().__init__(f"{message} (at column {self.column})")


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        msg = f"{name} must be timezone-aware (got naive {moment.isoformat()})"
        raise ValueError(msg)
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchivedEvent:
    """One event as archived: the original record plus what search needs without re-parsing it.

    `event_time` is the event's own time, or `received_at` when the event carries none; both are aware and
    stored in UTC. `event_key` identifies the event across redeliveries (see `make_event_key`); the archive
    may hold a key twice (at-least-once delivery) and every reader returns it once. `fields` holds the
    normalized fields (`normalize.shapes.flatten`), written as one JSON text column.
    """

    tenant: TenantId
    event_time: datetime
    received_at: datetime
    source: str
    record_id: str | None
    logsource: str
    raw: bytes = field(repr=False)
    fields: Mapping[str, FieldValue] = field(default_factory=dict, repr=False)
    event_key: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "tenant", valid_tenant(self.tenant))
        object.__setattr__(self, "event_time", _utc(self.event_time, "event_time"))
        object.__setattr__(self, "received_at", _utc(self.received_at, "received_at"))

    @property
    def day(self) -> date:
        return self.event_time.date()


def valid_tenant(value: str) -> TenantId:
    """`core.types.tenant_id`, raised as an ArchiveError (code `archive.invalid_tenant`)."""
    try:
        return tenant_id(value)
    except (ValueError, TypeError) as exc:
        raise ArchiveError(str(exc), code="archive.invalid_tenant") from None


def make_event_key(source: str, raw: bytes) -> str:
    """A stable id for one event: BLAKE2b-128 of the source name and the exact record bytes.

    The same record redelivered from the same source gets the same key; two records that differ in any byte
    (including the EventRecordID) get different keys. Callers with a better id (the bus subject + sequence,
    a vendor event id) may pass their own.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(source.encode("utf-8", "surrogatepass"))
    digest.update(b"\0")
    digest.update(raw)
    return digest.hexdigest()


def logsource_of(key: SourceKey | None) -> str:
    """`product/channel[/event id]` (e.g. `windows/security/4625`, `aws/cloudtrail`); `unknown` if None."""
    if key is None:
        return "unknown"
    text = f"{key.product}/{key.channel}"
    return text if key.event_id is None else f"{text}/{key.event_id}"


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def event_from_raw(
    raw: bytes,
    *,
    tenant: str,
    source: str,
    received_at: datetime,
    doc: Mapping[str, Any] | None = None,
    event_key: str | None = None,
) -> ArchivedEvent:
    """Build the archived form of one raw JSON record (classify, flatten, record id, time).

    Never raises for bad input: a record that is not a JSON object is still archived (the archive keeps
    what was received), as logsource `unknown` with no fields and the receive time as its event time.
    """
    if doc is None:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        doc = parsed if isinstance(parsed, dict) else {}
    key = classify(doc) if doc else None
    fields = flatten(doc) if doc else {}
    rid = record_id(doc) if doc else None
    moment = _parse_time(timestamp(doc)) if doc else None
    received = _utc(received_at, "received_at")
    return ArchivedEvent(
        tenant=valid_tenant(tenant),
        event_time=moment or received,
        received_at=received,
        source=source,
        record_id=None if rid is None else str(rid),
        logsource=logsource_of(key),
        raw=raw,
        fields=fields,
        event_key=event_key or make_event_key(source, raw),
    )


def tenant_dir(root: Path, tenant: str) -> Path:
    return root / f"tenant={valid_tenant(tenant)}"


def day_partition(root: Path, tenant: str, day: date) -> Path:
    return tenant_dir(root, tenant) / f"date={day.isoformat()}"


def days_between(since: datetime, until: datetime) -> Iterator[date]:
    """Every UTC day that [since, until) touches (nothing when until <= since)."""
    start, end = _utc(since, "since"), _utc(until, "until")
    if end <= start:
        return
    day = start.date()
    last = (end - timedelta(microseconds=1)).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def parse_partition_date(name: str) -> date | None:
    """`date=YYYY-MM-DD` -> date, else None (foreign folders are ignored, never deleted)."""
    if not name.startswith("date="):
        return None
    try:
        return date.fromisoformat(name.removeprefix("date="))
    except ValueError:
        return None


def events_to_table(events: Sequence[ArchivedEvent]) -> pa.Table:
    """Rows in `ARCHIVE_SCHEMA`, sorted by event time (tighter row-group statistics)."""
    ordered = sorted(events, key=lambda e: (e.event_time, e.event_key))
    columns: dict[str, list[Any]] = {
        "event_key": [e.event_key for e in ordered],
        "event_time": [e.event_time for e in ordered],
        "received_at": [e.received_at for e in ordered],
        "source": [e.source for e in ordered],
        "record_id": [e.record_id for e in ordered],
        "logsource": [e.logsource for e in ordered],
        "fields": [fields_json(e.fields) for e in ordered],
        "raw": [e.raw for e in ordered],
    }
    return pa.table(columns, schema=ARCHIVE_SCHEMA)


def fields_json(fields: Mapping[str, FieldValue]) -> str:
    """The `fields` column text; values orjson refuses (integers beyond 64 bits) fall back to json."""
    try:
        return orjson.dumps(fields, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except TypeError:
        return json.dumps(fields, default=str, ensure_ascii=False)


def utc_now() -> datetime:
    return datetime.now(tz=UTC)
