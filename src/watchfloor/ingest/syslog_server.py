"""Syslog listeners (asyncio): UDP datagrams and TCP streams -> frames -> an async handler.

The listeners neither parse nor decide tenants: each frame goes, with the peer address and the transport, to
`handler(frame, peer, transport)`; the caller resolves the tenant (peer network, a token in structured data),
parses and hands off to the spool. Every listener counts what it did in a `ListenerStats`.

- UDP: one datagram is one frame (RFC 5426). Datagrams wait in a bounded queue for one worker that awaits the
  handler; when the queue is full new datagrams are dropped and counted (UDP has no backpressure).
- TCP: one `SyslogFramer` per connection (octet counting or LF/NUL framing, RFC 6587). The handler is awaited
  frame by frame before the next read, so a slow consumer slows the sender down through TCP flow control.
  Connections over `max_connections` are closed at once; a connection idle for `idle_timeout_seconds` is
  closed (like end of stream, a last unterminated LF frame is delivered); a frame over `max_frame_bytes` is
  skipped and counted. `stop` cancels open connections.

A handler exception never stops a listener: it is counted and logged with the peer and exception type only,
never the payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from watchfloor.ingest.syslog import DEFAULT_MAX_FRAME_BYTES, FRAME_OVERSIZED, FrameProblem, SyslogFramer

__all__ = [
    "FrameHandler",
    "ListenerStats",
    "Peer",
    "SyslogTcpServer",
    "SyslogUdpServer",
    "Transport",
]

logger = logging.getLogger(__name__)

Transport = Literal["udp", "tcp"]
Peer = tuple[str, int]
FrameHandler = Callable[[bytes, Peer, Transport], Awaitable[None]]

DEFAULT_MAX_CONNECTIONS = 512
DEFAULT_IDLE_TIMEOUT_SECONDS = 300.0
DEFAULT_MAX_QUEUE_FRAMES = 10_000
READ_CHUNK_BYTES = 64 * 1024


@dataclass(slots=True)
class ListenerStats:
    """Counters for one listener.

    `frames_received` counts frames handed to the handler; `frames_oversized` frames over the size limit;
    `framing_errors` other framing problems (bad octet count, stream cut inside a frame); `handler_errors`
    exceptions raised by the handler; `frames_dropped` UDP datagrams dropped because the queue was full or
    still queued at stop.
    """

    transport: Transport
    bytes_received: int = 0
    frames_received: int = 0
    frames_oversized: int = 0
    frames_dropped: int = 0
    framing_errors: int = 0
    handler_errors: int = 0
    connections_accepted: int = 0
    connections_rejected: int = 0
    connections_active: int = 0
    idle_timeouts: int = 0


def _peer(address: Any) -> Peer:
    """(host, port) from an IPv4 or IPv6 socket address."""
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return str(address), 0


async def _deliver(
    handler: FrameHandler, stats: ListenerStats, frame: bytes, peer: Peer, transport: Transport
) -> None:
    stats.frames_received += 1
    try:
        await handler(frame, peer, transport)
    except Exception as exc:  # noqa: BLE001 - a bad frame or handler bug must not stop the listener
        stats.handler_errors += 1
        code = getattr(exc, "code", None)
        logger.warning(
            "syslog %s handler failed for frame from %s:%d: %s%s",
            transport,
            peer[0],
            peer[1],
            type(exc).__name__,
            f" [{code}]" if isinstance(code, str) else "",
        )


class SyslogUdpServer:
    """Receives syslog datagrams; `start` returns the bound port (0 picks a free one)."""

    def __init__(
        self,
        handler: FrameHandler,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_queue_frames: int = DEFAULT_MAX_QUEUE_FRAMES,
    ) -> None:
        self.handler = handler
        self.max_frame_bytes = max_frame_bytes
        self.stats = ListenerStats(transport="udp")
        self._queue: asyncio.Queue[tuple[bytes, Peer]] = asyncio.Queue(maxsize=max_queue_frames)
        self._transport: asyncio.DatagramTransport | None = None
        self._worker: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        if self._transport is not None:
            raise RuntimeError("listener already started")
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port)
        )
        self._transport = transport
        self._worker = asyncio.create_task(self._work(), name="syslog-udp-worker")
        self.port = _peer(transport.get_extra_info("sockname"))[1]
        return self.port

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while not self._queue.empty():
            self._queue.get_nowait()
            self.stats.frames_dropped += 1

    def on_datagram(self, data: bytes, address: Any) -> None:
        """Called by the datagram protocol for every datagram."""
        self.stats.bytes_received += len(data)
        if len(data) > self.max_frame_bytes:
            self.stats.frames_oversized += 1
            return
        if not data.strip(b"\r\n\x00"):
            return
        try:
            self._queue.put_nowait((data, _peer(address)))
        except asyncio.QueueFull:
            self.stats.frames_dropped += 1

    async def _work(self) -> None:
        while True:
            frame, peer = await self._queue.get()
            await _deliver(self.handler, self.stats, frame, peer, "udp")


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SyslogUdpServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server.on_datagram(data, addr)


class SyslogTcpServer:
    """Accepts syslog over TCP; `start` returns the bound port (0 picks a free one)."""

    def __init__(
        self,
        handler: FrameHandler,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        idle_timeout_seconds: float = DEFAULT_IDLE_TIMEOUT_SECONDS,
    ) -> None:
        self.handler = handler
        self.max_frame_bytes = max_frame_bytes
        self.max_connections = max_connections
        self.idle_timeout_seconds = idle_timeout_seconds
        self.stats = ListenerStats(transport="tcp")
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        if self._server is not None:
            raise RuntimeError("listener already started")
        self._server = await asyncio.start_server(self._serve, host, port, limit=READ_CHUNK_BYTES)
        self.port = _peer(self._server.sockets[0].getsockname())[1]
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._stopping = True
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        self._stopping = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.stats.connections_active >= self.max_connections:
            self.stats.connections_rejected += 1
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        self.stats.connections_accepted += 1
        self.stats.connections_active += 1
        peer = _peer(writer.get_extra_info("peername"))
        framer = SyslogFramer(max_frame_bytes=self.max_frame_bytes)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout_seconds):
                        chunk = await reader.read(READ_CHUNK_BYTES)
                except TimeoutError:
                    self.stats.idle_timeouts += 1
                    await self._handle(framer.close(), peer)
                    break
                if not chunk:
                    await self._handle(framer.close(), peer)
                    break
                self.stats.bytes_received += len(chunk)
                await self._handle(framer.feed(chunk), peer)
        except (ConnectionError, OSError) as exc:
            logger.info("syslog tcp connection from %s:%d ended: %s", peer[0], peer[1], type(exc).__name__)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cancelled by our own stop(): end normally so asyncio does not report the task as failed.
        finally:
            self.stats.connections_active -= 1
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _handle(self, items: list[bytes | FrameProblem], peer: Peer) -> None:
        for item in items:
            if isinstance(item, FrameProblem):
                if item.code == FRAME_OVERSIZED:
                    self.stats.frames_oversized += 1
                else:
                    self.stats.framing_errors += 1
                logger.info(
                    "syslog tcp framing problem from %s:%d at byte %d: %s",
                    peer[0],
                    peer[1],
                    item.offset,
                    item.code,
                )
                continue
            await _deliver(self.handler, self.stats, item, peer, "tcp")
