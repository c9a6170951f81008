"""Intake tokens: how a sender proves which tenant its data belongs to.

A token is `wf_<id>_<secret>`: an 8-character public id (`[a-z0-9]`) and a 43-character secret
(`secrets.token_urlsafe(32)`, 256 bits). The plaintext is returned once, by `create`; the database keeps
the id and SHA-256 of the secret (HMAC-SHA256 with the server pepper when one is configured), compared in
constant time. `resolve` is the one call here without a tenant argument: it is how the tenant is found.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from watchfloor.core.types import TenantId
from watchfloor.storage.audit import append_audit
from watchfloor.storage.engine import Store
from watchfloor.storage.errors import NotFoundError, StorageError, where
from watchfloor.storage.schema import intake_tokens, tenants
from watchfloor.storage.tenants import require_tenant

TOKEN_PREFIX = "wf_"  # noqa: S105 - the public prefix, not a secret
TOKEN_ID_LENGTH = 8
TOKEN_SECRET_BYTES = 32
TOKEN_SECRET_LENGTH = 43
TOKEN_RE = re.compile(r"wf_([a-z0-9]{8})_([A-Za-z0-9_-]{43})")
# `last_used_at` is refreshed at most this often per token, so `resolve` rarely writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_ATTEMPTS = 5

HashScheme = Literal["sha256", "hmac-sha256"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeToken:
    """What storage knows about a token: never the secret."""

    id: str
    tenant_id: TenantId
    description: str
    hash_scheme: HashScheme
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedToken:
    """The result of `create`: the stored token and its plaintext, shown to the user this once."""

    token: IntakeToken
    plaintext: str = field(repr=False)


def digest(secret: str, *, scheme: HashScheme, pepper: bytes | None) -> bytes:
    """The stored form of a secret: SHA-256, or HMAC-SHA256 keyed with the server pepper."""
    data = secret.encode("ascii")
    if scheme == "hmac-sha256":
        if pepper is None:
            msg = "hmac-sha256 needs the server pepper"
            raise ValueError(msg)
        return hmac.new(pepper, data, hashlib.sha256).digest()
    return hashlib.sha256(data).digest()


def parse_token(plaintext: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None. Never raises on any string."""
    match = TOKEN_RE.fullmatch(plaintext)
    if match is None:
        return None
    return match.group(1), match.group(2)


def _token(row: Mapping[Any, Any]) -> IntakeToken:
    return IntakeToken(
        id=row["id"],
        tenant_id=TenantId(row["tenant_id"]),
        description=row["description"],
        hash_scheme="hmac-sha256" if row["hash_scheme"] == "hmac-sha256" else "sha256",
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


_PUBLIC_COLUMNS = [column for column in intake_tokens.c if column.name != "secret_hash"]


def insert_new_token(
    connection: Connection,
    table: Table,
    tenant_id: TenantId,
    *,
    description: str,
    scheme: HashScheme,
    pepper: bytes | None,
    now: datetime,
) -> tuple[dict[str, Any], str]:
    """Insert a token row with a freshly drawn id and secret (only the secret's hash is stored) into `table`
    (intake or EDL tokens); (the row's values, the secret). A taken id is drawn again, a few times."""
    for _attempt in range(_ID_ATTEMPTS):
        token_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(TOKEN_ID_LENGTH))
        secret = secrets.token_urlsafe(TOKEN_SECRET_BYTES)
        values = {
            "id": token_id,
            "tenant_id": tenant_id,
            "description": description,
            "secret_hash": digest(secret, scheme=scheme, pepper=pepper),
            "hash_scheme": scheme,
            "created_at": now,
            "revoked_at": None,
            "last_used_at": None,
        }
        try:
            with connection.begin_nested():
                connection.execute(insert(table).values(values))
        except IntegrityError:
            continue  # id taken (1 in 36**8 per existing token): draw again
        return values, secret
    msg = f"could not draw a free token id in {_ID_ATTEMPTS} attempts"
    raise StorageError(msg, location=where(tenant_id, table.name))


def hash_scheme(pepper: bytes | None) -> HashScheme:
    """How new token secrets are hashed: keyed with the server's pepper when there is one."""
    return "sha256" if pepper is None else "hmac-sha256"


def revoke_token_row(
    connection: Connection, table: Table, tenant_id: TenantId, token_id: str, *, now: datetime, what: str
) -> bool:
    """Revoke the tenant's token `token_id` in `table` (intake or EDL tokens); True when it was live until
    now, False when already revoked (the first time is kept). Another tenant's id is NotFoundError, exactly
    like an unknown one."""
    mine = (table.c.id == token_id) & (table.c.tenant_id == tenant_id)
    if connection.execute(select(table.c.id).where(mine)).first() is None:
        raise NotFoundError(
            f"tenant {tenant_id!r} has no {what} {token_id!r}",
            location=where(tenant_id, table.name, token_id),
        )
    changed = connection.execute(
        update(table).where(mine, table.c.revoked_at.is_(None)).values(revoked_at=now)
    ).rowcount
    return bool(changed)


class TokenRepository:
    """Create, list, revoke and resolve intake tokens. A tenant may hold several."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def _scheme(self) -> HashScheme:
        return hash_scheme(self._store.token_pepper)

    def create(self, tenant_id: TenantId, *, description: str, actor: str) -> CreatedToken:
        """A new token for an active tenant. Keep `plaintext`: it cannot be shown again."""
        scheme = self._scheme
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            now = self._store.now()
            values, secret = insert_new_token(
                connection,
                intake_tokens,
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
                action="token.create",
                tenant_id=tenant_id,
                object_type="intake_token",
                object_id=token_id,
                details={"description": description, "hash_scheme": scheme},
            )
        return CreatedToken(token=_token(values), plaintext=f"{TOKEN_PREFIX}{token_id}_{secret}")

    def list(self, tenant_id: TenantId, *, include_revoked: bool = True) -> builtins.list[IntakeToken]:
        """The tenant's tokens, oldest first, without secrets or hashes."""
        query = select(*_PUBLIC_COLUMNS).where(intake_tokens.c.tenant_id == tenant_id)
        if not include_revoked:
            query = query.where(intake_tokens.c.revoked_at.is_(None))
        query = query.order_by(intake_tokens.c.created_at, intake_tokens.c.id)
        with self._store.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [_token(row) for row in rows]

    def revoke(self, tenant_id: TenantId, token_id: str, *, actor: str) -> IntakeToken:
        """Revoke one of the tenant's tokens; revoking twice keeps the first time.

        A token id of another tenant is "not found", exactly like an unknown id.
        """
        mine = (intake_tokens.c.id == token_id) & (intake_tokens.c.tenant_id == tenant_id)
        with self._store.write() as connection:
            now = self._store.now()
            if revoke_token_row(connection, intake_tokens, tenant_id, token_id, now=now, what="token"):
                append_audit(
                    connection,
                    at=now,
                    actor=actor,
                    action="token.revoke",
                    tenant_id=tenant_id,
                    object_type="intake_token",
                    object_id=token_id,
                )
            row = connection.execute(select(*_PUBLIC_COLUMNS).where(mine)).mappings().one()
        return _token(row)

    def resolve(self, plaintext: str, *, touch: bool = True) -> TenantId | None:
        """The tenant a token belongs to; None when malformed, unknown, revoked, or the tenant is retired.

        With `touch`, `last_used_at` is refreshed when older than `LAST_USED_RESOLUTION`.
        """
        parsed = parse_token(plaintext)
        if parsed is None:
            return None
        token_id, secret = parsed
        query = (
            select(
                intake_tokens.c.tenant_id,
                intake_tokens.c.secret_hash,
                intake_tokens.c.hash_scheme,
                intake_tokens.c.last_used_at,
            )
            .join(tenants, tenants.c.id == intake_tokens.c.tenant_id)
            .where(
                intake_tokens.c.id == token_id,
                intake_tokens.c.revoked_at.is_(None),
                tenants.c.status == "active",
            )
        )
        with self._store.read() as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            # Same work as a known id, so timing says little about which ids exist.
            hmac.compare_digest(digest(secret, scheme="sha256", pepper=None), bytes(32))
            return None
        scheme: HashScheme = "hmac-sha256" if row["hash_scheme"] == "hmac-sha256" else "sha256"
        if scheme == "hmac-sha256" and self._store.token_pepper is None:
            return None
        candidate = digest(secret, scheme=scheme, pepper=self._store.token_pepper)
        if not hmac.compare_digest(candidate, bytes(row["secret_hash"])):
            return None
        if touch:
            self._touch(token_id, row["last_used_at"])
        return TenantId(row["tenant_id"])

    def _touch(self, token_id: str, last_used_at: datetime | None) -> None:
        now = self._store.now()
        if last_used_at is not None and now - last_used_at < LAST_USED_RESOLUTION:
            return
        stale = intake_tokens.c.last_used_at.is_(None) | (
            intake_tokens.c.last_used_at < now - LAST_USED_RESOLUTION
        )
        with self._store.write() as connection:
            connection.execute(
                update(intake_tokens).where(intake_tokens.c.id == token_id, stale).values(last_used_at=now)
            )
