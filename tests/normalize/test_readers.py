"""Readers on good input: real corpora from ../shared, small hand-made files, and the dead-letter store."""

from __future__ import annotations

import dataclasses
import gzip
from datetime import UTC, datetime
from pathlib import Path

import evtx
import orjson
import pytest

from watchfloor.core.records import DeadLetter, Diagnostic, Provenance, RawRecord
from watchfloor.core.types import TenantId
from watchfloor.normalize.deadletter import (
    SAMPLE_CAP_BYTES,
    SKIPPED_UNKNOWN_TYPE,
    CappedDeadLetter,
    Reporter,
    sample_length,
)
from watchfloor.normalize.readers import (
    JsonlDeadLetterStore,
    MemoryDeadLetters,
    ReadStats,
    input_kind,
    iter_dead_letters,
    iter_diagnostics,
    iter_inputs,
    read_records,
)
from watchfloor.normalize.readers_json import _plain_record, record_factory

DATA = Path(__file__).resolve().parents[1] / "data" / "normalize"
TENANT = TenantId("clinic")
EVENTS_JSONL_GZ = 15_061


def read(paths: list[Path], **kwargs: int) -> tuple[list[RawRecord], MemoryDeadLetters, ReadStats]:
    sink = MemoryDeadLetters()
    stats = ReadStats()
    records = list(read_records(paths, tenant=TENANT, sink=sink, stats=stats, **kwargs))
    return records, sink, stats


# --- real data from ../shared ---------------------------------------------------------------------


@pytest.mark.shared
def test_events_jsonl_gz_every_line_is_a_record_with_its_raw_bytes(shared_dir: Path) -> None:
    path = shared_dir / "datasets" / "windows-evtx" / "events.jsonl.gz"
    records, sink, stats = read([path])

    assert len(records) == EVENTS_JSONL_GZ
    assert sink.dead_letters == []
    assert sink.diagnostics == []
    lines = gzip.decompress(path.read_bytes()).splitlines()
    assert [r.raw for r in records] == lines  # the line bytes themselves, never re-serialized
    first = records[0]
    assert first.provenance == Provenance(
        tenant=TENANT, source=str(path), line=1, record_id=6575, parser="jsonl"
    )
    assert [r.provenance.line for r in records] == list(range(1, EVENTS_JSONL_GZ + 1))
    assert b'"SourceFile"' in first.raw  # the extra top-level key is left as it is
    assert stats == ReadStats(files=1, records=EVENTS_JSONL_GZ, bytes=sum(map(len, lines)))


@pytest.mark.shared
@pytest.mark.parametrize(
    "relative",
    [
        "hayabusa-sample-evtx/DeepBlueCLI/many-events-application.evtx",
        "hayabusa-sample-evtx/YamatoSecurity/LateralMovement/T1210_Zerologon_Sysmon.evtx",
    ],
)
def test_evtx_yields_what_the_evtx_package_yields(shared_dir: Path, relative: str) -> None:
    path = shared_dir / "datasets" / "windows-evtx" / relative
    expected = list(evtx.PyEvtxParser(str(path)).records_json())

    records, sink, stats = read([path])

    assert len(records) == len(expected) > 0
    assert [r.provenance.record_id for r in records] == [e["event_record_id"] for e in expected]
    assert [r.raw for r in records] == [e["data"].encode() for e in expected]
    assert {(r.provenance.parser, r.provenance.line, r.provenance.source) for r in records} == {
        ("evtx", None, str(path))
    }
    assert sink.codes() == []
    assert stats.records == len(expected)
    assert stats.files == 1


@pytest.mark.shared
def test_all_shared_evtx_files_read_without_false_alarms(shared_dir: Path) -> None:
    """Preallocated zero chunks, dirty headers etc. in 311 real files: no dead letters, no diagnostics."""
    folder = shared_dir / "datasets" / "windows-evtx"
    files = sorted(folder.rglob("*.evtx"))
    expected = sum(1 for f in files for _ in evtx.PyEvtxParser(str(f)).records_json())

    records, sink, stats = read(files)

    assert len(records) == expected
    assert sink.codes() == []
    assert stats.files == len(files)


@pytest.mark.shared
def test_cloud_samples_one_record_per_non_blank_line(shared_dir: Path) -> None:
    folder = shared_dir / "datasets" / "cloud"
    files = list(iter_inputs([folder]))
    lines = sum(1 for f in files for line in f.read_bytes().splitlines() if line.strip())

    records, sink, _ = read([folder])

    assert len(records) == lines > 1000
    assert sink.dead_letters == []
    assert {d.code for d in sink.diagnostics} <= {SKIPPED_UNKNOWN_TYPE}  # SOURCES.md, .tsv indexes


@pytest.mark.shared
def test_sigma_regression_json_samples_match_their_evtx(shared_dir: Path) -> None:
    """These .json files are pretty-printed objects one after another (not an array, not JSON lines)."""
    pairs = [
        (j, j.with_suffix(".evtx"))
        for j in sorted((shared_dir / "sigma" / "regression_data").rglob("*.json"))
        if j.with_suffix(".evtx").exists()
    ][:40]
    assert pairs
    for json_path, evtx_path in pairs:
        records, sink, _ = read([json_path])
        assert sink.codes() == [], json_path
        assert len(records) == sum(1 for _ in evtx.PyEvtxParser(str(evtx_path)).records_json()), json_path
        assert all(r.provenance.parser == "json" for r in records)


# --- hand-made files -------------------------------------------------------------------------------


def test_jsonl_lines_record_ids_and_blank_lines() -> None:
    path = DATA / "windows_sample.jsonl"
    records, sink, stats = read([path])

    assert [(r.provenance.line, r.provenance.record_id) for r in records] == [(1, 101), (2, 102), (4, None)]
    assert records[2].raw == path.read_bytes().splitlines()[3]
    assert sink.codes() == []
    assert stats.records == 3
    assert stats.dead_letters == 0


def test_json_records_shape_becomes_one_record_per_element() -> None:
    path = DATA / "cloudtrail_records.json"
    records, sink, _ = read([path])

    assert [orjson.loads(r.raw)["eventName"] for r in records] == ["CreateAccessKey", "PutBucketPolicy"]
    assert [(r.provenance.line, r.provenance.parser) for r in records] == [(1, "json"), (2, "json")]
    assert sink.codes() == []


@pytest.mark.parametrize(
    ("content", "names"),
    [
        (b'[{"n": "a"}, {"n": "b"}, {"n": "c"}]', ["a", "b", "c"]),
        (b'{"n": "only"}', ["only"]),
        (b'{"Records": [{"n": "r1"}, {"n": "r2"}]}\n', ["r1", "r2"]),  # CloudTrail's one-line S3 export
        (b'\n\n  [\n {"n": "spaced"}\n]\n', ["spaced"]),
        (b'{"n": "x"}\n{"n": "y"}\n', ["x", "y"]),  # JSON lines despite the extension
        (b'{\n "n": "p"\n}\n{\n "n": "q"\n}\n', ["p", "q"]),  # concatenated pretty-printed objects
    ],
)
def test_json_file_shapes(tmp_path: Path, content: bytes, names: list[str]) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)

    records, sink, _ = read([path])

    assert [orjson.loads(r.raw)["n"] for r in records] == names
    assert [r.provenance.line for r in records] == list(range(1, len(names) + 1))
    assert sink.codes() == []


def test_json_lines_in_a_json_file_keep_their_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "lines.json"
    path.write_bytes(b'{"a":  1}\n{"a":  2}\n')

    records, _, _ = read([path])

    assert [r.raw for r in records] == [b'{"a":  1}', b'{"a":  2}']
    assert {r.provenance.parser for r in records} == {"jsonl"}


def test_gzip_variants_read_like_plain_files(tmp_path: Path) -> None:
    plain = (DATA / "windows_sample.jsonl").read_bytes()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(plain))
    (tmp_path / "b.json.gz").write_bytes(gzip.compress((DATA / "cloudtrail_records.json").read_bytes()))
    (tmp_path / "c.ndjson").write_bytes(plain)
    (tmp_path / "d.log.gz").write_bytes(gzip.compress(plain))

    records, sink, stats = read([tmp_path])

    sources = [Path(r.provenance.source).name for r in records]
    assert sources == ["a.jsonl.gz"] * 3 + ["b.json.gz"] * 2 + ["c.ndjson"] * 3 + ["d.log.gz"] * 3
    assert sink.codes() == []
    assert stats.files == 4


def test_crlf_line_endings_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\r\n{"a": 3}')

    records, sink, _ = read([path])

    assert [r.raw for r in records] == [b'{"a": 1}', b'{"a": 2}', b'{"a": 3}']
    assert sink.codes() == []


def test_explicit_files_of_unknown_type_are_sniffed(tmp_path: Path) -> None:
    jsonl = tmp_path / "export.txt"
    jsonl.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    zipped = tmp_path / "export.dat"
    zipped.write_bytes(gzip.compress(b'[{"a": 3}]'))

    records, sink, _ = read([jsonl, zipped])

    assert [(Path(r.provenance.source).name, r.provenance.parser) for r in records] == [
        ("export.txt", "jsonl"),
        ("export.txt", "jsonl"),
        ("export.dat", "json"),
    ]
    assert sink.codes() == []


@pytest.mark.shared
def test_explicit_evtx_under_another_name_is_sniffed(shared_dir: Path, tmp_path: Path) -> None:
    source = shared_dir / "datasets" / "windows-evtx" / "hayabusa-sample-evtx" / "DeepBlueCLI"
    copy = tmp_path / "security.bin"
    copy.write_bytes((source / "new-user-security.evtx").read_bytes())

    records, sink, _ = read([copy])

    assert len(records) == sum(1 for _ in evtx.PyEvtxParser(str(copy)).records_json()) > 0
    assert {r.provenance.parser for r in records} == {"evtx"}
    assert sink.codes() == []


def test_iter_inputs_walks_folders_sorted_and_reports_unknown_types(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    for name in ["b/z.jsonl", "b/a.evtx", "a/x.json.gz", "a/README.md", "c.ndjson", "Notes.TXT", "d.JSONL"]:
        (tmp_path / name).write_bytes(b"{}\n")
    explicit = tmp_path / "a" / "README.md"
    sink = MemoryDeadLetters()
    stats = ReadStats()

    found = list(iter_inputs([tmp_path, explicit], tenant=TENANT, sink=sink, stats=stats))

    names = [p.relative_to(tmp_path).as_posix() for p in found]
    assert names == ["a/x.json.gz", "b/a.evtx", "b/z.jsonl", "c.ndjson", "d.JSONL", "a/README.md"]
    assert [(d.code, Path(d.source).name, d.tenant) for d in sink.diagnostics] == [
        (SKIPPED_UNKNOWN_TYPE, "Notes.TXT", TENANT),  # byte order: upper case sorts first
        (SKIPPED_UNKNOWN_TYPE, "README.md", TENANT),
    ]
    assert stats.diagnostics == 2
    assert stats.by_code == {SKIPPED_UNKNOWN_TYPE: 2}


def test_iter_inputs_survives_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_bytes(b"{}\n")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)

    found = list(iter_inputs([tmp_path]))

    assert [p.name for p in found] == ["a.jsonl"]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.evtx", "evtx"),
        ("A.EVTX", "evtx"),
        ("a.json", "json"),
        ("a.json.gz", "json"),
        ("a.jsonl", "jsonl"),
        ("a.jsonl.gz", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.log", "jsonl"),
        ("a.log.gz", "jsonl"),
        ("a.gz", None),
        ("a.txt", None),
        ("a.evtx.gz", None),
    ],
)
def test_input_kind(name: str, kind: str | None) -> None:
    assert input_kind(Path(name)) == kind


def test_stats_accumulate_across_runs() -> None:
    stats = ReadStats()
    sink = MemoryDeadLetters()
    for _ in range(2):
        list(read_records([DATA / "mixed_bad.jsonl"], tenant=TENANT, sink=sink, stats=stats))

    assert stats.files == 2
    assert stats.records == 4
    assert stats.dead_letters == 8
    assert stats.by_code == {"input.malformed_json": 4, "input.not_an_object": 4}


def test_the_fast_record_constructor_builds_equal_complete_records() -> None:
    fast = record_factory()
    args = (b"{}", TENANT, "f.jsonl", 3, 7, "jsonl")

    made, plain = fast(*args), _plain_record(*args)

    assert fast is not _plain_record  # the core model still has the slots it fills
    assert made == plain
    assert made.provenance == plain.provenance
    assert made.raw == plain.raw
    assert dataclasses.asdict(made) == dataclasses.asdict(plain)
    assert hash(made.provenance) == hash(plain.provenance)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.provenance.line = 4  # type: ignore[misc]


# --- dead-letter store -----------------------------------------------------------------------------


def fixed_clock() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_jsonl_store_round_trip_per_tenant(tmp_path: Path) -> None:
    big = bytes(range(256)) * 1024  # 256 KiB, not UTF-8
    with JsonlDeadLetterStore(tmp_path, clock=fixed_clock) as store:
        for tenant in (TENANT, TenantId("bakery")):
            rep = Reporter(sink=store, stats=ReadStats(), tenant=tenant)
            rep.dead_letter("a.jsonl", "input.malformed_json", "bad", line=3, sample=b"{x")
            rep.dead_letter("b.jsonl", "input.oversized", "too big", line=9, sample=big)
            rep.diagnostic("a.jsonl", "input.invalid_utf8_repaired", "fixed", line=4, record_id=8)

    back = list(iter_dead_letters(tmp_path, TENANT))

    assert back[0] == DeadLetter(
        tenant=TENANT, source="a.jsonl", reason="bad", code="input.malformed_json", line=3, sample=b"{x"
    )
    assert isinstance(back[1], CappedDeadLetter)
    assert back[1].sample == big[:SAMPLE_CAP_BYTES]
    assert sample_length(back[1]) == len(big)
    assert (back[1].code, back[1].line, back[1].where()) == ("input.oversized", 9, "tenant=clinic b.jsonl:9")
    assert list(iter_diagnostics(tmp_path, TENANT)) == [
        Diagnostic(
            tenant=TENANT,
            source="a.jsonl",
            code="input.invalid_utf8_repaired",
            message="fixed",
            line=4,
            record_id=8,
        )
    ]
    rows = [
        orjson.loads(line) for line in (tmp_path / "clinic" / "deadletters.jsonl").read_bytes().splitlines()
    ]
    assert rows[1]["sample_bytes"] == SAMPLE_CAP_BYTES
    assert rows[1]["original_bytes"] == len(big)
    assert rows[0]["written_at"] == "2026-01-02T03:04:05+00:00"
    assert [d.tenant for d in iter_dead_letters(tmp_path, TenantId("bakery"))] == ["bakery", "bakery"]
    assert list(iter_dead_letters(tmp_path, TenantId("nobody"))) == []


def test_jsonl_store_receives_a_reader_run(tmp_path: Path) -> None:
    store_dir = tmp_path / "dead"
    with JsonlDeadLetterStore(store_dir) as store:
        records = list(read_records([DATA / "mixed_bad.jsonl"], tenant=TENANT, sink=store))

    back = list(iter_dead_letters(store_dir, TENANT))
    assert len(records) == 2
    assert [(d.code, d.line) for d in back] == [
        ("input.malformed_json", 2),
        ("input.not_an_object", 3),
        ("input.not_an_object", 4),
        ("input.malformed_json", 7),
    ]
    assert back[0].sample == b'{"id": 2, "ok":'


def test_jsonl_store_refuses_a_tenant_that_is_not_a_safe_path(tmp_path: Path) -> None:
    store = JsonlDeadLetterStore(tmp_path)
    bad = DeadLetter(tenant=TenantId("../etc"), source="x", reason="r", code="c")
    with pytest.raises(ValueError, match="invalid tenant id"):
        store.dead_letter(bad)
