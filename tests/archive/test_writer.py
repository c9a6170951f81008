"""ArchiveWriter: layout, schema, thresholds, thread safety, failure handling, stray temp files."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.archive.conftest import DAY0, RECEIVED, archived, clinic_events, win_event
from watchfloor.archive import (
    ARCHIVE_SCHEMA,
    ArchivedEvent,
    ArchiveError,
    ArchiveWriter,
    event_from_raw,
    search,
)
from watchfloor.archive.writer import clean_stray_temp_files


def parts(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet"))


def test_files_are_hive_partitioned_zstd_parquet_in_the_schema(tmp_path: Path) -> None:
    with ArchiveWriter(tmp_path, background_flush=False) as writer:
        writer.extend(clinic_events())
    files = parts(tmp_path)
    assert {f.parent.relative_to(tmp_path).as_posix() for f in files} == {
        "tenant=clinic/date=2026-11-20",
        "tenant=clinic/date=2026-11-21",
        "tenant=clinic/date=2026-11-22",
    }
    meta = pq.ParquetFile(files[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(files[0])
    assert table.schema.equals(ARCHIVE_SCHEMA, check_metadata=False)
    times = table.column("event_time").to_pylist()
    assert times == sorted(times)
    assert not list(tmp_path.rglob("*.tmp"))
    assert writer.stats.rows_written == 6
    assert writer.stats.files_written == 3


def test_nothing_is_visible_before_flush_and_everything_after(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path, flush_rows=1000, flush_seconds=3600, background_flush=False)
    writer.extend(clinic_events())
    assert writer.buffered == 6
    assert parts(tmp_path) == []
    assert writer.flush() == 6
    assert writer.buffered == 0
    assert len(parts(tmp_path)) == 3
    assert writer.flush() == 0
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ArchiveError) as info:
        writer.append(clinic_events()[0])
    assert info.value.code == "archive.closed"


def test_flush_rows_threshold_flushes_in_the_appending_thread(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path, flush_rows=2, flush_seconds=3600, background_flush=False)
    events = clinic_events()
    writer.append(events[0])
    assert parts(tmp_path) == []
    writer.append(events[1])
    assert len(parts(tmp_path)) == 1
    writer.close()


def test_flush_seconds_flushes_from_the_background(tmp_path: Path) -> None:
    with ArchiveWriter(tmp_path, flush_rows=1000, flush_seconds=0.1) as writer:
        writer.append(clinic_events()[0])
        deadline = time.monotonic() + 5
        while not parts(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(parts(tmp_path)) == 1
        assert writer.buffered == 0


def test_concurrent_appends_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path, flush_rows=97, flush_seconds=0.05)
    base = DAY0 + timedelta(hours=1)

    def work(n: int) -> None:
        for i in range(400):
            raw = win_event(4624, base + timedelta(seconds=i), record=n * 1000 + i, thread=n)
            writer.append(archived(raw, "clinic" if i % 2 else "bakery"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in parts(tmp_path))
    assert total == 2400
    for tenant in ("clinic", "bakery"):
        rows = search(tmp_path, tenant, since=DAY0, until=DAY0 + timedelta(days=1), limit=5000)
        assert len(rows) == 1200
        assert len({r["record_id"] for r in rows}) == 1200


def test_failed_flush_keeps_rows_for_the_next_attempt(tmp_path: Path) -> None:
    blocker = tmp_path / "tenant=clinic"
    blocker.write_text("a file where the tenant folder should be")
    writer = ArchiveWriter(tmp_path, background_flush=False)
    writer.extend(clinic_events())
    with pytest.raises(ArchiveError) as info:
        writer.flush()
    assert info.value.code == "archive.write_failed"
    assert info.value.location is not None
    assert info.value.location.tenant == "clinic"
    assert writer.buffered == 6
    assert writer.stats.errors == 1
    blocker.unlink()
    assert writer.flush() == 6
    writer.close()
    assert len(search(tmp_path, "clinic", since=DAY0, until=DAY0 + timedelta(days=5))) == 6


def test_stray_temp_files_of_dead_writers_are_removed_on_open(tmp_path: Path) -> None:
    day = tmp_path / "tenant=clinic" / "date=2026-11-20"
    day.mkdir(parents=True)
    dead = day / ".part-abc.parquet.999999999.tmp"  # no such pid
    dead.write_bytes(b"half a file")
    ours = day / f".part-def.parquet.{__import__('os').getpid()}.tmp"
    ours.write_bytes(b"a live writer's file")
    writer = ArchiveWriter(tmp_path, background_flush=False)
    assert writer.stats.stray_temp_files_removed == 1
    assert not dead.exists()
    assert ours.exists()
    writer.close()
    assert clean_stray_temp_files(tmp_path / "missing") == 0


def test_events_validate_tenant_and_aware_times() -> None:
    raw = win_event(4625, DAY0, record=1)
    with pytest.raises(ArchiveError) as info:
        event_from_raw(raw, tenant="../etc", source="s", received_at=RECEIVED)
    assert info.value.code == "archive.invalid_tenant"
    with pytest.raises(ValueError, match="timezone-aware"):
        event_from_raw(raw, tenant="t", source="s", received_at=datetime(2026, 1, 1))  # noqa: DTZ001
    event = event_from_raw(
        raw, tenant="t", source="s", received_at=datetime(2026, 1, 1, 5, tzinfo=UTC).astimezone()
    )
    assert event.received_at.tzinfo is UTC
    assert event.event_time == DAY0
    assert event.logsource == "windows/security/4625"
    assert event.record_id == "1"


def test_event_keys_are_stable_per_source_and_bytes() -> None:
    raw = win_event(4625, DAY0, record=1)
    a = event_from_raw(raw, tenant="t", source="s", received_at=RECEIVED)
    b = event_from_raw(raw, tenant="t", source="s", received_at=RECEIVED + timedelta(hours=3))
    c = event_from_raw(raw, tenant="t", source="other", received_at=RECEIVED)
    d = event_from_raw(win_event(4625, DAY0, record=2), tenant="t", source="s", received_at=RECEIVED)
    assert a.event_key == b.event_key
    assert len({a.event_key, c.event_key, d.event_key}) == 3
    own = event_from_raw(raw, tenant="t", source="s", received_at=RECEIVED, event_key="bus:ingest.raw:42")
    assert own.event_key == "bus:ingest.raw:42"


def test_archived_event_is_frozen() -> None:
    event = clinic_events()[0]
    assert isinstance(event, ArchivedEvent)
    with pytest.raises(AttributeError):
        event.source = "x"  # type: ignore[misc]
