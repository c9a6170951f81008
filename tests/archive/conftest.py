"""Archive test worlds: small inline Windows events for two tenants, and the shared EVTX corpus."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from watchfloor.archive import ArchivedEvent, ArchiveWriter, event_from_raw

DAY0 = datetime(2026, 11, 20, tzinfo=UTC)
RECEIVED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def win_event(
    event_id: int,
    when: datetime,
    *,
    record: int,
    channel: str = "Security",
    computer: str = "ws01.clinic.local",
    **data: Any,
) -> bytes:
    """A flat Windows event (NXLog-like shape): Channel, EventID, TimeCreated and event data."""
    doc = {
        "Channel": channel,
        "EventID": event_id,
        "EventRecordID": record,
        "Computer": computer,
        "TimeCreated": when.isoformat().replace("+00:00", "Z"),
        **data,
    }
    return orjson.dumps(doc)


def archived(raw: bytes, tenant: str, source: str = "ws01.evtx") -> ArchivedEvent:
    return event_from_raw(raw, tenant=tenant, source=source, received_at=RECEIVED)


def clinic_events() -> list[ArchivedEvent]:
    """Tenant `clinic`: failed logons, a PowerShell process, a list-valued field, over three days."""
    t = DAY0 + timedelta(hours=9)
    raws = [
        win_event(4625, t, record=1, TargetUserName="Administrator", IpAddress="10.1.2.3", LogonType=3),
        win_event(4625, t + timedelta(minutes=1), record=2, TargetUserName="alice", IpAddress="192.168.7.9"),
        win_event(4624, t + timedelta(minutes=2), record=3, TargetUserName="alice", IpAddress="10.200.0.1"),
        win_event(
            4688,
            t + timedelta(days=1),
            record=4,
            NewProcessName="C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            CommandLine="powershell.exe -NoP -EncodedCommand SQBFAFgA",
            SubjectUserName="bob",
        ),
        win_event(
            4688,
            t + timedelta(days=1, minutes=5),
            record=5,
            NewProcessName="C:\\Windows\\System32\\cmd.exe",
            CommandLine="cmd.exe /c whoami",
            SubjectUserName="admin",
        ),
        win_event(1102, t + timedelta(days=2), record=6, Data=["Security", "CLINIC\\bob"]),
    ]
    return [archived(raw, "clinic") for raw in raws]


def bakery_events() -> list[ArchivedEvent]:
    """Tenant `bakery`: look-alikes of clinic's events (same users, ids and days)."""
    t = DAY0 + timedelta(hours=9)
    raws = [
        win_event(4625, t, record=1, TargetUserName="Administrator", IpAddress="10.9.9.9"),
        win_event(4688, t + timedelta(days=1), record=2, CommandLine="powershell.exe -enc AAAA"),
    ]
    return [archived(raw, "bakery", source="pos01.evtx") for raw in raws]


def write(root: Path, events: list[ArchivedEvent], **kwargs: Any) -> None:
    with ArchiveWriter(root, background_flush=False, **kwargs) as writer:
        writer.extend(events)


@pytest.fixture
def archive_root(tmp_path: Path) -> Path:
    """Two tenants, written in two flushes so that files and days are several."""
    root = tmp_path / "archive"
    write(root, clinic_events()[:3] + bakery_events())
    write(root, clinic_events()[3:])
    return root


def corpus_lines(shared_dir: Path) -> list[bytes]:
    path = shared_dir / "datasets" / "windows-evtx" / "events.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with gzip.open(path) as fh:
        return fh.read().splitlines()


def corpus_events(lines: list[bytes], tenant: str) -> Iterator[ArchivedEvent]:
    for line in lines:
        doc = orjson.loads(line)
        source = str(doc.get("SourceFile", "corpus"))
        yield event_from_raw(line, tenant=tenant, source=source, received_at=RECEIVED, doc=doc)


@pytest.fixture(scope="session")
def corpus_archive(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The shared EVTX corpus archived for tenant `corp` (read-only for tests); returns (root, events)."""
    lines = corpus_lines(shared_dir)
    root = tmp_path_factory.mktemp("corpus") / "archive"
    with ArchiveWriter(root, flush_rows=4_000, background_flush=False) as writer:
        writer.extend(corpus_events(lines, "corp"))
    return root, len(lines)
