"""A stateful fake of the AWS IAM Query API (version 2010-05-08) as documented: `ListAccessKeys` and
`UpdateAccessKey` over GET (query) or POST (form), XML answers, XML `ErrorResponse` bodies, and a check of
every request's Signature Version 4 with the caller's secret (written separately from the connector's
signer, so the two cannot share a mistake)."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY-DoNotLog"
NS = "https://iam.amazonaws.com/doc/2010-05-08/"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$"
)


def iam_error_xml(code: str, message: str, kind: str = "Sender") -> bytes:
    return (
        f'<ErrorResponse xmlns="{NS}"><Error><Type>{kind}</Type><Code>{code}</Code>'
        f"<Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()


def iam_error(status: int, code: str, message: str, kind: str = "Sender") -> Response:
    return Response(iam_error_xml(code, message, kind), status_code=status, media_type="text/xml")


@dataclass
class IamUser:
    name: str
    keys: dict[str, str] = field(default_factory=dict)  # access key id -> Active | Inactive


class FakeIam:
    def __init__(self, *, page_size: int = 100) -> None:
        self.users: dict[str, IamUser] = {}
        self.page_size = page_size
        self.updates: list[tuple[str, str, str]] = []
        self.session_token: str | None = None  # when set, requests must carry it (temporary credentials)

    def add_user(self, name: str, *keys: str, status: str = "Active") -> IamUser:
        user = IamUser(name, dict.fromkeys(keys, status))
        self.users[name] = user
        return user

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/", self.endpoint, methods=["GET", "POST"])])

    # -- SigV4, as the service checks it ----------------------------------------------------------------

    def _check_signature(self, request: Request, body: bytes) -> Response | None:
        match = _AUTH.fullmatch(request.headers.get("authorization", ""))
        if match is None:
            return iam_error(403, "IncompleteSignature", "Authorization header requires a valid signature.")
        if match["key"] != ACCESS_KEY_ID:
            return iam_error(
                403, "InvalidClientTokenId", "The security token included in the request is invalid."
            )
        if (
            self.session_token is not None
            and request.headers.get("x-amz-security-token") != self.session_token
        ):
            return iam_error(
                403, "InvalidClientTokenId", "The security token included in the request is invalid."
            )
        amz_date = request.headers.get("x-amz-date", "")
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed or not amz_date.startswith(match["date"]):
            return iam_error(403, "IncompleteSignature", "Host and X-Amz-Date must be signed.")
        query = sorted(
            (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
            for k, v in parse_qsl(request.url.query, keep_blank_values=True)
        )
        canonical = "\n".join(
            [
                request.method,
                quote(request.url.path, safe="/-_.~"),
                "&".join(f"{k}={v}" for k, v in query),
                "".join(f"{h}:{' '.join(request.headers.get(h, '').split())}\n" for h in signed),
                match["signed"],
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = f"AWS4{SECRET_ACCESS_KEY}".encode()
        for part in (match["date"], match["region"], match["service"], "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if (match["region"], match["service"]) != ("us-east-1", "iam") or not hmac.compare_digest(
            expected, match["sig"]
        ):
            return iam_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your "
                "AWS Secret Access Key and signing method. Consult the service documentation for details.",
            )
        return None

    # -- the API ----------------------------------------------------------------------------------------

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        if (refused := self._check_signature(request, body)) is not None:
            return refused
        params = dict(parse_qsl(body.decode() if request.method == "POST" else request.url.query))
        if params.get("Version") != "2010-05-08":
            return iam_error(400, "InvalidParameterValue", "Version is required")
        action = params.get("Action")
        if action == "ListAccessKeys":
            return self._list(params)
        if action == "UpdateAccessKey":
            return self._update(params)
        return iam_error(400, "InvalidAction", f"Could not find operation {action} for version 2010-05-08")

    def _user(self, params: dict[str, str]) -> IamUser | Response:
        user = self.users.get(params.get("UserName", ""))
        if user is None:
            return iam_error(
                404, "NoSuchEntity", f"The user with name {params.get('UserName')} cannot be found."
            )
        return user

    def _list(self, params: dict[str, str]) -> Response:
        user = self._user(params)
        if isinstance(user, Response):
            return user
        keys = sorted(user.keys.items())
        start = int(params.get("Marker", "0"))
        page = keys[start : start + self.page_size]
        more = start + self.page_size < len(keys)
        members = "".join(
            f"<member><UserName>{user.name}</UserName><AccessKeyId>{key}</AccessKeyId>"
            f"<Status>{status}</Status><CreateDate>2024-05-01T10:00:00Z</CreateDate></member>"
            for key, status in page
        )
        marker = f"<Marker>{start + self.page_size}</Marker>" if more else ""
        xml = (
            f'<ListAccessKeysResponse xmlns="{NS}"><ListAccessKeysResult><UserName>{user.name}</UserName>'
            f"<AccessKeyMetadata>{members}</AccessKeyMetadata><IsTruncated>{str(more).lower()}</IsTruncated>"
            f"{marker}</ListAccessKeysResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
            "</ResponseMetadata></ListAccessKeysResponse>"
        )
        return Response(xml, media_type="text/xml")

    def _update(self, params: dict[str, str]) -> Response:
        user = self._user(params)
        if isinstance(user, Response):
            return user
        key, status = params.get("AccessKeyId", ""), params.get("Status")
        if key not in user.keys:
            return iam_error(404, "NoSuchEntity", f"The Access Key with id {key} cannot be found.")
        if status not in {"Active", "Inactive"}:
            return iam_error(
                400, "ValidationError", f"1 validation error detected: Value '{status}' at 'status'"
            )
        user.keys[key] = status
        self.updates.append((user.name, key, status))
        xml = (
            f'<UpdateAccessKeyResponse xmlns="{NS}"><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>'
            "</ResponseMetadata></UpdateAccessKeyResponse>"
        )
        return Response(xml, media_type="text/xml")
