"""Where readers put what went wrong: dead letters (input lost) and diagnostics (input repaired).

Every reader run counts what it did in a `ReadStats` and hands each problem to a `ReadSink`:
`MemoryDeadLetters` for the CLI and tests, `JsonlDeadLetterStore` for a per-tenant file on disk
(`<dir>/<tenant>/deadletters.jsonl`, read back with `iter_dead_letters`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self

import orjson

from watchfloor.core.errors import InputError, Location
from watchfloor.core.records import DeadLetter, Diagnostic
from watchfloor.core.types import TenantId, tenant_id

# Dead-letter and diagnostic codes. Stable: dashboards and tests key on them.
UNREADABLE = "input.unreadable"
EMPTY = "input.empty"
SKIPPED_UNKNOWN_TYPE = "input.skipped_unknown_type"
UNKNOWN_FORMAT = "input.unknown_format"
MALFORMED_JSON = "input.malformed_json"
NOT_AN_OBJECT = "input.not_an_object"
OVERSIZED = "input.oversized"
INVALID_UTF8_REPAIRED = "input.invalid_utf8_repaired"
TRUNCATED = "input.truncated"
CORRUPT = "input.corrupt"
NOT_EVTX = "input.not_evtx"
EVTX_CORRUPT = "input.evtx_corrupt"
EVTX_CHECKSUM = "input.evtx_checksum_mismatch"

SAMPLE_CAP_BYTES = 64 * 1024
DEADLETTER_FILE = "deadletters.jsonl"
DIAGNOSTIC_FILE = "diagnostics.jsonl"


@dataclass(frozen=True, slots=True, kw_only=True)
class CappedDeadLetter(DeadLetter):
    """A dead letter whose `sample` was cut to `SAMPLE_CAP_BYTES`; `original_length` is the full size."""

    original_length: int


def sample_length(item: DeadLetter) -> int:
    """The size of the input a dead letter's sample was taken from (before any capping)."""
    if isinstance(item, CappedDeadLetter):
        return item.original_length
    return len(item.sample)


@dataclass(slots=True)
class ReadStats:
    """Counters for one reader run. `bytes` is the size of the records yielded (JSON text)."""

    files: int = 0
    records: int = 0
    dead_letters: int = 0
    diagnostics: int = 0
    bytes: int = 0
    by_code: dict[str, int] = field(default_factory=dict)


class ReadSink(Protocol):
    """Receives every problem a reader meets; it must not drop them."""

    def dead_letter(self, item: DeadLetter) -> None: ...

    def diagnostic(self, item: Diagnostic) -> None: ...


class Reporter:
    """Binds a sink, the run's counters and the tenant; readers report through it."""

    __slots__ = ("sink", "stats", "tenant")

    def __init__(self, *, sink: ReadSink, stats: ReadStats, tenant: TenantId) -> None:
        self.sink = sink
        self.stats = stats
        self.tenant = tenant

    def _count(self, code: str) -> None:
        by_code = self.stats.by_code
        by_code[code] = by_code.get(code, 0) + 1

    def dead_letter(
        self,
        source: str,
        code: str,
        reason: str,
        *,
        line: int | None = None,
        record_id: int | None = None,
        offset: int | None = None,
        sample: bytes = b"",
        original_length: int | None = None,
    ) -> None:
        """Report lost input. `sample` is capped here; pass `original_length` if it was cut already."""
        full = len(sample) if original_length is None else max(original_length, len(sample))
        self.stats.dead_letters += 1
        self._count(code)
        if full > SAMPLE_CAP_BYTES or full > len(sample):
            self.sink.dead_letter(
                CappedDeadLetter(
                    tenant=self.tenant,
                    source=source,
                    reason=reason,
                    code=code,
                    line=line,
                    record_id=record_id,
                    offset=offset,
                    sample=sample[:SAMPLE_CAP_BYTES],
                    original_length=full,
                )
            )
            return
        self.sink.dead_letter(
            DeadLetter(
                tenant=self.tenant,
                source=source,
                reason=reason,
                code=code,
                line=line,
                record_id=record_id,
                offset=offset,
                sample=sample,
            )
        )

    def diagnostic(
        self, source: str, code: str, message: str, *, line: int | None = None, record_id: int | None = None
    ) -> None:
        """Report a problem with input that was still processed."""
        self.stats.diagnostics += 1
        self._count(code)
        self.sink.diagnostic(
            Diagnostic(
                tenant=self.tenant, source=source, code=code, message=message, line=line, record_id=record_id
            )
        )


class MemoryDeadLetters(ReadSink):
    """Collects dead letters and diagnostics in lists (the CLI's summary, tests)."""

    def __init__(self) -> None:
        self.dead_letters: list[DeadLetter] = []
        self.diagnostics: list[Diagnostic] = []

    def dead_letter(self, item: DeadLetter) -> None:
        self.dead_letters.append(item)

    def diagnostic(self, item: Diagnostic) -> None:
        self.diagnostics.append(item)

    def codes(self) -> list[str]:
        """Codes of everything collected, dead letters first, in arrival order."""
        return [d.code for d in self.dead_letters] + [d.code for d in self.diagnostics]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class JsonlDeadLetterStore(ReadSink):
    """Appends dead letters to `<dir>/<tenant>/deadletters.jsonl` (diagnostics to `diagnostics.jsonl`).

    One JSON object per line with tenant, source, code, reason, line/record_id/offset, the sample as
    base64 (capped at `SAMPLE_CAP_BYTES`) and the sample's original length. Files stay open until
    `close()` (or the end of a `with` block); each item is written as one complete line.
    """

    def __init__(self, directory: Path, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.directory = directory
        self._clock = clock
        self._files: dict[tuple[str, str], IO[bytes]] = {}

    def _file(self, tenant: TenantId, name: str) -> IO[bytes]:
        handle = self._files.get((tenant, name))
        if handle is None:
            folder = self.directory / tenant_id(tenant)  # validated: a tenant id is a safe path part
            folder.mkdir(parents=True, exist_ok=True)
            handle = (folder / name).open("ab")
            self._files[(tenant, name)] = handle
        return handle

    def dead_letter(self, item: DeadLetter) -> None:
        sample = item.sample[:SAMPLE_CAP_BYTES]
        row = {
            "written_at": self._clock().isoformat(),
            "tenant": item.tenant,
            "source": item.source,
            "code": item.code,
            "reason": item.reason,
            "line": item.line,
            "record_id": item.record_id,
            "offset": item.offset,
            "sample_b64": base64.b64encode(sample).decode("ascii"),
            "sample_bytes": len(sample),
            "original_bytes": sample_length(item),
        }
        self._file(item.tenant, DEADLETTER_FILE).write(orjson.dumps(row) + b"\n")

    def diagnostic(self, item: Diagnostic) -> None:
        row = {
            "written_at": self._clock().isoformat(),
            "tenant": item.tenant,
            "source": item.source,
            "code": item.code,
            "message": item.message,
            "line": item.line,
            "record_id": item.record_id,
        }
        self._file(item.tenant, DIAGNOSTIC_FILE).write(orjson.dumps(row) + b"\n")

    def flush(self) -> None:
        for handle in self._files.values():
            handle.flush()

    def close(self) -> None:
        files, self._files = self._files, {}
        for handle in files.values():
            handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _rows(path: Path, tenant: TenantId) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.exists():
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                where = Location(path=str(path), line=number, tenant=tenant)
                raise InputError(
                    f"corrupt store line: {exc}", location=where, code="deadletter.corrupt"
                ) from exc
            if not isinstance(row, dict):
                where = Location(path=str(path), line=number, tenant=tenant)
                raise InputError(
                    "corrupt store line: not an object", location=where, code="deadletter.corrupt"
                )
            yield number, row


def iter_dead_letters(directory: Path, tenant: TenantId) -> Iterator[DeadLetter]:
    """Read back what a `JsonlDeadLetterStore` wrote for one tenant, oldest first."""
    path = directory / tenant_id(tenant) / DEADLETTER_FILE
    for number, row in _rows(path, tenant):
        try:
            sample = base64.b64decode(row.get("sample_b64") or "", validate=True)
            common: dict[str, Any] = {
                "tenant": TenantId(str(row["tenant"])),
                "source": str(row["source"]),
                "reason": str(row["reason"]),
                "code": str(row["code"]),
                "line": row.get("line"),
                "record_id": row.get("record_id"),
                "offset": row.get("offset"),
                "sample": sample,
            }
            original = int(row.get("original_bytes") or len(sample))
        except (KeyError, ValueError, TypeError, binascii.Error) as exc:
            where = Location(path=str(path), line=number, tenant=tenant)
            raise InputError(
                f"corrupt store line: {exc!r}", location=where, code="deadletter.corrupt"
            ) from exc
        if original > len(sample):
            yield CappedDeadLetter(**common, original_length=original)
        else:
            yield DeadLetter(**common)


def iter_diagnostics(directory: Path, tenant: TenantId) -> Iterator[Diagnostic]:
    """Read back the diagnostics a `JsonlDeadLetterStore` wrote for one tenant, oldest first."""
    path = directory / tenant_id(tenant) / DIAGNOSTIC_FILE
    for number, row in _rows(path, tenant):
        try:
            item = Diagnostic(
                tenant=TenantId(str(row["tenant"])),
                source=str(row["source"]),
                code=str(row["code"]),
                message=str(row["message"]),
                line=row.get("line"),
                record_id=row.get("record_id"),
            )
        except KeyError as exc:
            where = Location(path=str(path), line=number, tenant=tenant)
            raise InputError(
                f"corrupt store line: {exc!r}", location=where, code="deadletter.corrupt"
            ) from exc
        yield item
