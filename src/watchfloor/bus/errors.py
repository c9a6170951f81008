"""The bus error family: every error has a stable `code` and says which subject (and tenant) it concerns.

`SpoolFullError` and `SpoolBackpressure` carry a `retry_after_seconds` hint so HTTP intake can answer
503/429 with `Retry-After`. Nothing here ever holds a payload: payloads may contain customer secrets.
"""

from __future__ import annotations

from watchfloor.core.errors import Location, WatchfloorError


class BusError(WatchfloorError):
    """Root of the bus family: something went wrong publishing, consuming or opening the spool."""

    code = "bus.error"


class BusClosedError(BusError):
    """The bus (or the subject log) was closed; open a new one."""

    code = "bus.closed"


class BusInUseError(BusError):
    """Another process holds the spool directory's lock."""

    code = "bus.in_use"


class InvalidNameError(BusError):
    """A subject or durable consumer name is not `[A-Za-z0-9_-]` tokens separated by dots."""

    code = "bus.invalid_name"


class MessageTooLargeError(BusError):
    """One message is larger than `max_record_bytes`; split it upstream."""

    code = "bus.message_too_large"


class SpoolFullError(BusError):
    """Refused before writing: the subject is at `max_bytes` or the filesystem is below `min_free_bytes`.

    Also raised when the operating system reports ENOSPC/EDQUOT during a write; the spool has then been
    truncated back to its last durable record. Nothing was stored for the refused call.
    """

    code = "bus.spool_full"

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float,
        location: Location | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, location=location, code=code)
        self.retry_after_seconds = retry_after_seconds


class SpoolWriteError(BusError):
    """The operating system failed a write or fsync (EIO, ...); the call stored nothing.

    The spool was truncated back to its last durable record. If even that failed, the subject is poisoned:
    every later publish raises this error until the bus is reopened (which recovers from disk).
    """

    code = "bus.spool_write_failed"


class SpoolBackpressure(BusError):  # noqa: N818 - the name intake code and the brief use
    """Raised by `Pressure.raise_for_level`: consumers are too far behind; retry after `retry_after_seconds`.

    `level` is "throttle" (answer 429) or "full" (answer 503).
    """

    code = "bus.backpressure"

    def __init__(
        self,
        message: str,
        *,
        level: str,
        retry_after_seconds: float,
        location: Location | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, location=location, code=code)
        self.level = level
        self.retry_after_seconds = retry_after_seconds
