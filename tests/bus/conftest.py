"""Test worlds for the bus: a spool directory, a bus on it, and a way to reopen it as after a restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from watchfloor.bus import SpoolBus, SpoolConfig, SpoolIO
from watchfloor.core.types import TenantId

TENANT = TenantId("clinic")
OTHER_TENANT = TenantId("bakery")
SUBJECT = "ingest.raw"

# Small segments so a few hundred messages span several files; no free-space floor on the test disk.
SMALL = SpoolConfig(max_segment_bytes=4096, min_free_bytes=0)

OpenBus = Callable[..., SpoolBus]


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def open_bus(spool_dir: Path) -> Iterator[OpenBus]:
    """Open (or reopen) a bus on `spool_dir`; every bus opened is closed at teardown."""
    opened: list[SpoolBus] = []

    def _open(config: SpoolConfig = SMALL, io: SpoolIO | None = None) -> SpoolBus:
        bus = SpoolBus(spool_dir, config, io=io)
        opened.append(bus)
        return bus

    yield _open
    for bus in opened:
        bus.close()


@pytest.fixture
def bus(open_bus: OpenBus) -> SpoolBus:
    return open_bus()


def segment_files(spool_dir: Path, subject: str = SUBJECT) -> list[Path]:
    return sorted((spool_dir / "streams" / subject).glob("*.seg"))


def payload(i: int, size: int = 40) -> bytes:
    head = f"msg-{i:06d}:".encode()
    return head + bytes((i + k) % 251 for k in range(max(0, size - len(head))))
