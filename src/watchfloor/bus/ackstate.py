"""A durable consumer's ack state: the acked floor, acks above it, and what is delivered but unacked.

`AckState` is pure (the property tests drive it with arbitrary ack orders). `ConsumerStateFile` stores a
`ConsumerState` atomically: write `<name>.state.tmp`, fsync it, rename over `<name>.state`, fsync the
directory. The file is one JSON document followed by a line with its CRC-32, so a damaged file is detected
and reported; the consumer then starts from its floor 0 (everything still on disk is redelivered), which
keeps the at-least-once promise.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

STATE_VERSION = 1


class AckState:
    """Acked floor (every sequence <= floor is acked) plus the set of acked sequences above it."""

    __slots__ = ("_above", "_floor")

    def __init__(self, floor: int = 0, above: Iterable[int] = ()) -> None:
        self._floor = floor
        self._above: set[int] = {seq for seq in above if seq > floor}
        self._compact()

    @property
    def floor(self) -> int:
        return self._floor

    @property
    def above(self) -> frozenset[int]:
        return frozenset(self._above)

    @property
    def above_count(self) -> int:
        return len(self._above)

    def is_acked(self, seq: int) -> bool:
        return seq <= self._floor or seq in self._above

    def ack(self, seq: int) -> bool:
        """Mark `seq` acked; True if it was not acked before. Sequences start at 1."""
        if seq <= self._floor or seq in self._above:
            return False
        if seq == self._floor + 1:
            self._floor = seq
            self._compact()
        else:
            self._above.add(seq)
        return True

    def ack_range(self, first: int, last: int) -> None:
        """Mark every sequence in [first, last] acked (a gap nobody can consume)."""
        if last < first:
            return
        if first <= self._floor + 1:
            self.advance_to(last)
            return
        self._above.update(range(first, last + 1))

    def advance_to(self, seq: int) -> None:
        """Everything up to `seq` is gone (acked, or removed by retention): raise the floor to it."""
        if seq <= self._floor:
            return
        self._floor = seq
        self._above = {s for s in self._above if s > seq}
        self._compact()

    def _compact(self) -> None:
        above = self._above
        floor = self._floor
        while floor + 1 in above:
            floor += 1
            above.discard(floor)
        self._floor = floor


@dataclass(slots=True, kw_only=True)
class ConsumerState:
    """What a durable consumer persists. `deliveries` maps delivered-but-unacked sequences to their count."""

    subject: str
    durable_name: str
    floor: int = 0
    above: list[int] = field(default_factory=list)
    cursor: int = 0
    deliveries: dict[int, int] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        doc = {
            "version": STATE_VERSION,
            "subject": self.subject,
            "durable_name": self.durable_name,
            "floor": self.floor,
            "above": sorted(self.above),
            "cursor": self.cursor,
            "deliveries": {str(k): v for k, v in sorted(self.deliveries.items())},
        }
        body = orjson.dumps(doc)
        return body + b"\n" + f"{zlib.crc32(body):08x}".encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> ConsumerState:
        """Parse a state file; raises ValueError with a human sentence when it is damaged."""
        body, sep, rest = data.rstrip(b"\n").rpartition(b"\n")
        if not sep or f"{zlib.crc32(body):08x}".encode() != rest.strip():
            msg = "consumer state file CRC mismatch or truncated"
            raise ValueError(msg)
        try:
            doc = orjson.loads(body)
            if doc.get("version") != STATE_VERSION:
                msg = f"unknown consumer state version {doc.get('version')!r}"
                raise ValueError(msg)
            return cls(
                subject=str(doc["subject"]),
                durable_name=str(doc["durable_name"]),
                floor=int(doc["floor"]),
                above=[int(x) for x in doc["above"]],
                cursor=int(doc["cursor"]),
                deliveries={int(k): int(v) for k, v in doc["deliveries"].items()},
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            msg = "consumer state file is not a valid state document"
            raise ValueError(msg) from exc


class ConsumerStateFile:
    """One consumer's state file, replaced atomically on every save."""

    SUFFIX = ".state"

    def __init__(self, directory: Path, durable_name: str) -> None:
        self.directory = directory
        self.path = directory / f"{durable_name}{self.SUFFIX}"
        self._tmp = directory / f"{durable_name}{self.SUFFIX}.tmp"

    def load(self) -> ConsumerState | None:
        """The stored state, or None if there is none; raises ValueError if the file is damaged."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return ConsumerState.from_bytes(data)

    def save(self, state: ConsumerState, *, durable: bool = True) -> None:
        """Replace the file atomically. The content is always fsync'd before the rename (so a crash leaves
        the old or the new file, never a torn one); `durable=False` skips the directory fsync, so after a
        crash the previous version may come back. Acks need durable saves; delivery counts do not."""
        data = state.to_bytes()
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        Path(self._tmp).replace(self.path)
        if durable:
            fsync_dir(self.directory)

    def delete(self) -> bool:
        existed = self.path.exists()
        self.path.unlink(missing_ok=True)
        self._tmp.unlink(missing_ok=True)
        if existed:
            fsync_dir(self.directory)
        return existed


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a created, renamed or deleted file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
