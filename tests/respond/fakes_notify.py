"""Loopback servers speaking the real protocols of the notify connector's vendors, errors included.

- `SlackFake`: an incoming webhook at `/services/<team>/<bot>/<secret>`: 200 `ok`; a wrong secret is
  403 `invalid_token`, an unknown path 404 `no_service`, a body without `text` 400 `invalid_payload`.
- `TeamsFake`: a connector webhook (200 `1`) or a Workflows trigger (202, the `sig` in the query); a body
  that is not a MessageCard with text is 400 `Summary or Text is required.`.
- `SignedWebhookFake`: a generic receiver that checks `X-Watchfloor-Signature` (401 when wrong).
- `SmtpFake`: ESMTP with optional STARTTLS (given a server TLS context) and AUTH PLAIN/LOGIN; wrong
  credentials are `535 5.7.8`, unknown recipients `550 5.1.1`; scripted replies for DATA.

Each HTTP fake answers `script` (a queue of `Scripted` answers, e.g. 429 with Retry-After) first, then its
vendor's normal behaviour, and records every request it got.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import socketserver
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Scripted:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0  # wait before answering (to trip client timeouts)


class HttpFake:
    """A threaded HTTP server on 127.0.0.1 with a scripted answer queue; subclasses define `answer`."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: deque[Scripted] = deque()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                received = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                fake.requests.append(received)
                scripted = fake.script.popleft() if fake.script else fake.answer(received)
                if scripted.delay_seconds:
                    time.sleep(scripted.delay_seconds)
                payload = scripted.body.encode()
                self.send_response(scripted.status)
                for name, value in scripted.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: Any) -> None:  # quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, received: Received) -> Scripted:
        raise NotImplementedError

    def __enter__(self) -> HttpFake:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class SlackFake(HttpFake):
    def __init__(self, secret: str = "xoxSecretWebhookTokenAbc123") -> None:
        super().__init__()
        self.secret = secret

    @property
    def url(self) -> str:
        return f"{self.base}/services/T0001/B0001/{self.secret}"

    def answer(self, received: Received) -> Scripted:
        text = {"Content-Type": "text/html"}
        if received.path != f"/services/T0001/B0001/{self.secret}":
            if received.path.startswith("/services/T0001/B0001/"):
                return Scripted(403, "invalid_token", text)
            return Scripted(404, "no_service", text)
        try:
            payload = received.json()
        except ValueError:
            return Scripted(400, "invalid_payload", text)
        if not isinstance(payload, dict) or not payload.get("text"):
            return Scripted(400, "invalid_payload", text)
        return Scripted(200, "ok", text)


class TeamsFake(HttpFake):
    def __init__(self, secret: str = "teamsSecretSig0123456789", *, workflows: bool = False) -> None:
        super().__init__()
        self.secret = secret
        self.workflows = workflows

    @property
    def url(self) -> str:
        if self.workflows:
            return (
                f"{self.base}/workflows/abc/triggers/manual/paths/invoke"
                f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.secret}"
            )
        return f"{self.base}/webhookb2/{self.secret}/IncomingWebhook/x/y"

    def answer(self, received: Received) -> Scripted:
        parts = urlsplit(received.path)
        if self.workflows:
            if parse_qs(parts.query).get("sig") != [self.secret]:
                return Scripted(401, '{"error":{"code":"DirectApiAuthorizationRequired"}}')
        elif not parts.path.startswith(f"/webhookb2/{self.secret}/"):
            return Scripted(404, "Not Found")
        try:
            card = received.json()
        except ValueError:
            return Scripted(400, "Bad payload received by generic incoming webhook.")
        if card.get("@type") != "MessageCard" or not (card.get("text") or card.get("summary")):
            return Scripted(400, "Summary or Text is required.")
        return Scripted(202, "") if self.workflows else Scripted(200, "1")


def teams_failed_in_200(status: int) -> Scripted:
    """What Teams connector webhooks answer when delivery failed behind them."""
    return Scripted(
        200,
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
        f"{status} with ContextId tcid=0,server=msgapi-production-eus-azsc1-4-93,cv=x.0..",
        {"Content-Type": "text/plain; charset=utf-8"},
    )


class SignedWebhookFake(HttpFake):
    """Checks the HMAC the way a receiver should: over `<timestamp>.` + the raw body, in constant time."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.verified: list[bool] = []

    @property
    def url(self) -> str:
        return f"{self.base}/hooks/watchfloor?key=receiverToken123456"

    def answer(self, received: Received) -> Scripted:
        timestamp = received.headers.get("x-watchfloor-timestamp", "")
        mac = hmac.new(self.secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256)
        good = hmac.compare_digest(
            f"sha256={mac.hexdigest()}", received.headers.get("x-watchfloor-signature", "")
        )
        self.verified.append(good)
        if not good:
            return Scripted(401, '{"error":"bad signature"}', {"Content-Type": "application/json"})
        return Scripted(200, '{"received":true}', {"Content-Type": "application/json"})


# -- SMTP --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Mail:
    mail_from: str
    rcpt_to: list[str]
    data: bytes
    authenticated_as: str | None
    over_tls: bool

    @property
    def message(self) -> Message:
        return message_from_bytes(self.data)


class SmtpFake:
    """A small ESMTP server (RFC 5321) on 127.0.0.1: EHLO/HELO, STARTTLS (RFC 3207, when given `tls`),
    AUTH PLAIN and LOGIN (RFC 4954, when given `users`; required before MAIL then), MAIL, RCPT, DATA,
    RSET, NOOP, QUIT. `greeting` replaces the 220 banner (e.g. `421 ...` for a busy server);
    `data_replies` scripts the answers to DATA (e.g. `451 4.3.0 try later`)."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        reject: set[str] | None = None,
        greeting: str = "220 smtp.fake.test ESMTP ready",
    ) -> None:
        self.users = users or {}
        self.tls = tls
        self.reject = reject or set()
        self.greeting = greeting
        self.data_replies: deque[str] = deque()
        self.mail: list[Mail] = []
        self.auth_attempts: list[str] = []  # raw AUTH lines, to check what went over the wire
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def write(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def read(self) -> str | None:
                raw = self.rfile.readline(65536)
                return None if not raw else raw.decode("utf-8", "replace").rstrip("\r\n")

            def handle(self) -> None:
                self.write(fake.greeting)
                if not fake.greeting.startswith("220"):
                    return
                tls_on = False
                user: str | None = None
                mail_from: str | None = None
                rcpts: list[str] = []
                while (line := self.read()) is not None:
                    verb, _, arg = line.partition(" ")
                    verb = verb.upper()
                    if verb in {"EHLO", "HELO"}:
                        lines = ["smtp.fake.test", "8BITMIME", "SIZE 10485760"]
                        if fake.tls is not None and not tls_on:
                            lines.append("STARTTLS")
                        if fake.users:
                            lines.append("AUTH PLAIN LOGIN")
                        for extension in lines[:-1]:
                            self.write(f"250-{extension}")
                        self.write(f"250 {lines[-1]}")
                    elif verb == "STARTTLS" and fake.tls is not None and not tls_on:
                        self.write("220 2.0.0 Ready to start TLS")
                        secure = fake.tls.wrap_socket(self.connection, server_side=True)
                        self.connection = secure
                        self.rfile = secure.makefile("rb")
                        self.wfile = secure.makefile("wb")
                        tls_on, user, mail_from, rcpts = True, None, None, []
                    elif verb == "AUTH" and fake.users:
                        fake.auth_attempts.append(line)
                        user = self.auth(arg)
                        if user is None:
                            self.write("535 5.7.8 Authentication credentials invalid")
                        else:
                            self.write("235 2.7.0 Authentication successful")
                    elif verb == "MAIL":
                        if fake.users and user is None:
                            self.write("530 5.7.0 Authentication required")
                            continue
                        mail_from, rcpts = _path(arg), []
                        self.write("250 2.1.0 Ok")
                    elif verb == "RCPT":
                        address = _path(arg)
                        if address in fake.reject:
                            self.write(f"550 5.1.1 <{address}>: Recipient address rejected: User unknown")
                        else:
                            rcpts.append(address)
                            self.write("250 2.1.5 Ok")
                    elif verb == "DATA":
                        if mail_from is None or not rcpts:
                            self.write("503 5.5.1 Error: need RCPT command")
                            continue
                        self.write("354 End data with <CR><LF>.<CR><LF>")
                        data = self.read_data()
                        reply = fake.data_replies.popleft() if fake.data_replies else None
                        if reply is not None:
                            self.write(reply)
                        else:
                            fake.mail.append(Mail(mail_from, list(rcpts), data, user, tls_on))
                            self.write(f"250 2.0.0 Ok: queued as Q{len(fake.mail)}")
                        mail_from, rcpts = None, []
                    elif verb in {"RSET", "NOOP"}:
                        if verb == "RSET":
                            mail_from, rcpts = None, []
                        self.write("250 2.0.0 Ok")
                    elif verb == "QUIT":
                        self.write("221 2.0.0 Bye")
                        return
                    else:
                        self.write("502 5.5.2 Error: command not recognized")

            def read_data(self) -> bytes:
                lines: list[bytes] = []
                while True:
                    raw = self.rfile.readline(1 << 20)
                    if not raw or raw in {b".\r\n", b".\n"}:
                        return b"".join(lines)
                    lines.append(raw[1:] if raw.startswith(b"..") else raw)

            def auth(self, arg: str) -> str | None:
                mechanism, _, initial = arg.partition(" ")
                try:
                    if mechanism.upper() == "PLAIN":
                        if not initial:
                            self.write("334 ")
                            initial = self.read() or ""
                        _authzid, login, password = base64.b64decode(initial).decode().split("\0")
                    elif mechanism.upper() == "LOGIN":
                        self.write("334 VXNlcm5hbWU6")
                        login = base64.b64decode(self.read() or "").decode()
                        self.write("334 UGFzc3dvcmQ6")
                        password = base64.b64decode(self.read() or "").decode()
                    else:
                        return None
                except (ValueError, UnicodeDecodeError):
                    return None
                return login if fake.users.get(login) == password else None

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def __enter__(self) -> SmtpFake:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _path(argument: str) -> str:
    """The address of `FROM:<a@b> SIZE=1` / `TO:<a@b>` (parameters after the path dropped)."""
    path = argument.partition(":")[2].strip()
    return path[1 : path.find(">")] if path.startswith("<") else path.split(" ")[0]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
