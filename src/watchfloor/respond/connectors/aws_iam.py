"""AWS IAM: deactivate (and re-activate) a user's access key, through the IAM Query API signed with
AWS Signature Version 4.

Credentials: an IAM user or role session allowed `iam:ListAccessKeys` and `iam:UpdateAccessKey` on the
users it may contain (`arn:aws:iam::<account>:user/*`). Config `endpoint` (default
`https://iam.amazonaws.com`; GovCloud and China have their own, with `region` `us-gov-west-1` /
`cn-north-1`), `access_key_id`, `secret_access_key`, optional `session_token` (temporary credentials).

Pitfalls: IAM is global and signs in `us-east-1`; it is eventually consistent (a key deactivated a moment
ago may still work for a few seconds, and a listing may lag an update); throttling comes back as 400
`Throttling` (retried here like a 429); deactivating a key does not end sessions already obtained with
it through `sts:GetSessionToken` / `AssumeRole` (those need a deny policy with `aws:TokenIssueTime`).
Responses are XML: `defusedxml` is not installed, so bodies with a DTD or entity declaration are refused
before `xml.etree` sees them (an XML bomb from a spoofed endpoint is stopped there; expat >= 2.4.1 also
limits entity amplification).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import xml.etree.ElementTree as ET  # DTDs and entities are refused before parsing (_xml)
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote, unquote_plus

import httpx

from watchfloor.respond.actions import ActionContext, ActionManifest, ActionResult, ConnectorError, InputSpec
from watchfloor.respond.connectors import HttpAction
from watchfloor.respond.connectors.falcon import hooked_options
from watchfloor.respond.http import ConnectorHttp, check_base_url

CONNECTOR: Final = "aws_iam"
DEFAULT_ENDPOINT: Final = "https://iam.amazonaws.com"
DEFAULT_REGION: Final = "us-east-1"
SERVICE: Final = "iam"
API_VERSION: Final = "2010-05-08"
CONFIG: Final = ("endpoint", "region", "access_key_id", "secret_access_key", "session_token")
SECRETS: Final = ("secret_access_key", "session_token")
ALGORITHM: Final = "AWS4-HMAC-SHA256"
THROTTLING_CODES: Final = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})
_USER_NAME: Final = re.compile(r"^[\w+=,.@-]{1,64}$")
_ACCESS_KEY_ID: Final = re.compile(r"^[A-Z0-9]{16,128}$")
_UNSAFE_XML: Final = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_MAX_PAGES: Final = 20

_INPUTS: Final = (
    InputSpec(name="user", type="user", description="the IAM user name that owns the key"),
    InputSpec(name="access_key_id", type="string", description="the access key id (AKIA...)"),
)


# -- Signature Version 4 ---------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(query: str) -> str:
    """The query string with each name and value URI-encoded (RFC 3986 unreserved kept), sorted."""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_uri_encode(unquote_plus(name)), _uri_encode(unquote_plus(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], payload: bytes
) -> tuple[str, str]:
    """(canonical request, signed header names) for `headers` (every one given is signed)."""
    canon = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    names = sorted(canon)
    lines = [
        method.upper(),
        quote(path or "/", safe="/-_.~"),
        canonical_query(query),
        *(f"{name}:{canon[name]}" for name in names),
        "",
        ";".join(names),
        _sha256(payload),
    ]
    return "\n".join(lines), ";".join(names)


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def signature(
    *,
    secret_access_key: str,
    amz_date: str,
    region: str,
    service: str,
    canonical: str,
) -> str:
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join((ALGORITHM, amz_date, scope, _sha256(canonical.encode())))
    key = signing_key(secret_access_key, amz_date[:8], region, service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def sigv4_signer(
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    region: str,
    service: str,
    clock: Callable[[], datetime],
) -> Callable[[httpx.Request], None]:
    """A request hook that signs each request as it leaves (a retry is signed anew)."""

    def sign(request: httpx.Request) -> None:
        amz_date = clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        request.headers["X-Amz-Date"] = amz_date
        if session_token:
            request.headers["X-Amz-Security-Token"] = session_token
        signed = {"host": request.headers["Host"], "x-amz-date": amz_date}
        for name in ("content-type", "x-amz-security-token"):
            if name in request.headers:
                signed[name] = request.headers[name]
        canonical, names = canonical_request(
            request.method, request.url.path, request.url.query.decode(), signed, request.read()
        )
        sig = signature(
            secret_access_key=secret_access_key,
            amz_date=amz_date,
            region=region,
            service=service,
            canonical=canonical,
        )
        scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
        request.headers["Authorization"] = (
            f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={names}, Signature={sig}"
        )

    return sign


# -- XML -------------------------------------------------------------------------------------------------


def _xml(body: bytes) -> ET.Element | None:
    if _UNSAFE_XML.search(body):
        return None
    try:
        return ET.fromstring(body)  # noqa: S314 - no DTD or entity declaration (checked above)
    except ET.ParseError:
        return None


def _text(element: ET.Element | None, path: str) -> str | None:
    found = element.find(path) if element is not None else None
    return found.text.strip() if found is not None and found.text else None


def iam_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """`<ErrorResponse><Error><Type/><Code/><Message/></Error></ErrorResponse>` -> (code, message)."""
    root = _xml(response.content)
    if root is None:
        return None, response.text.strip()[:300] or None
    return _text(root, ".//{*}Error/{*}Code"), _text(root, ".//{*}Error/{*}Message")


def _throttling_is_429(response: httpx.Response) -> None:
    """IAM says 'slow down' with 400 Throttling: make it the 429 `ConnectorHttp` retries with backoff."""
    if response.status_code == 400:
        response.read()  # an error body is small
        code, _ = iam_error(response)
        if code in THROTTLING_CODES:
            response.status_code = 429


class IamHttp(ConnectorHttp):
    """ConnectorHttp for the IAM Query API: reads as signed GETs (IAM accepts GET and POST for every
    action), changes as signed POSTs with a form body; each answer parsed as XML."""

    def __enter__(self) -> IamHttp:
        return self

    def call(self, action: str, params: Mapping[str, str], *, write: bool = False) -> ET.Element:
        form = {"Action": action, **params, "Version": API_VERSION}
        if write:  # UpdateAccessKey sets a state: safe to send again after a timeout
            response = self._send("POST", self._url("/"), data=form, safe=True, auth=False)
        else:
            response = self.request("GET", "/", params=form)
        root = _xml(response.content)
        if root is None:
            raise ConnectorError(
                f"{self.connector} answered {action} with a body that is not plain XML",
                code="respond.bad_response",
                location=self._where(response.request.method, response.request.url),
                status=response.status_code,
            )
        return root


class _IamAction(HttpAction):
    def iam(self, ctx: ActionContext) -> IamHttp:
        key_id, secret = self.require(ctx, "access_key_id", "secret_access_key")
        endpoint = check_base_url(
            ctx.config.get("endpoint") or DEFAULT_ENDPOINT,
            key="endpoint",
            connector=CONNECTOR,
            tenant_id=ctx.tenant_id,
        )
        signer = sigv4_signer(
            access_key_id=str(key_id),
            secret_access_key=str(secret),
            session_token=str(ctx.config.get("session_token") or "") or None,
            region=str(ctx.config.get("region") or DEFAULT_REGION),
            service=SERVICE,
            clock=ctx.clock,
        )
        return IamHttp(
            connector=CONNECTOR,
            tenant_id=ctx.tenant_id,
            base_url=endpoint,
            options=hooked_options(self.http, prepare=signer, adjust=_throttling_is_429),
            wall_clock=ctx.clock,
            error_parser=iam_error,
            headers={"Accept": "text/xml"},
        )

    def inputs_of(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> tuple[str, str]:
        user = self.text_input(ctx, inputs, "user")
        key_id = self.text_input(ctx, inputs, "access_key_id")
        if not _USER_NAME.fullmatch(user) or not _ACCESS_KEY_ID.fullmatch(key_id):
            raise ConnectorError(
                "user must be an IAM user name and access_key_id an access key id (AKIA...)",
                code="respond.invalid_input",
                location=self.where(ctx),
            )
        return user, key_id

    @staticmethod
    def list_keys(api: IamHttp, user: str) -> list[dict[str, str | None]]:
        keys: list[dict[str, str | None]] = []
        params = {"UserName": user}
        for _ in range(_MAX_PAGES):
            root = api.call("ListAccessKeys", params)
            keys.extend(
                {
                    "access_key_id": _text(member, "{*}AccessKeyId"),
                    "status": _text(member, "{*}Status"),
                    "created": _text(member, "{*}CreateDate"),
                }
                for member in root.iterfind(".//{*}AccessKeyMetadata/{*}member")
            )
            marker = _text(root, ".//{*}Marker")
            if _text(root, ".//{*}IsTruncated") != "true" or not marker:
                return keys
            params = {"UserName": user, "Marker": marker}
        return keys

    def set_status(self, ctx: ActionContext, inputs: Mapping[str, Any], *, status: str) -> ActionResult:
        verb = "deactivate" if status == "Inactive" else "activate"
        user, key_id = self.inputs_of(ctx, inputs)
        with self.iam(ctx) as api:
            key = next((k for k in self.list_keys(api, user) if k["access_key_id"] == key_id), None)
            if key is None:
                raise ConnectorError(
                    f"IAM user {user} has no access key {key_id}",
                    code="respond.target_not_found",
                    location=self.where(ctx),
                    status=404,
                    vendor_code="NoSuchEntity",
                )
            output = {
                "user_name": user,
                "access_key_id": key_id,
                "previous_status": key["status"],
                "status": status,
            }
            if key["status"] == status:
                return ActionResult(
                    status="succeeded",
                    summary=f"access key {key_id} of IAM user {user} is already {status.lower()}",
                    output=output,
                    external_ref=key_id,
                )
            if ctx.dry_run:
                output["status"] = str(key["status"])
                return ActionResult(
                    status="dry_run",
                    summary=f"would {verb} access key {key_id} of IAM user {user}",
                    output=output,
                )
            api.call(
                "UpdateAccessKey", {"UserName": user, "AccessKeyId": key_id, "Status": status}, write=True
            )
        return ActionResult(
            status="succeeded",
            summary=f"{verb}d access key {key_id} of IAM user {user}",
            changed=True,
            output=output,
            external_ref=key_id,
        )


class DeactivateAccessKey(_IamAction):
    manifest = ActionManifest(
        id="aws_iam.deactivate_access_key",
        title="Deactivate an AWS access key",
        connector=CONNECTOR,
        description="Sets the IAM user's access key Inactive: API calls signed with it fail. The key is kept "
        "and can be activated again. Sessions already issued from it stay valid until they expire.",
        inputs=_INPUTS,
        config=CONFIG,
        secrets=SECRETS,
        risk="containment",
        target="credential",
        reversible=True,
        reverse_action="aws_iam.activate_access_key",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return self.set_status(ctx, inputs, status="Inactive")

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        if not done.changed:  # inactive before us: not ours to re-enable
            return self.nothing_to_undo(done)
        return ActivateAccessKey(http=self.http).run(ctx, inputs)


class ActivateAccessKey(_IamAction):
    manifest = ActionManifest(
        id="aws_iam.activate_access_key",
        title="Activate an AWS access key",
        connector=CONNECTOR,
        description="Sets the IAM user's access key Active again; the rollback of "
        "aws_iam.deactivate_access_key.",
        inputs=_INPUTS,
        config=CONFIG,
        secrets=SECRETS,
        risk="containment",
        target="credential",
        reversible=True,
        reverse_action="aws_iam.deactivate_access_key",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return self.set_status(ctx, inputs, status="Active")

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        if not done.changed:
            return self.nothing_to_undo(done)
        return DeactivateAccessKey(http=self.http).run(ctx, inputs)


ACTIONS: Final = (DeactivateAccessKey, ActivateAccessKey)
