"""Rule loading: every failure is reported with path:line and a precise reason; nothing raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchfloor.detect.sigma.loader import load_rules

GOOD = """title: Good
id: 6d9f1c2a-0000-4000-8000-000000000001
author: Jane Analyst
level: high
tags: [attack.execution, attack.t1059.001]
logsource: {product: windows, category: process_creation}
detection:
  sel:
    Image|endswith: '\\\\powershell.exe'
  condition: sel
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_rule_metadata(tmp_path: Path) -> None:
    ruleset = load_rules([write(tmp_path, "good.yml", GOOD)], cache_dir=False)
    assert not ruleset.errors
    ((_rule, meta),) = ruleset.rules
    assert meta.author == "Jane Analyst"
    assert meta.level == "high"
    assert meta.attack_techniques == ("T1059.001",)
    assert meta.logsource == ("windows", "process_creation", None)
    assert meta.line == 1


def test_yaml_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yml", GOOD.replace("  condition: sel", "  condition: [sel"))
    ruleset = load_rules([path], cache_dir=False)
    (error,) = ruleset.errors
    assert error.code == "rule.yaml_invalid"
    assert error.path == str(path)
    assert error.line is not None
    assert error.line >= 9


def test_undefined_identifier_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "undef.yml", GOOD.replace("condition: sel", "condition: sel and not filter_x"))
    ruleset = load_rules([path], cache_dir=False)
    (error,) = ruleset.errors
    assert "filter_x" in error.reason
    assert error.line == 10  # the condition line
    assert str(error).startswith(f"{path}:10: [rule.condition_error]")
    assert not ruleset.rules


def test_unknown_modifier_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "mod.yml", GOOD.replace("Image|endswith", "Image|endswithx"))
    ruleset = load_rules([path], cache_dir=False)
    (error,) = ruleset.errors
    assert "endswithx" in error.reason
    assert error.line == 9


def test_one_bad_document_does_not_hide_the_others(tmp_path: Path) -> None:
    second = GOOD.replace("6d9f1c2a-0000-4000-8000-000000000001", "6d9f1c2a-0000-4000-8000-000000000002")
    broken = second.replace("condition: sel", "condition: nope")
    folder = tmp_path / "rules"
    folder.mkdir()
    write(folder, "a.yml", GOOD)
    write(folder, "b.yml", broken)
    write(folder, "notes.txt", "not a rule")
    ruleset = load_rules([folder], cache_dir=False)
    assert ruleset.files == 2
    assert len(ruleset.rules) == 1
    assert len(ruleset.errors) == 1
    assert ruleset.errors[0].path.endswith("b.yml")


def test_unreadable_file_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes(GOOD.replace("Jane", "J\xe9r\xf4me").encode("latin-1"))
    ruleset = load_rules([path], cache_dir=False)
    (error,) = ruleset.errors
    assert error.code == "rule.unreadable"


def test_cache_round_trip_and_invalidation(tmp_path: Path) -> None:
    path = write(tmp_path, "good.yml", GOOD)
    cache = tmp_path / "cache"
    first = load_rules([path], cache_dir=cache)
    assert list(cache.glob("rules-*.pickle"))
    again = load_rules([path], cache_dir=cache)
    assert [m for _, m in again.rules] == [m for _, m in first.rules]
    path.write_text(GOOD.replace("level: high", "level: low"), encoding="utf-8")
    changed = load_rules([path], cache_dir=cache)
    assert changed.rules[0][1].level == "low"


@pytest.mark.slow
def test_every_sigmahq_rule_loads(shared_dir: Path) -> None:
    ruleset = load_rules(sorted(shared_dir.joinpath("sigma").glob("rules*")))
    assert ruleset.files == 3780
    assert [str(e) for e in ruleset.errors] == []
    assert len(ruleset.rules) == 3780
    authors = {meta.author for _, meta in ruleset.rules}
    assert "unknown" not in authors or len(authors) > 100
