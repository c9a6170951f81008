"""Notifications: email over SMTP, Slack and Microsoft Teams incoming webhooks, a signed generic webhook.

- `notify.email` {to, subject, body}; config smtp_host, smtp_port, smtp_username, smtp_password (secret),
  from_address, starttls. The relay answers 250; 535 for a bad login; 4xx (try later); 5xx (refused).
- `notify.slack` {text}; config slack_webhook_url (secret). Slack answers 200 `ok`, or 400 `invalid_payload`,
  403 `invalid_token`, 404 `no_service`, 410 `channel_is_archived`, 429 with Retry-After.
- `notify.teams` {text}, sent as a MessageCard; config teams_webhook_url (secret). Teams answers 200 `1`
  (connector webhooks) or 202 (Workflows), 400, 429; connector webhooks also answer 200 with a text saying
  `Microsoft Teams endpoint returned HTTP error 429` when delivery failed.
- `notify.webhook` {payload}; config webhook_url, webhook_secret (secret). Any 2xx is delivered.

The generic webhook POSTs `payload` as JSON with `X-Watchfloor-Timestamp: <unix seconds>`,
`X-Watchfloor-Signature: sha256=<hex HMAC-SHA256(webhook_secret, "<timestamp>." + body)>` (the timestamp is
signed too, so a receiver can refuse replays: see `webhook_signature`) and `X-Watchfloor-Delivery`, the
same for every send of one step (receivers deduplicate on it).

Every action is read-only, needs no approval and cannot be undone. A dry run checks inputs and config and
says what would be sent, sending nothing. Timeouts, retries (429 and 5xx, honouring Retry-After within the
retry budget; connection failures), TLS trust and the sleep between attempts come from the deployment's
`respond.http.HttpOptions`, as for every connector. Delivery is at least once: a send that timed out after
the request went out is sent again.

Webhook URLs carry their secret in the path (Slack, Teams connectors) or the query (Teams Workflows `sig=`),
so they go through the standard library's client, which logs nothing (`httpx` logs every request URL at
INFO), and never into a `Location`, a log line or an error text: logs and errors name the host only, and
vendor answers are scrubbed of every secret before they are quoted. Passwords likewise.

Idempotency here is per process: the same `ctx.idempotency_key` is not sent twice while the process runs
(a bounded in-memory record, `SentRecord`). Durable idempotency across restarts is the run engine's job.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import smtplib
import ssl
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from http.client import HTTPException
from ipaddress import ip_address
from typing import Any, Final
from urllib.parse import urlsplit

from watchfloor.respond.actions import (
    ActionContext,
    ActionManifest,
    ActionResult,
    ConnectorConfigError,
    ConnectorError,
    InputSpec,
)
from watchfloor.respond.connectors import HttpAction
from watchfloor.respond.http import HttpOptions, RetryLaterError, parse_retry_after

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES: Final = 4096  # of a vendor's answer read, then scrubbed and shortened for errors
QUOTE_CHARS: Final = 200
SLACK_MAX_CHARS: Final = 40_000
TEAMS_MAX_BYTES: Final = 28_000
EMAIL_MAX_RECIPIENTS: Final = 50
EMAIL_MAX_BODY_CHARS: Final = 1_000_000
EMAIL_MAX_SUBJECT_CHARS: Final = 900
SENT_RECORD_SIZE: Final = 4096
USER_AGENT: Final = "watchfloor-notify/1"
INVALID_INPUT: Final = "respond.invalid_input"

_EMAIL_RE: Final = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_TEAMS_FAILED: Final = re.compile(r"returned HTTP error (\d{3})")
_ENHANCED_CODE: Final = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_REDACTED: Final = "[redacted]"

Key = tuple[str, str, str]  # (action id, tenant, idempotency key)


# -- idempotency ---------------------------------------------------------------------------------
class SentRecord:
    """Which (action, tenant, idempotency key) this process has sent, with their results: a bounded LRU
    (the oldest keys are forgotten first). Thread-safe."""

    def __init__(self, maxsize: int = SENT_RECORD_SIZE) -> None:
        self._maxsize = maxsize
        self._done: OrderedDict[Key, ActionResult] = OrderedDict()
        self._in_flight: set[Key] = set()
        self._lock = threading.Lock()

    def begin(self, key: Key) -> ActionResult | bool:
        """The earlier result when `key` was sent; False while a send of `key` is under way; else True, and
        the caller owns `key` until it calls `finish` or `abandon`."""
        with self._lock:
            done = self._done.get(key)
            if done is not None:
                self._done.move_to_end(key)
                return done
            if key in self._in_flight:
                return False
            self._in_flight.add(key)
            return True

    def finish(self, key: Key, result: ActionResult) -> None:
        with self._lock:
            self._in_flight.discard(key)
            self._done[key] = result
            while len(self._done) > self._maxsize:
                self._done.popitem(last=False)

    def abandon(self, key: Key) -> None:
        with self._lock:
            self._in_flight.discard(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._done)


DEFAULT_SENT_RECORD: Final = SentRecord()


# -- redaction and small checks ------------------------------------------------------------------
def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret, and for secret URLs their path and query, replaced by `[redacted]`."""
    needles: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        needles.add(secret)
        if "://" in secret:
            parts = urlsplit(secret)
            needles.update(p for p in (parts.path, parts.path.lstrip("/"), parts.query) if len(p) >= 8)
    for needle in sorted(needles, key=len, reverse=True):
        text = text.replace(needle, _REDACTED)
    return text


def host_of(url: str) -> str:
    """What of a URL may be logged: scheme, host and port (never user info, path or query)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _flag(value: Any, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _quote(text: str, secrets: Sequence[str]) -> str:
    cleaned = " ".join(scrub(text, secrets).split())
    return cleaned if len(cleaned) <= QUOTE_CHARS else f"{cleaned[:QUOTE_CHARS]}..."


def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS context for `HttpOptions.verify`: system trust, a CA bundle path, or (False) no checks."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 keyed with the webhook secret over `<timestamp>.` followed by the body.

    A receiver recomputes it over the raw body it got, compares in constant time, and refuses timestamps
    more than a few minutes old."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


# -- sending -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """How one attempt failed; `retry_after` is the wait the server asked for, in seconds."""

    status: int
    message: str
    vendor_code: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    code: str | None = None  # the ConnectorError code (None: respond.connector_failed)


Judge = Callable[[HttpAnswer], Failure | None]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook answering with a redirect is misconfigured: never re-send the payload elsewhere."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def _post_once(
    url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, tls: ssl.SSLContext
) -> HttpAnswer:
    opener = urllib.request.build_opener(_NoRedirects(), urllib.request.HTTPSHandler(context=tls))
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310 - checked
    try:
        with opener.open(request, timeout=timeout) as response:
            raw = response.read(MAX_ANSWER_BYTES)
            return HttpAnswer(response.status, raw.decode("utf-8", "replace"), _lower(response.headers))
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read(MAX_ANSWER_BYTES)
        return HttpAnswer(exc.code, raw.decode("utf-8", "replace"), _lower(exc.headers))


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def status_failure(answer: HttpAnswer, vendor: str, secrets: Sequence[str], ctx: ActionContext) -> Failure:
    """The usual reading of a non-2xx answer: 408, 425, 429 and 5xx may pass later; the vendor's text (a
    short token such as Slack's `invalid_token` becomes the vendor code)."""
    quoted = _quote(answer.text, secrets)
    retryable = answer.status in {408, 425, 429} or answer.status >= 500
    wait = parse_retry_after(answer.headers.get("retry-after"), now=ctx.clock()) if retryable else None
    detail = f": {quoted}" if quoted else ""
    code = "respond.rate_limited" if answer.status == 429 else None
    if answer.status >= 500:
        code = "respond.vendor_unavailable"
    return Failure(
        status=answer.status,
        message=f"{vendor} answered HTTP {answer.status}{detail}",
        vendor_code=quoted if quoted and len(quoted) <= 64 and " " not in quoted else None,
        retryable=retryable,
        retry_after=wait,
        code=code,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbound:
    """One prepared notification: what would be sent, what was sent (summaries), and how to send it
    (returning the output and the external reference)."""

    what: str
    done: str
    send: Callable[[], tuple[dict[str, Any], str | None]]


class NotifyAction(HttpAction):
    """The shared run: inputs and config checked, dry run, once per idempotency key, scrubbed errors.

    `http` (timeouts, retry budget, TLS trust, sleep) is the deployment's, as for every connector; `sent` is
    the idempotency record (default: one per process).
    """

    def __init__(self, *, http: HttpOptions | None = None, sent: SentRecord | None = None) -> None:
        super().__init__(http=http)
        self._sent = sent if sent is not None else DEFAULT_SENT_RECORD

    def prepare(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> Outbound:
        raise NotImplementedError

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        outbound = self.prepare(ctx, inputs)
        if ctx.dry_run:
            return ActionResult(status="dry_run", summary=f"would {outbound.what}; nothing sent")
        key = (self.manifest.id, str(ctx.tenant_id), ctx.idempotency_key)
        earlier = self._sent.begin(key)
        if isinstance(earlier, ActionResult):
            return ActionResult(
                status="succeeded",
                summary=f"sent already for this step, not sent again ({earlier.summary})",
                changed=False,
                output=earlier.output,
                external_ref=earlier.external_ref,
            )
        if earlier is False:
            raise self.error(ctx, "the same notification is being sent right now", retryable=True)
        try:
            output, ref = outbound.send()
        except BaseException:
            self._sent.abandon(key)
            raise
        result = ActionResult(
            status="succeeded", summary=outbound.done, changed=True, output=output, external_ref=ref
        )
        self._sent.finish(key, result)
        log.info("%s for tenant %s: %s", self.manifest.id, ctx.tenant_id, outbound.done)
        return result

    # -- for subclasses --------------------------------------------------------------------------
    def secrets(self, ctx: ActionContext) -> list[str]:
        return [str(ctx.config[k]) for k in self.manifest.secrets if ctx.config.get(k)]

    def error(
        self,
        ctx: ActionContext,
        message: str,
        *,
        status: int = 0,
        vendor_code: str | None = None,
        retryable: bool = False,
        code: str | None = None,
    ) -> ConnectorError:
        return ConnectorError(
            scrub(message, self.secrets(ctx)),
            location=self.where(ctx),
            status=status,
            vendor_code=vendor_code,
            retryable=retryable,
            code=code,
        )

    def config_error(self, ctx: ActionContext, message: str) -> ConnectorConfigError:
        return ConnectorConfigError(message, location=self.where(ctx))

    def invalid(self, ctx: ActionContext, message: str) -> ConnectorError:
        return self.error(ctx, message, code=INVALID_INPUT)

    def webhook_url(self, ctx: ActionContext, key: str) -> str:
        """A configured webhook URL: https (http on loopback only), no user info, no spaces. Messages name
        the key, never the value."""
        (url,) = self.require(ctx, key)
        if not isinstance(url, str) or not url.isascii() or any(c.isspace() for c in url):
            raise self.config_error(ctx, f"{key} must be a URL without spaces")
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises on a bad port
        except ValueError:
            raise self.config_error(ctx, f"{key} is not a valid URL") from None
        secure = parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname))
        if not secure or not parts.hostname:
            raise self.config_error(ctx, f"{key} must be an https:// URL (plain http only on loopback)")
        if parts.username is not None or parts.password is not None:
            raise self.config_error(ctx, f"{key} must not carry a user name or password")
        return url

    def attempts(self, ctx: ActionContext, once: Callable[[], Failure | None]) -> None:
        """Call `once` until it succeeds (None), fails for good, or the retry budget (attempts and total
        wait of `self.http.retry`) is spent; then raise the last failure as a ConnectorError."""
        policy = self.http.retry
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            failure = once()
            if failure is None:
                return
            if not failure.retryable:
                raise self.error(
                    ctx,
                    failure.message,
                    status=failure.status,
                    vendor_code=failure.vendor_code,
                    code=failure.code,
                )
            delay = failure.retry_after if failure.retry_after is not None else self._backoff(attempt)
            if attempt >= policy.max_attempts or waited + delay > policy.max_total_wait_seconds:
                asked = f"; it asks to retry after {delay:.0f} s" if failure.retry_after is not None else ""
                raise RetryLaterError(
                    scrub(
                        f"{failure.message} (gave up after {attempt} attempt(s){asked})", self.secrets(ctx)
                    ),
                    location=self.where(ctx),
                    status=failure.status,
                    vendor_code=failure.vendor_code,
                    code=failure.code or "respond.vendor_unavailable",
                    retry_after_seconds=failure.retry_after,
                )
            log.warning(
                "%s for tenant %s: attempt %d failed (%s); retrying in %.2f s",
                self.manifest.id,
                ctx.tenant_id,
                attempt,
                scrub(failure.message, self.secrets(ctx)),
                delay,
            )
            self.http.sleep(delay)
            waited += delay

    def _backoff(self, attempt: int) -> float:
        policy = self.http.retry
        step = min(policy.max_delay_seconds, policy.base_delay_seconds * 2.0 ** (attempt - 1))
        return step / 2 + step / 2 * self.http.random()

    def timeout_seconds(self) -> float:
        timeout = self.http.timeout
        return max(float(timeout.connect or 0), float(timeout.read or 0)) or 30.0

    def post(
        self,
        ctx: ActionContext,
        url: str,
        body: bytes,
        *,
        judge: Judge,
        headers: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """POST `body` (JSON) with retries; `judge` reads an answer (None: delivered)."""
        secrets = self.secrets(ctx)
        tls = ssl_context(self.http.verify)
        sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        delivered: list[HttpAnswer] = []

        def once() -> Failure | None:
            try:
                answer = _post_once(url, body, sent, timeout=self.timeout_seconds(), tls=tls)
            except (urllib.error.URLError, HTTPException, OSError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                certificate = isinstance(reason, ssl.SSLCertVerificationError)
                said = _quote(str(reason), secrets) or type(reason).__name__
                return Failure(
                    status=0,
                    message=f"no answer from {host_of(url)}: {said}",
                    retryable=not certificate,
                    code="respond.vendor_unreachable",
                )
            verdict = judge(answer)
            if verdict is None:
                delivered.append(answer)
            return verdict

        self.attempts(ctx, once)
        return delivered[-1]


# -- Slack, Teams, webhook -------------------------------------------------------------------------
class SlackMessage(NotifyAction):
    manifest = ActionManifest(
        id="notify.slack",
        title="Post to Slack",
        connector="notify",
        description="Post a message to a Slack channel through its incoming webhook.",
        inputs=(
            InputSpec(name="text", description="message text (Slack mrkdwn), at most 40,000 characters"),
        ),
        config=("slack_webhook_url",),
        secrets=("slack_webhook_url",),
        risk="read_only",
        approval="never",
    )

    def prepare(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> Outbound:
        text = self.text_input(ctx, inputs, "text")
        if len(text) > SLACK_MAX_CHARS:
            raise self.invalid(ctx, f"Slack takes at most {SLACK_MAX_CHARS} characters, got {len(text)}")
        url = self.webhook_url(ctx, "slack_webhook_url")
        body = json.dumps({"text": text}).encode()

        def judge(answer: HttpAnswer) -> Failure | None:
            if 200 <= answer.status < 300:
                return None
            return status_failure(answer, "Slack", self.secrets(ctx), ctx)

        def send() -> tuple[dict[str, Any], str | None]:
            return {"status": self.post(ctx, url, body, judge=judge).status}, None

        what = f"a {len(text)}-character message to the tenant's Slack webhook"
        return Outbound(what=f"post {what}", done=f"posted {what}", send=send)


class TeamsMessage(NotifyAction):
    manifest = ActionManifest(
        id="notify.teams",
        title="Post to Microsoft Teams",
        connector="notify",
        description="Post a MessageCard to a Teams channel through an incoming webhook or a Workflows URL.",
        inputs=(InputSpec(name="text", description="message text (Markdown); the card at most 28 KB"),),
        config=("teams_webhook_url",),
        secrets=("teams_webhook_url",),
        risk="read_only",
        approval="never",
    )

    def prepare(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> Outbound:
        text = self.text_input(ctx, inputs, "text")
        card = {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": " ".join(text.split())[:80],
            "text": text,
        }
        body = json.dumps(card).encode()
        if len(body) > TEAMS_MAX_BYTES:
            raise self.invalid(
                ctx, f"Teams takes cards up to {TEAMS_MAX_BYTES} bytes, this one is {len(body)}"
            )
        url = self.webhook_url(ctx, "teams_webhook_url")

        def judge(answer: HttpAnswer) -> Failure | None:
            secrets = self.secrets(ctx)
            if not 200 <= answer.status < 300:
                return status_failure(answer, "Teams", secrets, ctx)
            # Connector webhooks answer 200 even when delivery failed, with the real status in the text.
            embedded = _TEAMS_FAILED.search(answer.text)
            if embedded is None:
                return None
            status = int(embedded.group(1))
            return Failure(
                status=status,
                message=f"Teams answered HTTP {answer.status} but says: {_quote(answer.text, secrets)}",
                vendor_code=str(status),
                retryable=status in {408, 429} or status >= 500,
                code="respond.rate_limited" if status == 429 else None,
            )

        def send() -> tuple[dict[str, Any], str | None]:
            return {"status": self.post(ctx, url, body, judge=judge).status}, None

        what = f"a {len(text)}-character card to the tenant's Teams webhook"
        return Outbound(what=f"post {what}", done=f"posted {what}", send=send)


class WebhookPost(NotifyAction):
    manifest = ActionManifest(
        id="notify.webhook",
        title="Call a webhook",
        connector="notify",
        description="POST a JSON payload, signed with HMAC-SHA256, to the tenant's webhook URL.",
        inputs=(InputSpec(name="payload", description="any JSON value (object, list, text, number)"),),
        config=("webhook_url", "webhook_secret"),
        secrets=("webhook_secret",),
        risk="read_only",
        approval="never",
    )

    def secrets(self, ctx: ActionContext) -> list[str]:
        # The URL may carry a token in its path or query: scrubbed from texts like a secret, logged as host.
        url = ctx.config.get("webhook_url")
        return [*super().secrets(ctx), *([str(url)] if url else [])]

    def prepare(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> Outbound:
        if "payload" not in inputs:
            raise self.invalid(ctx, "input 'payload' is required")
        try:
            body = json.dumps(inputs["payload"], separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError):
            raise self.invalid(ctx, "input 'payload' must be JSON (objects, lists, text, numbers)") from None
        url = self.webhook_url(ctx, "webhook_url")
        (secret,) = self.require(ctx, "webhook_secret")
        delivery = hashlib.sha256(f"{ctx.tenant_id}\0{ctx.idempotency_key}".encode()).hexdigest()[:32]
        target = host_of(url)

        def judge(answer: HttpAnswer) -> Failure | None:
            if 200 <= answer.status < 300:
                return None
            return status_failure(answer, f"webhook {target}", self.secrets(ctx), ctx)

        def send() -> tuple[dict[str, Any], str | None]:
            timestamp = str(int(ctx.clock().timestamp()))
            headers = {
                "X-Watchfloor-Timestamp": timestamp,
                "X-Watchfloor-Signature": webhook_signature(str(secret), timestamp, body),
                "X-Watchfloor-Delivery": delivery,
            }
            answer = self.post(ctx, url, body, judge=judge, headers=headers)
            return {"status": answer.status, "delivery": delivery}, delivery

        what = f"a signed {len(body)}-byte JSON payload to {target}"
        return Outbound(what=f"post {what}", done=f"posted {what}", send=send)


# -- email -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    from_address: str
    starttls: bool


class EmailMessageAction(NotifyAction):
    manifest = ActionManifest(
        id="notify.email",
        title="Send an email",
        connector="notify",
        description="Send a plain-text email through the tenant's SMTP relay (STARTTLS and AUTH optional).",
        inputs=(
            InputSpec(name="to", type="list", description="one address, a comma-separated list, or a list"),
            InputSpec(name="subject", description=f"one line, at most {EMAIL_MAX_SUBJECT_CHARS} characters"),
            InputSpec(name="body", description="plain text"),
        ),
        config=("smtp_host", "smtp_port", "smtp_username", "smtp_password", "from_address", "starttls"),
        secrets=("smtp_password",),
        risk="read_only",
        approval="never",
    )

    def settings(self, ctx: ActionContext) -> SmtpSettings:
        """The SMTP relay from the tenant's config; `starttls` defaults to on, the port to 587 (25 without
        STARTTLS). A password is never sent in clear, except to a relay on loopback."""
        host, from_address = self.require(ctx, "smtp_host", "from_address")
        starttls = _flag(ctx.config.get("starttls"), default=True)
        try:
            port = int(ctx.config.get("smtp_port") or (587 if starttls else 25))
        except (TypeError, ValueError):
            port = 0
        if not 0 < port < 65536:
            raise self.config_error(ctx, "smtp_port must be a port number")
        if not isinstance(from_address, str) or not _EMAIL_RE.fullmatch(from_address):
            raise self.config_error(ctx, "from_address must be one plain email address")
        username = ctx.config.get("smtp_username") or None
        password = ctx.config.get("smtp_password") or None
        if (username is None) != (password is None):
            raise self.config_error(ctx, "smtp_username and smtp_password go together")
        if username is not None and not starttls and not _loopback(str(host)):
            raise self.config_error(
                ctx, "refusing to send the SMTP password in clear: turn starttls on (or relay via loopback)"
            )
        return SmtpSettings(
            host=str(host),
            port=port,
            username=None if username is None else str(username),
            password=None if password is None else str(password),
            from_address=from_address,
            starttls=starttls,
        )

    def recipients(self, ctx: ActionContext, value: Any) -> list[str]:
        items = value.replace(";", ",").split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise self.invalid(ctx, "input 'to' must be an address, a comma-separated list or a list")
        found = [i.strip() for i in items if i.strip()]
        bad = [i for i in found if not _EMAIL_RE.fullmatch(i)]
        if bad:
            raise self.invalid(ctx, f"not plain email addresses: {', '.join(repr(b) for b in bad[:5])}")
        if not 1 <= len(found) <= EMAIL_MAX_RECIPIENTS:
            raise self.invalid(ctx, f"give 1 to {EMAIL_MAX_RECIPIENTS} recipients")
        return list(dict.fromkeys(found))

    def prepare(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> Outbound:
        to = self.recipients(ctx, inputs.get("to"))
        subject = self.text_input(ctx, inputs, "subject")
        if "\r" in subject or "\n" in subject or len(subject) > EMAIL_MAX_SUBJECT_CHARS:
            raise self.invalid(
                ctx, f"input 'subject' must be one line of at most {EMAIL_MAX_SUBJECT_CHARS} characters"
            )
        body = inputs.get("body")
        if not isinstance(body, str) or len(body) > EMAIL_MAX_BODY_CHARS:
            raise self.invalid(ctx, f"input 'body' must be text of at most {EMAIL_MAX_BODY_CHARS} characters")
        smtp = self.settings(ctx)
        key = hashlib.sha256(f"{ctx.tenant_id}\0{ctx.idempotency_key}".encode()).hexdigest()[:24]
        message = EmailMessage()
        message["From"] = smtp.from_address
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = formatdate(ctx.clock().timestamp(), usegmt=True)
        # Stable for the step: a receiving system can drop a duplicate delivered after a lost answer.
        message["Message-ID"] = make_msgid(idstring=key, domain=smtp.from_address.rsplit("@", 1)[1])
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body)

        def send() -> tuple[dict[str, Any], str | None]:
            refused = self.deliver(ctx, smtp, message)
            accepted = [r for r in to if r not in refused]
            return {"recipients": accepted, "refused": sorted(refused)}, str(message["Message-ID"])

        what = f"{subject!r} to {', '.join(to)} via {smtp.host}:{smtp.port}"
        return Outbound(what=f"email {what}", done=f"emailed {what}", send=send)

    def deliver(
        self, ctx: ActionContext, smtp: SmtpSettings, message: EmailMessage
    ) -> dict[str, tuple[int, bytes]]:
        """Send with retries (connection failures, 4xx); returns the recipients the server refused."""
        secrets = self.secrets(ctx)
        refused: list[dict[str, tuple[int, bytes]]] = []

        def once() -> Failure | None:
            try:
                refused.append(self._session(smtp, message))
            except smtplib.SMTPRecipientsRefused as exc:
                codes = sorted({code for code, _text in exc.recipients.values()})
                first = codes[0] if codes else 0
                return Failure(
                    status=first,
                    message=f"the SMTP server refused every recipient ({', '.join(map(str, codes))})",
                    vendor_code=str(first),
                    retryable=400 <= first < 500,
                )
            except smtplib.SMTPNotSupportedError as exc:
                return Failure(status=0, message=f"the SMTP server lacks a needed extension: {exc}")
            except smtplib.SMTPResponseException as exc:
                return _smtp_failure(exc.smtp_code, exc.smtp_error, secrets)
            except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, TLS failed, dropped
                said = _quote(str(exc), secrets) or type(exc).__name__
                return Failure(
                    status=0,
                    message=f"no usable answer from SMTP server {smtp.host}:{smtp.port}: {said}",
                    retryable=not isinstance(exc, ssl.SSLCertVerificationError),
                    code="respond.vendor_unreachable",
                )
            return None

        self.attempts(ctx, once)
        return refused[-1]

    def _session(self, smtp: SmtpSettings, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=self.timeout_seconds()) as session:
            session.ehlo()
            if smtp.starttls:
                # Refuses (SMTPNotSupportedError) rather than falling back to clear text.
                session.starttls(context=ssl_context(self.http.verify))
                session.ehlo()
            if smtp.username is not None and smtp.password is not None:
                session.login(smtp.username, smtp.password)
            return session.send_message(message)


def _smtp_failure(code: int, text: bytes | str, secrets: Sequence[str]) -> Failure:
    said = _quote(text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text), secrets)
    enhanced = _ENHANCED_CODE.search(said)
    login = code in {530, 534, 535, 538}
    what = "refused the login" if login else "answered"
    return Failure(
        status=code,
        message=f"the SMTP server {what}: {code} {said}",
        vendor_code=enhanced.group(1) if enhanced else str(code),
        retryable=400 <= code < 500,
        code="respond.auth_failed" if login else None,
    )


ACTIONS: Final = (EmailMessageAction, SlackMessage, TeamsMessage, WebhookPost)
