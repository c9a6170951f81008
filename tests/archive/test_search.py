"""`search` over real Parquet files: conditions, ranges, dedupe, tenant isolation, partition pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.archive.conftest import (
    DAY0,
    archived,
    clinic_events,
    corpus_events,
    corpus_lines,
    win_event,
    write,
)
from watchfloor.archive import ArchiveError, Condition, SearchQueryError, partition_files, search

SINCE = DAY0
UNTIL = DAY0 + timedelta(days=7)


def keys(rows: list[dict[str, object]]) -> list[object]:
    return [row["record_id"] for row in rows]


def find(root: Path, where: str | list[Condition] | None, tenant: str = "clinic") -> list[object]:
    return keys(search(root, tenant, since=SINCE, until=UNTIL, where=where, limit=1000))


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (None, ["1", "2", "3", "4", "5", "6"]),
        ("EventID=4625", ["1", "2"]),
        ("TargetUserName=administrator", ["1"]),  # case-insensitive, like Sigma
        ("TargetUserName!=alice", ["1", "4", "5", "6"]),  # absent fields are "not equal"
        ("CommandLine~ENCODEDcommand", ["4"]),
        ("CommandLine!~whoami", ["1", "2", "3", "4", "6"]),
        (r"NewProcessName=*\powershell.exe", ["4"]),
        (r"NewProcessName=C:\Windows\System32\cmd.exe", ["5"]),
        ("NewProcessName=c:\\windows\\system32\\cmd.ex?", ["5"]),
        ("logsource=windows/security/46*", ["1", "2", "3", "4", "5"]),
        ("logsource=windows/security/4688", ["4", "5"]),
        ("EventID in (4624, 1102)", ["3", "6"]),
        ("IpAddress in 10.0.0.0/8", ["1", "3"]),
        ("IpAddress in 10.1.0.0/16", ["1"]),
        ("LogonType>=3", ["1"]),
        ("EventID>4624 AND EventID<4700", ["1", "2", "4", "5"]),
        ("Data=security", ["6"]),  # a list field matches when any element does
        ("Data~clinic\\bob", ["6"]),
        ("Data!=security", ["1", "2", "3", "4", "5"]),
        ("(EventID=4625 OR EventID=4624) AND NOT TargetUserName=alice", ["1"]),
        ("EventID=4625 TargetUserName=alice", ["2"]),  # juxtaposition is AND
        ("record_id=3", ["3"]),
        ("source=ws01.evtx EventID=1102", ["6"]),
        ("NoSuchField=1", []),
        ("NoSuchField!=1 EventID=1102", ["6"]),
    ],
)
def test_conditions(archive_root: Path, where: str | None, expected: list[str]) -> None:
    assert find(archive_root, where) == expected


def test_condition_objects_are_anded(archive_root: Path) -> None:
    where = [Condition("EventID", "=", "4625"), Condition("TargetUserName", "=", "ALICE")]
    assert find(archive_root, where) == ["2"]


def test_rows_carry_columns_times_and_fields(archive_root: Path) -> None:
    (row,) = search(archive_root, "clinic", since=SINCE, until=UNTIL, where="record_id=4")
    assert row["tenant"] == "clinic"
    assert row["logsource"] == "windows/security/4688"
    assert row["event_time"] == DAY0 + timedelta(days=1, hours=9)
    assert row["event_time"].tzinfo is not None
    assert row["fields"]["SubjectUserName"] == "bob"
    assert "raw" not in row
    (raw_row,) = search(
        archive_root, "clinic", since=SINCE, until=UNTIL, where="record_id=4", columns=["raw", "event_key"]
    )
    assert set(raw_row) == {"raw", "event_key"}
    assert b"EncodedCommand" in raw_row["raw"]


def test_time_range_is_inclusive_exclusive_and_limit_keeps_the_oldest(archive_root: Path) -> None:
    first = DAY0 + timedelta(hours=9)
    rows = search(archive_root, "clinic", since=first, until=first + timedelta(minutes=1))
    assert keys(rows) == ["1"]
    assert keys(search(archive_root, "clinic", since=SINCE, until=UNTIL, limit=2)) == ["1", "2"]
    assert search(archive_root, "clinic", since=UNTIL, until=UNTIL) == []


def test_duplicates_from_redelivery_come_back_once(tmp_path: Path) -> None:
    root = tmp_path / "a"
    events = clinic_events()
    write(root, events)
    write(root, events[:2])  # the pipeline redelivered after a restart: same event keys
    assert len(list(root.rglob("part-*.parquet"))) == 4  # 3 days, then the redelivered day again
    assert find(root, None) == ["1", "2", "3", "4", "5", "6"]
    assert find(root, "EventID=4625") == ["1", "2"]


def test_tenant_isolation_with_crafted_tenants_and_conditions(archive_root: Path) -> None:
    assert find(archive_root, "CommandLine~powershell", tenant="bakery") == ["2"]
    assert all(r["tenant"] == "clinic" for r in search(archive_root, "clinic", since=SINCE, until=UNTIL))
    for crafted in ("../tenant=bakery", "clinic/../bakery", "*", "clinic*", "Clinic", "", "clinic\n"):
        with pytest.raises(ArchiveError) as info:
            search(archive_root, crafted, since=SINCE, until=UNTIL)
        assert info.value.code == "archive.invalid_tenant"
    # Conditions cannot reach another tenant's rows: the file list holds clinic's files only.
    for where in ("tenant=bakery", '"tenant"!=clinic', "source=pos01.evtx", "x=1 OR 1=1"):
        rows = search(archive_root, "clinic", since=SINCE, until=UNTIL, where=where, limit=1000)
        assert all(r["source"] == "ws01.evtx" for r in rows), where


def test_a_tenant_without_data_gets_nothing(archive_root: Path) -> None:
    assert search(archive_root, "newcomer", since=SINCE, until=UNTIL) == []


def test_only_partitions_in_range_are_read(archive_root: Path) -> None:
    """Files outside the range are never opened: make them garbage and search around them."""
    day1 = DAY0 + timedelta(days=1)
    other_days = [p for p in (archive_root / "tenant=clinic").iterdir() if p.name != f"date={day1.date()}"]
    assert other_days
    for directory in [*other_days, *(archive_root / "tenant=bakery").iterdir()]:
        for part in directory.glob("part-*.parquet"):
            part.write_bytes(b"not parquet at all")
    rows = search(archive_root, "clinic", since=day1, until=day1 + timedelta(days=1), where="EventID=4688")
    assert keys(rows) == ["4", "5"]
    with pytest.raises(ArchiveError) as info:  # a sanity check that garbage would have failed the query
        search(archive_root, "clinic", since=SINCE, until=UNTIL)
    assert info.value.code == "archive.read_failed"


def test_partition_files_lists_only_that_tenants_days(archive_root: Path) -> None:
    day1 = DAY0 + timedelta(days=1)
    files = partition_files(archive_root, "clinic", day1, day1 + timedelta(hours=1))
    assert files
    assert all(
        f.parent.name == f"date={day1.date()}" and f.parent.parent.name == "tenant=clinic" for f in files
    )


def test_duckdb_plan_reads_just_the_listed_files(archive_root: Path) -> None:
    day1 = DAY0 + timedelta(days=1)
    files = [str(f) for f in partition_files(archive_root, "clinic", day1, day1 + timedelta(days=1))]
    con = duckdb.connect()
    plan = con.execute("EXPLAIN SELECT count(*) FROM read_parquet(?)", [files]).fetchall()
    text = "\n".join(str(part) for row in plan for part in row)
    assert "bakery" not in text
    assert con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone() == (2,)


def test_invalid_inputs_raise_archive_errors(archive_root: Path) -> None:
    with pytest.raises(SearchQueryError) as info:
        search(archive_root, "clinic", since=SINCE, until=UNTIL, where="EventID=")
    assert info.value.code == "search.invalid_query"
    with pytest.raises(ArchiveError, match="timezone"):
        search(archive_root, "clinic", since=datetime(2026, 1, 1), until=UNTIL)  # noqa: DTZ001
    with pytest.raises(ArchiveError, match="before"):
        search(archive_root, "clinic", since=UNTIL, until=SINCE)
    with pytest.raises(ArchiveError) as cols:
        search(archive_root, "clinic", since=SINCE, until=UNTIL, columns=["raw; DROP"])
    assert cols.value.code == "search.invalid_columns"
    with pytest.raises(ArchiveError):
        search(archive_root, "clinic", since=SINCE, until=UNTIL, limit=0)


def test_sql_injection_values_are_data(archive_root: Path) -> None:
    evil = win_event(4688, DAY0 + timedelta(hours=1), record=99, CommandLine="x' OR '1'='1")
    write(archive_root, [archived(evil, "clinic")])
    assert find(archive_root, "CommandLine=\"x' OR '1'='1\"") == ["99"]
    assert find(archive_root, "CommandLine=\"' OR '1'='1\"") == []
    assert find(archive_root, 'CommandLine~"\'); DROP TABLE x; --"') == []
    assert len(find(archive_root, None)) == 7


def test_events_without_a_time_are_filed_by_receive_time(tmp_path: Path) -> None:
    received = datetime(2026, 12, 2, 23, 59, tzinfo=UTC)
    from watchfloor.archive import event_from_raw

    events = [
        event_from_raw(b'{"hello": "world"}', tenant="t1", source="s", received_at=received),
        event_from_raw(b"not json", tenant="t1", source="s", received_at=received),
    ]
    write(tmp_path, events)
    assert (tmp_path / "tenant=t1" / "date=2026-12-02").is_dir()
    rows = search(tmp_path, "t1", since=received, until=received + timedelta(seconds=1))
    assert sorted(r["logsource"] for r in rows) == ["unknown", "unknown"]
    assert [r["fields"] for r in rows if r["fields"]] == [{"hello": "world"}]


# -- the shared corpus -----------------------------------------------------------------------------
CORPUS_SINCE = datetime(2000, 1, 1, tzinfo=UTC)
CORPUS_UNTIL = datetime(2030, 1, 1, tzinfo=UTC)


def test_corpus_every_event_is_archived_and_found_once(corpus_archive: tuple[Path, int]) -> None:
    root, total = corpus_archive
    con = duckdb.connect()
    files = [str(f) for f in partition_files(root, "corp", CORPUS_SINCE, CORPUS_UNTIL)]
    count = con.execute("SELECT count(*), count(DISTINCT event_key) FROM read_parquet(?)", [files]).fetchone()
    assert count is not None
    stored, distinct = count
    assert stored == total
    # A few records occur twice in the corpus (same file, same bytes): they are one event.
    assert distinct <= total
    rows = search(root, "corp", since=CORPUS_SINCE, until=CORPUS_UNTIL, where="EventID=4625", limit=100_000)
    assert rows
    assert all(r["logsource"].endswith("/4625") for r in rows)
    assert len({r["event_key"] for r in rows}) == len(rows)


def test_corpus_selective_search_agrees_with_a_python_scan(
    corpus_archive: tuple[Path, int], shared_dir: Path
) -> None:
    root, _ = corpus_archive
    expected = set()
    for event in corpus_events(corpus_lines(shared_dir), "corp"):
        value = event.fields.get("CommandLine")
        if event.logsource.startswith("windows/") and isinstance(value, str) and "whoami" in value.lower():
            expected.add(event.event_key)
    assert expected
    rows = search(
        root,
        "corp",
        since=CORPUS_SINCE,
        until=CORPUS_UNTIL,
        where="logsource=windows/* AND CommandLine~WHOAMI",
        limit=10_000,
    )
    assert {r["event_key"] for r in rows} == expected
    assert len(rows) == len(expected)
