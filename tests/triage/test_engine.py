"""The triage engine over a small multi-tenant stream: alerts, incidents, suppression, auto-close, replay."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watchfloor.core.errors import ConfigError
from watchfloor.core.types import RuleId, RuleLevel, TenantId
from watchfloor.triage.alerts import series_of
from watchfloor.triage.conditions import (
    ConditionError,
    closing_reason,
    load_autoclose,
    suppression_from_alert,
)
from watchfloor.triage.engine import (
    TenantContext,
    Triage,
    TriageConfig,
    TriageResult,
    incident_ref,
    new_incident,
    threat_enrichments,
)
from watchfloor.triage.entities import entities_of
from watchfloor.triage.grouping import GroupingPolicy
from watchfloor.triage.models import DetectionInput, Entity, Suppression

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CLINIC = TenantId("clinic")
BAKERY = TenantId("bakery")
DEFENDER = r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0"

RULES: dict[str, tuple[RuleLevel, tuple[str, ...]]] = {
    "office-ps": (
        "high",
        ("attack.initial-access", "attack.t1566.001", "attack.execution", "attack.t1059.001"),
    ),
    "lsass": ("critical", ("attack.credential-access", "attack.t1003.001")),
    "whoami": ("low", ("attack.discovery", "attack.t1033")),
    "ps-bypass": ("medium", ("attack.execution", "attack.t1059.001")),
}


def event(host: str = "WS-17.corp.local", user: str = "CORP\\jdoe", **extra: Any) -> dict[str, Any]:
    parent = extra.pop("parent", "C:\\Windows\\explorer.exe")
    exe = extra.pop("exe", "C:\\Windows\\System32\\cmd.exe")
    cmd = extra.pop("cmd", "cmd /c whoami")
    return {
        "host": {"name": host},
        "user": {"name": user},
        "process": {"executable": exe, "command_line": cmd, "parent": {"executable": parent}},
        **extra,
    }


def det(n: int, rule: str, minutes: float, doc: dict[str, Any], tenant: TenantId = CLINIC) -> DetectionInput:
    level, tags = RULES[rule]
    at = T0 + timedelta(minutes=minutes)
    return DetectionInput(
        tenant_id=tenant,
        detection_id=n,
        rule_id=RuleId(rule),
        rule_title=rule,
        rule_level=level,
        tags=tags,
        event_time=at,
        matched_at=at + timedelta(seconds=1),
        entities=entities_of(doc),
        event=doc,
    )


def stream() -> list[DetectionInput]:
    backup = event(user="svc-backup", cmd="powershell -ep bypass -file C:\\scripts\\backup.ps1")
    benign = event(
        parent=f"{DEFENDER}\\MsMpEng.exe",
        exe=f"{DEFENDER}\\MpCmdRun.exe",
        cmd="MpCmdRun.exe -SignatureUpdate",
    )
    return [
        det(1, "office-ps", 0, event()),  # clinic ws-17: opens an incident
        det(2, "office-ps", 5, event()),  # repeat: count 2, same incident
        det(3, "lsass", 30, event()),  # next stage on the same host: attaches
        det(4, "whoami", 40, event(host="ws-99", user="kiosk")),  # low, unrelated: kept as an alert
        det(5, "ps-bypass", 50, benign, tenant=CLINIC),  # Defender's own tool: auto-closed
        det(6, "ps-bypass", 55, backup),  # the backup script: suppressed
        det(7, "office-ps", 10, event(), tenant=BAKERY),  # same names, other tenant: its own incident
        det(8, "whoami", 45, event(host="ws-17"), tenant=BAKERY),  # low, attaches to bakery's incident
    ]


def backup_suppression() -> Suppression:
    doc = event(user="svc-backup", cmd="powershell -ep bypass -file C:\\scripts\\backup.ps1")
    probe = Triage().process(det(99, "ps-bypass", 0, doc), T0).alert
    return suppression_from_alert(
        probe,
        doc,
        ["user.name", "process.command_line"],
        author="ana",
        reason="nightly backup",
        expires_at=None,
        now=T0,
    )


def contexts(tenant: TenantId) -> TenantContext:
    if tenant == CLINIC:
        return TenantContext.from_inventory("Healthcare", [("host", "WS-17.corp.local", "critical")])
    return TenantContext(vertical="retail")


def engine(**changes: Any) -> Triage:
    options: dict[str, Any] = {
        "context": contexts,
        "policies": load_autoclose(),
        "suppressions": {CLINIC: [backup_suppression()]},
        "rule_statuses": {"lsass": "stable", "whoami": "test"},
    }
    options.update(changes)
    return Triage(**options)


def run(triage: Triage, inputs: list[DetectionInput]) -> list[TriageResult]:
    return [triage.process(item, item.matched_at) for item in inputs]


def test_a_multi_tenant_stream() -> None:
    triage = engine()
    r = run(triage, stream())
    first, repeat, lsass, kiosk, defender, backup, bakery, bakery_low = r

    assert first.is_new
    assert first.decision.action == "create"
    incident = first.decision.incident_id
    assert incident is not None
    assert incident.startswith("inc-clinic-")
    assert (first.status, first.alert.incident_id) == ("incident", incident)

    assert not repeat.is_new
    assert repeat.alert.id == first.alert.id
    assert repeat.alert.count == 2
    assert repeat.decision.action == "none"
    assert repeat.decision.incident_id == incident

    assert lsass.is_new
    assert (lsass.decision.action, lsass.decision.incident_id) == ("attach", incident)
    assert "ATT&CK progression" in lsass.decision.reason

    assert (kiosk.status, kiosk.decision.action) == ("open", "none")
    assert "kept as an alert" in kiosk.decision.reason

    assert defender.status == "auto_closed"
    assert defender.closed_reason is not None
    assert defender.closed_reason.startswith("auto-closed by policy defender-scan-engine: ")
    assert defender.decision.action == "none"

    assert backup.status == "suppressed"
    assert backup.closed_reason is not None
    assert "(ana): nightly backup" in backup.closed_reason

    assert bakery.decision.action == "create"
    assert bakery.decision.incident_id is not None
    assert bakery.decision.incident_id.startswith("inc-bakery-")
    assert bakery.alert.id != first.alert.id  # same rule, host and window: other tenant, other alert
    assert (bakery_low.decision.action, bakery_low.decision.incident_id) == (
        "attach",
        bakery.decision.incident_id,
    )

    counters = triage.counters[CLINIC]
    assert counters["detections"] == 6
    assert counters["alerts"] == 5
    assert counters["incidents_create"] == 1
    assert counters["incidents_attach"] == 1
    assert counters["suppressed"] == counters["auto_closed"] == 1


def test_risk_uses_the_tenant_context_rule_status_and_intel() -> None:
    triage = engine()
    clinic = triage.process(det(1, "lsass", 0, event()), T0).alert.risk
    other = triage.process(det(2, "lsass", 0, event(), tenant=BAKERY), T0).alert.risk
    factors = {f.name: f for f in clinic.factors}
    assert factors["asset_criticality"].detail == "host ws-17 is critical in the tenant's inventory"
    assert factors["vertical"].points > 0  # healthcare and credential access
    assert factors["confidence"].detail == "the rule's status is stable"
    assert clinic.score > other.score
    hit = det(
        3, "whoami", 0, event(host="ws-5", threat={"enrichments": [{"indicator": {}}, {"indicator": {}}]})
    )
    assert threat_enrichments(hit) == 2
    assert {f.name: f.points for f in triage.process(hit, T0).alert.risk.factors}["intel"] == 20


def test_replaying_the_stream_changes_nothing() -> None:
    triage = engine()
    first = run(triage, stream())
    again = run(triage, stream())
    assert all(result.replay for result in again)
    assert all(result.decision.action == "none" for result in again)
    assert next(a.alert for a in again if a.alert.id == first[1].alert.id).count == 2
    assert triage.counters[CLINIC]["replays"] == 6
    assert triage.counters[CLINIC]["detections"] == 6


def test_the_same_stream_on_a_fresh_engine_gives_the_same_results() -> None:
    one, two = run(engine(), stream()), run(engine(), stream())
    assert [r.alert for r in one] == [r.alert for r in two]
    assert [r.decision for r in one] == [r.decision for r in two]
    batch = engine().process_many(stream(), T0 + timedelta(hours=1))  # one `now` for a whole batch
    assert [r.alert.id for r in batch] == [r.alert.id for r in one]
    assert [r.decision.action for r in batch] == [r.decision.action for r in one]


def test_seeding_from_storage_continues_alerts_and_incidents() -> None:
    first = run(engine(), stream()[:3])
    created = first[0]
    incident = new_incident(created.alert, created.decision.incident_id or "", T0)
    assert incident.state == "new"
    assert incident.title == "office-ps on host ws-17"
    assert incident.first_event_at == created.alert.first_seen
    restarted = engine()
    restarted.seed_alerts([first[1].alert, first[2].alert])
    restarted.seed_incidents([incident], T0)
    again = restarted.process(det(1, "office-ps", 0, event()), T0)  # already triaged before the restart
    assert again.replay
    later = restarted.process(det(10, "office-ps", 20, event()), T0 + timedelta(minutes=20))
    assert not later.is_new
    assert later.alert.count == 3
    assert later.decision.incident_id == incident.id
    fresh = restarted.process(det(11, "ps-bypass", 25, event(cmd="powershell -ep bypass")), T0)
    assert (fresh.decision.action, fresh.decision.incident_id) == ("attach", incident.id)


def test_closed_incidents_reopen_and_merged_ones_are_dropped() -> None:
    triage = engine()
    created = triage.process(det(1, "office-ps", 0, event()), T0)
    incident = new_incident(created.alert, created.decision.incident_id or "", T0)
    closed_at = T0 + timedelta(hours=1)
    closed = replace(incident, state="closed_false_positive", closed_at=closed_at, updated_at=closed_at)
    triage.observe_incident(closed, closed_at)
    ref = incident_ref(closed)
    assert ref.closed_at == closed_at
    assert ref.entity_keys == {"host:ws-17", "user:jdoe"}
    back = triage.process(det(2, "ps-bypass", 26 * 60, event()), T0 + timedelta(hours=26))
    assert (back.decision.action, back.decision.incident_id) == ("reopen", incident.id)
    merged = replace(incident, merged_into="inc-other")
    triage.observe_incident(merged, T0)
    assert incident.id not in triage.index(CLINIC)


def test_an_alert_suppressed_by_an_analyst_absorbs_only_matching_repeats() -> None:
    triage = engine(suppressions={})
    doc = event(host="ws-50", cmd="whoami /groups")
    opened = triage.process(det(1, "whoami", 0, doc), T0).alert
    assert opened.status == "open"
    sup = suppression_from_alert(
        opened, doc, ["process.command_line"], author="ana", reason="logon script", expires_at=None, now=T0
    )
    triage.set_suppressions(CLINIC, [sup])
    triage.replace_alert(replace(opened, status="suppressed", closed_reason=closing_reason(sup)))
    repeat = triage.process(det(2, "whoami", 5, doc), T0)
    assert (repeat.status, repeat.alert.id, repeat.alert.count) == ("suppressed", opened.id, 2)
    other = triage.process(det(3, "whoami", 6, event(host="ws-50", cmd="whoami /priv")), T0)
    assert other.is_new
    assert other.status == "open"
    assert other.alert.dedup_key == f"{opened.dedup_key}|2"  # same series and window, a second alert
    assert series_of(other.alert.dedup_key) == series_of(opened.dedup_key)


def test_a_closed_alert_without_a_known_closer_absorbs_nothing() -> None:
    triage = engine()
    opened = triage.process(det(1, "whoami", 0, event(host="ws-51")), T0).alert
    triage.replace_alert(replace(opened, status="suppressed", closed_reason="closed by hand"))
    again = triage.process(det(2, "whoami", 5, event(host="ws-51")), T0)
    assert again.is_new
    assert again.alert.id != opened.id


def test_auto_closed_benign_activity_does_not_swallow_what_follows() -> None:
    triage = engine()
    benign = event(
        parent=f"{DEFENDER}\\MsMpEng.exe",
        exe=f"{DEFENDER}\\MpCmdRun.exe",
        cmd="MpCmdRun.exe -SignatureUpdate",
    )
    first = triage.process(det(1, "ps-bypass", 0, benign), T0)
    assert first.status == "auto_closed"
    assert triage.process(det(2, "ps-bypass", 3, benign), T0).alert.count == 2  # stays closed, counted
    evil = event(cmd="powershell -ep bypass -enc SQBFAFgA")
    later = triage.process(det(3, "ps-bypass", 5, evil), T0)
    assert later.is_new
    assert later.status == "incident"
    assert later.decision.action == "create"


def test_new_suppressions_apply_to_new_alerts() -> None:
    triage = engine(suppressions={})
    doc = event(host="ws-60", user="svc-backup", cmd="powershell -ep bypass -file C:\\scripts\\backup.ps1")
    assert triage.process(det(1, "ps-bypass", 0, doc), T0).status == "incident"
    triage.set_suppressions(CLINIC, [backup_suppression()])
    assert triage.process(det(2, "ps-bypass", 180, doc), T0 + timedelta(hours=3)).status == "suppressed"
    with pytest.raises(ConditionError, match="belongs to tenant clinic"):
        triage.set_suppressions(BAKERY, [backup_suppression()])


def test_state_per_tenant_is_bounded() -> None:
    config = TriageConfig(max_alerts_per_tenant=5, remember_detections_per_tenant=10)
    triage = engine(config=config)
    for n in range(40):
        doc = event(host=f"ws-{n}")
        triage.process(det(n, "whoami", n, doc), T0 + timedelta(minutes=n))
    assert len(triage._tenants[CLINIC].alerts) <= 5
    assert len(triage._tenants[CLINIC].seen) <= 10


def test_low_alerts_join_an_incident_when_a_repeat_finds_one() -> None:
    triage = engine(config=TriageConfig(grouping=GroupingPolicy(min_risk_alone=101)))
    low = triage.process(det(1, "whoami", 0, event(host="ws-70", user="kim")), T0)
    assert low.decision.action == "none"
    high = triage.process(det(2, "lsass", 10, event(host="ws-70", user="kim")), T0)
    assert high.decision.action == "create"
    repeat = triage.process(det(3, "whoami", 15, event(host="ws-70", user="kim")), T0)
    assert (repeat.decision.action, repeat.decision.incident_id) == ("attach", high.decision.incident_id)
    assert repeat.status == "incident"


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="dedup_window_seconds"):
        TriageConfig(dedup_window_seconds=7200, alert_max_span_seconds=3600)


def test_inventory_names_are_normalized() -> None:
    context = TenantContext.from_inventory(
        "Legal", [("host", "WS-17.corp.local", "High"), ("user", "-", "high")]
    )
    assert context.vertical == "legal"
    assert context.criticality == {Entity("host", "ws-17"): "high"}
