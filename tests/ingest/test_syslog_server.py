"""Syslog listeners over real loopback sockets: UDP, TCP (octet counting and LF), limits, failing handlers."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from watchfloor.ingest.syslog import parse_syslog
from watchfloor.ingest.syslog_server import Peer, SyslogTcpServer, SyslogUdpServer, Transport

HOST = "127.0.0.1"


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout=20))


@dataclass
class Collector:
    """A handler that records what it gets; `fail_on` makes it raise for frames containing that text."""

    frames: list[tuple[bytes, Peer, Transport]] = field(default_factory=list)
    fail_on: bytes | None = None

    async def __call__(self, frame: bytes, peer: Peer, transport: Transport) -> None:
        if self.fail_on is not None and self.fail_on in frame:
            raise RuntimeError("handler bug while processing the frame")
        self.frames.append((frame, peer, transport))

    def payloads(self) -> list[bytes]:
        return [f for f, _, _ in self.frames]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def tcp_send(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


def octets(*frames: bytes) -> bytes:
    return b"".join(b"%d %s" % (len(f), f) for f in frames)


# --- UDP ---------------------------------------------------------------------------------------------


def test_udp_datagrams_reach_the_handler_with_peer_and_can_be_parsed() -> None:
    async def scenario() -> None:
        handler = Collector()
        server = SyslogUdpServer(handler)
        port = await server.start(HOST, 0)
        assert port > 0
        assert server.port == port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            for i in range(20):
                sock.sendto(b"<34>Oct 11 22:14:15 mymachine su: attempt %d\n" % i, (HOST, port))
            sock.sendto(b"\n", (HOST, port))  # empty datagrams are ignored
            await until(lambda: len(handler.frames) == 20)
            client_port = sock.getsockname()[1]
        await server.stop()
        assert {(p, t) for _, p, t in handler.frames} == {((HOST, client_port), "udp")}
        received = datetime(2024, 10, 12, tzinfo=UTC)
        messages = [parse_syslog(f, received_at=received).message for f in handler.payloads()]
        assert sorted(messages) == sorted(f"attempt {i}" for i in range(20))
        assert server.stats.frames_received == 20
        assert server.stats.handler_errors == 0

    run(scenario())


def test_udp_oversized_datagram_is_counted_not_delivered() -> None:
    async def scenario() -> None:
        handler = Collector()
        server = SyslogUdpServer(handler, max_frame_bytes=100)
        port = await server.start(HOST, 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"<13>" + b"x" * 200, (HOST, port))
            sock.sendto(b"<13>small", (HOST, port))
            await until(lambda: len(handler.frames) == 1)
        await server.stop()
        assert handler.payloads() == [b"<13>small"]
        assert (server.stats.frames_oversized, server.stats.frames_received) == (1, 1)
        assert server.stats.bytes_received == 204 + 9

    run(scenario())


def test_udp_handler_exception_is_counted_logged_without_payload_and_serving_continues(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        handler = Collector(fail_on=b"token=SECRET")
        server = SyslogUdpServer(handler)
        port = await server.start(HOST, 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for frame in (b"<13>one", b"<13>two token=SECRET", b"<13>three"):
                sock.sendto(frame, (HOST, port))
                await asyncio.sleep(0.01)
            await until(lambda: len(handler.frames) == 2)
        await server.stop()
        assert handler.payloads() == [b"<13>one", b"<13>three"]
        assert server.stats.handler_errors == 1

    with caplog.at_level(logging.WARNING, logger="watchfloor.ingest.syslog_server"):
        run(scenario())
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)
    assert all("SECRET" not in r.getMessage() and r.exc_info is None for r in caplog.records)


def test_udp_full_queue_drops_and_counts() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        seen: list[bytes] = []

        async def slow(frame: bytes, peer: Peer, transport: Transport) -> None:
            await gate.wait()
            seen.append(frame)

        server = SyslogUdpServer(slow, max_queue_frames=2)
        port = await server.start(HOST, 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(6):
                sock.sendto(b"<13>m%d" % i, (HOST, port))
            await until(lambda: server.stats.bytes_received == 6 * 6)
        gate.set()
        await until(lambda: len(seen) == 3)  # one in the handler, two queued
        await server.stop()
        assert server.stats.frames_dropped == 3
        assert seen == [b"<13>m0", b"<13>m1", b"<13>m2"]

    run(scenario())


# --- TCP ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["octet-counting", "lf"])
def test_tcp_frames_arrive_in_order_whatever_the_segmenting(framing: str) -> None:
    frames = [b"<13>1 - host app - - - message %d" % i for i in range(50)]
    frames.append(b"<13>1 - host app - - - multi\nline" if framing == "octet-counting" else b"<13>crlf")
    stream = octets(*frames) if framing == "octet-counting" else b"".join(f + b"\r\n" for f in frames)

    async def scenario() -> None:
        handler = Collector()
        server = SyslogTcpServer(handler)
        port = await server.start(HOST, 0)
        _, writer = await asyncio.open_connection(HOST, port)
        for at in range(0, len(stream), 37):  # odd-sized writes split frames across reads
            writer.write(stream[at : at + 37])
            await writer.drain()
        await until(lambda: len(handler.frames) == len(frames))
        await close(writer)
        await server.stop()
        assert handler.payloads() == frames
        assert {t for _, _, t in handler.frames} == {"tcp"}
        assert server.stats.frames_received == len(frames)
        assert server.stats.bytes_received == len(stream)

    run(scenario())


def test_tcp_last_lf_frame_without_trailer_is_delivered_at_close() -> None:
    async def scenario() -> None:
        handler = Collector()
        server = SyslogTcpServer(handler)
        port = await server.start(HOST, 0)
        _, writer = await tcp_send(port, b"<13>first\n<13>no trailer")
        await close(writer)
        await until(lambda: len(handler.frames) == 2)
        await until(lambda: server.stats.connections_active == 0)
        await server.stop()
        assert handler.payloads() == [b"<13>first", b"<13>no trailer"]

    run(scenario())


def test_tcp_many_concurrent_connections() -> None:
    connections, per_connection = 40, 25

    async def scenario() -> None:
        handler = Collector()
        server = SyslogTcpServer(handler)
        port = await server.start(HOST, 0)

        async def client(n: int) -> None:
            frames = [b"<13>c%d m%d" % (n, i) for i in range(per_connection)]
            data = octets(*frames) if n % 2 else b"".join(f + b"\n" for f in frames)
            _, writer = await tcp_send(port, data)
            await close(writer)

        await asyncio.gather(*(client(n) for n in range(connections)))
        await until(lambda: len(handler.frames) == connections * per_connection)
        await until(lambda: server.stats.connections_active == 0)
        await server.stop()
        by_peer: dict[Peer, list[bytes]] = {}
        for frame, peer, _ in handler.frames:
            by_peer.setdefault(peer, []).append(frame)
        assert len(by_peer) == connections
        for frames in by_peer.values():
            n = frames[0].split(b" ")[0][5:]
            assert frames == [b"<13>c%s m%d" % (n, i) for i in range(per_connection)]
        assert server.stats.connections_accepted == connections
        assert server.stats.connections_rejected == 0

    run(scenario())


@pytest.mark.parametrize("framing", ["octet-counting", "lf"])
def test_tcp_oversized_frame_is_counted_and_the_connection_resyncs(framing: str) -> None:
    big = b"<13>" + b"B" * 5000
    frames = [b"<13>before", big, b"<13>after"]
    stream = octets(*frames) if framing == "octet-counting" else b"".join(f + b"\n" for f in frames)

    async def scenario() -> None:
        handler = Collector()
        server = SyslogTcpServer(handler, max_frame_bytes=1024)
        port = await server.start(HOST, 0)
        _, writer = await tcp_send(port, stream)
        await until(lambda: len(handler.frames) == 2)
        await close(writer)
        await server.stop()
        assert handler.payloads() == [b"<13>before", b"<13>after"]
        assert server.stats.frames_oversized == 1
        assert server.stats.framing_errors == 0

    run(scenario())


def test_tcp_bad_octet_count_is_a_framing_error() -> None:
    async def scenario() -> None:
        handler = Collector()
        server = SyslogTcpServer(handler)
        port = await server.start(HOST, 0)
        _, writer = await tcp_send(port, b"4 <1>a garbage 4 <1>b")
        await until(lambda: len(handler.frames) == 2)
        await close(writer)
        await server.stop()
        assert handler.payloads() == [b"<1>a", b"<1>b"]
        assert server.stats.framing_errors == 1

    run(scenario())


def test_tcp_handler_exception_does_not_close_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        handler = Collector(fail_on=b"password=hunter2")
        server = SyslogTcpServer(handler)
        port = await server.start(HOST, 0)
        _, writer = await tcp_send(port, b"<13>a\n<13>password=hunter2\n<13>b\n")
        await until(lambda: len(handler.frames) == 2)
        writer.write(b"<13>c\n")
        await writer.drain()
        await until(lambda: len(handler.frames) == 3)
        await close(writer)
        await server.stop()
        assert handler.payloads() == [b"<13>a", b"<13>b", b"<13>c"]
        assert server.stats.handler_errors == 1
        assert server.stats.frames_received == 4

    with caplog.at_level(logging.INFO, logger="watchfloor.ingest.syslog_server"):
        run(scenario())
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)
    assert all("hunter2" not in r.getMessage() for r in caplog.records)


def test_tcp_connection_limit_rejects_extra_connections() -> None:
    async def scenario() -> None:
        handler = Collector()
        server = SyslogTcpServer(handler, max_connections=2)
        port = await server.start(HOST, 0)
        _, w1 = await tcp_send(port, b"<13>one\n")
        _, w2 = await tcp_send(port, b"<13>two\n")
        await until(lambda: len(handler.frames) == 2)
        r3, w3 = await asyncio.open_connection(HOST, port)
        assert await asyncio.wait_for(r3.read(), 5) == b""  # closed by the server
        await until(lambda: server.stats.connections_rejected == 1)
        for writer in (w1, w2, w3):
            await close(writer)
        await until(lambda: server.stats.connections_active == 0)
        _, w4 = await tcp_send(port, b"<13>four\n")  # room again
        await until(lambda: len(handler.frames) == 3)
        await close(w4)
        await server.stop()
        assert handler.payloads() == [b"<13>one", b"<13>two", b"<13>four"]
        assert server.stats.connections_accepted == 3

    run(scenario())


def test_tcp_idle_connection_is_closed() -> None:
    async def scenario() -> None:
        handler = Collector()
        server = SyslogTcpServer(handler, idle_timeout_seconds=0.2)
        port = await server.start(HOST, 0)
        reader, writer = await tcp_send(port, b"<13>hello\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        await until(lambda: server.stats.idle_timeouts == 1)
        await close(writer)
        await server.stop()
        assert handler.payloads() == [b"<13>hello"]

    run(scenario())


def test_tcp_backpressure_a_blocked_handler_stops_reading() -> None:
    frame = b"<13>" + b"p" * 60_000
    count = 600  # ~36 MB: more than the loopback socket buffers can hold

    async def scenario() -> None:
        gate = asyncio.Event()
        seen: list[int] = []

        async def blocked(frame: bytes, peer: Peer, transport: Transport) -> None:
            await gate.wait()
            seen.append(len(frame))

        server = SyslogTcpServer(blocked, max_frame_bytes=64 * 1024)
        port = await server.start(HOST, 0)
        _, writer = await asyncio.open_connection(HOST, port)
        writer.write(octets(*[frame] * count))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.drain(), 0.5)
        assert server.stats.bytes_received < len(frame) * count // 2
        assert seen == []
        gate.set()
        await writer.drain()
        await until(lambda: len(seen) == count, timeout=15)
        await close(writer)
        await server.stop()

    run(scenario())


def test_stop_closes_open_connections_and_the_port() -> None:
    async def scenario() -> None:
        handler = Collector()
        server = SyslogTcpServer(handler)
        port = await server.start(HOST, 0)
        reader, writer = await tcp_send(port, b"<13>x\n")
        await until(lambda: len(handler.frames) == 1)
        await server.stop()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert server.stats.connections_active == 0
        with pytest.raises(OSError):
            await asyncio.open_connection(HOST, port)
        await close(writer)
        await server.stop()  # idempotent

    run(scenario())


def test_start_twice_is_an_error() -> None:
    async def scenario() -> None:
        handler: Callable[[bytes, Peer, Transport], Awaitable[None]] = Collector()
        for server in (SyslogTcpServer(handler), SyslogUdpServer(handler)):
            await server.start(HOST, 0)
            with pytest.raises(RuntimeError):
                await server.start(HOST, 0)
            await server.stop()

    run(scenario())
