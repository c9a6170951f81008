"""External dynamic lists: a tenant's blocked ip/domain/url values, and the read-only tokens firewalls poll
them with.

Entries are keyed on (tenant, list kind, canonical value): adding a value again extends its expiry (never
shortens it), adding it again after it expired starts a new block. Values go through
`respond.edl.normalize`, so the table holds only canonical, line-safe values.

EDL tokens are `wfe_<id>_<secret>` (same shape and hashing as intake tokens, see `tokens.py`), kept in their
own table: an intake token (on a customer's log relay) must never read block lists, and an EDL token (in a
firewall's configuration) must never send events. A token reads only its own tenant's lists.
"""

from __future__ import annotations

import builtins
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, delete, func, select, update

from watchfloor.core.types import TenantId
from watchfloor.respond.edl import EdlEntry, ListKind, list_kind, normalize
from watchfloor.storage.audit import append_audit
from watchfloor.storage.engine import Store, dialect_insert
from watchfloor.storage.schema import edl_entries, edl_tokens, tenants
from watchfloor.storage.tenants import require_tenant
from watchfloor.storage.tokens import (
    LAST_USED_RESOLUTION,
    HashScheme,
    digest,
    hash_scheme,
    insert_new_token,
    revoke_token_row,
)

EDL_TOKEN_PREFIX: Final = "wfe_"  # noqa: S105 - the public prefix, not a secret
EDL_TOKEN_RE: Final = re.compile(r"wfe_([a-z0-9]{8})_([A-Za-z0-9_-]{43})")

Outcome = Literal["added", "extended", "unchanged"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EdlChange:
    """What `add` did: a new block (`added`), a later expiry (`extended`), or nothing (`unchanged`)."""

    entry: EdlEntry
    outcome: Outcome

    @property
    def changed(self) -> bool:
        return self.outcome != "unchanged"


@dataclass(frozen=True, slots=True, kw_only=True)
class EdlToken:
    """What storage knows about an EDL token: never the secret."""

    id: str
    tenant_id: TenantId
    description: str
    hash_scheme: HashScheme
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None  # when a firewall last polled with it (minute resolution)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedEdlToken:
    """The result of `create_token`: the stored token and its plaintext, shown to the user this once."""

    token: EdlToken
    plaintext: str = field(repr=False)


def parse_edl_token(plaintext: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed EDL token, else None. Never raises on any string."""
    match = EDL_TOKEN_RE.fullmatch(plaintext)
    return None if match is None else (match.group(1), match.group(2))


def _entry(row: Mapping[Any, Any]) -> EdlEntry:
    return EdlEntry(
        tenant_id=TenantId(row["tenant_id"]),
        list_kind=list_kind(row["list_kind"]),
        value=row["value"],
        reason=row["reason"],
        added_by=row["added_by"],
        added_at=row["added_at"],
        expires_at=row["expires_at"],
        source_ref=row["source_ref"],
    )


def _token(row: Mapping[Any, Any]) -> EdlToken:
    return EdlToken(
        id=row["id"],
        tenant_id=TenantId(row["tenant_id"]),
        description=row["description"],
        hash_scheme="hmac-sha256" if row["hash_scheme"] == "hmac-sha256" else "sha256",
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def _key(tenant_id: TenantId, kind: ListKind, value: str) -> ColumnElement[bool]:
    return (
        (edl_entries.c.tenant_id == tenant_id)
        & (edl_entries.c.list_kind == kind)
        & (edl_entries.c.value == value)
    )


def _active(at: datetime) -> ColumnElement[bool]:
    return edl_entries.c.expires_at.is_(None) | (edl_entries.c.expires_at > at)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


_PUBLIC_TOKEN_COLUMNS = [column for column in edl_tokens.c if column.name != "secret_hash"]


class EdlRepository:
    """A tenant's external dynamic lists (add, remove, read what is active) and their poll tokens.

    Every change writes an audit entry in its transaction; a no-op (same expiry, unknown value, revoking
    twice) writes none.
    """

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- entries ---------------------------------------------------------------------------------
    def add(
        self,
        tenant_id: TenantId,
        *,
        kind: str,
        value: str,
        reason: str,
        actor: str,
        expires_at: datetime | None = None,
        source_ref: str | None = None,
    ) -> EdlChange:
        """Block `value` on the tenant's `kind` list until `expires_at` (None: until removed).

        Idempotent on (tenant, kind, canonical value): an active entry keeps its reason and gets the later
        of the two expiries; an expired one is replaced. Raises `EdlValueError` (a ValueError) for a value
        that may not be listed, ValueError for an expiry not in the future.
        """
        list_ = list_kind(kind)
        canonical = normalize(list_, value)
        if not reason.strip():
            msg = "an EDL entry needs a reason (what it blocks and why)"
            raise ValueError(msg)
        key = _key(tenant_id, list_, canonical)
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            now = self._store.now()
            if expires_at is not None and expires_at <= now:
                msg = f"expiry {expires_at.isoformat()} is not in the future"
                raise ValueError(msg)
            fresh = {
                "reason": reason,
                "added_by": actor,
                "added_at": now,
                "expires_at": expires_at,
                "source_ref": source_ref,
            }
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING.
            inserted = connection.execute(
                dialect_insert(connection, edl_entries)
                .values(tenant_id=tenant_id, list_kind=list_, value=canonical, **fresh)
                .on_conflict_do_nothing()
                .returning(edl_entries.c.value)
            ).first()
            before = None
            if inserted is None:
                before = connection.execute(select(edl_entries).where(key).with_for_update()).mappings().one()
            outcome: Outcome
            if before is None:
                outcome = "added"
            elif before["expires_at"] is not None and before["expires_at"] <= now:
                connection.execute(update(edl_entries).where(key).values(**fresh))
                outcome = "added"
            else:
                old = before["expires_at"]
                new = None if old is None or expires_at is None else max(old, expires_at)
                if new == old:
                    return EdlChange(entry=_entry(before), outcome="unchanged")
                connection.execute(update(edl_entries).where(key).values(expires_at=new))
                outcome = "extended"
            row = connection.execute(select(edl_entries).where(key)).mappings().one()
            append_audit(
                connection,
                at=now,
                actor=actor,
                action=f"edl.{'add' if outcome == 'added' else 'extend'}",
                tenant_id=tenant_id,
                object_type="edl_entry",
                object_id=f"{list_}:{canonical}",
                details={
                    "reason": row["reason"],
                    "expires_at": _iso(row["expires_at"]),
                    "previous_expires_at": None if before is None else _iso(before["expires_at"]),
                    "source_ref": source_ref,
                },
            )
        return EdlChange(entry=_entry(row), outcome=outcome)

    def remove(self, tenant_id: TenantId, *, kind: str, value: str, actor: str) -> bool:
        """Unblock `value`; False when the tenant's list has no such value (expired ones count as there)."""
        list_ = list_kind(kind)
        canonical = normalize(list_, value)
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            removed = connection.execute(
                delete(edl_entries).where(_key(tenant_id, list_, canonical))
            ).rowcount
            if removed:
                append_audit(
                    connection,
                    at=self._store.now(),
                    actor=actor,
                    action="edl.remove",
                    tenant_id=tenant_id,
                    object_type="edl_entry",
                    object_id=f"{list_}:{canonical}",
                )
        return bool(removed)

    def get(self, tenant_id: TenantId, *, kind: str, value: str) -> EdlEntry | None:
        """The stored entry for `value` (active or expired), found by its canonical form."""
        list_ = list_kind(kind)
        key = _key(tenant_id, list_, normalize(list_, value))
        with self._store.read() as connection:
            row = connection.execute(select(edl_entries).where(key)).mappings().first()
        return None if row is None else _entry(row)

    def list_active(self, tenant_id: TenantId, *, kind: str | None = None) -> builtins.list[EdlEntry]:
        """The entries served now, by kind then value (expired ones are left out)."""
        query = select(edl_entries).where(edl_entries.c.tenant_id == tenant_id)
        with self._store.read() as connection:
            query = query.where(_active(self._store.now()))
            if kind is not None:
                query = query.where(edl_entries.c.list_kind == list_kind(kind))
            rows = connection.execute(query.order_by(edl_entries.c.list_kind, edl_entries.c.value)).mappings()
            return [_entry(row) for row in rows]

    def count(self, tenant_id: TenantId, *, kind: str | None = None) -> int:
        """How many entries are served now."""
        query = select(func.count()).select_from(edl_entries).where(edl_entries.c.tenant_id == tenant_id)
        if kind is not None:
            query = query.where(edl_entries.c.list_kind == list_kind(kind))
        with self._store.read() as connection:
            return int(connection.execute(query.where(_active(self._store.now()))).scalar_one())

    def now(self) -> datetime:
        """The repository's clock (what "active" is measured against)."""
        return self._store.now()

    # -- poll tokens -----------------------------------------------------------------------------
    @property
    def _scheme(self) -> HashScheme:
        return hash_scheme(self._store.token_pepper)

    def create_token(self, tenant_id: TenantId, *, description: str, actor: str) -> CreatedEdlToken:
        """A new read-only EDL token for an active tenant. Keep `plaintext`: it cannot be shown again."""
        scheme = self._scheme
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            now = self._store.now()
            values, secret = insert_new_token(
                connection,
                edl_tokens,
                tenant_id,
                description=description,
                scheme=scheme,
                pepper=self._store.token_pepper,
                now=now,
            )
            token_id = values["id"]
            append_audit(
                connection,
                at=now,
                actor=actor,
                action="edl.token_create",
                tenant_id=tenant_id,
                object_type="edl_token",
                object_id=token_id,
                details={"description": description, "hash_scheme": scheme},
            )
        return CreatedEdlToken(token=_token(values), plaintext=f"{EDL_TOKEN_PREFIX}{token_id}_{secret}")

    def list_tokens(self, tenant_id: TenantId, *, include_revoked: bool = True) -> builtins.list[EdlToken]:
        """The tenant's EDL tokens, oldest first, without secrets or hashes."""
        query = select(*_PUBLIC_TOKEN_COLUMNS).where(edl_tokens.c.tenant_id == tenant_id)
        if not include_revoked:
            query = query.where(edl_tokens.c.revoked_at.is_(None))
        with self._store.read() as connection:
            rows = connection.execute(query.order_by(edl_tokens.c.created_at, edl_tokens.c.id)).mappings()
            return [_token(row) for row in rows]

    def revoke_token(self, tenant_id: TenantId, token_id: str, *, actor: str) -> EdlToken:
        """Revoke one of the tenant's EDL tokens (idempotent); another tenant's token id is not found."""
        mine = (edl_tokens.c.id == token_id) & (edl_tokens.c.tenant_id == tenant_id)
        with self._store.write() as connection:
            now = self._store.now()
            if revoke_token_row(connection, edl_tokens, tenant_id, token_id, now=now, what="EDL token"):
                append_audit(
                    connection,
                    at=now,
                    actor=actor,
                    action="edl.token_revoke",
                    tenant_id=tenant_id,
                    object_type="edl_token",
                    object_id=token_id,
                )
            row = connection.execute(select(*_PUBLIC_TOKEN_COLUMNS).where(mine)).mappings().one()
        return _token(row)

    def check_token(self, tenant_id: TenantId, plaintext: str, *, touch: bool = True) -> bool:
        """Whether `plaintext` is a live EDL token of `tenant_id` (an active tenant). Another tenant's token,
        a revoked one, an intake token or any other string is False. With `touch`, `last_used_at` is
        refreshed when older than a minute."""
        parsed = parse_edl_token(plaintext)
        if parsed is None:
            return False
        token_id, secret = parsed
        query = (
            select(edl_tokens.c.secret_hash, edl_tokens.c.hash_scheme, edl_tokens.c.last_used_at)
            .join(tenants, tenants.c.id == edl_tokens.c.tenant_id)
            .where(
                edl_tokens.c.id == token_id,
                edl_tokens.c.tenant_id == tenant_id,
                edl_tokens.c.revoked_at.is_(None),
                tenants.c.status == "active",
            )
        )
        with self._store.read() as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            # Same work as a known id, so timing says little about which ids exist.
            hmac.compare_digest(digest(secret, scheme="sha256", pepper=None), bytes(32))
            return False
        scheme: HashScheme = "hmac-sha256" if row["hash_scheme"] == "hmac-sha256" else "sha256"
        if scheme == "hmac-sha256" and self._store.token_pepper is None:
            return False
        candidate = digest(secret, scheme=scheme, pepper=self._store.token_pepper)
        if not hmac.compare_digest(candidate, bytes(row["secret_hash"])):
            return False
        if touch:
            self._touch(token_id, row["last_used_at"])
        return True

    def _touch(self, token_id: str, last_used_at: datetime | None) -> None:
        now = self._store.now()
        if last_used_at is not None and now - last_used_at < LAST_USED_RESOLUTION:
            return
        stale = edl_tokens.c.last_used_at.is_(None) | (edl_tokens.c.last_used_at < now - LAST_USED_RESOLUTION)
        with self._store.write() as connection:
            connection.execute(
                update(edl_tokens).where(edl_tokens.c.id == token_id, stale).values(last_used_at=now)
            )
