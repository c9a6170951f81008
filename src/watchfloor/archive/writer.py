"""Buffered, crash-safe Parquet writer: one file per (tenant, day) group per flush.

Rows are buffered in memory and written when `flush_rows` rows are buffered, when the oldest buffered row
is `flush_seconds` old (checked on every append and by a background thread), on `flush()` and on
`close()`. Each file is written under a hidden temporary name, fsync'd, renamed to `part-<uuid>.parquet`
and its folder fsync'd, so readers (which only list `part-*.parquet`) never see a half-written file, even
after SIGKILL or power loss. Temporary names carry the writer's pid; `ArchiveWriter` removes those of dead
processes when it opens.

Delivery into the archive is at-least-once: call `flush()` before acknowledging upstream. A failed flush
raises `ArchiveError` and keeps the rows buffered for the next attempt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import pyarrow.parquet as pq

from watchfloor.archive.model import ArchivedEvent, ArchiveError, day_partition, events_to_table
from watchfloor.core.errors import Location
from watchfloor.core.types import TenantId

__all__ = ["ArchiveWriter", "WriterStats", "clean_stray_temp_files"]

log = logging.getLogger(__name__)

PART_PREFIX: Final = "part-"
PART_SUFFIX: Final = ".parquet"
TEMP_PREFIX: Final = ".part-"
TEMP_SUFFIX: Final = ".tmp"
ZSTD_LEVEL: Final = 3


@dataclass(slots=True)
class WriterStats:
    """Counters since the writer opened (the component counters of the pipeline)."""

    received: int = 0
    rows_written: int = 0
    files_written: int = 0
    bytes_written: int = 0
    flushes: int = 0
    errors: int = 0
    stray_temp_files_removed: int = 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def clean_stray_temp_files(root: Path) -> int:
    """Remove `.part-*.<pid>.tmp` files left by writers that died; returns how many were removed.

    Temp files of live processes (including this one) are left alone: another writer may be using them.
    """
    removed = 0
    if not root.is_dir():
        return 0
    for temp in root.glob(f"tenant=*/date=*/{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        pid_text = temp.name.removesuffix(TEMP_SUFFIX).rsplit(".", 1)[-1]
        pid = int(pid_text) if pid_text.isdigit() else None
        if pid is not None and (pid == os.getpid() or _pid_alive(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
            removed += 1
    return removed


class ArchiveWriter:
    """Append `ArchivedEvent`s; thread-safe. Use as a context manager or call `close()`."""

    def __init__(
        self,
        root: Path,
        *,
        flush_rows: int = 50_000,
        flush_seconds: float = 5.0,
        zstd_level: int = ZSTD_LEVEL,
        background_flush: bool = True,
    ) -> None:
        if flush_rows < 1:
            raise ValueError("flush_rows must be at least 1")
        if flush_seconds <= 0:
            raise ValueError("flush_seconds must be positive")
        self.root = root
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.zstd_level = zstd_level
        self.stats = WriterStats()
        self.last_error: ArchiveError | None = None
        self._lock = threading.Lock()  # guards the buffers and counters
        self._write_lock = threading.Lock()  # one flush at a time, in append order
        self._buffers: dict[tuple[TenantId, date], list[ArchivedEvent]] = {}
        self._rows = 0
        self._oldest: float | None = None
        self._closed = False
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(
                f"cannot create archive folder: {exc.strerror}",
                location=Location(path=str(root)),
                code="archive.write_failed",
            ) from None
        self.stats.stray_temp_files_removed = clean_stray_temp_files(root)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background_flush:
            self._thread = threading.Thread(target=self._run, name="archive-flush", daemon=True)
            self._thread.start()

    # -- appending ---------------------------------------------------------------------------
    def append(self, rec: ArchivedEvent) -> None:
        """Buffer one event; flushes in this thread when a threshold is reached."""
        with self._lock:
            if self._closed:
                raise ArchiveError("archive writer is closed", code="archive.closed")
            self._buffers.setdefault((rec.tenant, rec.day), []).append(rec)
            self._rows += 1
            self.stats.received += 1
            if self._oldest is None:
                self._oldest = time.monotonic()
            due = self._due()
        if due:
            self.flush()

    def extend(self, recs: Iterable[ArchivedEvent]) -> None:
        for rec in recs:
            self.append(rec)

    @property
    def buffered(self) -> int:
        with self._lock:
            return self._rows

    def _due(self) -> bool:
        if self._rows >= self.flush_rows:
            return True
        return self._oldest is not None and time.monotonic() - self._oldest >= self.flush_seconds

    # -- flushing ----------------------------------------------------------------------------
    def flush(self) -> int:
        """Write every buffered row; returns the rows written. Durable when this returns."""
        with self._write_lock:
            with self._lock:
                groups = self._buffers
                self._buffers = {}
                self._rows = 0
                self._oldest = None
            written = 0
            pending = list(groups.items())
            for index, ((tenant, day), events) in enumerate(pending):
                try:
                    self._write_part(tenant, day, events)
                except OSError as exc:
                    self._restore(pending[index:])
                    error = ArchiveError(
                        f"cannot write archive partition: {exc.strerror or exc}",
                        location=Location(path=str(day_partition(self.root, tenant, day)), tenant=tenant),
                        code="archive.write_failed",
                    )
                    with self._lock:
                        self.stats.errors += 1
                    self.last_error = error
                    raise error from None
                written += len(events)
            if pending:
                with self._lock:
                    self.stats.flushes += 1
                    self.stats.rows_written += written
            return written

    def _restore(self, groups: list[tuple[tuple[TenantId, date], list[ArchivedEvent]]]) -> None:
        """Put unwritten groups back in front of anything appended meanwhile."""
        with self._lock:
            for key, events in groups:
                self._buffers[key] = events + self._buffers.get(key, [])
                self._rows += len(events)
            if self._oldest is None:
                self._oldest = time.monotonic()

    def _write_part(self, tenant: TenantId, day: date, events: list[ArchivedEvent]) -> Path:
        directory = day_partition(self.root, tenant, day)
        new_dirs = [p for p in (directory.parent, directory) if not p.is_dir()]
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{PART_PREFIX}{uuid.uuid4().hex}{PART_SUFFIX}"
        temp = directory / f".{name}.{os.getpid()}{TEMP_SUFFIX}"
        final = directory / name
        table = events_to_table(events)
        try:
            pq.write_table(
                table,
                str(temp),
                compression="zstd",
                compression_level=self.zstd_level,
                write_statistics=["event_time", "received_at", "event_key", "logsource"],
            )
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            size = temp.stat().st_size
            temp.replace(final)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        _fsync_dir(directory)
        for created in reversed(new_dirs):  # make the new folders' names durable too
            _fsync_dir(created.parent)
        with self._lock:
            self.stats.files_written += 1
            self.stats.bytes_written += size
        return final

    def _run(self) -> None:
        interval = min(max(self.flush_seconds / 4, 0.05), 1.0)
        while not self._stop.wait(interval):
            with self._lock:
                due = self._rows > 0 and self._due()
            if due:
                try:
                    self.flush()
                except ArchiveError as exc:
                    log.warning("background archive flush failed, rows kept for retry: %s", exc)

    # -- closing -----------------------------------------------------------------------------
    def close(self) -> None:
        """Flush what is buffered and stop the background thread. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
