"""Vendor connectors: one module per vendor, each exporting `ACTIONS` (its Action classes).

A connector module is a table of endpoints and a few parse functions; everything that talks HTTP goes
through `respond.http.ConnectorHttp` (timeouts, tokens, retries, error bodies, redaction). Copy
`msgraph.py` to add one, then list its `ACTIONS` in `respond.registry.builtin_actions`.

This package holds only what several connectors share: reading inputs and the Microsoft identity
platform (Entra ID) token endpoint, used by Graph and Defender for Endpoint alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from watchfloor.core.errors import Location
from watchfloor.respond.actions import (
    Action,
    ActionContext,
    ActionResult,
    ConnectorConfigError,
    ConnectorError,
)
from watchfloor.respond.http import ClientCredentials, HttpOptions, check_base_url

DEFAULT_AUTHORITY: Final = "https://login.microsoftonline.com"
ENTRA_CONFIG: Final = ("tenant_id", "client_id", "client_secret", "authority")
ENTRA_SECRETS: Final = ("client_secret",)
# An Entra directory id: a GUID or a verified domain (contoso.onmicrosoft.com).
_DIRECTORY_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$")


class HttpAction(Action):
    """An action that calls a vendor over HTTP. `http` tunes timeouts, retries, TLS and the token
    cache; tests inject a recording `sleep` and a fresh `TokenCache` through it."""

    def __init__(self, *, http: HttpOptions | None = None) -> None:
        self.http = http or HttpOptions()

    @classmethod
    def where(cls, ctx: ActionContext) -> Location:
        return Location(tenant=ctx.tenant_id, path=cls.manifest.id)

    @classmethod
    def text_input(cls, ctx: ActionContext, inputs: Mapping[str, Any], name: str, default: str = "") -> str:
        """A non-empty string input (stripped), or `default`; missing and no default -> ConnectorError."""
        value = inputs.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if default:
                return default
            raise ConnectorError(
                f"input {name!r} is required", code="respond.invalid_input", location=cls.where(ctx)
            )
        if not isinstance(value, str):
            raise ConnectorError(
                f"input {name!r} must be a string, not {type(value).__name__}",
                code="respond.invalid_input",
                location=cls.where(ctx),
            )
        return value.strip()

    @classmethod
    def list_input(cls, ctx: ActionContext, inputs: Mapping[str, Any], name: str) -> list[str] | None:
        """An optional list of strings (a comma-separated string is accepted too)."""
        value = inputs.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return [item.strip() for item in value if item.strip()]
        raise ConnectorError(
            f"input {name!r} must be a list of strings", code="respond.invalid_input", location=cls.where(ctx)
        )

    @classmethod
    def nothing_to_undo(cls, done: ActionResult) -> ActionResult:
        """Rollback of a step that changed nothing (the target was already in the wanted state)."""
        return ActionResult(
            status="skipped",
            summary=f"nothing to undo: {cls.manifest.id} changed nothing ({done.summary})",
            changed=False,
        )


def entra_credentials(ctx: ActionContext, *, scope: str, connector: str) -> ClientCredentials:
    """Client credentials for the Microsoft identity platform v2.0 token endpoint of the tenant's
    directory, from the connector config keys in `ENTRA_CONFIG`."""
    config = ctx.config
    missing = [key for key in ("tenant_id", "client_id", "client_secret") if config.get(key) in (None, "")]
    if missing:
        raise ConnectorConfigError(
            f"{connector} connector for tenant {ctx.tenant_id} lacks {', '.join(missing)}",
            location=Location(tenant=ctx.tenant_id, path=connector),
        )
    directory = str(config["tenant_id"])
    if not _DIRECTORY_RE.fullmatch(directory):
        raise ConnectorConfigError(
            f"{connector} tenant_id must be the Entra directory id (a GUID or domain), got {directory!r}",
            location=Location(tenant=ctx.tenant_id, path=f"{connector}.tenant_id"),
        )
    authority = check_base_url(
        config.get("authority") or DEFAULT_AUTHORITY,
        key="authority",
        connector=connector,
        tenant_id=ctx.tenant_id,
    )
    return ClientCredentials(
        token_url=f"{authority}/{directory}/oauth2/v2.0/token",
        client_id=str(config["client_id"]),
        client_secret=str(config["client_secret"]),
        scope=scope,
    )
