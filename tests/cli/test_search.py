"""`watchfloor search` and `watchfloor retrohunt` end to end, in-process, on an archive built in tmp_path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tests.archive.conftest import DAY0, bakery_events, clinic_events, write
from tests.archive.test_retrohunt import RULES
from watchfloor.cli.search import parse_when, search_app

runner = CliRunner(env={"COLUMNS": "200", "WATCHFLOOR_CACHE_DIR": "off"})
RANGE = ["--since", "2026-11-20", "--until", "2026-11-27T00:00:00Z"]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    write(root, clinic_events() + bakery_events())
    write(root, clinic_events()[:2])  # redelivered
    return root


def test_search_jsonl(archive: Path) -> None:
    result = runner.invoke(
        search_app,
        [
            "search",
            "--archive",
            str(archive),
            "--tenant",
            "clinic",
            *RANGE,
            "--where",
            "EventID=4625",
            "--format",
            "jsonl",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["record_id"] for r in rows] == ["1", "2"]
    assert rows[0]["tenant"] == "clinic"
    assert rows[0]["event_time"] == "2026-11-20T09:00:00Z"
    assert rows[0]["fields"]["TargetUserName"] == "Administrator"
    assert "raw" not in rows[0]


def test_search_table_shows_condition_fields_and_respects_limit(archive: Path) -> None:
    result = runner.invoke(
        search_app,
        [
            "search",
            "--archive",
            str(archive),
            "--tenant",
            "clinic",
            *RANGE,
            "--where",
            "CommandLine~powershell OR TargetUserName=alice",
            "--limit",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "CommandLine" in result.stdout
    assert "TargetUserName" in result.stdout
    assert "windows/security/4688" in result.stdout
    assert "3 events for tenant clinic" in result.stdout


def test_search_with_raw(archive: Path) -> None:
    result = runner.invoke(
        search_app,
        [
            "search",
            "--archive",
            str(archive),
            "--tenant",
            "bakery",
            *RANGE,
            "--format",
            "jsonl",
            "--with-raw",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2
    assert all(orjson.loads(r["raw"])["Channel"] == "Security" for r in rows)


def test_bad_query_exits_2_with_a_caret(archive: Path) -> None:
    result = runner.invoke(
        search_app,
        ["search", "--archive", str(archive), "--tenant", "clinic", *RANGE, "--where", "EventID=4625 AND ("],
    )
    assert result.exit_code == 2
    assert "search.invalid_query" in result.stderr
    assert "^" in result.stderr


def test_bad_tenant_and_time_are_usage_errors(archive: Path) -> None:
    for args in (
        ["--tenant", "../bakery", *RANGE],
        ["--tenant", "clinic", "--since", "yesterday-ish"],
        ["--tenant", "clinic", "--since", "2026-11-27", "--until", "2026-11-20"],
    ):
        result = runner.invoke(search_app, ["search", "--archive", str(archive), *args])
        assert result.exit_code == 2, (args, result.output)


def test_retrohunt_table_shows_rule_author_and_event(archive: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES, encoding="utf-8")
    result = runner.invoke(
        search_app,
        ["retrohunt", "--archive", str(archive), "--tenant", "clinic", "--rules", str(rules), *RANGE],
    )
    assert result.exit_code == 0, result.output
    for text in (
        "Failed logon for a built-in admin name",
        "Watchfloor tests",
        "Encoded PowerShell",
        "Someone Else",
        "high",
        "ws01.evtx",
        "2026-11-20T09:00:00Z",
        "Matches (2)",
    ):
        assert text in result.stdout, text
    assert "6 archived events scanned for tenant clinic; 2 matched" in result.stderr


def test_retrohunt_jsonl(archive: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES, encoding="utf-8")
    result = runner.invoke(
        search_app,
        [
            "retrohunt",
            "--archive",
            str(archive),
            "--tenant",
            "bakery",
            "--rules",
            str(rules),
            *RANGE,
            "--format",
            "jsonl",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [(r["tenant"], r["rule_title"], r["rule_author"], r["source"], r["record_id"]) for r in rows] == [
        ("bakery", "Failed logon for a built-in admin name", "Watchfloor tests", "pos01.evtx", "1")
    ]
    assert rows[0]["rule_level"] == "medium"
    assert rows[0]["event_time"] == "2026-11-20T09:00:00Z"


def test_parse_when() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert parse_when("now", now) == now
    assert parse_when("24h", now) == now - timedelta(hours=24)
    assert parse_when("7d", now) == now - timedelta(days=7)
    assert parse_when("2026-11-20", now) == DAY0
    assert parse_when("2026-11-20T10:00:00+01:00", now) == DAY0 + timedelta(hours=9)
