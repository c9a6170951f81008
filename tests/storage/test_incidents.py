"""Alerts, incidents (locked read-modify-write, timeline, audit), suppressions, SLA events, settings."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from watchfloor.cases.models import Incident, TimelineEntry
from watchfloor.core.types import RuleId, TenantId
from watchfloor.storage import Database, NotFoundError
from watchfloor.storage.incidents import (
    Change,
    SlaEventRecord,
    TenantSettings,
    escalation_count,
    record_escalation,
    record_sla_event,
)
from watchfloor.triage.models import Alert, Condition, Entity, RiskFactor, RiskScore, Suppression

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
RISK = RiskScore(score=72, factors=(RiskFactor(name="rule_level", points=40.0, detail="high rule"),))


def alert(n: int, tenant: str = "clinic", *, incident: str | None = None) -> Alert:
    return Alert(
        id=f"al-{tenant}-{n:04d}",
        tenant_id=TenantId(tenant),
        dedup_key=f"rule-{n}|host:ws{n}|2026-12-03T08",
        rule_id=RuleId(f"rule-{n}"),
        rule_title=f"Rule {n}",
        rule_author="Florian Roth (Nextron Systems)",
        severity="high",
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=n),
        count=1,
        entities=(Entity("host", f"ws{n}"), Entity("user", "dana")),
        techniques=("T1059.001",),
        tactics=("execution",),
        detection_ids=(n,),
        risk=RISK,
        status="incident" if incident else "open",
        incident_id=incident,
    )


def incident(tenant: str = "clinic", n: int = 1) -> Incident:
    return Incident(
        id=f"inc-{tenant}-{n:012x}",
        tenant_id=TenantId(tenant),
        title="Encoded PowerShell on ws1",
        state="new",
        severity="high",
        risk=RISK,
        created_at=T0,
        updated_at=T0,
        first_event_at=T0 - timedelta(minutes=2),
        alert_ids=(f"al-{tenant}-0001",),
        entities=(Entity("host", "ws1"),),
        techniques=("T1059.001",),
        tactics=("execution",),
        pauses=((T0, T0 + timedelta(minutes=5)), (T0 + timedelta(hours=1), None)),
    )


def entry(inc: Incident, kind: str = "created", actor: str = "system") -> TimelineEntry:
    return TimelineEntry(
        incident_id=inc.id,
        tenant_id=inc.tenant_id,
        at=T0,
        actor=actor,
        kind=kind,  # type: ignore[arg-type]
        summary=f"{kind} by {actor}",
        details={"n": 1},
    )


def test_alerts_upsert_on_their_stable_id(db: Database, tenant_clinic: TenantId) -> None:
    db.alerts.upsert_many(tenant_clinic, [alert(1), alert(2)])
    again = dataclasses.replace(alert(1), count=5, last_seen=T0 + timedelta(hours=2))
    db.alerts.upsert_many(tenant_clinic, [again])
    assert db.alerts.count(tenant_clinic) == 2
    stored = db.alerts.get(tenant_clinic, "al-clinic-0001")
    assert stored == again
    assert stored.risk.factors[0].detail == "high rule"
    assert [a.id for a in db.alerts.list(tenant_clinic)] == ["al-clinic-0001", "al-clinic-0002"]


def test_alerts_of_another_tenant_are_refused_and_invisible(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId
) -> None:
    with pytest.raises(ValueError, match="belongs to tenant 'lawfirm'"):
        db.alerts.upsert_many(tenant_clinic, [alert(1, "lawfirm")])
    db.alerts.upsert_many(tenant_lawfirm, [alert(1, "lawfirm")])
    with pytest.raises(NotFoundError):
        db.alerts.get(tenant_clinic, "al-lawfirm-0001")
    assert db.alerts.list(tenant_clinic) == []


def test_incident_round_trip_with_timeline_and_audit(db: Database, tenant_clinic: TenantId) -> None:
    inc = incident()
    db.incidents.create(
        Change(incident=inc, timeline=(entry(inc),), alerts=(alert(1, incident=inc.id),)), actor="system"
    )
    assert db.incidents.get(tenant_clinic, inc.id) == inc
    assert db.incidents.get(tenant_clinic, inc.id).pauses == inc.pauses
    assert db.alerts.get(tenant_clinic, "al-clinic-0001").incident_id == inc.id
    assert [e.kind for e in db.incidents.timeline(tenant_clinic, inc.id)] == ["created"]
    audit = db.audit.list(tenant_clinic, action="incident.created")
    assert [a.object_id for a in audit] == [inc.id]


def test_modify_stores_the_change_and_rolls_back_on_error(db: Database, tenant_clinic: TenantId) -> None:
    inc = incident()
    db.incidents.create(Change(incident=inc, timeline=(entry(inc),)), actor="system")

    def acknowledge(current: Incident) -> Change:
        changed = dataclasses.replace(current, state="acknowledged", acknowledged_at=T0, acknowledged_by="t1")
        return Change(incident=changed, timeline=(entry(changed, "state_changed", "t1"),))

    db.incidents.modify(tenant_clinic, inc.id, acknowledge, actor="t1")
    assert db.incidents.get(tenant_clinic, inc.id).state == "acknowledged"

    def broken(current: Incident) -> Change:
        changed = dataclasses.replace(current, state="contained")
        return Change(
            incident=changed, timeline=(entry(changed, "state_changed", "t1"), entry(incident("lawfirm")))
        )

    with pytest.raises(ValueError, match="belongs to tenant"):
        db.incidents.modify(tenant_clinic, inc.id, broken, actor="t1")
    assert db.incidents.get(tenant_clinic, inc.id).state == "acknowledged"
    assert len(db.incidents.timeline(tenant_clinic, inc.id)) == 2


def test_modify_is_serialized_between_writers(
    open_db: Callable[..., Database], db: Database, tenant_clinic: TenantId
) -> None:
    inc = dataclasses.replace(incident(), alert_ids=())
    db.incidents.create(Change(incident=inc), actor="system")
    handles = [open_db() for _ in range(4)]
    barrier = threading.Barrier(len(handles))
    errors: list[BaseException] = []

    def attach(handle: Database, n: int) -> None:
        try:
            barrier.wait()
            for k in range(5):
                alert_id = f"al-{n}-{k}"
                handle.incidents.modify(
                    tenant_clinic,
                    inc.id,
                    lambda cur, a=alert_id: Change(
                        incident=dataclasses.replace(cur, alert_ids=(*cur.alert_ids, a))
                    ),
                    actor="system",
                )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=attach, args=(h, i)) for i, h in enumerate(handles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # No lost update: every writer's five attachments are there.
    assert len(db.incidents.get(tenant_clinic, inc.id).alert_ids) == 20


def test_incidents_are_listed_per_tenant_and_state(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId
) -> None:
    db.incidents.create(Change(incident=incident("clinic", 1)), actor="system")
    db.incidents.create(
        Change(incident=dataclasses.replace(incident("clinic", 2), state="closed_false_positive")),
        actor="system",
    )
    db.incidents.create(Change(incident=incident("lawfirm", 3)), actor="system")
    assert [i.id for i in db.incidents.list([tenant_clinic])] == [
        "inc-clinic-000000000001",
        "inc-clinic-000000000002",
    ]
    assert [i.id for i in db.incidents.list([tenant_clinic], states={"new"})] == ["inc-clinic-000000000001"]
    assert len(db.incidents.list(None)) == 3
    assert db.incidents.count(tenant_lawfirm) == 1
    with pytest.raises(NotFoundError):
        db.incidents.get(tenant_clinic, "inc-lawfirm-000000000003")


def test_suppressions_are_audited_and_count_hits(db: Database, tenant_clinic: TenantId) -> None:
    supp = Suppression(
        id="sup-1",
        tenant_id=tenant_clinic,
        conditions=(
            Condition(field="host.name", op="equals", value="ws1"),
            Condition(field="user.name", op="in", value=("a", "b")),
        ),
        rule_id=RuleId("rule-1"),
        reason="IT admin's scheduled task",
        author="t2",
        created_at=T0,
        expires_at=T0 + timedelta(days=30),
    )
    db.suppressions.create(supp, actor="t2")
    assert db.suppressions.list(tenant_clinic) == [supp]
    db.suppressions.record_hits(tenant_clinic, {"sup-1": (3, T0)})
    db.suppressions.record_hits(tenant_clinic, {"sup-1": (2, T0)})
    assert db.suppressions.hits(tenant_clinic, "sup-1") == 5
    db.suppressions.disable(tenant_clinic, "sup-1", actor="t3", reason="task retired")
    assert db.suppressions.list(tenant_clinic, enabled_only=True) == []
    actions = [a.action for a in db.audit.list(tenant_clinic)]
    assert actions[:2] == ["suppression.disable", "suppression.create"]
    with pytest.raises(NotFoundError):
        db.suppressions.disable(tenant_clinic, "nope", actor="t3", reason="x")


def test_sla_events_and_escalation_steps_are_recorded_once(db: Database, tenant_clinic: TenantId) -> None:
    event = SlaEventRecord(
        tenant_id=tenant_clinic,
        incident_id="inc-1",
        metric="acknowledge",
        kind="sla_breached",
        at=T0,
        severity="high",
        target_seconds=900,
    )
    with db.store.write() as connection:
        assert record_sla_event(connection, event, recorded_at=T0)
        assert not record_sla_event(connection, event, recorded_at=T0)
        assert record_escalation(
            connection,
            tenant_id=tenant_clinic,
            incident_id="inc-1",
            step=1,
            target="T2",
            channel="queue",
            reason="r",
            at=T0,
        )
        assert not record_escalation(
            connection,
            tenant_id=tenant_clinic,
            incident_id="inc-1",
            step=1,
            target="T2",
            channel="queue",
            reason="r",
            at=T0,
        )
        assert escalation_count(connection, tenant_clinic, "inc-1") == 1
    assert db.sla.events(tenant_clinic) == [event]
    assert db.sla.emitted(tenant_clinic, ["inc-1", "inc-2"]) == {
        "inc-1": frozenset({("acknowledge", "sla_breached")}),
        "inc-2": frozenset(),
    }


def test_tenant_settings_default_then_stored(db: Database, tenant_clinic: TenantId) -> None:
    assert db.settings.get(tenant_clinic).timezone == "UTC"
    settings = TenantSettings(
        tenant_id=tenant_clinic, timezone="America/Chicago", contract={"monthly_fee_minor": 250000}
    )
    db.settings.put(settings, actor="admin")
    db.settings.put(settings, actor="admin")
    assert db.settings.get(tenant_clinic) == settings
    assert len(db.audit.list(tenant_clinic, action="tenant.settings")) == 2
