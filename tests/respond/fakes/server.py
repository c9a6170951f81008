"""A loopback HTTP server for connector tests: any ASGI app (a vendor fake) served by uvicorn on
127.0.0.1 with an ephemeral port in a background thread, with a request log and injected failures.

    with LoopbackServer(fake.app()) as server:
        server.faults.fail_next(2, 429, headers={"Retry-After": "3"}, json=body)
        ... point the connector at server.url ...
        assert server.writes() == []

Faults are checked before the app sees a request, in the order they were added; each applies to the
next `times` requests it matches (`path_contains`, `method`). A fault with a `delay_seconds` and no
`status` only slows the request down and then lets the app answer.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0  # the status answered (0 until the answer started)

    def json(self) -> Any:
        return jsonlib.loads(self.body) if self.body else None

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}


@dataclass
class Fault:
    times: int
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_seconds: float = 0.0
    path_contains: str | None = None
    method: str | None = None

    def matches(self, request: RecordedRequest) -> bool:
        if self.path_contains is not None and self.path_contains not in request.path:
            return False
        return self.method is None or self.method == request.method


class Faults:
    """Thread-safe plan of injected failures (the server runs in another thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: list[Fault] = []

    def fail_next(
        self,
        times: int,
        status: int,
        *,
        json: Any = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        path_contains: str | None = None,
        method: str | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        all_headers = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers.setdefault("content-type", "application/json")
        self._add(Fault(times, status, all_headers, body, delay_seconds, path_contains, method))

    def delay_next(self, times: int, seconds: float, *, path_contains: str | None = None) -> None:
        self._add(Fault(times, None, delay_seconds=seconds, path_contains=path_contains))

    def clear(self) -> None:
        with self._lock:
            self._plan.clear()

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._plan.append(fault)

    def take(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            for fault in self._plan:
                if fault.times > 0 and fault.matches(request):
                    fault.times -= 1
                    return fault
        return None


class _FastServer(uvicorn.Server):
    """Checks `should_exit` every 0.01 s instead of 0.1 s, so teardown is quick."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, without its fixed 0.1 s pauses (they add up over a hundred tests)."""
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        deadline = time.monotonic() + 5
        while (self.server_state.connections or self.server_state.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        for server in self.servers:
            await server.wait_closed()


class LoopbackServer:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.requests: list[RecordedRequest] = []
        self.faults = Faults()
        self.url = ""
        self._lock = threading.Lock()
        self._server: _FastServer | None = None
        self._thread: threading.Thread | None = None

    # -- request log ----------------------------------------------------------------------------------

    def writes(self) -> list[RecordedRequest]:
        """Requests that could change something at the vendor (token requests excluded)."""
        return [r for r in self.log() if r.method not in READ_METHODS and not r.path.endswith("/token")]

    def log(self, method: str | None = None, path_contains: str = "") -> list[RecordedRequest]:
        with self._lock:
            return [
                r for r in self.requests if (method is None or r.method == method) and path_contains in r.path
            ]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> LoopbackServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi, log_level="warning", lifespan="off", access_log=False, interface="asgi3"
        )
        self._server = _FastServer(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.002)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the ASGI wrapper -----------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=parse_qs(scope.get("query_string", b"").decode()),
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
        )
        with self._lock:
            self.requests.append(request)

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                request.status = message["status"]
            await send(message)

        fault = self.faults.take(request)
        if fault is not None and fault.delay_seconds:
            await asyncio.sleep(fault.delay_seconds)
        if fault is not None and fault.status is not None:
            headers = [(k.lower().encode(), v.encode()) for k, v in fault.headers.items()]
            headers.append((b"content-length", str(len(fault.body)).encode()))
            await recording_send({"type": "http.response.start", "status": fault.status, "headers": headers})
            await send({"type": "http.response.body", "body": fault.body})
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._app(scope, replay, recording_send)
