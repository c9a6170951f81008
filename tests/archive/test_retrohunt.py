"""Retro-hunt: a new rule over archived raw events, one tenant, each event once, streamed in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.archive.conftest import DAY0, clinic_events, write
from watchfloor.archive import RetroHuntStats, retrohunt
from watchfloor.archive.retrohunt import logsource_pushdown
from watchfloor.detect.sigma.loader import RuleSet, load_rules
from watchfloor.normalize.logsources import default_logsource_map

RULES = """\
title: Failed logon for a built-in admin name
id: 5f0c7e7a-3a1e-4d7e-9a55-1f5f2b0a0001
status: test
author: Watchfloor tests
level: medium
logsource:
  product: windows
  service: security
detection:
  selection:
    EventID: 4625
    TargetUserName: administrator
  condition: selection
---
title: Encoded PowerShell
id: 5f0c7e7a-3a1e-4d7e-9a55-1f5f2b0a0002
status: test
author: Someone Else
level: high
logsource:
  product: windows
  service: security
detection:
  selection:
    EventID: 4688
    CommandLine|contains: '-encodedcommand'
  condition: selection
"""

SINCE = DAY0
UNTIL = DAY0 + timedelta(days=7)


@pytest.fixture
def ruleset(tmp_path: Path) -> RuleSet:
    path = tmp_path / "rules" / "retro.yml"
    path.parent.mkdir()
    path.write_text(RULES, encoding="utf-8")
    loaded = load_rules([path], cache_dir=False)
    assert not loaded.errors, loaded.errors
    return loaded


def test_rules_match_archived_events_with_their_metadata(archive_root: Path, ruleset: RuleSet) -> None:
    stats = RetroHuntStats()
    hits = list(retrohunt(archive_root, "clinic", ruleset, SINCE, UNTIL, stats=stats))
    found = [(row.record_id, [m.title for m in metas]) for row, metas in hits]
    assert found == [
        ("1", ["Failed logon for a built-in admin name"]),
        ("4", ["Encoded PowerShell"]),
    ]
    assert hits[1].rules[0].author == "Someone Else"
    assert hits[1].rules[0].level == "high"
    assert hits[0].row.event_time == DAY0 + timedelta(hours=9)
    assert stats.active_rules == 2
    assert stats.hits == 2
    assert stats.events == 6


def test_only_that_tenant_is_hunted(archive_root: Path, ruleset: RuleSet) -> None:
    hits = list(retrohunt(archive_root, "bakery", ruleset, SINCE, UNTIL))
    assert [(h.row.tenant, h.row.source, h.row.record_id) for h in hits] == [("bakery", "pos01.evtx", "1")]


def test_redelivered_events_match_once_and_batches_stream(tmp_path: Path, ruleset: RuleSet) -> None:
    events = clinic_events()
    write(tmp_path, events)
    write(tmp_path, events)
    write(tmp_path, events[:1])
    hits = list(retrohunt(tmp_path, "clinic", ruleset, SINCE, UNTIL, batch_rows=1))
    assert [h.row.record_id for h in hits] == ["1", "4"]


def test_range_and_where_narrow_the_hunt(archive_root: Path, ruleset: RuleSet) -> None:
    day1 = DAY0 + timedelta(days=1)
    hits = list(retrohunt(archive_root, "clinic", ruleset, day1, day1 + timedelta(days=1)))
    assert [h.row.record_id for h in hits] == ["4"]
    hits = list(retrohunt(archive_root, "clinic", ruleset, SINCE, UNTIL, where="SubjectUserName!=bob"))
    assert [h.row.record_id for h in hits] == ["1"]


def test_pushdown_reads_only_logsources_some_rule_can_see(archive_root: Path, ruleset: RuleSet) -> None:
    pushdown = logsource_pushdown(ruleset, default_logsource_map())
    assert pushdown is not None
    stats = RetroHuntStats()
    list(retrohunt(archive_root, "clinic", ruleset, SINCE, UNTIL, stats=stats))
    assert stats.events == 6  # every clinic event is windows/security
    assert logsource_pushdown(RuleSet(), default_logsource_map()) is None
    assert list(retrohunt(archive_root, "clinic", RuleSet(), SINCE, UNTIL)) == []


def test_rule_paths_are_loaded_too(
    archive_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHFLOOR_CACHE_DIR", "off")
    path = tmp_path / "r.yml"
    path.write_text(RULES, encoding="utf-8")
    hits = list(retrohunt(archive_root, "clinic", [path], SINCE, UNTIL))
    assert len(hits) == 2


def test_corpus_retrohunt_matches_live_detection(corpus_archive: tuple[Path, int], shared_dir: Path) -> None:
    """The archive gives the engine the exact bytes it would have seen live: same matches, once each."""
    from tests.archive.conftest import corpus_lines
    from watchfloor.detect.sigma.engine import SigmaEngine

    root, _ = corpus_archive
    rules_dir = shared_dir / "sigma" / "rules" / "windows" / "builtin" / "security"
    if not rules_dir.is_dir():
        pytest.skip(f"{rules_dir} is absent")
    ruleset = load_rules([rules_dir], cache_dir=False)
    engine = SigmaEngine(ruleset, default_logsource_map())
    live: set[tuple[bytes, str]] = set()
    for line in corpus_lines(shared_dir):
        _doc, matched = engine.evaluate(line, None)
        live.update((line, c.meta.id) for c in matched)
    since, until = datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
    archived: list[tuple[bytes, str]] = [
        (hit.row.raw, meta.id)
        for hit in retrohunt(root, "corp", ruleset, since, until, batch_rows=2_000)
        for meta in hit.rules
    ]
    assert live
    assert len(archived) == len(set(archived))
    assert set(archived) == live
