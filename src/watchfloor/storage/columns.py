"""Column types that behave the same on SQLite and PostgreSQL.

- `UTCDateTime`: timezone-aware UTC in, timezone-aware UTC out. PostgreSQL stores `timestamptz`; SQLite
  stores fixed-width ISO-8601 text (`2026-12-03T10:00:00.000000+00:00`), so text order is time order and
  range filters work. Naive datetimes are refused at bind time rather than guessed at.
- `Json`: `json` on PostgreSQL (not `jsonb`: original events may hold `\\u0000`, which `jsonb` rejects, and we
  never query inside them), JSON text on SQLite.
- `BigId`: an auto-incrementing 64-bit key on PostgreSQL, SQLite's `INTEGER PRIMARY KEY` (rowid) on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, String
from sqlalchemy.types import TypeDecorator, TypeEngine

_SQLITE_TEXT_WIDTH = 32


def utc_now() -> datetime:
    """The current time, timezone-aware UTC. The default clock of `Database`."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """`value` converted to UTC; a naive datetime is an error, never assumed to be UTC or local."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"naive datetime {value.isoformat()}: storage needs timezone-aware datetimes"
        raise ValueError(msg)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes with microsecond precision on both dialects."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(_SQLITE_TEXT_WIDTH))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            msg = f"expected a datetime, got {type(value).__name__}"
            raise TypeError(msg)
        utc = as_utc(value)
        if dialect.name == "sqlite":
            return utc.isoformat(timespec="microseconds")
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            msg = f"expected a datetime from the database, got {type(value).__name__}"
            raise TypeError(msg)
        return as_utc(value)


Json = JSON(none_as_null=True)

BigId = BigInteger().with_variant(Integer(), "sqlite")
