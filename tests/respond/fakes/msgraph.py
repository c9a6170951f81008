"""Stateful fakes of the Microsoft identity platform token endpoint and of Microsoft Graph v1.0, as
documented: requests, responses and error bodies (OAuth2 `{error, error_description, error_codes, ...}`,
Graph `{"error": {"code", "message", "innerError": {...}}}`).

Only what the msgraph connector uses: the v2.0 token endpoint (client credentials), users (GET, PATCH
accountEnabled), revokeSignInSessions, inbox messageRules (list with `@odata.nextLink` paging, delete).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
DIRECTORY_ID = "6f1c2b9e-4d4b-4f6a-9a51-3c2e1d0b7a11"
CLIENT_ID = "0d3b8f0e-2a1c-4b7d-8e6f-5a4c3b2d1e0f"
CLIENT_SECRET = "Xq8~fake.SECRET-value_DoNotLog-9f3a2c"


def _now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def oauth_error(status: int, error: str, aadsts: int, description: str) -> JSONResponse:
    """The identity platform's error body (v2.0 endpoint)."""
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{aadsts}: {description}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {_now()}Z",
            "error_codes": [aadsts],
            "timestamp": f"{_now()}Z",
            "trace_id": str(trace),
            "correlation_id": str(correlation),
            "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
        },
        status_code=status,
    )


def graph_error_body(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": _now(),
                "request-id": str(uuid.uuid4()),
                "client-request-id": str(uuid.uuid4()),
            },
        }
    }


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(graph_error_body(code, message), status_code=status, headers=headers)


@dataclass
class IssuedToken:
    scope: str
    client_id: str
    expired: bool = False


class FakeEntra:
    """`POST /{tenant}/oauth2/v2.0/token` with the client-credentials grant."""

    def __init__(
        self,
        *,
        directory_id: str = DIRECTORY_ID,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        scopes: tuple[str, ...] = (GRAPH_SCOPE,),
        expires_in: int = 3599,
    ) -> None:
        self.directory_id = directory_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self.expires_in = expires_in
        self.tokens: dict[str, IssuedToken] = {}

    @property
    def issued(self) -> list[str]:
        return list(self.tokens)

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (the API answers 401 to it)."""
        for token in self.tokens.values():
            token.expired = True

    def routes(self) -> list[Route]:
        return [Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"])]

    async def token(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if tenant != self.directory_id:
            return oauth_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return oauth_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if form.get("client_id") != self.client_id:
            return oauth_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory "
                f"'{self.directory_id}'.",
            )
        if form.get("client_secret") != self.client_secret:
            return oauth_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{self.client_id}'.",
            )
        scope = form.get("scope", "")
        if scope not in self.scopes:
            return oauth_error(
                400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid."
            )
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(24)
        self.tokens[token] = IssuedToken(scope=scope, client_id=self.client_id)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "ext_expires_in": self.expires_in,
                "access_token": token,
            }
        )

    def bearer(self, request: Request, scope: str) -> IssuedToken | str:
        """The token presented, or why it is refused ("empty", "expired", "audience")."""
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return "empty"
        issued = self.tokens.get(header.removeprefix("Bearer "))
        if issued is None or issued.expired:
            return "expired"
        if issued.scope != scope:
            return "audience"
        return issued


@dataclass
class GraphUser:
    id: str
    user_principal_name: str
    display_name: str
    mail: str | None = None
    account_enabled: bool = True
    on_premises_sync_enabled: bool | None = None
    has_mailbox: bool = True
    revocations: int = 0
    rules: list[dict[str, Any]] = field(default_factory=list)

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "userPrincipalName": self.user_principal_name,
            "displayName": self.display_name,
            "mail": self.mail,
            "accountEnabled": self.account_enabled,
            "userType": "Member" if "#EXT#" not in self.user_principal_name else "Guest",
            "jobTitle": None,
            "department": "Front desk",
            "onPremisesSyncEnabled": self.on_premises_sync_enabled,
            "createdDateTime": "2023-03-01T09:00:00Z",
        }


def message_rule(
    name: str,
    *,
    forward_to: tuple[str, ...] = (),
    redirect_to: tuple[str, ...] = (),
    attach_to: tuple[str, ...] = (),
    move_to: str | None = None,
    enabled: bool = True,
) -> dict[str, Any]:
    """A messageRule resource as Graph returns it."""

    def recipients(addresses: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"emailAddress": {"name": a, "address": a}} for a in addresses]

    actions: dict[str, Any] = {"stopProcessingRules": True}
    if forward_to:
        actions["forwardTo"] = recipients(forward_to)
    if redirect_to:
        actions["redirectTo"] = recipients(redirect_to)
    if attach_to:
        actions["forwardAsAttachmentTo"] = recipients(attach_to)
    if move_to:
        actions["moveToFolder"] = move_to
        actions["markAsRead"] = True
    return {
        "id": "AQAAA" + secrets.token_hex(6) + "=",
        "displayName": name,
        "sequence": 1,
        "isEnabled": enabled,
        "hasError": False,
        "isReadOnly": False,
        "conditions": {"subjectContains": ["invoice"]},
        "actions": actions,
    }


class FakeGraph:
    """Graph v1.0 for one directory. `denied` holds operations answered 403 Authorization_RequestDenied:
    "read_user", "update_user", "revoke", "read_rules", "delete_rule"."""

    page_size = 2

    def __init__(self, entra: FakeEntra | None = None) -> None:
        self.entra = entra or FakeEntra()
        self.users: dict[str, GraphUser] = {}
        self.denied: set[str] = set()

    def add_user(self, upn: str, **kwargs: Any) -> GraphUser:
        user = GraphUser(
            id=str(uuid.uuid4()), user_principal_name=upn, display_name=upn.partition("@")[0], **kwargs
        )
        self.users[user.id] = user
        return user

    def app(self) -> Starlette:
        prefix = "/v1.0/users/{user}"
        return Starlette(
            routes=[
                *self.entra.routes(),
                Route(prefix, self.user, methods=["GET", "PATCH"]),
                Route(prefix + "/revokeSignInSessions", self.revoke, methods=["POST"]),
                Route(prefix + "/mailFolders/inbox/messageRules", self.rules, methods=["GET"]),
                Route(
                    prefix + "/mailFolders/inbox/messageRules/{rule}", self.rule, methods=["GET", "DELETE"]
                ),
            ]
        )

    # -- helpers --------------------------------------------------------------------------------------

    def _find(self, key: str) -> GraphUser | None:
        if key in self.users:
            return self.users[key]
        for user in self.users.values():
            if user.user_principal_name.lower() == key.lower():
                return user
        return None

    def _check(self, request: Request, operation: str) -> GraphUser | Response:
        issued = self.entra.bearer(request, GRAPH_SCOPE)
        if issued == "empty":
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if issued == "expired":
            return graph_error(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        if issued == "audience":
            return graph_error(
                401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
            )
        if operation in self.denied:
            return graph_error(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        key = request.path_params["user"]
        user = self._find(key)
        if user is None:
            return graph_error(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property objects "
                "are not present.",
            )
        return user

    # -- endpoints ------------------------------------------------------------------------------------

    async def user(self, request: Request) -> Response:
        found = self._check(request, "read_user" if request.method == "GET" else "update_user")
        if isinstance(found, Response):
            return found
        if request.method == "GET":
            resource = found.resource()
            select = request.query_params.get("$select")
            if select:
                resource = {key: resource.get(key) for key in select.split(",")}
            context = "https://graph.microsoft.com/v1.0/$metadata#users/$entity"
            return JSONResponse({"@odata.context": context, **resource})
        try:
            patch = await request.json()
        except ValueError:
            return graph_error(400, "BadRequest", "Unable to read JSON request payload.")
        unknown = set(patch) - {"accountEnabled", "displayName", "jobTitle", "department"}
        if unknown:
            name = min(unknown)
            return graph_error(
                400, "Request_BadRequest", f"Property '{name}' does not exist on type 'microsoft.graph.user'."
            )
        if "accountEnabled" in patch and found.on_premises_sync_enabled:
            return graph_error(
                400,
                "Request_BadRequest",
                "Unable to update the specified properties for on-premises mastered Directory Sync objects "
                "or objects currently undergoing migration.",
            )
        if "accountEnabled" in patch:
            found.account_enabled = bool(patch["accountEnabled"])
        return Response(status_code=204)

    async def revoke(self, request: Request) -> Response:
        found = self._check(request, "revoke")
        if isinstance(found, Response):
            return found
        found.revocations += 1
        return JSONResponse(
            {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": True}
        )

    async def rules(self, request: Request) -> Response:
        found = self._check(request, "read_rules")
        if isinstance(found, Response):
            return found
        if not found.has_mailbox:
            return graph_error(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        start = int(request.query_params.get("$skiptoken", "0"))
        page = found.rules[start : start + self.page_size]
        body: dict[str, Any] = {
            "@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#users('{found.id}')/mailFolders('inbox')/messageRules",
            "value": page,
        }
        if start + self.page_size < len(found.rules):
            query = urlencode({"$skiptoken": str(start + self.page_size)})
            body["@odata.nextLink"] = f"{str(request.base_url).rstrip('/')}{request.url.path}?{query}"
        return JSONResponse(body)

    async def rule(self, request: Request) -> Response:
        found = self._check(request, "read_rules" if request.method == "GET" else "delete_rule")
        if isinstance(found, Response):
            return found
        rule_id = request.path_params["rule"]
        for index, rule in enumerate(found.rules):
            if rule["id"] == rule_id:
                if request.method == "GET":
                    return JSONResponse(rule)
                del found.rules[index]
                return Response(status_code=204)
        return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
