"""External dynamic lists over HTTP: the lists firewalls poll, and the operator routes that manage them.

Firewall-facing (`build_edl_router(db)`, mounted at the root, NOT under the operator token):

    GET /edl/{tenant}/{kind}.txt        kind: ip | domain | url

answers `text/plain`, one value per line (what PAN-OS external dynamic lists, FortiGate external threat
feeds and pfSense URL table aliases read), with `Cache-Control: no-store` and a strong `ETag`
(`If-None-Match` -> 304). The poller proves it may read the tenant's lists with an EDL token
(`wfe_...`, made by `POST /api/v1/tenants/{tenant}/edl-tokens`), either as HTTP basic auth (user name =
tenant id, password = token: PAN-OS and FortiGate) or as `?token=` (pfSense fetches a plain URL). A missing,
wrong, revoked or other tenant's token, an unknown or retired tenant: 401 with
`WWW-Authenticate: Basic realm="watchfloor-edl"`, the same answer for all, so the endpoint says nothing
about which tenants exist. An authenticated request for an unknown list kind: 404.

Operator routes (`routes(router, ctx)`, under `/api/v1` and the operator token): list, add and remove
entries; create, list and revoke EDL tokens.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from watchfloor.api.context import Actor, ApiContext
from watchfloor.api.problems import ApiProblem, not_found, problem_route_class
from watchfloor.core.types import TenantId, tenant_id
from watchfloor.respond.edl import LIST_KINDS, MAX_URL_LENGTH, MEDIA_TYPE, ListKind, etag, render
from watchfloor.storage import Database
from watchfloor.storage.tokens import HashScheme

EDL_PREFIX: Final = "/edl"
REALM: Final = 'Basic realm="watchfloor-edl", charset="UTF-8"'
MAX_TTL_MINUTES: Final = 366 * 24 * 60
_UNAUTHORIZED: Final = (
    "send an EDL token: HTTP basic auth with the tenant id as user name and the token as password, "
    "or ?token=<token>"
)


# -- firewall-facing ---------------------------------------------------------------------------------
def _no_guard(_request: Request) -> None:
    """The firewall path authenticates in the endpoint (per tenant), not with the operator token."""


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic` header, else None. Never raises."""
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else None


def _if_none_match(header: str | None, tag: str) -> bool:
    if header is None:
        return False
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or tag in candidates


def build_edl_router(db: Database) -> APIRouter:
    """The router firewalls poll: `GET /edl/{tenant}/{kind}.txt`, authenticated by per-tenant EDL tokens."""
    router = APIRouter(prefix=EDL_PREFIX, route_class=problem_route_class(_no_guard))

    def authenticate(tenant: str, request: Request, token: str | None) -> TenantId:
        refused = ApiProblem(401, _UNAUTHORIZED, code="api.unauthorized", headers={"WWW-Authenticate": REALM})
        try:
            tid = tenant_id(tenant)
        except ValueError:
            raise refused from None
        basic = _basic_credentials(request.headers.get("authorization"))
        presented = token
        if basic is not None:
            user, password = basic
            if user != tid:
                raise refused
            presented = password
        if not presented or not db.edl.check_token(tid, presented):
            raise refused
        return tid

    @router.get(
        "/{tenant}/{kind}.txt",
        tags=["edl"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "one value per line"}},
    )
    def feed(
        tenant: str,
        kind: str,
        request: Request,
        token: Annotated[
            str | None, Query(description="the EDL token, for pollers without basic auth")
        ] = None,
    ) -> Response:
        """The tenant's active `kind` list as firewalls read it (expired entries left out)."""
        tid = authenticate(tenant, request, token)
        if kind not in LIST_KINDS:
            raise not_found(f"no list {kind!r}: use one of {', '.join(LIST_KINDS)}")
        list_: ListKind = "ip" if kind == "ip" else "domain" if kind == "domain" else "url"
        body = render(db.edl.list_active(tid, kind=list_), kind=list_, at=db.edl.now())
        tag = etag(body)
        headers = {"ETag": tag, "Cache-Control": "no-store"}
        if _if_none_match(request.headers.get("if-none-match"), tag):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(body, media_type=MEDIA_TYPE, headers=headers)

    return router


# -- operator routes -------------------------------------------------------------------------------
class EdlEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tenant_id: str
    list_kind: ListKind
    value: str
    reason: str
    added_by: str
    added_at: datetime
    expires_at: datetime | None
    source_ref: str | None


class EdlAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=MAX_URL_LENGTH + 8, description="IP/CIDR, domain or URL")
    reason: str = Field(min_length=1, max_length=500, description="why it is blocked")
    ttl_minutes: int | None = Field(
        default=None, ge=1, le=MAX_TTL_MINUTES, description="minutes until it lapses (default: never)"
    )
    source_ref: str | None = Field(default=None, max_length=200, description="incident or run id")


class EdlAdded(BaseModel):
    entry: EdlEntryOut
    outcome: str = Field(description="added, extended (a later expiry) or unchanged")


class EdlTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=200, description="which firewall polls with it")


class EdlTokenOut(BaseModel):
    """What the server knows about an EDL token: never the secret or its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant_id: str
    description: str
    hash_scheme: HashScheme
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class EdlTokenCreated(BaseModel):
    token: EdlTokenOut
    plaintext: str = Field(description="the token to configure in the firewall; it is not shown again")


def routes(router: APIRouter, ctx: ApiContext) -> None:
    db = ctx.db

    @router.get("/tenants/{tenant}/edl", tags=["edl"])
    def list_entries(tenant: str, kind: ListKind | None = None) -> list[EdlEntryOut]:
        """The entries served now (expired ones left out), by kind then value."""
        found = db.edl.list_active(ctx.tenant_id(tenant), kind=kind)
        return [EdlEntryOut.model_validate(e) for e in found]

    @router.post("/tenants/{tenant}/edl/{kind}", tags=["edl"])
    def add_entry(tenant: str, kind: ListKind, body: EdlAdd, actor: Actor) -> EdlAdded:
        """Block a value (idempotent: adding it again extends its expiry). A value that may not be listed
        is 422 with the reason."""
        tid = ctx.tenant_id(tenant)
        expires_at = None if body.ttl_minutes is None else db.edl.now() + timedelta(minutes=body.ttl_minutes)
        change = db.edl.add(
            tid,
            kind=kind,
            value=body.value,
            reason=body.reason,
            actor=actor,
            expires_at=expires_at,
            source_ref=body.source_ref,
        )
        return EdlAdded(entry=EdlEntryOut.model_validate(change.entry), outcome=change.outcome)

    @router.delete("/tenants/{tenant}/edl/{kind}", status_code=status.HTTP_204_NO_CONTENT, tags=["edl"])
    def remove_entry(
        tenant: str,
        kind: ListKind,
        value: Annotated[str, Query(min_length=1, max_length=MAX_URL_LENGTH + 8)],
        actor: Actor,
    ) -> Response:
        """Unblock a value (`?value=`, as listed or in any form that normalises to it)."""
        if not db.edl.remove(ctx.tenant_id(tenant), kind=kind, value=value, actor=actor):
            raise not_found(f"tenant {tenant!r} has no {kind} entry {value!r}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/tenants/{tenant}/edl-tokens", status_code=status.HTTP_201_CREATED, tags=["edl"])
    def create_edl_token(
        tenant: str, body: EdlTokenCreate, actor: Actor, response: Response
    ) -> EdlTokenCreated:
        """A new read-only EDL token. The response carries the plaintext this once (`no-store`)."""
        created = db.edl.create_token(ctx.tenant_id(tenant), description=body.description, actor=actor)
        response.headers["Cache-Control"] = "no-store"
        return EdlTokenCreated(token=EdlTokenOut.model_validate(created.token), plaintext=created.plaintext)

    @router.get("/tenants/{tenant}/edl-tokens", tags=["edl"])
    def list_edl_tokens(tenant: str, include_revoked: bool = True) -> list[EdlTokenOut]:
        """The tenant's EDL tokens, oldest first, with when a firewall last polled with each."""
        found = db.edl.list_tokens(ctx.tenant_id(tenant), include_revoked=include_revoked)
        return [EdlTokenOut.model_validate(t) for t in found]

    @router.post("/tenants/{tenant}/edl-tokens/{token_id}/revoke", tags=["edl"])
    def revoke_edl_token(tenant: str, token_id: str, actor: Actor) -> EdlTokenOut:
        """Revoke one of the tenant's EDL tokens (idempotent). Another tenant's token id is 404."""
        return EdlTokenOut.model_validate(db.edl.revoke_token(ctx.tenant_id(tenant), token_id, actor=actor))
