"""Dead letters: input we could not process, kept with why and where, so it can be fixed and replayed.

`raw` is stored up to `RAW_CAP_BYTES`; `raw_length` keeps the original size and `truncated` says when the
stored bytes are only the start (such an entry cannot be replayed as is).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, insert, select, update

from watchfloor.core.records import DeadLetter
from watchfloor.core.types import TenantId
from watchfloor.storage.audit import append_audit
from watchfloor.storage.engine import Store
from watchfloor.storage.schema import dead_letters
from watchfloor.storage.tenants import require_tenant

RAW_CAP_BYTES = 256 * 1024

DeadLetterStatus = Literal["pending", "replayed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredDeadLetter:
    """A stored dead letter without its bytes (`DeadLetterRepository.get_raw` fetches them)."""

    id: int
    tenant_id: TenantId
    source: str
    line: int | None
    record_id: int | None
    offset: int | None
    code: str
    message: str
    raw_length: int
    stored_length: int
    received_at: datetime
    status: DeadLetterStatus
    replayed_at: datetime | None = None

    @property
    def truncated(self) -> bool:
        return self.stored_length < self.raw_length

    def where(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
        if self.record_id is not None:
            where += f" record={self.record_id}"
        if self.offset is not None:
            where += f" offset={self.offset}"
        return f"tenant={self.tenant_id} {where}"


def _stored(row: Mapping[Any, Any]) -> StoredDeadLetter:
    return StoredDeadLetter(
        id=row["id"],
        tenant_id=TenantId(row["tenant_id"]),
        source=row["source"],
        line=row["line"],
        record_id=row["record_id"],
        offset=row["offset"],
        code=row["code"],
        message=row["message"],
        raw_length=row["raw_length"],
        stored_length=row["stored_length"],
        received_at=row["received_at"],
        status="replayed" if row["status"] == "replayed" else "pending",
        replayed_at=row["replayed_at"],
    )


class DeadLetterRepository:
    """Add, list, fetch and mark dead letters of one tenant. Replays write audit entries."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def add(
        self,
        tenant_id: TenantId,
        *,
        source: str,
        code: str,
        message: str,
        raw: bytes,
        received_at: datetime,
        line: int | None = None,
        record_id: int | None = None,
        offset: int | None = None,
    ) -> int:
        """Store one dead letter; returns its id."""
        values = _values(
            tenant_id,
            source=source,
            code=code,
            message=message,
            raw=raw,
            received_at=received_at,
            line=line,
            record_id=record_id,
            offset=offset,
        )
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=False)
            result = connection.execute(insert(dead_letters).values(values).returning(dead_letters.c.id))
            return int(result.scalar_one())

    def add_many(self, tenant_id: TenantId, items: Iterable[DeadLetter], *, received_at: datetime) -> int:
        """Store readers' dead letters (`core.records.DeadLetter`, `sample` as raw); returns how many."""
        values = []
        for item in items:
            if item.tenant != tenant_id:
                msg = f"dead letter for tenant {item.tenant!r} handed to tenant {tenant_id!r}"
                raise ValueError(msg)
            values.append(
                _values(
                    tenant_id,
                    source=item.source,
                    code=item.code,
                    message=item.reason,
                    raw=item.sample,
                    received_at=received_at,
                    line=item.line,
                    record_id=item.record_id,
                    offset=item.offset,
                )
            )
        if not values:
            return 0
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=False)
            connection.execute(insert(dead_letters), values)
        return len(values)

    def list(
        self, tenant_id: TenantId, *, status: DeadLetterStatus | None = None, limit: int = 100
    ) -> builtins.list[StoredDeadLetter]:
        """Oldest first (replay order), optionally one status."""
        query = select(
            *(column for column in dead_letters.c if column.name != "raw"),
            func.length(dead_letters.c.raw).label("stored_length"),
        ).where(dead_letters.c.tenant_id == tenant_id)
        if status is not None:
            query = query.where(dead_letters.c.status == status)
        query = query.order_by(dead_letters.c.id).limit(limit)
        with self._store.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [_stored(row) for row in rows]

    def get_raw(self, tenant_id: TenantId, dead_letter_id: int) -> bytes | None:
        """The stored bytes of one of the tenant's dead letters, for replay; None if it has no such entry."""
        query = select(dead_letters.c.raw).where(
            dead_letters.c.tenant_id == tenant_id, dead_letters.c.id == dead_letter_id
        )
        with self._store.read() as connection:
            raw = connection.execute(query).scalar_one_or_none()
        return None if raw is None else bytes(raw)

    def mark_replayed(self, tenant_id: TenantId, ids: Iterable[int], *, actor: str) -> int:
        """Mark the tenant's pending entries among `ids` replayed; returns how many changed.

        Ids of other tenants and entries already replayed are left alone.
        """
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        with self._store.write() as connection:
            now = self._store.now()
            changed = (
                connection.execute(
                    update(dead_letters)
                    .where(
                        dead_letters.c.tenant_id == tenant_id,
                        dead_letters.c.status == "pending",
                        dead_letters.c.id.in_(wanted),
                    )
                    .values(status="replayed", replayed_at=now)
                    .returning(dead_letters.c.id, dead_letters.c.source, dead_letters.c.code)
                )
                .mappings()
                .all()
            )
            for row in sorted(changed, key=lambda r: int(r["id"])):
                append_audit(
                    connection,
                    at=now,
                    actor=actor,
                    action="dead_letter.replay",
                    tenant_id=tenant_id,
                    object_type="dead_letter",
                    object_id=str(row["id"]),
                    details={"source": row["source"], "code": row["code"]},
                )
        return len(changed)


def _values(
    tenant_id: TenantId,
    *,
    source: str,
    code: str,
    message: str,
    raw: bytes,
    received_at: datetime,
    line: int | None,
    record_id: int | None,
    offset: int | None,
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "source": source,
        "line": line,
        "record_id": record_id,
        "offset": offset,
        "code": code,
        "message": message,
        "raw": bytes(raw[:RAW_CAP_BYTES]),
        "raw_length": len(raw),
        "received_at": received_at,
        "status": "pending",
        "replayed_at": None,
    }
