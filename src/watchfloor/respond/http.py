"""The HTTP client every response connector talks through: timeouts, OAuth2 client credentials, retries and
vendor error bodies in one place, so a connector is a table of endpoints and a few parse functions.

What it guarantees (STYLE items 3 and 5):

- every call has a timeout (`HttpOptions.timeout`; `None` is refused);
- OAuth2 client-credentials tokens are cached until shortly before they expire, per tenant, token URL,
  client id and scope, and refreshed once when the API answers 401;
- 429, 503 (and, for idempotent calls, 502, 504, timeouts and dropped connections) are retried with
  exponential backoff and jitter, honouring `Retry-After` (seconds or HTTP date), within
  `RetryPolicy.max_attempts` and `RetryPolicy.max_total_wait_seconds`;
- a failure is a `ConnectorError` with the HTTP status, the vendor's error code and message and whether
  trying later may help; it never holds the client secret, a token or an Authorization header, and
  neither does any log line this module writes;
- a bearer token is only ever sent to the configured base URL's origin (pagination links pointing
  elsewhere are refused);
- TLS certificates are verified unless a deployment turns it off; plain http is refused except on
  loopback (tests).
"""

from __future__ import annotations

import logging
import math
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from ipaddress import ip_address
from typing import Any, Final
from urllib.parse import quote, urljoin

import httpx

from watchfloor.core.errors import Location
from watchfloor.respond.actions import ConnectorConfigError, ConnectorError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
# Statuses that say the request was not processed, so even a non-idempotent call may be sent again.
_NOT_PROCESSED: Final = frozenset({429, 503})
_IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_REDACTED: Final = "[redacted]"
_MAX_MESSAGE_CHARS: Final = 500
_LOOPBACK_NAMES: Final = frozenset({"localhost"})

_STATUS_CODES: Final[Mapping[int, str]] = {
    400: "respond.bad_request",
    401: "respond.unauthorized",
    403: "respond.forbidden",
    404: "respond.target_not_found",
    409: "respond.conflict",
    429: "respond.rate_limited",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard to try: `max_attempts` counts every send of one call (1 = no retry)."""

    max_attempts: int = 5
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 60.0
    max_total_wait_seconds: float = 120.0
    statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.base_delay_seconds < 0 or self.max_total_wait_seconds < 0:
            raise ValueError("retry delays must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCredentials:
    """An OAuth2 client-credentials grant (RFC 6749 section 4.4) against `token_url`."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str


class TokenCache:
    """Access tokens by (tenant, token URL, client id, scope), kept until `expires_in - margin_seconds`.

    Thread-safe; one fetch per key at a time, so parallel steps of a playbook share one token request.
    """

    def __init__(self, *, margin_seconds: float = 120.0, monotonic: Callable[[], float] = time.monotonic):
        self.margin_seconds = margin_seconds
        self._monotonic = monotonic
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, ...], threading.Lock] = {}

    def __repr__(self) -> str:
        return f"TokenCache(entries={len(self._tokens)}, margin_seconds={self.margin_seconds})"

    def __len__(self) -> int:
        return len(self._tokens)

    def get(self, key: tuple[str, ...]) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
            if entry is None:
                return None
            token, expires_at = entry
            if self._monotonic() >= expires_at:
                del self._tokens[key]
                return None
            return token

    def put(self, key: tuple[str, ...], token: str, expires_in_seconds: float) -> None:
        # Short-lived tokens: keep them for half their life rather than not at all.
        margin = min(self.margin_seconds, expires_in_seconds / 2)
        with self._lock:
            self._tokens[key] = (token, self._monotonic() + expires_in_seconds - margin)

    def invalidate(self, key: tuple[str, ...], token: str) -> None:
        """Forget `token` (the API refused it); a newer token another thread fetched is kept."""
        with self._lock:
            entry = self._tokens.get(key)
            if entry is not None and entry[0] == token:
                del self._tokens[key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def fetch_lock(self, key: tuple[str, ...]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())


# Process-wide: tokens outlive one action run (a playbook runs many steps against one tenant).
DEFAULT_TOKEN_CACHE: Final = TokenCache()


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpOptions:
    """What a deployment (or a test) tunes; the tenant's connector config only says where to connect."""

    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    verify: bool | str = True  # True (certifi CAs), or the path of a CA bundle; False only for lab setups
    token_cache: TokenCache = DEFAULT_TOKEN_CACHE
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random
    user_agent: str = "watchfloor-respond/0.1"
    transport: httpx.BaseTransport | None = None

    def __post_init__(self) -> None:
        timeouts = (self.timeout.connect, self.timeout.read, self.timeout.write, self.timeout.pool)
        if any(value is None for value in timeouts):
            raise ValueError("every connector call needs a timeout: connect, read, write and pool")


class RetryLaterError(ConnectorError):
    """The vendor kept answering 429/503 (or not at all) until the retry budget ran out.

    `retry_after_seconds` is the vendor's last `Retry-After`, when it gave one: the run engine may
    re-schedule the step then instead of failing it.
    """

    code = "respond.rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, retryable=True, **kwargs)
        self.retry_after_seconds = retry_after_seconds


def path_segment(value: str) -> str:
    """`value` escaped for one URL path segment ('/', '#', '?', '%' and spaces escaped; '@' kept):
    guest UPNs such as `ann_fabrikam.com#EXT#@clinic.onmicrosoft.com` need it."""
    return quote(value, safe="@")


def check_base_url(value: object, *, key: str, connector: str, tenant_id: str) -> str:
    """A configured base URL: https, or http on loopback only (tests); no query or fragment."""
    where = Location(tenant=tenant_id, path=f"{connector}.{key}")
    if not isinstance(value, str) or not value:
        raise ConnectorConfigError(f"{key} must be a URL", location=where)
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        raise ConnectorConfigError(f"{key} is not a valid URL", location=where) from None
    if url.scheme not in {"http", "https"} or not url.host or url.query or url.fragment:
        raise ConnectorConfigError(f"{key} must be an https URL without query, got {value!r}", location=where)
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ConnectorConfigError(
            f"{key} {value!r} is plain http: credentials would travel unencrypted; use https", location=where
        )
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date); None if absent/invalid."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def parse_error_body(response: httpx.Response) -> tuple[str | None, str | None]:
    """The vendor's (code, message) from an error body. Understands OData/Graph/Defender
    `{"error": {"code", "message"}}`, OAuth2 `{"error", "error_description"}` and the common
    `{"errors": [{"code", "message"}]}`, `{"code", "message"}` shapes; plain text as the message."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return None, text[:_MAX_MESSAGE_CHARS] or None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return _text(error.get("code")), _text(error.get("message"))
        if isinstance(error, str):
            description = _text(body.get("error_description"))
            # Entra appends "Trace ID: ... Correlation ID: ... Timestamp: ..." on further lines.
            first_line = description.splitlines()[0] if description else None
            return error, first_line
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return _text(errors[0].get("code")), _text(errors[0].get("message"))
        return _text(body.get("code")), _text(body.get("message") or body.get("detail"))
    return None, None


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


ErrorParser = Callable[[httpx.Response], tuple[str | None, str | None]]


class ConnectorHttp:
    """One connector's HTTP session for one tenant. Use as a context manager:

    with ConnectorHttp(connector="msgraph", tenant_id=ctx.tenant_id, base_url=base,
                       credentials=creds, options=self.http) as api:
        user = api.get_json(f"/v1.0/users/{path_segment(upn)}")
    """

    def __init__(
        self,
        *,
        connector: str,
        tenant_id: str,
        base_url: str,
        credentials: ClientCredentials | None = None,
        options: HttpOptions | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
        error_parser: ErrorParser = parse_error_body,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.connector = connector
        self.tenant_id = tenant_id
        self.base_url = check_base_url(base_url, key="base_url", connector=connector, tenant_id=tenant_id)
        self._origin = _origin(httpx.URL(self.base_url))
        self._credentials = credentials
        self.options = options or HttpOptions()
        self._wall_clock = wall_clock
        self._parse_error = error_parser
        self._seen_tokens: set[str] = set()
        self._token_key: tuple[str, ...] = ()
        if credentials is not None:
            check_base_url(credentials.token_url, key="token_url", connector=connector, tenant_id=tenant_id)
            self._token_key = (tenant_id, credentials.token_url, credentials.client_id, credentials.scope)
        verify = _ssl_context(self.options.verify)
        transport = self.options.transport or httpx.HTTPTransport(
            verify=verify, socket_options=_SOCKET_OPTIONS
        )
        self._client = httpx.Client(
            timeout=self.options.timeout,
            verify=verify,
            transport=transport,
            follow_redirects=False,  # a redirect must not carry our Authorization header anywhere
            headers={"User-Agent": self.options.user_agent, "Accept": "application/json", **(headers or {})},
        )

    def __repr__(self) -> str:
        return (
            f"ConnectorHttp(connector={self.connector!r}, tenant={self.tenant_id!r}, base={self.base_url!r})"
        )

    def __enter__(self) -> ConnectorHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- public calls ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send with auth, retries and error mapping; a 2xx response, else ConnectorError.

        `idempotent` (default: by method) allows retrying after a timeout or 502/504, when the vendor
        may have acted on the first send; pass True for POSTs that are safe to repeat."""
        method = method.upper()
        safe = idempotent if idempotent is not None else method in _IDEMPOTENT_METHODS
        return self._send(method, self._url(path), params=params, json=json, safe=safe, auth=True)

    def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self.json_of(self.request("GET", path, params=params))

    def json_of(self, response: httpx.Response) -> dict[str, Any]:
        """The response body as a JSON object, or ConnectorError (`respond.bad_response`)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ConnectorError(
                f"{self.connector} answered {response.status_code} without a JSON object",
                code="respond.bad_response",
                location=self._where(response.request.method, response.request.url),
                status=response.status_code,
            )
        return body

    def iter_odata(
        self, path: str, *, params: Mapping[str, str] | None = None, max_pages: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every object of an OData collection (`value`), following `@odata.nextLink` page by page."""
        url: str | None = path
        page_params = params
        for _ in range(max_pages):
            if url is None:
                return
            body = self.get_json(url, params=page_params)
            items = body.get("value")
            if not isinstance(items, list):
                raise ConnectorError(
                    f"{self.connector} collection page lacks a 'value' list",
                    code="respond.bad_response",
                    location=self._where("GET", self._url(url)),
                )
            yield from (item for item in items if isinstance(item, dict))
            next_link = body.get("@odata.nextLink")
            url = str(next_link) if next_link else None
            page_params = None  # the next link already carries the query
        if url is not None:
            raise self._too_many_pages(path, max_pages)

    def iter_link_pages(
        self, path: str, *, params: Mapping[str, str] | None = None, max_pages: int = 1000
    ) -> Iterator[httpx.Response]:
        """Each page of an API that paginates with an RFC 8288 `Link: <...>; rel="next"` header."""
        url: str | None = path
        page_params = params
        for _ in range(max_pages):
            if url is None:
                return
            response = self.request("GET", url, params=page_params)
            yield response
            next_url = response.links.get("next", {}).get("url")
            url = urljoin(str(response.url), next_url) if next_url else None
            page_params = None
        if url is not None:
            raise self._too_many_pages(path, max_pages)

    def _too_many_pages(self, path: str, max_pages: int) -> ConnectorError:
        return ConnectorError(
            f"{self.connector} collection has more than {max_pages} pages",
            code="respond.bad_response",
            location=self._where("GET", self._url(path)),
        )

    def redact(self, text: str) -> str:
        """`text` with the client secret and every token this client has used replaced."""
        secrets = set(self._seen_tokens)
        if self._credentials is not None and self._credentials.client_secret:
            secrets.add(self._credentials.client_secret)
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, _REDACTED)
        return text

    # -- internals ------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            if _origin(httpx.URL(path)) != self._origin:
                raise ConnectorError(
                    f"{self.connector} pointed to another origin ({httpx.URL(path).host}); not following it "
                    "with this tenant's credentials",
                    code="respond.bad_response",
                    location=Location(tenant=self.tenant_id, path=self.connector),
                )
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _where(self, method: str, url: httpx.URL | str) -> Location:
        path = httpx.URL(url).path if isinstance(url, str) else url.path
        return Location(tenant=self.tenant_id, path=f"{self.connector} {method} {path}")

    def _token(self) -> str:
        assert self._credentials is not None
        cache = self.options.token_cache
        token = cache.get(self._token_key)
        if token is None:
            with cache.fetch_lock(self._token_key):
                token = cache.get(self._token_key)
                if token is None:
                    token, expires_in = self._fetch_token(self._credentials)
                    cache.put(self._token_key, token, expires_in)
        self._seen_tokens.add(token)
        return token

    def _fetch_token(self, credentials: ClientCredentials) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "scope": credentials.scope,
        }
        try:
            response = self._send("POST", credentials.token_url, data=form, safe=True, auth=False)
        except ConnectorError as exc:
            if isinstance(exc, RetryLaterError) or exc.status not in {400, 401, 403}:
                raise
            raise ConnectorError(
                f"token request refused: {exc.message}",
                code="respond.auth_failed",
                location=exc.location,
                status=exc.status,
                vendor_code=exc.vendor_code,
            ) from None
        body = self.json_of(response)
        token = body.get("access_token")
        token_type = str(body.get("token_type", "Bearer"))
        try:
            expires_in = float(body.get("expires_in", 0))
        except (TypeError, ValueError):
            expires_in = 0.0
        if not isinstance(token, str) or not token or token_type.lower() != "bearer" or expires_in <= 0:
            raise ConnectorError(
                f"{self.connector} token endpoint answered without a usable bearer token",
                code="respond.auth_failed",
                location=self._where("POST", credentials.token_url),
                status=response.status_code,
            )
        self._seen_tokens.add(token)
        log.debug(
            "connector %s tenant %s: new access token, %.0f s", self.connector, self.tenant_id, expires_in
        )
        return token, expires_in

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        safe: bool,
        auth: bool,
    ) -> httpx.Response:
        policy = self.options.retry
        attempt = 0
        waited = 0.0
        refreshed = False
        while True:
            attempt += 1
            headers: dict[str, str] = {}
            token = ""
            if auth and self._credentials is not None:
                token = self._token()
                headers["Authorization"] = f"Bearer {token}"
            started = time.monotonic()
            try:
                response = self._client.request(
                    method, url, params=params, json=json, data=data, headers=headers
                )
            except httpx.TransportError as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                failure = RetryLaterError(
                    f"{self.connector} {kind}: {type(exc).__name__} (gave up after {attempt} attempt(s))",
                    code="respond.vendor_unreachable",
                    location=self._where(method, url),
                )
                delay = self._backoff(attempt)
                if not (safe or unsent) or not self._may_wait(attempt, waited, delay):
                    raise failure from None
                log.warning(
                    "connector %s tenant %s: %s %s %s (%s); retry %d of %d in %.2f s",
                    self.connector,
                    self.tenant_id,
                    method,
                    httpx.URL(url).path,
                    kind,
                    type(exc).__name__,
                    attempt,
                    policy.max_attempts - 1,
                    delay,
                )
                self.options.sleep(delay)
                waited += delay
                continue
            status = response.status_code
            log.debug(
                "connector %s tenant %s: %s %s -> %d in %.0f ms (attempt %d)",
                self.connector,
                self.tenant_id,
                method,
                response.request.url.path,
                status,
                (time.monotonic() - started) * 1000,
                attempt,
            )
            if response.is_success:
                return response
            if status == 401 and token and not refreshed:
                # Expired or revoked token: fetch a new one once, then send again (not a retry attempt).
                self.options.token_cache.invalidate(self._token_key, token)
                refreshed = True
                attempt -= 1
                continue
            if status in policy.statuses and (safe or status in _NOT_PROCESSED):
                retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self._wall_clock())
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                if not self._may_wait(attempt, waited, delay):
                    raise self._error(response, gave_up_after=attempt, retry_after=retry_after)
                log.warning(
                    "connector %s tenant %s: %s %s answered %d; retry %d of %d in %.2f s",
                    self.connector,
                    self.tenant_id,
                    method,
                    response.request.url.path,
                    status,
                    attempt,
                    policy.max_attempts - 1,
                    delay,
                )
                self.options.sleep(delay)
                waited += delay
                continue
            raise self._error(response)

    def _may_wait(self, attempt: int, waited: float, delay: float) -> bool:
        policy = self.options.retry
        return attempt < policy.max_attempts and waited + delay <= policy.max_total_wait_seconds

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': half the step fixed, half random."""
        policy = self.options.retry
        step = min(policy.max_delay_seconds, policy.base_delay_seconds * 2.0 ** (attempt - 1))
        return step / 2 + step / 2 * self.options.random()

    def _error(
        self, response: httpx.Response, *, gave_up_after: int = 0, retry_after: float | None = None
    ) -> ConnectorError:
        status = response.status_code
        vendor_code, vendor_message = self._parse_error(response)
        detail = self.redact(vendor_message or response.reason_phrase or "no error message")
        if len(detail) > _MAX_MESSAGE_CHARS:
            detail = detail[:_MAX_MESSAGE_CHARS] + "..."
        code = _STATUS_CODES.get(status, "respond.vendor_unavailable" if status >= 500 else None)
        label = f"{status} {vendor_code}" if vendor_code else str(status)
        where = self._where(response.request.method, response.request.url)
        if gave_up_after:
            wait = f"; it asks to retry after {retry_after:.0f} s" if retry_after is not None else ""
            return RetryLaterError(
                f"{self.connector} answered {label}: {detail} (gave up after {gave_up_after} tries{wait})",
                code=code,
                location=where,
                status=status,
                vendor_code=vendor_code,
                retry_after_seconds=retry_after,
            )
        return ConnectorError(
            f"{self.connector} answered {label}: {detail}",
            code=code,
            location=where,
            status=status,
            vendor_code=vendor_code,
            retryable=status in RETRY_STATUSES or status >= 500,
        )


# Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm meeting the server's
# delayed ACK adds ~40 ms to every request with a body (urllib3 sets it for the same reason).
_SOCKET_OPTIONS: Final = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


@cache
def _ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """One context per setting for the process (loading a CA bundle costs ~20 ms per client)."""
    if verify is False:
        return False
    if verify is True:
        return httpx.create_ssl_context()  # certifi, or SSL_CERT_FILE / SSL_CERT_DIR
    return ssl.create_default_context(cafile=verify)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host.lower(), url.port or default_port)
