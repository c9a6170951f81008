"""Input readers for offline hunting and ingest: files and folders -> RawRecord stream.

Nothing here raises on bad input and nothing is dropped silently: whatever cannot become a record is
a `DeadLetter` (with tenant, file and line or EVTX record/offset) and whatever was repaired is a
`Diagnostic`, both handed to a `ReadSink` and counted in `ReadStats.by_code`.

Formats (chosen by extension, confirmed by content; explicit files of unknown type are sniffed):
- `.jsonl` `.ndjson` `.log` (and `.gz`): JSON lines, `parser="jsonl"`, `line` = 1-based line number.
- `.json` (and `.gz`): an array of objects, one object, `{"Records": [...]}`, or JSON lines after all;
  `parser="json"`, `line` = 1-based element index.
- `.evtx`: Windows event logs via the `evtx` package, `parser="evtx"`, `record_id` = EventRecordID.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchfloor.core.records import RawRecord
from watchfloor.core.types import DEFAULT_TENANT, TenantId
from watchfloor.normalize.deadletter import (
    CORRUPT,
    EMPTY,
    OVERSIZED,
    SKIPPED_UNKNOWN_TYPE,
    TRUNCATED,
    UNKNOWN_FORMAT,
    UNREADABLE,
    JsonlDeadLetterStore,
    MemoryDeadLetters,
    ReadSink,
    ReadStats,
    Reporter,
    iter_dead_letters,
    iter_diagnostics,
)
from watchfloor.normalize.readers_evtx import EVTX_MAGIC, read_evtx
from watchfloor.normalize.readers_json import (
    JsonlReader,
    is_json_lines,
    looks_like_json,
    read_json_document,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "KNOWN_SUFFIXES",
    "JsonlDeadLetterStore",
    "MemoryDeadLetters",
    "ReadSink",
    "ReadStats",
    "input_kind",
    "iter_dead_letters",
    "iter_diagnostics",
    "iter_inputs",
    "read_file",
    "read_records",
]

DEFAULT_MAX_RECORD_BYTES = 8 * 1024 * 1024
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024  # a .json document is parsed whole; larger ones must be JSON lines
READ_BUFFER_BYTES = 1024 * 1024
SNIFF_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"

# Longest first: ".jsonl.gz" must win over ".gz".
KNOWN_SUFFIXES: dict[str, str] = {
    ".ndjson.gz": "jsonl",
    ".jsonl.gz": "jsonl",
    ".json.gz": "json",
    ".log.gz": "jsonl",
    ".ndjson": "jsonl",
    ".jsonl": "jsonl",
    ".evtx": "evtx",
    ".json": "json",
    ".log": "jsonl",
}


def input_kind(path: Path) -> str | None:
    """ "evtx", "jsonl" or "json" from the file name; None for an unknown extension."""
    name = path.name.lower()
    for suffix, kind in KNOWN_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def iter_inputs(
    paths: Sequence[Path],
    *,
    tenant: TenantId = DEFAULT_TENANT,
    sink: ReadSink | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Path]:
    """Files to read: explicit files as given (any type, sniffed later), folders walked recursively.

    Inside folders only known extensions are returned, sorted by name, depth first; other files are
    reported to `sink` as `input.skipped_unknown_type`, unlistable folders as `input.unreadable`.
    Folder symlinks are followed once (loops are cut).
    """
    rep = (
        None
        if sink is None
        else Reporter(sink=sink, stats=stats if stats is not None else ReadStats(), tenant=tenant)
    )
    for path in paths:
        if path.is_dir():
            yield from _walk(path, rep, set())
        else:
            yield path


def _walk(folder: Path, rep: Reporter | None, seen: set[tuple[int, int]]) -> Iterator[Path]:
    try:
        info = folder.stat()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        if rep is not None:
            rep.dead_letter(str(folder), UNREADABLE, f"cannot list folder: {exc.strerror or exc}")
        return
    key = (info.st_dev, info.st_ino)
    if key in seen:
        return  # a symlink loop back into a folder being walked: its files are already listed
    seen.add(key)
    for entry in entries:
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(path, rep, seen)
        elif input_kind(path) is not None:
            yield path
        elif rep is not None:
            known = " ".join(KNOWN_SUFFIXES)
            rep.diagnostic(str(path), SKIPPED_UNKNOWN_TYPE, f"skipped: unknown file type (known: {known})")


def read_records(
    paths: Sequence[Path],
    *,
    tenant: TenantId,
    sink: ReadSink,
    stats: ReadStats | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[RawRecord]:
    """Every record of every input, in order; every problem to `sink`, counted in `stats`."""
    if max_record_bytes < 1:
        raise ValueError(f"max_record_bytes must be positive, got {max_record_bytes}")
    stats = stats if stats is not None else ReadStats()
    rep = Reporter(sink=sink, stats=stats, tenant=tenant)
    for path in iter_inputs(paths, tenant=tenant, sink=sink, stats=stats):
        stats.files += 1
        yield from read_file(path, rep, max_record_bytes)


def read_file(path: Path, rep: Reporter, max_record_bytes: int) -> Iterator[RawRecord]:
    """One input file of any supported type. `Provenance.source` is `str(path)`."""
    source = str(path)
    kind = input_kind(path)
    if kind == "evtx":
        yield from read_evtx(path, source, rep, max_record_bytes)
        return
    try:
        handle = io.BufferedReader(io.FileIO(path, "r"), buffer_size=READ_BUFFER_BYTES)
    except OSError as exc:
        rep.dead_letter(source, UNREADABLE, f"cannot open: {exc.strerror or exc}")
        return
    reader = JsonlReader(source, rep, max_record_bytes)
    with handle:
        try:
            head = handle.peek(SNIFF_BYTES)[:SNIFF_BYTES]
            if not head:
                rep.diagnostic(source, EMPTY, "empty file")
                return
            if head.startswith(EVTX_MAGIC):
                yield from read_evtx(path, source, rep, max_record_bytes)
                return
            stream: io.BufferedReader[Any] = handle
            if head.startswith(GZIP_MAGIC):
                unzipped = _Gunzip(gzip.GzipFile(fileobj=handle, mode="rb"))
                stream = io.BufferedReader(unzipped, buffer_size=READ_BUFFER_BYTES)
                head = stream.peek(SNIFF_BYTES)[:SNIFF_BYTES]
                if not head:
                    rep.diagnostic(source, EMPTY, "empty file (after decompression)")
                    return
            if (
                kind == "jsonl"
                and path.name.lower().endswith((".log", ".log.gz"))
                and not looks_like_json(head)
            ):
                reason = "a .log file that is not JSON lines (it does not start with '{' or '['); skipped"
                rep.dead_letter(source, UNKNOWN_FORMAT, reason, line=1, sample=head[:256])
            elif kind == "jsonl" or is_json_lines(head):
                yield from reader.read(stream)
            elif kind == "json" or looks_like_json(head):
                yield from _read_document(stream, reader, rep, max_record_bytes)
            else:
                reason = "unknown format: not EVTX, gzip, JSON or JSON lines"
                rep.dead_letter(source, UNKNOWN_FORMAT, reason, line=1, sample=head[:256])
        except EOFError as exc:
            reason = (
                f"compressed stream ends early ({exc}) after line {reader.line}; anything after it is lost"
            )
            rep.dead_letter(source, TRUNCATED, reason, line=reader.line + 1)
        except (gzip.BadGzipFile, zlib.error) as exc:
            reason = (
                f"corrupt compressed data ({exc}) after line {reader.line}; anything after it is lost "
                "and the records read from this file may be damaged"
            )
            rep.dead_letter(source, CORRUPT, reason, line=reader.line + 1)
        except OSError as exc:
            reason = f"read error ({exc.strerror or exc}) after line {reader.line}; anything after it is lost"
            rep.dead_letter(source, UNREADABLE, reason, line=reader.line + 1)


class _Gunzip(io.RawIOBase):
    """Decompressed bytes, one decompression step per read.

    A plain `GzipFile.read(n)` gathers n bytes before returning and drops them all when the stream
    turns out truncated; stepping with `read1` hands every complete line over before the error.
    """

    def __init__(self, unzipped: gzip.GzipFile) -> None:
        super().__init__()
        self._unzipped = unzipped

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self._unzipped.read1(len(view))
        view[: len(data)] = data
        return len(data)


def _read_document(
    stream: io.BufferedReader[Any], reader: JsonlReader, rep: Reporter, max_record_bytes: int
) -> Iterator[RawRecord]:
    parts: list[bytes] = []
    size = 0
    error: EOFError | OSError | zlib.error | None = None
    try:
        while size <= MAX_DOCUMENT_BYTES and (part := stream.read1(READ_BUFFER_BYTES)):
            parts.append(part)
            size += len(part)
    except (EOFError, OSError, zlib.error) as exc:
        error = exc
    data = b"".join(parts)
    if size > MAX_DOCUMENT_BYTES:
        reason = f"JSON document over {MAX_DOCUMENT_BYTES} bytes; convert it to JSON lines"
        rep.dead_letter(reader.source, OVERSIZED, reason, sample=data[:256], original_length=size)
        return
    if is_json_lines(data):  # JSON lines whose first line did not fit in the sniffed head
        if error is not None:  # keep the complete lines; the caller reports the rest as lost
            data = data[: data.rfind(b"\n") + 1]
        yield from reader.read(io.BytesIO(data))
    elif error is None:
        yield from read_json_document(data, reader.source, rep, max_record_bytes)
    if error is not None:
        raise error
