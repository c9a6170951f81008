"""HTTP intake test worlds: a real uvicorn server on loopback, a real spool, a real SQLite database.

`intake` is the default world (tenants "clinic" and "lawfirm", one token each); `start_intake(settings=...,
spool=...)` starts another with other limits. `world.drain()` reads what reached the spool, as envelopes.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from watchfloor.bus import SpoolBus, SpoolConfig
from watchfloor.core.types import TenantId
from watchfloor.ingest.envelope import SUBJECT_RAW, Envelope, from_message
from watchfloor.ingest.http import IntakeSettings, create_intake_app
from watchfloor.storage import Database

ACTOR = "test"
# No free-space floor on the test disk; small segments.
SPOOL = SpoolConfig(max_segment_bytes=64 * 1024, min_free_bytes=0)


@dataclass(frozen=True)
class Sender:
    """A tenant and one of its intake tokens."""

    tenant: TenantId
    token: str = field(repr=False)
    token_id: str


@dataclass
class IntakeWorld:
    url: str
    bus: SpoolBus
    db: Database
    settings: IntakeSettings
    clinic: Sender
    lawfirm: Sender

    def client(self, **options: object) -> httpx.Client:
        # TCP_NODELAY: httpcore writes headers and body separately; with Nagle and delayed ACKs on
        # loopback every request would wait ~40 ms.
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        return httpx.Client(base_url=self.url, timeout=10.0, transport=transport, **options)  # type: ignore[arg-type]

    def drain(self) -> list[Envelope]:
        """Every envelope published since the last drain, in order."""
        consumer = self.bus.consumer(SUBJECT_RAW, "tests")
        out: list[Envelope] = []
        while batch := consumer.fetch(1000, timeout_seconds=0.05):
            out.extend(from_message(message) for message in batch)
            consumer.ack_many(batch)
        return out

    def sender(self, tenant: str) -> Sender:
        created = self.db.tokens.create(TenantId(tenant), description="extra", actor=ACTOR)
        return Sender(TenantId(tenant), created.plaintext, created.token.id)


StartIntake = Callable[..., IntakeWorld]


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file made once per session; each world gets a copy."""
    path = tmp_path_factory.mktemp("template") / "wf.db"
    Database.open(f"sqlite:///{path}").close()
    return path


class _Server(uvicorn.Server):
    """uvicorn checks `should_exit` every 0.1 s; every 0.01 s makes each test's teardown quicker."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)


def _serve(app: object) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)  # type: ignore[arg-type]
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.005)
    return server, thread, port


@pytest.fixture
def start_intake(tmp_path: Path, migrated_db: Path) -> Iterator[StartIntake]:
    started: list[tuple[uvicorn.Server, threading.Thread, SpoolBus, Database]] = []

    def _start(settings: IntakeSettings | None = None, spool: SpoolConfig = SPOOL) -> IntakeWorld:
        n = len(started)
        db_path = tmp_path / f"wf{n}.db"
        shutil.copy(migrated_db, db_path)
        db = Database.open(f"sqlite:///{db_path}")
        bus = SpoolBus(tmp_path / f"spool{n}", spool)
        settings = settings or IntakeSettings()
        senders = []
        for tenant, vertical in (("clinic", "healthcare"), ("lawfirm", "legal")):
            db.tenants.create(tenant, name=tenant.title(), vertical=vertical, tier="standard", actor=ACTOR)
            created = db.tokens.create(TenantId(tenant), description="shipper", actor=ACTOR)
            senders.append(Sender(TenantId(tenant), created.plaintext, created.token.id))
        server, thread, port = _serve(create_intake_app(bus, db, settings))
        started.append((server, thread, bus, db))
        return IntakeWorld(f"http://127.0.0.1:{port}", bus, db, settings, senders[0], senders[1])

    yield _start
    for server, thread, bus, db in started:
        # The test's clients are closed, so nothing is in flight: stop the server without waiting for its
        # shutdown (uvicorn sleeps 0.1 s in it); `_stopping_servers` joins the threads at session end.
        server.should_exit = True
        server.force_exit = True
        _STOPPING.append(thread)
        bus.close()
        db.close()


_STOPPING: list[threading.Thread] = []


@pytest.fixture(scope="session", autouse=True)
def _stopping_servers() -> Iterator[None]:
    yield
    for thread in _STOPPING:
        thread.join(timeout=10)


@pytest.fixture
def intake(start_intake: StartIntake) -> IntakeWorld:
    return start_intake()
