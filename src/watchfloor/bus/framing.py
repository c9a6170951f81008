"""Record framing for spool segments: two CRCs so any single damaged byte is caught, not guessed at.

A frame is a 16-byte head and a body:

    magic  4 bytes  b"WFb1"
    length u32      body length in bytes
    hcrc   u32      crc32(magic + length)   -- a damaged length is caught before it is trusted
    bcrc   u32      crc32(body)
    body:  seq u64 | timestamp_ns u64 | tenant_len u8 | header_count u16
           | tenant | (key_len u16, key, value_len u32, value) * header_count | payload

All integers are little-endian. CRC-32 detects every error burst of up to 32 bits in a message of fixed
length; the head CRC fixes the length before the body CRC is checked, so a single flipped byte anywhere is
always detected (the property tests in `tests/bus/test_framing.py` check this exhaustively for small frames).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from watchfloor.core.types import TenantId

MAGIC = b"WFb1"
HEAD = struct.Struct("<4sIII")
HEAD_SIZE = HEAD.size
BODY_FIXED = struct.Struct("<QQBH")
_KEY_LEN = struct.Struct("<H")
_VALUE_LEN = struct.Struct("<I")
MAX_TENANT_BYTES = 255
MAX_HEADERS = 0xFFFF


class FrameError(Exception):
    """Base of the frame decoding outcomes; internal to the bus (callers see counts, not exceptions)."""


class TornFrameError(FrameError):
    """The buffer ends before the frame does: a write that did not finish."""


class CorruptFrameError(FrameError):
    """The bytes are all there but wrong: bad magic, a CRC mismatch or an impossible body layout."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One decoded record."""

    sequence: int
    timestamp_ns: int
    tenant: TenantId
    headers: Mapping[str, str] = field(default_factory=dict)
    payload: bytes = b""


def encode_record(
    sequence: int,
    timestamp_ns: int,
    tenant: str,
    payload: bytes,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """One complete frame (head + body) for a record."""
    tenant_bytes = tenant.encode()
    if len(tenant_bytes) > MAX_TENANT_BYTES:
        msg = f"tenant id longer than {MAX_TENANT_BYTES} bytes"
        raise ValueError(msg)
    parts = [b"", tenant_bytes]
    count = 0
    if headers:
        if len(headers) > MAX_HEADERS:
            msg = f"more than {MAX_HEADERS} headers"
            raise ValueError(msg)
        for key, value in headers.items():
            kb = key.encode()
            vb = value.encode()
            parts.extend((_KEY_LEN.pack(len(kb)), kb, _VALUE_LEN.pack(len(vb)), vb))
            count += 1
    parts[0] = BODY_FIXED.pack(sequence, timestamp_ns, len(tenant_bytes), count)
    parts.append(payload)
    body = b"".join(parts)
    length = len(body)
    hcrc = zlib.crc32(MAGIC + length.to_bytes(4, "little"))
    return HEAD.pack(MAGIC, length, hcrc, zlib.crc32(body)) + body


def encoded_size(tenant: str, payload: bytes, headers: Mapping[str, str] | None = None) -> int:
    """The exact frame size `encode_record` will produce; raises ValueError for what it cannot encode."""
    tenant_len = len(tenant.encode())
    if tenant_len > MAX_TENANT_BYTES:
        msg = f"tenant id longer than {MAX_TENANT_BYTES} bytes"
        raise ValueError(msg)
    size = HEAD_SIZE + BODY_FIXED.size + tenant_len + len(payload)
    if headers:
        if len(headers) > MAX_HEADERS:
            msg = f"more than {MAX_HEADERS} headers"
            raise ValueError(msg)
        for key, value in headers.items():
            klen = len(key.encode())
            if klen > 0xFFFF:
                msg = "header name longer than 65535 bytes"
                raise ValueError(msg)
            size += _KEY_LEN.size + klen + _VALUE_LEN.size + len(value.encode())
    return size


def frame_length(buf: bytes | memoryview, offset: int = 0) -> int:
    """The total length of the frame at `offset` once its head is checked (not its body)."""
    if len(buf) - offset < HEAD_SIZE:
        raise TornFrameError("head incomplete")
    magic, length, hcrc, _ = HEAD.unpack_from(buf, offset)
    if magic != MAGIC:
        raise CorruptFrameError("bad magic")
    if zlib.crc32(buf[offset : offset + 8]) != hcrc:
        raise CorruptFrameError("head CRC mismatch")
    if length < BODY_FIXED.size:
        raise CorruptFrameError("body shorter than its fixed part")
    if len(buf) - offset - HEAD_SIZE < length:
        raise TornFrameError("body incomplete")
    return HEAD_SIZE + int(length)


def check_frame(buf: bytes | memoryview, offset: int = 0) -> tuple[int, int, int]:
    """Check head and body CRCs of the frame at `offset`; returns (sequence, timestamp_ns, frame length)."""
    total = frame_length(buf, offset)
    bcrc = HEAD.unpack_from(buf, offset)[3]
    start = offset + HEAD_SIZE
    if zlib.crc32(buf[start : offset + total]) != bcrc:
        raise CorruptFrameError("body CRC mismatch")
    sequence, timestamp_ns, _, _ = BODY_FIXED.unpack_from(buf, start)
    return sequence, timestamp_ns, total


def decode_record(buf: bytes | memoryview, offset: int = 0) -> tuple[Record, int]:
    """Decode and fully validate the frame at `offset`; returns the record and the offset after it."""
    total = frame_length(buf, offset)
    bcrc = HEAD.unpack_from(buf, offset)[3]
    start = offset + HEAD_SIZE
    end = offset + total
    body = bytes(buf[start:end])
    if zlib.crc32(body) != bcrc:
        raise CorruptFrameError("body CRC mismatch")
    sequence, timestamp_ns, tenant_len, count = BODY_FIXED.unpack_from(body, 0)
    pos = BODY_FIXED.size
    try:
        tenant = _take(body, pos, tenant_len).decode()
        pos += tenant_len
        headers: dict[str, str] = {}
        for _ in range(count):
            (klen,) = _KEY_LEN.unpack_from(body, pos)
            pos += _KEY_LEN.size
            key = _take(body, pos, klen).decode()
            pos += klen
            (vlen,) = _VALUE_LEN.unpack_from(body, pos)
            pos += _VALUE_LEN.size
            headers[key] = _take(body, pos, vlen).decode()
            pos += vlen
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptFrameError("body layout invalid") from exc
    record = Record(
        sequence=sequence,
        timestamp_ns=timestamp_ns,
        tenant=TenantId(tenant),
        headers=headers,
        payload=body[pos:],
    )
    return record, end


def _take(body: bytes, pos: int, length: int) -> bytes:
    if pos + length > len(body):
        raise CorruptFrameError("field runs past the body")
    return body[pos : pos + length]


@dataclass(slots=True)
class ScanResult:
    """What a scan of one segment's bytes found. `valid_end` is where the last good frame ends."""

    sequences: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    last_timestamp_ns: int = 0
    valid_end: int = 0
    corrupt_records: int = 0
    corrupt_bytes: int = 0

    def tail_bytes(self, size: int) -> int:
        return size - self.valid_end


def scan(buf: bytes | memoryview, *, min_sequence: int = 0) -> ScanResult:
    """Walk frames, checking both CRCs and that sequences increase; resynchronise past damage.

    Damage followed by a good frame is counted in `corrupt_records`/`corrupt_bytes` and skipped; whatever
    follows the last good frame is the tail (torn or garbage), left for the caller to truncate or report.
    """
    result = ScanResult()
    size = len(buf)
    pos = 0
    last_seq = min_sequence - 1
    damaged_from: int | None = None
    while pos < size:
        try:
            seq, ts, total = check_frame(buf, pos)
        except TornFrameError:
            break
        except CorruptFrameError:
            seq, ts, total = -1, 0, 0
        if seq <= last_seq:  # damaged, or a sequence that does not increase
            if damaged_from is None:
                damaged_from = pos
            nxt = _find_magic(buf, pos + 1)
            if nxt < 0:
                break
            pos = nxt
            continue
        if damaged_from is not None:
            result.corrupt_records += 1
            result.corrupt_bytes += pos - damaged_from
            damaged_from = None
        result.sequences.append(seq)
        result.offsets.append(pos)
        result.lengths.append(total)
        result.last_timestamp_ns = ts
        last_seq = seq
        pos += total
        result.valid_end = pos
    return result


def _find_magic(buf: bytes | memoryview, start: int) -> int:
    if isinstance(buf, memoryview):
        return bytes(buf).find(MAGIC, start)
    return buf.find(MAGIC, start)
