"""EVTX files -> RawRecord via the `evtx` package, with damage found and reported per chunk.

The `evtx` parser raises `RuntimeError` for records and chunks it cannot parse and goes on with the
next; but it skips some damage silently (a zeroed chunk, a chunk whose first record is broken, a file
cut inside a chunk). So before parsing, the file's chunk headers are read here: each chunk declares its
record id range and CRC32 checksums. After parsing, every declared record that was neither yielded nor
named in a parser error is reported, so nothing is lost without a dead letter.

EVTX layout (libevtx): a 4096-byte file header ("ElfFile\\0", chunk count at 42, CRC32 of bytes 0-119
at 124), then 65536-byte chunks ("ElfChnk\\0", first/last record id at 24/32, free-space offset at 48,
CRC32 of the records at 52, CRC32 of the header at 124).
"""

from __future__ import annotations

import bisect
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import evtx

from watchfloor.core.records import RawRecord
from watchfloor.normalize.deadletter import (
    EMPTY,
    EVTX_CHECKSUM,
    EVTX_CORRUPT,
    NOT_EVTX,
    OVERSIZED,
    UNREADABLE,
    Reporter,
)
from watchfloor.normalize.readers_json import record_factory

EVTX_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
HEADER_BYTES = 4096
CHUNK_BYTES = 65536
MAX_CONSECUTIVE_ERRORS = 1000  # the parser gave up if it fails this often without a record in between

_RE_RECORD = re.compile(r"Failed to parse record number (\d+)")
_RE_ID_RANGE = re.compile(r"record IDs (\d+)\.\.(\d+)")
_RE_CHUNK = re.compile(r"chunk number (\d+)")


@dataclass(slots=True)
class Chunk:
    """One chunk as its header declares it, and what the parser did with it."""

    index: int
    offset: int
    size: int
    first_id: int | None = None
    last_id: int | None = None
    header_ok: bool = True  # magic and header CRC32 valid
    data_ok: bool = True  # records CRC32 valid
    empty: bool = False
    seen: int = 0  # records yielded
    failed: int = 0  # records named in parser errors
    failed_whole: bool = False  # a parser error covered the whole chunk

    @property
    def expected(self) -> int:
        """Records the header declares; 0 when the id range is missing or impossible."""
        if self.first_id is None or self.last_id is None:
            return 0
        count = self.last_id - self.first_id + 1
        return count if 0 < count < CHUNK_BYTES else 0


@dataclass(slots=True)
class Layout:
    declared_chunks: int
    header_checksum_ok: bool
    file_size: int
    chunks: list[Chunk]


def _u32(buf: bytes, at: int) -> int:
    return int(struct.unpack_from("<I", buf, at)[0])


def scan_layout(path: Path) -> Layout | bytes:
    """Read the file header and every chunk header, checking checksums. Raises OSError.

    Returns the first bytes of the file instead when it is not a complete EVTX file header.
    """
    with path.open("rb") as fh:
        header = fh.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or not header.startswith(EVTX_MAGIC):
            return header
        declared = int(struct.unpack_from("<H", header, 42)[0])
        header_ok = zlib.crc32(header[:120]) == _u32(header, 124)
        chunks: list[Chunk] = []
        size = len(header)
        while block := fh.read(CHUNK_BYTES):
            chunk = Chunk(index=len(chunks), offset=size, size=len(block))
            size += len(block)
            chunks.append(chunk)
            magic = block.startswith(CHUNK_MAGIC)
            if not magic and block == bytes(len(block)):  # preallocated, never written
                chunk.empty = True
                continue
            if not magic or len(block) < 512:
                chunk.header_ok = chunk.data_ok = False
                if magic and len(block) >= 40:
                    chunk.first_id, chunk.last_id = struct.unpack_from("<QQ", block, 24)
                continue
            chunk.first_id, chunk.last_id = struct.unpack_from("<QQ", block, 24)
            chunk.header_ok = zlib.crc32(block[:120] + block[128:512]) == _u32(block, 124)
            free = _u32(block, 48)
            chunk.data_ok = 512 <= free <= len(block) and zlib.crc32(block[512:free]) == _u32(block, 52)
    return Layout(declared_chunks=declared, header_checksum_ok=header_ok, file_size=size, chunks=chunks)


class _Index:
    """Finds the chunk holding a record id (chunks with sane, ascending id ranges)."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = sorted((c for c in chunks if c.expected), key=lambda c: c.first_id or 0)
        self.firsts = [c.first_id or 0 for c in self.chunks]
        self.by_index = {c.index: c for c in chunks}

    def find(self, record_id: int) -> Chunk | None:
        at = bisect.bisect_right(self.firsts, record_id) - 1
        if at < 0:
            return None
        chunk = self.chunks[at]
        return chunk if chunk.last_id is not None and record_id <= chunk.last_id else None


def read_evtx(path: Path, source: str, rep: Reporter, max_record_bytes: int) -> Iterator[RawRecord]:
    """Yield every record the parser renders; report parser errors and silently skipped records."""
    try:
        layout = scan_layout(path)
    except OSError as exc:
        rep.dead_letter(source, UNREADABLE, f"cannot read: {exc.strerror or exc}")
        return
    if isinstance(layout, bytes):
        if not layout:
            rep.diagnostic(source, EMPTY, "empty file")
        elif layout.startswith(EVTX_MAGIC):
            reason = f"file truncated: it ends {len(layout)} bytes into the {HEADER_BYTES}-byte file header"
            rep.dead_letter(source, EVTX_CORRUPT, reason, offset=len(layout), sample=layout)
        else:
            reason = "not an EVTX file (no ElfFile signature)"
            rep.dead_letter(source, NOT_EVTX, reason, offset=0, sample=layout[:256])
        return
    if not layout.header_checksum_ok:
        rep.diagnostic(source, EVTX_CHECKSUM, "file header checksum mismatch; header fields may be wrong")
    index = _Index(layout.chunks)
    make = record_factory()
    tenant = rep.tenant
    last_id: int | None = None
    current: Chunk | None = None
    records = nbytes = 0
    try:
        try:
            iterator = evtx.PyEvtxParser(str(path)).records_json()
        except (OSError, RuntimeError, ValueError) as exc:
            rep.dead_letter(source, EVTX_CORRUPT, f"the evtx parser refused the file: {exc}", offset=0)
            return
        consecutive = 0
        while True:
            try:
                rec = cast("dict[str, Any]", next(iterator))
                rid = int(rec["event_record_id"])
                raw = str(rec["data"]).encode("utf-8", errors="replace")
            except StopIteration:
                break
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - the parser's Rust panics derive from BaseException
                _parser_error(source, rep, index, exc, last_id)
                consecutive += 1
                if consecutive >= MAX_CONSECUTIVE_ERRORS:
                    reason = (
                        f"stopped after {consecutive} consecutive parser errors; the rest of the file is lost"
                    )
                    rep.dead_letter(source, EVTX_CORRUPT, reason, record_id=last_id)
                    break
                continue
            consecutive = 0
            last_id = rid
            if current is None or not (current.first_id or 0) <= rid <= (current.last_id or 0):
                current = index.find(rid)
            if current is not None:
                current.seen += 1
            if len(raw) > max_record_bytes:
                reason = f"record of {len(raw)} bytes exceeds max_record_bytes={max_record_bytes}"
                rep.dead_letter(source, OVERSIZED, reason, record_id=rid, sample=raw)
                continue
            records += 1
            nbytes += len(raw)
            yield make(raw, tenant, source, None, rid, "evtx")
        _report_unaccounted(source, rep, layout, last_id)
    finally:
        rep.stats.records += records
        rep.stats.bytes += nbytes


def _parser_error(source: str, rep: Reporter, index: _Index, exc: BaseException, last_id: int | None) -> None:
    """Dead-letter one parser error, attributed to its chunk when the message says which."""
    message = str(exc) or type(exc).__name__
    after = f" (last good record: {last_id})" if last_id is not None else " (before any record)"
    chunk: Chunk | None = None
    record_id: int | None = None
    if m := _RE_ID_RANGE.search(message):
        chunk = index.find(int(m.group(1)))
        if chunk is not None:
            chunk.failed_whole = True
            record_id = chunk.first_id
    elif m := _RE_CHUNK.search(message):
        chunk = index.by_index.get(int(m.group(1)))
        if chunk is not None:
            chunk.failed_whole = True
            record_id = chunk.first_id
    elif m := _RE_RECORD.search(message):
        chunk = index.find(int(m.group(1)))
        if chunk is not None:
            chunk.failed += 1
            record_id = int(m.group(1))
    offset = chunk.offset if chunk is not None else None
    where = f"chunk {chunk.index}: " if chunk is not None else ""
    if record_id is None:
        record_id = last_id
    rep.dead_letter(source, EVTX_CORRUPT, f"{where}{message}{after}", record_id=record_id, offset=offset)


def _report_unaccounted(source: str, rep: Reporter, layout: Layout, last_id: int | None) -> None:
    """Report what the chunk headers promise but the parser neither produced nor named in an error."""
    chunks = layout.chunks
    declared = layout.declared_chunks
    tail = chunks[-1] if chunks and chunks[-1].size < CHUNK_BYTES else None
    for pos, chunk in enumerate(chunks):
        if chunk is tail or chunk.failed_whole:
            continue
        if chunk.empty:
            if chunk.index < declared:
                prev_last = next((c.last_id for c in reversed(chunks[:pos]) if c.expected), None)
                next_first = next((c.first_id for c in chunks[pos + 1 :] if c.expected), None)
                ids = _id_span(prev_last, next_first)
                reason = f"chunk {chunk.index} is zeroed although the header declares {declared} chunks"
                rep.dead_letter(
                    source, EVTX_CORRUPT, f"{reason}; its records are lost{ids}", offset=chunk.offset
                )
            continue
        damaged = "" if chunk.header_ok else " (its header is damaged: bad signature or checksum)"
        lost = chunk.expected - chunk.seen - chunk.failed
        if not chunk.header_ok and not chunk.expected and not chunk.seen and not chunk.failed:
            reason = f"chunk {chunk.index}{damaged}: the parser read no records from it and reported no error"
            rep.dead_letter(source, EVTX_CORRUPT, reason, record_id=last_id, offset=chunk.offset)
        elif lost > 0:
            reason = (
                f"chunk {chunk.index}{damaged}: {lost} of {chunk.expected} records "
                f"(ids {chunk.first_id}..{chunk.last_id}) were skipped by the parser without an error"
            )
            rep.dead_letter(source, EVTX_CORRUPT, reason, record_id=chunk.first_id, offset=chunk.offset)
        elif chunk.seen and not (chunk.header_ok and chunk.data_ok):
            message = (
                f"chunk {chunk.index} at offset {chunk.offset}: checksum mismatch; its {chunk.seen} records "
                "were read but may be damaged"
            )
            rep.diagnostic(source, EVTX_CHECKSUM, message, record_id=chunk.first_id)
    _report_truncation(source, rep, layout, tail, last_id)


def _report_truncation(
    source: str, rep: Reporter, layout: Layout, tail: Chunk | None, last_id: int | None
) -> None:
    """One dead letter for a file cut short: inside a chunk, or fewer chunks than the header declares."""
    complete = len(layout.chunks) - (tail is not None)
    missing = layout.declared_chunks > complete
    tail_lost = tail is not None and (
        (not tail.empty and tail.seen < max(tail.expected, 1))
        or (tail.empty and tail.index < layout.declared_chunks)
    )
    if not (missing or tail_lost):
        return
    parts = [f"file truncated at offset {layout.file_size}"]
    record_id = last_id
    if tail is not None and tail_lost:
        ids = f" (records {tail.first_id}..{tail.last_id})" if tail.expected else ""
        parts.append(f"it ends {tail.size} bytes into chunk {tail.index}{ids}")
        if tail.expected:
            record_id = tail.first_id
    if missing:
        parts.append(f"the header declares {layout.declared_chunks} chunks, {complete} are complete")
    rep.dead_letter(source, EVTX_CORRUPT, "; ".join(parts), record_id=record_id, offset=layout.file_size)


def _id_span(prev_last: int | None, next_first: int | None) -> str:
    if prev_last is not None and next_first is not None and next_first > prev_last + 1:
        return f" (records {prev_last + 1}..{next_first - 1})"
    return ""
