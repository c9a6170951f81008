"""Intake tokens: created with the plaintext shown exactly once, listed without secrets, revoked."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from watchfloor.api.context import Actor, ApiContext
from watchfloor.storage.tokens import HashScheme


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=200, description="what sends with it, e.g. 'fluent-bit'")


class TokenOut(BaseModel):
    """What the server knows about a token: never the secret or its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant_id: str
    description: str
    hash_scheme: HashScheme
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class TokenCreated(BaseModel):
    token: TokenOut
    plaintext: str = Field(description="the token to configure in the sender; it is not shown again")


def routes(router: APIRouter, ctx: ApiContext) -> None:
    db = ctx.db

    @router.post("/tenants/{tenant}/tokens", status_code=status.HTTP_201_CREATED, tags=["tokens"])
    def create_token(tenant: str, body: TokenCreate, actor: Actor, response: Response) -> TokenCreated:
        """A new intake token. The response carries the plaintext this once (`Cache-Control: no-store`)."""
        created = db.tokens.create(ctx.tenant_id(tenant), description=body.description, actor=actor)
        response.headers["Cache-Control"] = "no-store"
        return TokenCreated(token=TokenOut.model_validate(created.token), plaintext=created.plaintext)

    @router.get("/tenants/{tenant}/tokens", tags=["tokens"])
    def list_tokens(tenant: str, include_revoked: bool = True) -> list[TokenOut]:
        """The tenant's tokens, oldest first, without secrets."""
        found = db.tokens.list(ctx.tenant_id(tenant), include_revoked=include_revoked)
        return [TokenOut.model_validate(t) for t in found]

    @router.post("/tenants/{tenant}/tokens/{token_id}/revoke", tags=["tokens"])
    def revoke_token(tenant: str, token_id: str, actor: Actor) -> TokenOut:
        """Revoke one of the tenant's tokens (idempotent). Another tenant's token id is 404."""
        return TokenOut.model_validate(db.tokens.revoke(ctx.tenant_id(tenant), token_id, actor=actor))
