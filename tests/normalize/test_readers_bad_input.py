"""Readers on bad input: nothing crashes, nothing is dropped without a dead letter saying where."""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
from pathlib import Path

import evtx
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from watchfloor.core.records import RawRecord
from watchfloor.core.types import TenantId
from watchfloor.normalize.deadletter import (
    CORRUPT,
    EMPTY,
    EVTX_CHECKSUM,
    EVTX_CORRUPT,
    INVALID_UTF8_REPAIRED,
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    NOT_EVTX,
    OVERSIZED,
    SAMPLE_CAP_BYTES,
    SKIPPED_UNKNOWN_TYPE,
    TRUNCATED,
    UNKNOWN_FORMAT,
    UNREADABLE,
    sample_length,
)
from watchfloor.normalize.readers import MemoryDeadLetters, ReadStats, read_records

TENANT = TenantId("clinic")
MiB = 1024 * 1024
EVTX_HEADER = 4096
EVTX_CHUNK = 65536
# 2,216 records in 21 chunks, followed by 12 preallocated (zeroed) chunks.
SAMPLE_EVTX = (
    "datasets",
    "windows-evtx",
    "hayabusa-sample-evtx",
    "DeepBlueCLI",
    "many-events-application.evtx",
)


def read(paths: list[Path], **kwargs: int) -> tuple[list[RawRecord], MemoryDeadLetters, ReadStats]:
    sink = MemoryDeadLetters()
    stats = ReadStats()
    records = list(read_records(paths, tenant=TENANT, sink=sink, stats=stats, **kwargs))
    return records, sink, stats


def letters(sink: MemoryDeadLetters) -> list[tuple[str, int | None]]:
    return [(d.code, d.line) for d in sink.dead_letters]


# --- JSON lines ------------------------------------------------------------------------------------


def test_malformed_lines_are_dead_lettered_with_file_line_and_orjson_reason(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    bad = [b'{"a": 1', b"{'single': 'quotes'}", b"NaN-ish garbage", b'{"a": 1} trailing']
    path.write_bytes(b'{"ok": 1}\n' + b"\n".join(bad) + b'\n{"ok": 2}\n')

    records, sink, stats = read([path])

    assert [r.provenance.line for r in records] == [1, 6]
    assert letters(sink) == [
        (MALFORMED_JSON, 2),
        (MALFORMED_JSON, 3),
        (MALFORMED_JSON, 4),
        (MALFORMED_JSON, 5),
    ]
    for letter, line in zip(sink.dead_letters, bad, strict=True):
        with pytest.raises(orjson.JSONDecodeError) as err:
            orjson.loads(line)
        assert letter.reason == str(err.value)
        assert letter.sample == line
        assert (letter.tenant, letter.source) == (TENANT, str(path))
    assert sink.dead_letters[0].where() == f"tenant=clinic {path}:2"
    assert stats.records == 2
    assert stats.dead_letters == 4
    assert stats.by_code == {MALFORMED_JSON: 4}


def test_values_that_are_not_objects(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b'[{"a": 1}]\n42\n"text"\nnull\ntrue\n{"a": 1}\n')

    records, sink, _ = read([path])

    assert [r.provenance.line for r in records] == [6]
    assert letters(sink) == [(NOT_AN_OBJECT, n) for n in range(1, 6)]
    kinds = [d.reason for d in sink.dead_letters]
    assert kinds == [
        f"valid JSON but a {k}, not an object" for k in ("array", "number", "string", "null", "boolean")
    ]


def test_a_one_megabyte_field_value_is_processed_normally(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    line = orjson.dumps({"CommandLine": "A" * MiB, "n": 1})
    path.write_bytes(line + b'\n{"n": 2}\n')

    records, sink, _ = read([path])

    assert [r.raw for r in records] == [line, b'{"n": 2}']
    assert sink.codes() == []


def test_an_oversized_line_is_dead_lettered_unparsed_with_a_capped_sample(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    huge = b'{"blob": "' + b"B" * (9 * MiB) + b'"}'  # over the default 8 MiB
    path.write_bytes(b'{"n": 1}\n' + huge + b'\r\n{"n": 3}\n')

    records, sink, stats = read([path])

    assert [(r.raw, r.provenance.line) for r in records] == [(b'{"n": 1}', 1), (b'{"n": 3}', 3)]
    assert letters(sink) == [(OVERSIZED, 2)]
    letter = sink.dead_letters[0]
    assert letter.sample == huge[:SAMPLE_CAP_BYTES]
    assert sample_length(letter) == len(huge)
    assert letter.reason == f"line of {len(huge)} bytes exceeds max_record_bytes={8 * MiB} (not parsed)"
    assert stats.by_code == {OVERSIZED: 1}


@pytest.mark.parametrize("size", [100, 101, 102, 150, 500])
def test_the_size_limit_is_exact_at_the_boundary(tmp_path: Path, size: int) -> None:
    path = tmp_path / "edge.jsonl"
    line = b'{"s": "' + b"x" * (size - 9) + b'"}'
    assert len(line) == size
    path.write_bytes(line + b"\r\n" + line + b"\n" + line)

    records, sink, _ = read([path], max_record_bytes=100)

    if size <= 100:
        assert [r.provenance.line for r in records] == [1, 2, 3]
        assert sink.codes() == []
    else:
        assert records == []
        assert letters(sink) == [(OVERSIZED, 1), (OVERSIZED, 2), (OVERSIZED, 3)]
        assert {sample_length(d) for d in sink.dead_letters} == {size}


def test_invalid_utf8_is_repaired_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"n": 1}\n{"user": "caf\xe9", "Event": {"System": {"EventRecordID": 7}}}\n\xff\xfe\n')

    records, sink, stats = read([path])

    assert [(r.provenance.line, r.provenance.record_id) for r in records] == [(1, None), (2, 7)]
    assert orjson.loads(records[1].raw)["user"] == "caf\ufffd"
    assert [(d.code, d.line, d.record_id) for d in sink.diagnostics] == [(INVALID_UTF8_REPAIRED, 2, 7)]
    assert "invalid UTF-8 at byte 13" in sink.diagnostics[0].message
    assert letters(sink) == [(MALFORMED_JSON, 3)]  # repaired, still not JSON
    assert sink.dead_letters[0].sample == b"\xff\xfe"
    assert stats.diagnostics == 1
    assert stats.dead_letters == 1


def test_empty_files_are_reported_not_dead_lettered(tmp_path: Path) -> None:
    paths = [tmp_path / "a.jsonl", tmp_path / "b.json.gz", tmp_path / "c.evtx", tmp_path / "d.json"]
    paths[0].write_bytes(b"")
    paths[1].write_bytes(gzip.compress(b""))
    paths[2].write_bytes(b"")
    paths[3].write_bytes(b"")

    records, sink, stats = read(paths)

    assert records == []
    assert sink.dead_letters == []
    assert [(d.code, Path(d.source).name) for d in sink.diagnostics] == [
        (EMPTY, "a.jsonl"),
        (EMPTY, "b.json.gz"),
        (EMPTY, "c.evtx"),
        (EMPTY, "d.json"),
    ]
    assert stats.files == 4


def test_blank_only_file_yields_nothing_and_reports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n  \n\t\r\n\n")

    records, sink, _ = read([path])

    assert records == []
    assert sink.codes() == []


def test_unreadable_inputs(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    not_a_dir = tmp_path / "file.jsonl"
    not_a_dir.write_bytes(b"{}\n")
    below_a_file = not_a_dir / "x.evtx"

    records, sink, stats = read([missing, below_a_file, not_a_dir])

    assert len(records) == 1
    assert [(d.code, d.source) for d in sink.dead_letters] == [
        (UNREADABLE, str(missing)),
        (UNREADABLE, str(below_a_file)),
    ]
    assert sink.dead_letters[0].reason == "cannot open: No such file or directory"
    assert sink.dead_letters[1].reason == "cannot read: Not a directory"
    assert stats.files == 3
    assert stats.by_code == {UNREADABLE: 2}


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files regardless of mode"
)
def test_a_file_without_read_permission_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "secret.jsonl"
    path.write_bytes(b"{}\n")
    path.chmod(0)
    try:
        records, sink, _ = read([path])
    finally:
        path.chmod(0o600)

    assert records == []
    assert [(d.code, d.reason) for d in sink.dead_letters] == [(UNREADABLE, "cannot open: Permission denied")]


def test_unknown_extensions_in_a_folder_are_skipped_and_reported(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_bytes(b'{"a": 1}\n')
    (tmp_path / "events.csv").write_bytes(b"a,b\n1,2\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")

    records, sink, stats = read([tmp_path])

    assert len(records) == 1
    assert sink.dead_letters == []
    assert [(d.code, d.source) for d in sink.diagnostics] == [
        (SKIPPED_UNKNOWN_TYPE, str(tmp_path / "events.csv")),
        (SKIPPED_UNKNOWN_TYPE, str(tmp_path / "image.png")),
    ]
    assert stats.files == 1
    assert stats.diagnostics == 2


def test_text_that_is_not_json_is_one_dead_letter_per_file(tmp_path: Path) -> None:
    iis = tmp_path / "u_ex2401.log"
    iis.write_bytes(b"#Software: Microsoft IIS\n2024-01-01 GET /x 200\n" * 50)
    junk = tmp_path / "dump.bin"
    junk.write_bytes(bytes(range(256)))

    records, sink, _ = read([iis, junk])

    assert records == []
    assert [(d.code, d.source, d.line) for d in sink.dead_letters] == [
        (UNKNOWN_FORMAT, str(iis), 1),
        (UNKNOWN_FORMAT, str(junk), 1),
    ]


# --- gzip ------------------------------------------------------------------------------------------


def numbered_lines(count: int) -> list[bytes]:
    return [b'{"n": %d, "pad": "%s"}' % (i, b"x" * (i % 50)) for i in range(1, count + 1)]


@pytest.mark.parametrize("name", ["events.jsonl.gz", "events.json.gz"])
def test_truncated_gzip_keeps_the_lines_before_and_reports_the_rest(tmp_path: Path, name: str) -> None:
    lines = numbered_lines(2000)
    packed = gzip.compress(b"\n".join(lines) + b"\n", mtime=0)
    path = tmp_path / name
    path.write_bytes(packed[: len(packed) // 2])

    records, sink, stats = read([path])

    assert 0 < len(records) < len(lines)
    assert [r.raw for r in records] == lines[: len(records)]
    assert letters(sink) == [(TRUNCATED, len(records) + 1)]
    assert f"after line {len(records)}; anything after it is lost" in sink.dead_letters[0].reason
    assert stats.by_code == {TRUNCATED: 1}


def test_gzip_with_a_bad_checksum_or_trailing_garbage_is_corrupt(tmp_path: Path) -> None:
    lines = numbered_lines(300)
    packed = gzip.compress(b"\n".join(lines) + b"\n", mtime=0)
    bad_crc = tmp_path / "crc.jsonl.gz"
    bad_crc.write_bytes(packed[:-8] + b"\0\0\0\0" + packed[-4:])
    garbage = tmp_path / "garbage.jsonl.gz"
    garbage.write_bytes(packed + b"garbage!")

    records, sink, _ = read([bad_crc, garbage])

    assert len(records) == 600  # the data decompressed fine; the damage is only detected at the end
    assert [(d.code, d.line, Path(d.source).name) for d in sink.dead_letters] == [
        (CORRUPT, 301, "crc.jsonl.gz"),
        (CORRUPT, 301, "garbage.jsonl.gz"),
    ]


# --- JSON documents --------------------------------------------------------------------------------


def test_a_malformed_json_document_is_one_dead_letter_with_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(b'[\n  {"a": 1},\n  {"a": 2,,}\n]\n')

    records, sink, _ = read([path])

    assert records == []
    assert [(d.code, d.line, d.offset) for d in sink.dead_letters] == [(MALFORMED_JSON, 3, 24)]


def test_json_array_elements_that_are_not_objects_or_too_big(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    path.write_bytes(b'[{"a": 1}, 2, ["x"], {"big": "' + b"y" * 200 + b'"}, {"a": 5}]')

    records, sink, _ = read([path], max_record_bytes=100)

    assert [(r.provenance.line, r.raw) for r in records] == [(1, b'{"a":1}'), (5, b'{"a":5}')]
    assert letters(sink) == [(NOT_AN_OBJECT, 2), (NOT_AN_OBJECT, 3), (OVERSIZED, 4)]


def test_concatenated_documents_keep_what_parses_before_an_error(tmp_path: Path) -> None:
    path = tmp_path / "sequence.json"
    path.write_bytes(b'{\n "a": 1\n}\n{\n "a": 2\n}\n{\n "a": oops\n}\n')

    records, sink, _ = read([path])

    assert [orjson.loads(r.raw) for r in records] == [{"a": 1}, {"a": 2}]
    assert [(d.code, d.line, d.offset) for d in sink.dead_letters] == [(MALFORMED_JSON, 8, 32)]
    assert sink.dead_letters[0].reason.startswith("after 2 documents: ")


def test_invalid_utf8_in_a_json_document_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'[{"user": "Jos\xe9"}]')

    records, sink, _ = read([path])

    assert [orjson.loads(r.raw) for r in records] == [{"user": "Jos\ufffd"}]
    assert [d.code for d in sink.diagnostics] == [INVALID_UTF8_REPAIRED]
    assert sink.dead_letters == []


# --- EVTX ------------------------------------------------------------------------------------------


@pytest.fixture
def evtx_bytes(shared_dir: Path) -> bytes:
    return shared_dir.joinpath(*SAMPLE_EVTX).read_bytes()


def chunk_ids(data: bytes, index: int) -> tuple[int, int]:
    """First and last record id a chunk header declares (bytes 24 and 32 of the chunk)."""
    first, last = struct.unpack_from("<QQ", data, EVTX_HEADER + index * EVTX_CHUNK + 24)
    return int(first), int(last)


def write(tmp_path: Path, data: bytes | bytearray, name: str = "copy.evtx") -> Path:
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def record_ids(records: list[RawRecord]) -> list[int | None]:
    return [r.provenance.record_id for r in records]


@pytest.mark.shared
def test_evtx_sample_layout(evtx_bytes: bytes) -> None:
    """The facts the tests below rely on."""
    assert len(evtx_bytes) == EVTX_HEADER + 33 * EVTX_CHUNK
    assert struct.unpack_from("<H", evtx_bytes, 42)[0] == 21
    assert [chunk_ids(evtx_bytes, k) for k in (0, 1, 5, 10, 20)] == [
        (1, 125),
        (126, 222),
        (582, 693),
        (1096, 1190),
        (2206, 2216),
    ]


@pytest.mark.shared
def test_evtx_truncated_inside_a_chunk(tmp_path: Path, evtx_bytes: bytes) -> None:
    cut = EVTX_HEADER + 10 * EVTX_CHUNK + 1000
    path = write(tmp_path, evtx_bytes[:cut])

    records, sink, stats = read([path])

    assert record_ids(records) == list(range(1, 1096))  # chunks 0-9 complete
    assert [(d.code, d.record_id, d.offset) for d in sink.dead_letters] == [(EVTX_CORRUPT, 1096, cut)]
    assert sink.dead_letters[0].reason == (
        f"file truncated at offset {cut}; it ends 1000 bytes into chunk 10 (records 1096..1190); "
        "the header declares 21 chunks, 10 are complete"
    )
    assert stats.by_code == {EVTX_CORRUPT: 1}


@pytest.mark.shared
def test_evtx_truncated_at_a_chunk_boundary(tmp_path: Path, evtx_bytes: bytes) -> None:
    cut = EVTX_HEADER + 10 * EVTX_CHUNK
    path = write(tmp_path, evtx_bytes[:cut])

    records, sink, _ = read([path])

    assert record_ids(records) == list(range(1, 1096))
    assert [(d.code, d.record_id, d.offset) for d in sink.dead_letters] == [(EVTX_CORRUPT, 1095, cut)]
    assert "the header declares 21 chunks, 10 are complete" in sink.dead_letters[0].reason


@pytest.mark.shared
def test_evtx_cut_in_the_preallocated_tail_loses_nothing(tmp_path: Path, evtx_bytes: bytes) -> None:
    path = write(tmp_path, evtx_bytes[: EVTX_HEADER + 25 * EVTX_CHUNK + 77])

    records, sink, _ = read([path])

    assert len(records) == 2216
    assert sink.codes() == []


@pytest.mark.shared
def test_evtx_corrupted_chunk_keeps_the_other_chunks(tmp_path: Path, evtx_bytes: bytes) -> None:
    data = bytearray(evtx_bytes)
    start = EVTX_HEADER + EVTX_CHUNK  # chunk 1: records 126..222
    for i in range(start + 600, start + 5000, 7):
        data[i] ^= 0xFF
    path = write(tmp_path, data)

    records, sink, stats = read([path])

    assert record_ids(records) == [*range(1, 126), *range(223, 2217)]
    assert [(d.code, d.record_id, d.offset) for d in sink.dead_letters] == [(EVTX_CORRUPT, 126, start)]
    reason = sink.dead_letters[0].reason
    assert reason.startswith("chunk 1: Failed to parse chunk containing record IDs 126..222")
    assert reason.endswith("(last good record: 125)")
    assert stats.records == 2216 - 97


@pytest.mark.shared
def test_evtx_zeroed_chunk_that_the_parser_skips_silently_is_reported(
    tmp_path: Path, evtx_bytes: bytes
) -> None:
    data = bytearray(evtx_bytes)
    start = EVTX_HEADER + 5 * EVTX_CHUNK
    data[start : start + EVTX_CHUNK] = bytes(EVTX_CHUNK)
    path = write(tmp_path, data)
    assert sum(1 for _ in evtx.PyEvtxParser(str(path)).records_json()) == 2216 - 112  # and no error

    records, sink, _ = read([path])

    assert len(records) == 2216 - 112
    assert [(d.code, d.record_id, d.offset) for d in sink.dead_letters] == [(EVTX_CORRUPT, None, start)]
    assert sink.dead_letters[0].reason == (
        "chunk 5 is zeroed although the header declares 21 chunks; its records are lost (records 582..693)"
    )


@pytest.mark.shared
def test_evtx_chunk_with_a_broken_first_record_is_reported(tmp_path: Path, evtx_bytes: bytes) -> None:
    data = bytearray(evtx_bytes)
    start = EVTX_HEADER + 5 * EVTX_CHUNK
    data[start + 512 : start + 600] = bytes(88)  # the parser drops the whole chunk without an error
    path = write(tmp_path, data)

    records, sink, _ = read([path])

    assert record_ids(records) == [*range(1, 582), *range(694, 2217)]
    assert [(d.code, d.record_id, d.offset) for d in sink.dead_letters] == [(EVTX_CORRUPT, 582, start)]
    assert sink.dead_letters[0].reason == (
        "chunk 5: 112 of 112 records (ids 582..693) were skipped by the parser without an error"
    )


@pytest.mark.shared
def test_evtx_single_bit_flip_is_a_checksum_diagnostic(tmp_path: Path, evtx_bytes: bytes) -> None:
    data = bytearray(evtx_bytes)
    data[EVTX_HEADER + 3 * EVTX_CHUNK + 30000] ^= 0x01
    path = write(tmp_path, data)

    records, sink, _ = read([path])

    assert len(records) == 2216
    assert sink.dead_letters == []
    assert [(d.code, d.record_id) for d in sink.diagnostics] == [(EVTX_CHECKSUM, chunk_ids(evtx_bytes, 3)[0])]


@pytest.mark.shared
def test_evtx_garbage_chunk_is_reported_by_the_parser(tmp_path: Path, evtx_bytes: bytes) -> None:
    data = bytearray(evtx_bytes)
    start = EVTX_HEADER + 25 * EVTX_CHUNK  # a preallocated chunk, overwritten with junk
    data[start : start + EVTX_CHUNK] = b"\x07" * EVTX_CHUNK
    path = write(tmp_path, data)

    records, sink, _ = read([path])

    assert len(records) == 2216
    assert [(d.code, d.record_id, d.offset) for d in sink.dead_letters] == [(EVTX_CORRUPT, 2216, start)]
    assert "Invalid EVTX chunk header magic" in sink.dead_letters[0].reason


@pytest.mark.shared
def test_evtx_truncated_inside_the_file_header(tmp_path: Path, evtx_bytes: bytes) -> None:
    path = write(tmp_path, evtx_bytes[:3000])

    records, sink, _ = read([path])

    assert records == []
    assert [(d.code, d.offset) for d in sink.dead_letters] == [(EVTX_CORRUPT, 3000)]


def test_a_dot_evtx_file_that_is_not_evtx(tmp_path: Path) -> None:
    path = write(tmp_path, b'{"looks": "like json"}\n', name="fake.evtx")

    records, sink, _ = read([path])

    assert records == []
    assert [(d.code, d.offset, d.source) for d in sink.dead_letters] == [(NOT_EVTX, 0, str(path))]
    assert sink.dead_letters[0].sample == b'{"looks": "like json"}\n'


# --- properties ------------------------------------------------------------------------------------

SPECIAL_LINES = [
    b'{"a": 1}',
    b'{"Event": {"System": {"EventRecordID": 5}}}',
    b"[1, 2]",
    b"42",
    b"",
    b"   ",
    b"\r",
    b"\xef\xbb\xbf{}",
    b"\xff",
    b'{"k": "\xc3"}',
    b'{"k": "\xed\xa0\x80"}',
    b'{"deep": ' + b"[" * 2000 + b"]" * 2000 + b"}",
]
line_strategy = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from(SPECIAL_LINES),
    st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3).map(orjson.dumps),
)


def without_newline(line: bytes) -> bytes:
    """What the reader treats as a line's content: no "\\r" before the newline it splits on."""
    return line[:-1] if line.endswith(b"\r") else line


def counted(index: int, line: bytes, max_bytes: int) -> bool:
    """Non-blank (or oversized) lines: each must come out as a record or a dead letter."""
    content = without_newline(line)
    if len(content) > max_bytes:
        return True
    if index == 0:
        content = content.removeprefix(b"\xef\xbb\xbf")
    return bool(content.strip())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(line_strategy, max_size=25),
    final_newline=st.booleans(),
    compress=st.booleans(),
    max_bytes=st.sampled_from([24, 8 * MiB]),
)
def test_arbitrary_lines_never_crash_and_are_all_accounted_for(
    lines: list[bytes], final_newline: bool, compress: bool, max_bytes: int
) -> None:
    content = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    # Content decides over the extension for these signatures: such a file is read as EVTX or gzip.
    assume(not content.startswith((b"ElfFile\x00", b"\x1f\x8b")))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("fuzz.jsonl.gz" if compress else "fuzz.jsonl")
        path.write_bytes(gzip.compress(content) if compress else content)

        records, sink, stats = read([path], max_record_bytes=max_bytes)

    expected = [i + 1 for i, line in enumerate(lines) if counted(i, line, max_bytes)]
    accounted = sorted([r.provenance.line for r in records] + [d.line for d in sink.dead_letters])
    assert accounted == expected
    assert stats.records == len(records)
    assert stats.dead_letters == len(sink.dead_letters)
    repaired = {d.line for d in sink.diagnostics if d.code == INVALID_UTF8_REPAIRED}
    assert {d.code for d in sink.diagnostics} <= {INVALID_UTF8_REPAIRED, EMPTY}
    for record in records:
        assert record.provenance.line is not None
        assert isinstance(orjson.loads(record.raw), dict)
        original = without_newline(lines[record.provenance.line - 1])
        if record.provenance.line not in repaired:
            assert record.raw in (original, original.removeprefix(b"\xef\xbb\xbf"))


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=400), name=st.sampled_from(["x.json", "x.evtx", "x.dat", "x.json.gz", "x.log"])
)
def test_arbitrary_files_of_any_type_never_crash(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)

        records, sink, stats = read([path])

    assert stats.records == len(records)
    assert stats.dead_letters + stats.diagnostics == len(sink.codes())
    assert all(isinstance(orjson.loads(r.raw), dict) for r in records)
