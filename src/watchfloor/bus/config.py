"""Spool settings (names carry their units) and `SpoolIO`, the one seam through which segment data is written.

`SpoolIO` exists so tests can make the operating system fail for real-looking reasons (a short write then
ENOSPC, an fsync returning EIO) without mocking the spool's internals: subclass it, override one method,
pass the instance to `SpoolBus(..., io=...)`. Production code never passes one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolConfig:
    """Settings of an embedded spool. Per-subject limits apply to each subject separately.

    - `max_segment_bytes`: roll to a new segment file once the active one would pass this size.
    - `max_bytes`: refuse publishes (SpoolFullError) that would take a subject past this many bytes on disk.
    - `min_free_bytes`: refuse publishes that would leave less than this free on the filesystem.
    - `high_water_bytes`: pending (unacked) bytes of the slowest consumer at which `pressure()` says
      "throttle"; defaults to 80% of `max_bytes` when that is set.
    - `max_age_seconds`: delete sealed segments older than this even if unacked (JetStream MaxAge);
      None keeps unacked data until it is acked.
    - `ack_wait_seconds`, `max_ack_pending`: consumer defaults (JetStream AckWait, MaxAckPending).
    - `max_record_bytes`: the largest single frame accepted.
    - `full_retry_after_seconds`, `throttle_retry_after_seconds`: the Retry-After hints handed out.
    """

    max_segment_bytes: int = 64 * MIB
    max_bytes: int | None = None
    min_free_bytes: int = 256 * MIB
    high_water_bytes: int | None = None
    max_age_seconds: float | None = None
    ack_wait_seconds: float = 30.0
    max_ack_pending: int = 1000
    max_record_bytes: int = 16 * MIB
    full_retry_after_seconds: float = 5.0
    throttle_retry_after_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.max_segment_bytes < 4096:
            msg = "max_segment_bytes must be at least 4096"
            raise ValueError(msg)
        if self.max_ack_pending < 1:
            msg = "max_ack_pending must be at least 1"
            raise ValueError(msg)
        if self.ack_wait_seconds <= 0:
            msg = "ack_wait_seconds must be positive"
            raise ValueError(msg)

    @property
    def effective_high_water_bytes(self) -> int | None:
        if self.high_water_bytes is not None:
            return self.high_water_bytes
        if self.max_bytes is not None:
            return self.max_bytes * 8 // 10
        return None


class SpoolIO:
    """The operating-system calls that write segment data. Subclass in tests to inject failures."""

    def pwrite(self, fd: int, data: memoryview, offset: int) -> int:
        """Write some of `data` at `offset`; returns how many bytes were written (may be short)."""
        return os.pwrite(fd, data, offset)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def truncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def free_bytes(self, directory: Path) -> int:
        """Bytes an unprivileged process may still write on the filesystem holding `directory`."""
        st = os.statvfs(directory)
        return st.f_bavail * st.f_frsize
