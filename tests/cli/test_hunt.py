"""`watchfloor hunt`, `rules check` and `demo` end to end, in-process, on files we generate."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import orjson
from typer.testing import CliRunner

from watchfloor.cli.main import app
from watchfloor.samples.windows import generate_windows_events, write_jsonl

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "content" / "rules"
runner = CliRunner(env={"COLUMNS": "200"})


def sample(tmp_path: Path) -> Path:
    events, _truth = generate_windows_events(
        seed=11, hosts=4, hours=12.0, start=datetime(2026, 3, 2, tzinfo=UTC)
    )
    path = tmp_path / "events.jsonl"
    write_jsonl(events, path)
    return path


def test_hunt_jsonl_has_every_documented_field_and_rule_authors(tmp_path: Path) -> None:
    events = sample(tmp_path)
    out = tmp_path / "matches.jsonl"
    result = runner.invoke(
        app,
        [
            "hunt",
            "--rules",
            str(RULES),
            "--format",
            "jsonl",
            "--output",
            str(out),
            "--tenant",
            "clinic",
            str(events),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert rows
    for row in rows:
        for key in (
            "rule_id",
            "rule_title",
            "rule_level",
            "rule_author",
            "tags",
            "source",
            "record_id",
            "timestamp",
        ):
            assert key in row, key
        assert row["tenant"] == "clinic"
        assert row["rule_author"] == "Watchfloor contributors"
    base = [r for r in rows if not r.get("correlation")]
    assert all(r["source"] == str(events) and isinstance(r["record_id"], int) for r in base)
    correlations = [r for r in rows if r.get("correlation")]
    assert correlations, "the RDP brute-force correlation should fire on the sample"
    for row in correlations:
        assert len(row["event_refs"]) >= 10
        assert all(ref.startswith(str(events) + ":") for ref in row["event_refs"])
    assert "Summary by rule" in result.output
    # the author is shown in the summary too (a narrow terminal may fold the cell over two lines)
    assert "Watchfloor" in result.output
    assert "contributors" in result.output


def test_hunt_csv_and_table(tmp_path: Path) -> None:
    events = sample(tmp_path)
    result = runner.invoke(app, ["hunt", "--rules", str(RULES), "--format", "csv", str(events)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "," in line]
    header = next(csv.reader(io.StringIO(lines[0])))
    assert header[:6] == ["tenant", "timestamp", "rule_level", "rule_title", "rule_id", "rule_author"]
    table = runner.invoke(app, ["hunt", "--rules", str(RULES), str(events)])
    assert table.exit_code == 0
    assert "Matches (" in table.stdout


def test_hunt_reports_bad_input_and_keeps_dead_letters(tmp_path: Path) -> None:
    good = sample(tmp_path).read_bytes().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join([good[0], b'{"Event": {broken', b"\xff\xfe not utf8", good[1]]) + b"\n")
    letters = tmp_path / "letters"
    result = runner.invoke(
        app, ["hunt", "--rules", str(RULES), "--dead-letters", str(letters), "--tenant", "lawfirm", str(bad)]
    )
    assert result.exit_code == 0, result.output
    assert "dead letters" in result.output
    stored = (letters / "lawfirm" / "deadletters.jsonl").read_bytes().splitlines()
    reasons = [orjson.loads(line) for line in stored]
    assert any(r.get("line") == 2 for r in reasons), reasons
    assert len(reasons) >= 2


def test_rules_check_lists_path_line_and_reason(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "bad.yml").write_text(
        "title: x\nid: 11111111-2222-4333-8444-555555555555\nlogsource: {product: windows}\n"
        "detection:\n  sel:\n    Image: a\n  condition: sel and nothere\n",
        encoding="utf-8",
    )
    (folder / "mac.yml").write_text(
        "title: mac\nid: 11111111-2222-4333-8444-555555555556\nlogsource: {product: macos, category: x}\n"
        "detection:\n  sel:\n    Image: a\n  condition: sel\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["rules", "check", str(folder)])
    assert result.exit_code == 1
    assert f"{folder / 'bad.yml'}:7" in result.stdout
    assert "nothere" in result.stdout
    assert "NO_SOURCE" in result.stdout
    assert "product=macos" in result.stdout


def test_bad_tenant_id_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["hunt", "--rules", str(RULES), "--tenant", "Not A Tenant!", str(tmp_path)])
    assert result.exit_code != 0
    assert "invalid tenant id" in result.output


def test_demo_runs_on_generated_data(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out-dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo" / "matches.jsonl").stat().st_size > 0
    assert "DETECTED" in result.output
