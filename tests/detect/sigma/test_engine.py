"""The engine: routing, tenant overlays, placeholders, statuses, and prefilter == exhaustive evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.core.types import TenantId
from watchfloor.detect.sigma.engine import SigmaEngine, TenantRules
from watchfloor.detect.sigma.loader import RuleSet, load_rules
from watchfloor.normalize.logsources import default_logsource_map

RULES = """title: Encoded PowerShell
id: 00000000-0000-4000-8000-0000000000a1
author: Test Author
level: high
logsource: {product: windows, category: process_creation}
detection:
  sel:
    Image|endswith: '\\\\powershell.exe'
    CommandLine|contains|windash: '-enc'
  condition: sel
---
title: Admin logon from tenant list
id: 00000000-0000-4000-8000-0000000000a2
author: Test Author
level: medium
logsource: {product: windows, service: security}
detection:
  sel:
    EventID: 4624
    TargetUserName|expand: '%admins%'
  condition: sel
---
title: Macos only
id: 00000000-0000-4000-8000-0000000000a3
logsource: {product: macos, category: process_creation}
detection:
  sel:
    Image: /bin/sh
  condition: sel
---
title: Keyword rule
id: 00000000-0000-4000-8000-0000000000a4
logsource: {product: windows, service: security}
detection:
  keywords: ['mimikatz']
  condition: keywords
---
title: Duck in the command line
id: 00000000-0000-4000-8000-0000000000a5
logsource: {product: windows, category: process_creation}
detection:
  sel:
    CommandLine|contains: ['\U0001f986', 'x\u00ae\u2013y']
  condition: sel
"""


def ruleset(tmp_path: Path) -> RuleSet:
    path = tmp_path / "rules.yml"
    path.write_text(RULES, encoding="utf-8")
    loaded = load_rules([path], cache_dir=False)
    assert not loaded.errors
    return loaded


def sysmon(image: str, command_line: str) -> bytes:
    return orjson.dumps(
        {
            "Event": {
                "System": {
                    "EventID": 1,
                    "Channel": "Microsoft-Windows-Sysmon/Operational",
                    "EventRecordID": 7,
                    "TimeCreated": {"#attributes": {"SystemTime": "2026-01-01T00:00:00Z"}},
                },
                "EventData": {"Image": image, "CommandLine": command_line},
            }
        }
    )


def logon(user: str, event_id: int = 4624) -> bytes:
    return orjson.dumps(
        {
            "Event": {
                "System": {"EventID": event_id, "Channel": "Security", "EventRecordID": 9},
                "EventData": {"TargetUserName": user, "LogonType": 10},
            }
        }
    )


def ids(engine: SigmaEngine, raw: bytes, tenant: str | None = None) -> set[str]:
    return {c.meta.id[-2:] for c in engine.evaluate(raw, TenantId(tenant) if tenant else None)[1]}


def test_statuses_say_why_rules_cannot_fire(tmp_path: Path) -> None:
    engine = SigmaEngine(ruleset(tmp_path), default_logsource_map())
    by_id = {s.rule_id[-2:]: s for s in engine.statuses}
    assert by_id["a1"].status == "active"
    assert by_id["a2"].status == "placeholder"
    assert "per-tenant" in by_id["a2"].reason
    assert by_id["a3"].status == "no_source"
    assert "product=macos" in by_id["a3"].reason


def test_routing_windash_and_keywords(tmp_path: Path) -> None:
    engine = SigmaEngine(ruleset(tmp_path), default_logsource_map())
    assert ids(engine, sysmon("C:\\x\\PowerShell.exe", "powershell /ENC abc")) == {"a1"}
    assert ids(engine, sysmon("C:\\x\\cmd.exe", "powershell -enc abc")) == set()
    assert ids(engine, logon("MIMIKATZ-host$")) == {"a4"}


def test_placeholders_and_disabled_rules_are_per_tenant(tmp_path: Path) -> None:
    tenants = {
        TenantId("clinic"): TenantRules(placeholders={"admins": ["dr_admin", "it-*"]}),
        TenantId("lawfirm"): TenantRules(
            placeholders={"admins": ["partner"]}, disabled=frozenset({"00000000-0000-4000-8000-0000000000a1"})
        ),
    }
    engine = SigmaEngine(ruleset(tmp_path), default_logsource_map(), tenants=tenants)
    assert ids(engine, logon("it-helpdesk"), "clinic") == {"a2"}
    assert ids(engine, logon("it-helpdesk"), "lawfirm") == set()
    assert ids(engine, logon("Partner"), "lawfirm") == {"a2"}
    assert ids(engine, logon("partner", 4625), "lawfirm") == set()
    assert ids(engine, logon("partner"), "unknown-tenant") == set()
    encoded = sysmon("C:\\powershell.exe", "powershell -enc x")
    assert ids(engine, encoded, "clinic") == {"a1"}
    assert ids(engine, encoded, "lawfirm") == set()


_words = st.sampled_from(
    [
        "powershell",
        "-enc",
        "/enc",
        "cmd",
        "mimikatz",
        "\\",
        ".exe",
        "\u212a",
        "\\u0041",
        " ",
        "\U0001f986",
        "x",
        "\u00ae",
        "\u2013",
        "y",
        "\u00e9",
    ]
)


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory: pytest.TempPathFactory) -> SigmaEngine:
    return SigmaEngine(ruleset(tmp_path_factory.mktemp("rules")), default_logsource_map())


@settings(max_examples=200, deadline=None)
@given(image=st.lists(_words, max_size=5).map("".join), command=st.lists(_words, max_size=6).map("".join))
def test_prefilter_never_changes_results(shared_engine: SigmaEngine, image: str, command: str) -> None:
    raw = sysmon(image, command)
    slow = {c.meta.id for c in shared_engine.evaluate_all(orjson.loads(raw))}
    assert {c.meta.id for c in shared_engine.evaluate(raw)[1]} == slow
    ascii_only = json.dumps(orjson.loads(raw)).encode()  # the other way JSON writers put non-ASCII
    assert {c.meta.id for c in shared_engine.evaluate(ascii_only)[1]} == slow


FILTER = """title: Ignore the backup service account
filter:
  rules:
    - 00000000-0000-4000-8000-0000000000a1
  selection:
    User: 'CORP\\\\svc_backup'
  condition: not selection
logsource: {product: windows, category: process_creation}
"""


def test_meta_filters_from_another_file_apply(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(RULES, encoding="utf-8")
    (tmp_path / "filters").mkdir()
    (tmp_path / "filters" / "backup.yml").write_text(FILTER, encoding="utf-8")
    loaded = load_rules([tmp_path], cache_dir=False)
    assert not loaded.errors
    engine = SigmaEngine(loaded, default_logsource_map())

    def event(user: str) -> bytes:
        doc = orjson.loads(sysmon("C:\\powershell.exe", "powershell -enc x"))
        doc["Event"]["EventData"]["User"] = user
        return orjson.dumps(doc)

    assert ids(engine, event("CORP\\alice")) == {"a1"}
    assert ids(engine, event("corp\\SVC_BACKUP")) == set()


def test_a_route_first_seen_after_the_checkpoints_is_exact_then_gated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import watchfloor.detect.sigma.engine as engine_module

    monkeypatch.setattr(engine_module, "CHECKPOINTS", (4, 8, 16))
    monkeypatch.setattr(engine_module, "CENSUS_EVERY", (1, 1, 1))
    monkeypatch.setattr(engine_module, "LATE_REGATE_EVERY", 10)
    engine = SigmaEngine(ruleset(tmp_path), default_logsource_map())
    for _ in range(30):  # only logons: the process-creation route does not exist yet
        assert ids(engine, logon("MIMIKATZ")) == {"a4"}
    regates = engine.stats.regates
    assert regates == 3
    hit = sysmon("C:\\x\\powershell.exe", "powershell -enc abc")
    miss = sysmon("C:\\x\\notepad.exe", "notepad readme.txt")
    assert ids(engine, hit) == {"a1"}  # late route: chosen with the all-route rates
    assert engine.stats.late_routes == 1
    route = next(r for (_t, key), r in engine._routes.items() if key.event_id == 1)
    assert route.ungated == 2  # a1 and a5: gate literals not in the scan database, run always, exact
    for _ in range(20):
        assert ids(engine, miss) == set()
        assert ids(engine, hit) == {"a1"}
    assert route.ungated == 0  # a later rebuild put its literals in the scan database
    assert not route.always  # and the rule is gated again
    assert engine.stats.regates > regates


EXTRA = """title: Imaging app spawning a shell, a rule of the clinic
id: 00000000-0000-4000-8000-0000000000e1
author: Clinic IT
level: high
logsource: {product: windows, category: process_creation}
detection:
  sel:
    Image|endswith: '\\\\cmd.exe'
    CommandLine|contains: 'pacs-export'
  condition: sel
"""


def test_a_tenants_own_rules_fire_for_that_tenant_only(tmp_path: Path) -> None:
    path = tmp_path / "clinic.yml"
    path.write_text(EXTRA, encoding="utf-8")
    extra = load_rules([path], cache_dir=False)
    assert not extra.errors
    tenants = {TenantId("clinic"): TenantRules(extra=tuple(extra.rules)), TenantId("lawfirm"): TenantRules()}
    engine = SigmaEngine(ruleset(tmp_path), default_logsource_map(), tenants=tenants)
    event = sysmon("C:\\Windows\\System32\\cmd.exe", "cmd /c pacs-export.bat")
    assert ids(engine, event, "clinic") == {"e1"}
    assert ids(engine, event, "lawfirm") == set()
    assert ids(engine, event) == set()
    statuses = [s for s in engine.statuses if s.rule_id.endswith("e1")]
    assert [(s.status, s.tenant) for s in statuses] == [("active", "clinic")]
