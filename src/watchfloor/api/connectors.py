"""Connector credentials of a tenant: which connectors exist, which keys are set, set and delete them.

Values go in (PUT) and never come out: listing shows key names only, PUT answers 204 without a body, and
a 422 names the key, never its value. The store (`respond.secrets.CredentialStore`) seals them under the
server's secrets key and the repository audits the key names; without a store (no secrets key configured)
every route answers 503.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from watchfloor.api.context import Actor, ApiContext
from watchfloor.api.problems import ApiProblem, not_found
from watchfloor.respond.secrets import (
    KEY_SETTING,
    MAX_VALUE_CHARS,
    CredentialsInvalidError,
    CredentialStore,
    UnknownConnectorError,
    shown_key,
)

if TYPE_CHECKING:
    from watchfloor.core.types import TenantId

ConnectorName = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$", description="e.g. mde, okta")
]


class CredentialsPut(BaseModel):
    """The values, and unknown members, are checked by the endpoint, not by pydantic: a validation error's
    `loc` would carry a mistyped key (a pasted secret?) back to the client."""

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    values: dict[str, JsonValue] = Field(
        min_length=1,
        description=f"config key -> string value (at most {MAX_VALUE_CHARS} characters); replaces what is "
        "stored for the connector",
    )

    def __repr__(self) -> str:
        return f"CredentialsPut(keys={sorted(self.values)!r}, values=[redacted])"

    __str__ = __repr__


class ConnectorOut(BaseModel):
    connector: str
    actions: list[str]
    config_keys: list[str] = Field(description="every config key the connector's actions read")
    secret_keys: list[str] = Field(description="which of config_keys are secrets")
    keys_set: list[str] = Field(description="which keys this tenant has set (names only)")
    missing_keys: list[str] = Field(description="config_keys not set for this tenant")
    key_id: str | None = Field(None, description="id of the secrets key the stored values are sealed with")


def credential_store(ctx: ApiContext) -> CredentialStore:
    """The context's credential store; 503 when the server runs without one (no secrets key)."""
    store: Any = getattr(ctx, "credentials", None)
    if not isinstance(store, CredentialStore):
        raise ApiProblem(
            503,
            "connector credentials are disabled: the server has no secrets key. Set "
            f"{KEY_SETTING} (base64 of 32 random bytes) and restart",
            code="api.credentials_disabled",
        )
    return store


def _invalid(exc: CredentialsInvalidError | UnknownConnectorError) -> ApiProblem:
    if isinstance(exc, UnknownConnectorError):
        return ApiProblem(404, exc.message, code=exc.code)
    return ApiProblem(422, exc.message, code=exc.code)


def _strings(body: CredentialsPut) -> dict[str, str]:
    """The values when every one is a string; else 422 naming the key (only when it looks like one)."""
    if body.model_extra:
        raise ApiProblem(422, "the body may only hold `values`", code=CredentialsInvalidError.code)
    values = body.values
    bad = sorted(shown_key(k) for k, v in values.items() if not isinstance(v, str))
    if bad:
        raise ApiProblem(
            422, f"config values must be strings: {', '.join(bad)}", code=CredentialsInvalidError.code
        )
    return {k: v for k, v in values.items() if isinstance(v, str)}


def routes(router: APIRouter, ctx: ApiContext) -> None:
    @router.get("/tenants/{tenant}/connectors", tags=["connectors"])
    def list_connectors(tenant: str) -> list[ConnectorOut]:
        """Every connector the registered actions use, its config keys and which this tenant has set."""
        store = credential_store(ctx)
        tid: TenantId = ctx.tenant_id(tenant)
        stored = {info.connector: info for info in store.credentials(tid)}
        found: list[ConnectorOut] = []
        for name, spec in store.specs().items():
            info = stored.get(name)
            keys_set = sorted(info.keys) if info is not None else []
            found.append(
                ConnectorOut(
                    connector=name,
                    actions=list(spec.actions),
                    config_keys=list(spec.config),
                    secret_keys=list(spec.secrets),
                    keys_set=keys_set,
                    missing_keys=[k for k in spec.config if k not in keys_set],
                    key_id=info.key_id if info is not None else None,
                )
            )
        return found

    @router.put(
        "/tenants/{tenant}/connectors/{connector}/credentials",
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["connectors"],
    )
    def put_credentials(
        tenant: str, connector: ConnectorName, body: CredentialsPut, actor: Actor
    ) -> Response:
        """Seal and store the connector's configuration (replacing it). The values are never returned."""
        store = credential_store(ctx)
        tid = ctx.tenant_id(tenant)
        try:
            store.put(tid, connector, _strings(body), actor=actor)
        except (CredentialsInvalidError, UnknownConnectorError) as exc:
            raise _invalid(exc) from None
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"Cache-Control": "no-store"})

    @router.delete(
        "/tenants/{tenant}/connectors/{connector}/credentials",
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["connectors"],
    )
    def delete_credentials(tenant: str, connector: ConnectorName, actor: Actor) -> Response:
        store = credential_store(ctx)
        tid = ctx.tenant_id(tenant)
        if not store.delete(tid, connector, actor=actor):
            raise not_found(f"tenant {tenant!r} has no credentials for connector {connector!r}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)
