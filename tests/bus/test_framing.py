"""Record framing: round trip, torn at every cut, every single-byte flip caught, scans resynchronise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.bus.framing import (
    HEAD_SIZE,
    CorruptFrameError,
    FrameError,
    TornFrameError,
    decode_record,
    encode_record,
    encoded_size,
    scan,
)

tenants = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
header_maps = st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4)
records = st.tuples(
    st.integers(min_value=1, max_value=2**63),
    st.integers(min_value=0, max_value=2**63),
    tenants,
    st.binary(max_size=300),
    header_maps,
)


@given(records)
def test_encode_decode_round_trip(rec: tuple[int, int, str, bytes, dict[str, str]]) -> None:
    seq, ts, tenant, body, headers = rec
    frame = encode_record(seq, ts, tenant, body, headers)
    assert len(frame) == encoded_size(tenant, body, headers)
    decoded, end = decode_record(b"junk" + frame, 4)
    assert end == 4 + len(frame)
    assert (decoded.sequence, decoded.timestamp_ns, decoded.tenant) == (seq, ts, tenant)
    assert decoded.payload == body
    assert dict(decoded.headers) == headers


@given(records, st.data())
def test_every_truncation_is_torn(
    rec: tuple[int, int, str, bytes, dict[str, str]], data: st.DataObject
) -> None:
    frame = encode_record(*rec[:4], rec[4])
    cut = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    with pytest.raises(TornFrameError):
        decode_record(frame[:cut])
    result = scan(frame[:cut])
    assert result.sequences == []
    assert result.tail_bytes(cut) == cut


@given(records, st.data())
def test_every_single_byte_change_is_detected(
    rec: tuple[int, int, str, bytes, dict[str, str]], data: st.DataObject
) -> None:
    frame = bytearray(encode_record(*rec[:4], rec[4]))
    pos = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    frame[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(FrameError):
        decode_record(bytes(frame))


def test_every_single_byte_change_of_a_small_frame_is_detected_exhaustively() -> None:
    frame = encode_record(7, 123, "clinic", b"payload", {"k": "v"})
    for pos in range(len(frame)):
        for delta in (0x01, 0x80, 0xFF):
            damaged = bytearray(frame)
            damaged[pos] ^= delta
            with pytest.raises(FrameError):
                decode_record(bytes(damaged))


def test_a_damaged_length_is_caught_by_the_head_crc_not_trusted() -> None:
    frame = bytearray(encode_record(1, 0, "clinic", b"x" * 100))
    frame[4] ^= 0x40  # length field: would claim a different body size
    with pytest.raises(CorruptFrameError, match="head CRC"):
        decode_record(bytes(frame))


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=64), min_size=3, max_size=8), st.data())
def test_scan_skips_a_damaged_record_between_good_ones(payloads: list[bytes], data: st.DataObject) -> None:
    frames = [encode_record(i + 1, 0, "clinic", p) for i, p in enumerate(payloads)]
    victim = data.draw(st.integers(min_value=0, max_value=len(frames) - 2))
    damaged = bytearray(frames[victim])
    pos = data.draw(st.integers(min_value=0, max_value=len(damaged) - 1))
    damaged[pos] ^= 0x5A
    frames[victim] = bytes(damaged)
    buf = b"".join(frames)
    result = scan(buf)
    expected = [i + 1 for i in range(len(frames)) if i != victim]
    assert result.sequences == expected
    assert result.corrupt_records == 1
    assert result.valid_end == len(buf)


def test_scan_reports_garbage_after_the_last_good_frame_as_tail() -> None:
    good = encode_record(1, 0, "clinic", b"a") + encode_record(2, 0, "clinic", b"b")
    result = scan(good + b"\x00" * 37)
    assert result.sequences == [1, 2]
    assert result.valid_end == len(good)
    assert result.tail_bytes(len(good) + 37) == 37


def test_scan_rejects_sequences_that_do_not_increase() -> None:
    buf = encode_record(5, 0, "t", b"a") + encode_record(5, 0, "t", b"b") + encode_record(6, 0, "t", b"c")
    result = scan(buf)
    assert result.sequences == [5, 6]
    assert result.corrupt_records == 1


def test_oversized_fields_are_refused_before_encoding() -> None:
    with pytest.raises(ValueError, match="tenant"):
        encoded_size("t" * 300, b"")
    assert encoded_size("t", b"12345") == HEAD_SIZE + 19 + 1 + 5
