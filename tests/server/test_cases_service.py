"""The case service over a real database (SQLite and PostgreSQL): lifecycle, permissions, concurrency, the
SLA sweeper (pauses, business hours, breach escalation), credits, the queue and shift hand-offs.

Times are UTC unless named otherwise. 2026-12-03 is a Thursday; the example roster's shifts in December:
EMEA day 05:00-14:00 UTC (06:00-15:00 Berlin), AMER day 13:00-22:00 UTC (08:00-17:00 New York).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from tests.server import cases_fixtures as fx
from tests.server.cases_fixtures import make_tenant, open_incident, utc
from tests.storage import conftest as storage_fixtures
from tests.storage.conftest import FakeClock
from watchfloor.cases.models import SYSTEM, Actor, Incident
from watchfloor.cases.permissions import PermissionDeniedError
from watchfloor.cases.soc import actor_for
from watchfloor.core.types import TenantId
from watchfloor.server.cases import OPERATOR, CaseService
from watchfloor.storage import Contact, Database
from watchfloor.storage.incidents import TenantSettings
from watchfloor.triage.models import Entity

db_url = storage_fixtures.db_url
pg_template = storage_fixtures.pg_template

T0 = utc(2026, 12, 3, 9)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

FACTORY_CONTACTS = (
    Contact(name="Petra Hoff", email="petra@factory.example", role="CEO", escalation_order=2),
    Contact(name="Klaus Weber", email="klaus@factory.example", role="IT", escalation_order=1, phone="+49 1"),
    Contact(
        name="Jonas Brandt", email="jonas@factory.example", role="plant", escalation_order=3, phone="+49 3"
    ),
)


def who(analyst_id: str) -> Actor:
    """The permission identity of a roster analyst."""
    analyst = fx.ROSTER.analyst(analyst_id)
    assert analyst is not None
    return actor_for(analyst)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def db(db_url: str, clock: FakeClock) -> Iterator[Database]:
    with fx.opened(db_url, clock) as database:
        yield database


@pytest.fixture
def clinic(db: Database) -> TenantId:
    """Premium, in the outsourced partner's tenants."""
    return make_tenant(db, "clinic", tier="premium", vertical="healthcare")


@pytest.fixture
def lawfirm(db: Database) -> TenantId:
    """Standard, not a partner tenant; UTC."""
    tenant = make_tenant(db, "lawfirm", tier="standard", vertical="legal")
    db.settings.put(TenantSettings(tenant_id=tenant, contract={"monthly_fee_minor": 250_000}), actor=fx.ACTOR)
    return tenant


@pytest.fixture
def factory(db: Database) -> TenantId:
    """Basic, in Berlin, with three escalation contacts."""
    tenant = make_tenant(db, "factory", tier="basic", vertical="manufacturing", contacts=FACTORY_CONTACTS)
    db.settings.put(TenantSettings(tenant_id=tenant, timezone="Europe/Berlin"), actor=fx.ACTOR)
    return tenant


def service(db: Database, clock: FakeClock, *, roster: bool = True, auto_route: bool = False) -> CaseService:
    return CaseService(db, fx.TIERS, roster=fx.ROSTER if roster else None, auto_route=auto_route, clock=clock)


def step(clock: FakeClock, at: datetime) -> datetime:
    """Move the clock to `at` (the store stamps audit entries with it) and return it."""
    clock.now = at
    return at


# -- lifecycle, audit, permissions ------------------------------------------------------------------------
def test_the_lifecycle_is_stored_with_a_timeline_entry_and_an_audit_entry_per_step(
    db: Database, db_url: str, clock: FakeClock, lawfirm: TenantId
) -> None:
    svc = service(db, clock)
    incident = open_incident(db, lawfirm, "inc-law-1", severity="high", created_at=T0)
    dora, emil = svc.actor("dora"), svc.actor("emil")
    assert (dora.role, dora.tier, emil.tier) == ("analyst", "T1", "T2")
    iid = incident.id

    def at(minutes: int) -> datetime:
        return step(clock, T0 + minutes * MINUTE)

    assert svc.transition(dora, lawfirm, iid, "acknowledged", now=at(5)).accepted
    assert svc.transition(
        dora, lawfirm, iid, "investigating", reason="encoded PowerShell", now=at(10)
    ).accepted
    svc.add_note(dora, lawfirm, iid, "user confirms they did not run it", now=at(12))
    svc.add_evidence(
        dora, lawfirm, iid, kind="detection", reference="42", description="the match", now=at(14)
    )
    svc.notify_customer(dora, lawfirm, iid, "phone", now=at(20))
    svc.escalate(dora, lawfirm, iid, "T2", "needs containment", now=at(25))
    svc.assign(emil, lawfirm, iid, "emil", now=at(26))
    assert svc.transition(emil, lawfirm, iid, "contained", reason="host isolated", now=at(40)).accepted
    assert svc.transition(emil, lawfirm, iid, "resolved", now=at(60)).accepted
    early = svc.transition(emil, lawfirm, iid, "closed_true_positive", closure_reason="malware", now=at(61))
    assert not early.accepted
    assert early.rule == "WatchBeforeClosing"
    done = svc.transition(
        emil, lawfirm, iid, "closed_true_positive", closure_reason="malware removed", now=at(60 + 24 * 60)
    )
    assert done.accepted

    expected = [
        ("created", SYSTEM.id, 0),
        ("state_changed", "dora", 5),
        ("state_changed", "dora", 10),
        ("note", "dora", 12),
        ("evidence", "dora", 14),
        ("customer_notified", "dora", 20),
        ("escalated", "dora", 25),
        ("assigned", "emil", 26),
        ("state_changed", "emil", 40),
        ("state_changed", "emil", 60),
        ("transition_delayed", "emil", 61),
        ("state_changed", "emil", 60 + 24 * 60),
    ]
    # read back through another connection pool: what is stored, not what the service returned
    with fx.opened(db_url, clock) as other:
        stored = other.incidents.get(lawfirm, iid)
        timeline = other.incidents.timeline(lawfirm, iid)
        audit = [a for a in reversed(other.audit.list(lawfirm, limit=200)) if a.object_id == iid]
        notes, evidence = other.incidents.notes(lawfirm, iid), other.incidents.evidence(lawfirm, iid)
    assert [(e.kind, e.actor, e.at) for e in timeline] == [(k, a, T0 + m * MINUTE) for k, a, m in expected]
    # one audit entry per timeline entry, same actor, same time (the store's clock), same order
    assert [(a.action, a.actor, a.at) for a in audit] == [
        (f"incident.{k}", a, T0 + m * MINUTE) for k, a, m in expected
    ]
    assert stored.state == "closed_true_positive"
    assert stored.closure_reason == "malware removed"
    assert (stored.acknowledged_at, stored.acknowledged_by) == (T0 + 5 * MINUTE, "dora")
    assert stored.triaged_at == T0 + 10 * MINUTE
    assert stored.notified_at == T0 + 20 * MINUTE
    assert stored.contained_at == T0 + 40 * MINUTE
    assert stored.resolved_at == T0 + 60 * MINUTE
    assert stored.closed_at == T0 + (60 + 24 * 60) * MINUTE
    assert (stored.queue_tier, stored.assignee) == ("T2", "emil")
    assert [(n.author, n.text) for n in notes] == [("dora", "user confirms they did not run it")]
    assert [(e.author, e.reference) for e in evidence] == [("dora", "42")]


def test_a_partner_analyst_works_its_tenants_only_and_cannot_contain(
    db: Database, clock: FakeClock, clinic: TenantId, lawfirm: TenantId
) -> None:
    svc = service(db, clock)
    pia = svc.actor("pia")  # nightwatch, outsourced T1 for clinic (not lawfirm)
    assert (pia.role, pia.tier, pia.employer) == ("partner_analyst", "T1", "nightwatch")
    ours = open_incident(db, clinic, "inc-clinic-1", severity="high", created_at=T0)
    theirs = open_incident(db, lawfirm, "inc-law-1", severity="high", created_at=T0)

    # what the partner is for: see, acknowledge, annotate, escalate its tenant's incidents
    assert svc.incident(pia, clinic, ours.id).id == ours.id
    assert svc.transition(pia, clinic, ours.id, "acknowledged", now=T0 + 5 * MINUTE).accepted
    svc.add_note(pia, clinic, ours.id, "escalating to the in-house SOC", now=T0 + 6 * MINUTE)
    svc.transition(svc.actor("dora"), clinic, ours.id, "investigating", now=T0 + 7 * MINUTE)

    # containment is not: the attempt is rejected (returned, and kept in the timeline), nothing changes
    outcome = svc.transition(pia, clinic, ours.id, "contained", now=T0 + 8 * MINUTE)
    assert not outcome.accepted
    assert outcome.rule == "AuthorizeTransition"
    assert "the permission table does not allow 'contain' for partner_analyst" in outcome.verdict.reason  # type: ignore[union-attr]
    stored = db.incidents.get(clinic, ours.id)
    assert (stored.state, stored.contained_at) == ("investigating", None)
    assert db.incidents.timeline(clinic, ours.id)[-1].kind == "transition_rejected"
    # operations that are not transitions raise
    with pytest.raises(PermissionDeniedError):
        svc.notify_customer(pia, clinic, ours.id, "phone", now=T0 + 9 * MINUTE)
    with pytest.raises(PermissionDeniedError):
        svc.assign(pia, clinic, ours.id, "dora", now=T0 + 9 * MINUTE)
    assert (
        svc.escalate(pia, clinic, ours.id, "T2", "containment needed", now=T0 + 10 * MINUTE).queue_tier
        == "T2"
    )

    # another tenant's incidents are invisible
    with pytest.raises(PermissionDeniedError):
        svc.incident(pia, lawfirm, theirs.id)
    with pytest.raises(PermissionDeniedError):
        svc.timeline(pia, lawfirm, theirs.id)
    with pytest.raises(PermissionDeniedError):
        svc.alerts(pia, lawfirm)
    with pytest.raises(PermissionDeniedError):
        svc.incidents(pia, lawfirm)
    assert [i.id for i in svc.incidents(pia)] == [ours.id]
    assert [row.incident.id for row in svc.queue(pia, T0 + 11 * MINUTE)] == [ours.id]
    assert [row.group for row in svc.metrics(pia, group_by="tenant")] == [clinic]
    assert {i.id for i in svc.incidents(OPERATOR)} == {ours.id, theirs.id}


def test_a_transition_on_another_tenants_incident_is_refused_without_touching_it(
    db: Database, clock: FakeClock, clinic: TenantId, lawfirm: TenantId
) -> None:
    # regression: the refused attempt used to be written into the other tenant's timeline and audit, and
    # the returned outcome carried that tenant's incident
    assert clinic
    svc = service(db, clock)
    theirs = open_incident(db, lawfirm, "inc-law-1", severity="high", created_at=T0)
    with pytest.raises(PermissionDeniedError):
        svc.transition(svc.actor("pia"), lawfirm, theirs.id, "acknowledged", now=T0 + MINUTE)
    assert [e.kind for e in db.incidents.timeline(lawfirm, theirs.id)] == ["created"]
    assert [a.action for a in db.audit.list(lawfirm) if a.object_id == theirs.id] == ["incident.created"]
    assert db.incidents.get(lawfirm, theirs.id).state == "new"


def test_concurrent_changes_to_one_incident_all_land(
    db: Database, clock: FakeClock, lawfirm: TenantId
) -> None:
    svc = service(db, clock)
    incident = open_incident(db, lawfirm, "inc-law-1", severity="high", created_at=T0)
    svc.transition(svc.actor("dora"), lawfirm, incident.id, "acknowledged", now=T0 + MINUTE)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(actor: Actor, finish: str) -> None:
        try:
            start.wait()
            for n in range(10):
                svc.add_note(actor, lawfirm, incident.id, f"{actor.id} note {n}", now=T0 + 2 * MINUTE)
            if finish == "notify":
                svc.notify_customer(actor, lawfirm, incident.id, "email", now=T0 + 3 * MINUTE)
            else:
                svc.escalate(actor, lawfirm, incident.id, "T3", "needs forensics", now=T0 + 3 * MINUTE)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(svc.actor("dora"), "notify")),
        threading.Thread(target=work, args=(svc.actor("emil"), "escalate")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    notes = db.incidents.notes(lawfirm, incident.id)
    assert len(notes) == 20
    assert sorted(n.text for n in notes if n.author == "dora") == sorted(f"dora note {n}" for n in range(10))
    kinds = [e.kind for e in db.incidents.timeline(lawfirm, incident.id)]
    assert kinds.count("note") == 20
    assert len(kinds) == 1 + 1 + 20 + 2  # created, acknowledged, notes, notification and escalation
    stored = db.incidents.get(lawfirm, incident.id)
    # neither writer overwrote the other's change to the incident row
    assert stored.notified_at == T0 + 3 * MINUTE
    assert stored.queue_tier == "T3"
    audit = [a for a in db.audit.list(lawfirm, limit=500) if a.object_id == incident.id]
    assert len(audit) == len(kinds)


# -- the SLA sweeper ---------------------------------------------------------------------------------------
def sla_events(db: Database, tenant: TenantId, incident_id: str) -> list[tuple[str, str, datetime]]:
    return [(e.metric, e.kind, e.at) for e in db.sla.events(tenant, incident_id=incident_id)]


def test_a_second_sweep_at_the_same_time_records_nothing(
    db: Database, clock: FakeClock, clinic: TenantId, lawfirm: TenantId, factory: TenantId
) -> None:
    svc = service(db, clock, auto_route=True)
    # standard critical at 09:00: every target (30 min, 1 h, 4 h) and warning crossed by 14:30
    open_incident(db, lawfirm, "inc-law-1", severity="critical", created_at=T0)
    open_incident(db, clinic, "inc-clinic-1", severity="medium", created_at=utc(2026, 12, 3, 14))
    held = open_incident(db, factory, "inc-fac-1", severity="high", created_at=utc(2026, 12, 3, 13))
    svc.assign(OPERATOR, factory, held.id, "dora", now=utc(2026, 12, 3, 13))
    at = step(clock, utc(2026, 12, 3, 14, 30))  # dora is off shift: her incident is handed off
    first = svc.sweep(at)
    # 6 events and the first escalation step (T2) for the critical one; the clinic's and the escalated
    # (now unassigned) lawfirm incident are routed; dora's factory incident is handed off to AMER
    assert (first.sla_events, first.escalations, first.assigned, first.handoffs) == (6, 1, 2, 1)

    def counts() -> tuple[int, int, int, int]:
        tenants = (clinic, lawfirm, factory)
        incidents = db.incidents.list(list(tenants), limit=None)
        return (
            sum(len(db.sla.events(t)) for t in tenants),
            sum(len(db.sla.escalations(i.tenant_id, i.id)) for i in incidents),
            sum(len(db.incidents.timeline(i.tenant_id, i.id)) for i in incidents),
            sum(len(db.audit.list(t, limit=1000)) for t in tenants),
        )

    before = counts()
    again = svc.sweep(at)
    assert (again.sla_events, again.escalations, again.assigned, again.handoffs) == (0, 0, 0, 0)
    assert counts() == before


def test_awaiting_the_customer_pauses_the_clock_and_delays_the_breach_by_the_pause(
    db: Database, clock: FakeClock, lawfirm: TenantId
) -> None:
    # standard tier, high: notify within 2 h (warning at 75 %: 1 h 30), contain within 8 h; 24x7, UTC
    svc = service(db, clock, roster=False)
    dora = who("dora")
    incident = open_incident(db, lawfirm, "inc-law-1", severity="high", created_at=T0)
    iid = incident.id
    svc.transition(dora, lawfirm, iid, "acknowledged", now=step(clock, T0 + 10 * MINUTE))
    svc.transition(dora, lawfirm, iid, "awaiting_customer", now=step(clock, T0 + 30 * MINUTE))

    # 12:00: an hour past the unpaused notify deadline (11:00), but only 30 min of the clock have run
    assert svc.sweep(step(clock, utc(2026, 12, 3, 12))).sla_events == 0
    statuses = {s.metric: s for s in svc.sla(OPERATOR, lawfirm, iid)}
    assert statuses["notify"].state == "paused"
    assert statuses["notify"].remaining_seconds == 90 * 60
    assert statuses["notify"].due_at is None

    resumed = utc(2026, 12, 3, 13)  # the customer answered: paused for 3 h 30
    svc.transition(dora, lawfirm, iid, "investigating", now=step(clock, resumed))
    stored = db.incidents.get(lawfirm, iid)
    assert stored.pauses == ((T0 + 30 * MINUTE, resumed),)
    pause = resumed - (T0 + 30 * MINUTE)
    statuses = {s.metric: s for s in svc.sla(OPERATOR, lawfirm, iid)}
    assert statuses["notify"].due_at == T0 + 2 * HOUR + pause  # 14:30
    assert statuses["contain"].due_at == T0 + 8 * HOUR + pause  # 20:30

    # at exactly the delayed deadline only the warning (crossed at 14:00); a second later the breach
    assert svc.sweep(step(clock, T0 + 2 * HOUR + pause)).sla_events == 1
    assert sla_events(db, lawfirm, iid) == [("notify", "sla_warning", T0 + 90 * MINUTE + pause)]
    assert svc.sweep(step(clock, T0 + 2 * HOUR + pause + timedelta(seconds=1))).sla_events == 1
    assert sla_events(db, lawfirm, iid)[-1] == ("notify", "sla_breached", T0 + 2 * HOUR + pause)
    breach = [e for e in db.incidents.timeline(lawfirm, iid) if e.kind == "sla_breached"]
    assert [(e.at, e.actor, e.details["metric"]) for e in breach] == [
        (utc(2026, 12, 3, 14, 30), "system", "notify")
    ]


def test_business_hours_in_the_tenants_zone_do_not_run_over_the_weekend(
    db: Database, clock: FakeClock
) -> None:
    # basic tier: medium and low run on business hours (08:00-18:00 Mon-Fri, tenant zone), high on 24x7
    tenant = make_tenant(db, "shop", tier="basic", vertical="other")
    db.settings.put(TenantSettings(tenant_id=tenant, timezone="America/New_York"), actor=fx.ACTOR)
    svc = service(db, clock, roster=False)
    friday_evening = utc(2026, 12, 4, 23, 30)  # Friday 18:30 in New York (EST, UTC-5)
    medium = open_incident(db, tenant, "inc-shop-medium", severity="medium", created_at=friday_evening)
    high = open_incident(db, tenant, "inc-shop-high", severity="high", created_at=friday_evening)

    # high (24x7): acknowledge within 4 h -> breached Saturday 03:30 UTC
    for moment in (utc(2026, 12, 5, 12), utc(2026, 12, 6, 23), utc(2026, 12, 7, 12, 59, 59)):
        svc.sweep(step(clock, moment))
        assert sla_events(db, tenant, medium.id) == []  # nothing on the weekend or before 08:00 Monday
    assert ("acknowledge", "sla_breached", utc(2026, 12, 5, 3, 30)) in sla_events(db, tenant, high.id)

    # medium: acknowledge within 4 business hours from Monday 08:00 New York: warning at 11:00 (75 %),
    # breach after 12:00 New York = 17:00 UTC
    assert svc.sla(OPERATOR, tenant, medium.id)[0].due_at == utc(2026, 12, 7, 17)
    svc.sweep(step(clock, utc(2026, 12, 7, 17)))
    assert sla_events(db, tenant, medium.id) == [("acknowledge", "sla_warning", utc(2026, 12, 7, 16))]
    svc.sweep(step(clock, utc(2026, 12, 7, 17, 0, 1)))
    assert sla_events(db, tenant, medium.id)[-1] == ("acknowledge", "sla_breached", utc(2026, 12, 7, 17))


def escalation_rows(db: Database, tenant: TenantId, incident_id: str) -> list[tuple[int, str, str, datetime]]:
    return [(r["step"], r["target"], r["channel"], r["at"]) for r in db.sla.escalations(tenant, incident_id)]


def test_a_breach_escalates_t2_t3_duty_manager_then_customer_contacts_each_after_the_wait(
    db: Database, clock: FakeClock, factory: TenantId
) -> None:
    # basic, critical: acknowledge within 1 h; critical steps wait 15 min (internal and default tree)
    svc = service(db, clock)
    created = utc(2026, 12, 3, 15)
    incident = open_incident(db, factory, "inc-fac-1", severity="critical", created_at=created)
    taken: list[tuple[str, int]] = []
    for minute in (60, 61, 70, 76, 90, 91, 105, 106, 120, 121, 136, 150, 151, 180):
        result = svc.sweep(step(clock, created + minute * MINUTE))
        taken.append((f"{minute}", result.escalations))
    assert [m for m, n in taken if n] == ["61", "76", "91", "106", "121", "136"]
    assert all(n <= 1 for _m, n in taken)
    assert escalation_rows(db, factory, incident.id) == [
        (0, "T2", "queue", created + 61 * MINUTE),  # breach recorded at 16:01 (crossed at 16:00)
        (1, "T3", "queue", created + 76 * MINUTE),  # 15 min later
        (2, "dm-amer", "phone", created + 91 * MINUTE),  # AMER's duty manager is on shift at 16:31 UTC
        (3, "Klaus Weber", "phone", created + 106 * MINUTE),  # escalation_order 1
        (4, "Petra Hoff", "email", created + 121 * MINUTE),  # order 2, no phone: e-mail
        (5, "Jonas Brandt", "phone", created + 136 * MINUTE),  # order 3; after it the chain is exhausted
    ]
    stored = db.incidents.get(factory, incident.id)
    assert stored.queue_tier == "T3"
    escalated = [e for e in db.incidents.timeline(factory, incident.id) if e.kind == "escalated"]
    assert [e.actor for e in escalated] == ["system"] * 6
    assert "reach customer contact 1 of 3" in escalated[3].summary
    assert sla_events(db, factory, incident.id) == [
        ("acknowledge", "sla_warning", created + 45 * MINUTE),
        ("acknowledge", "sla_breached", created + 60 * MINUTE),
        ("notify", "sla_warning", created + 90 * MINUTE),
        ("notify", "sla_breached", created + 120 * MINUTE),
    ]


def test_a_hand_escalated_incident_still_reaches_the_customer_contacts_after_a_breach(
    db: Database, clock: FakeClock, factory: TenantId
) -> None:
    # regression: the next step was the number of rows, not the last step + 1, so after the skipped T2
    # step the chain repeated the duty manager step forever and never reached the customer's contacts
    svc = service(db, clock)
    created = utc(2026, 12, 3, 15)
    incident = open_incident(db, factory, "inc-fac-1", severity="critical", created_at=created)
    svc.escalate(who("dora"), factory, incident.id, "T2", "looks bad", now=created + 5 * MINUTE)
    for minute in range(61, 200, 16):
        svc.sweep(step(clock, created + minute * MINUTE))
    steps = [(number, target) for number, target, _channel, _at in escalation_rows(db, factory, incident.id)]
    assert steps == [(1, "T3"), (2, "dm-amer"), (3, "Klaus Weber"), (4, "Petra Hoff"), (5, "Jonas Brandt")]


def test_the_breach_chain_stops_once_the_incident_is_being_worked(
    db: Database, clock: FakeClock, factory: TenantId
) -> None:
    svc = service(db, clock)
    created = utc(2026, 12, 3, 15)
    incident = open_incident(db, factory, "inc-fac-1", severity="critical", created_at=created)
    svc.sweep(step(clock, created + 61 * MINUTE))  # acknowledge breached: step 0 raises the queue to T2
    ivan = svc.actor("ivan")  # AMER T2, on shift
    svc.transition(ivan, factory, incident.id, "acknowledged", now=step(clock, created + 62 * MINUTE))
    svc.transition(ivan, factory, incident.id, "investigating", now=step(clock, created + 63 * MINUTE))
    svc.notify_customer(ivan, factory, incident.id, "phone", now=step(clock, created + 64 * MINUTE))
    svc.transition(ivan, factory, incident.id, "contained", now=step(clock, created + 65 * MINUTE))
    for minute in (80, 100):
        svc.sweep(step(clock, created + minute * MINUTE))
    stored = db.incidents.get(factory, incident.id)
    assert (stored.assignee, stored.queue_tier) == ("ivan", "T2")
    assert [target for _s, target, _c, _a in escalation_rows(db, factory, incident.id)] == ["T2"]


def test_one_tenants_broken_escalation_tree_does_not_stop_the_sweep_for_the_others(
    db: Database, clock: FakeClock, factory: TenantId, lawfirm: TenantId
) -> None:
    svc = service(db, clock)
    tree = {"severities": {"critical": {"any": [{"contact": "Klaus Weber", "channel": "phone"}]}}}
    svc.put_case_settings(OPERATOR, factory, escalation=tree)
    # later the customer's contact list changes: the stored tree now names someone who is gone
    db.tenants.update(
        factory, contacts=[c for c in FACTORY_CONTACTS if c.name != "Klaus Weber"], actor=fx.ACTOR
    )
    open_incident(db, factory, "inc-fac-1", severity="critical", created_at=T0)
    law = open_incident(db, lawfirm, "inc-law-1", severity="critical", created_at=T0)
    svc.sweep(step(clock, T0 + 2 * HOUR))
    # the lawfirm's clocks are judged whatever the factory's configuration says
    assert ("acknowledge", "sla_breached", T0 + 30 * MINUTE) in sla_events(db, lawfirm, law.id)


def test_credits_for_a_months_breaches_follow_the_tier_and_the_contract(
    db: Database, clock: FakeClock, lawfirm: TenantId, clinic: TenantId
) -> None:
    svc = service(db, clock, roster=False)
    # standard: 2 % per high breach, 0.5 % per medium, 3 % per critical; cap 15 %; fee 2,500.00
    high = open_incident(db, lawfirm, "inc-law-high", severity="high", created_at=utc(2026, 12, 10, 10))
    medium = open_incident(db, lawfirm, "inc-law-med", severity="medium", created_at=utc(2026, 12, 20, 10))
    late = open_incident(db, lawfirm, "inc-law-late", severity="critical", created_at=utc(2026, 12, 31, 23))
    # premium: 5 % per critical breach, cap 25 % of 1,000.00
    db.settings.put(TenantSettings(tenant_id=clinic, contract={"monthly_fee_minor": 100_000}), actor=fx.ACTOR)
    for n in (1, 2):
        open_incident(db, clinic, f"inc-clinic-{n}", severity="critical", created_at=utc(2026, 12, 1 + n, 10))
    svc.sweep(step(clock, utc(2027, 1, 2)))  # nobody acknowledged anything: every target breached

    december = svc.credits(OPERATOR, lawfirm, utc(2026, 12, 15))
    lines = [(c.incident_id, c.metric, c.percent_bp, c.amount_minor) for c in december.lines]
    assert lines == [
        (high.id, "acknowledge", 200, 5_000),
        (high.id, "notify", 200, 5_000),
        (high.id, "contain", 200, 5_000),
        (medium.id, "acknowledge", 50, 1_250),
        (medium.id, "notify", 50, 1_250),  # standard has no contain target for medium
        (late.id, "acknowledge", 300, 7_500),  # 23:30 on the 31st; notify breached at 00:00 in January
    ]
    assert (december.total_minor, december.cap_minor, december.capped) == (25_000, 37_500, False)
    assert december.lines[0].explanation == (
        f"{high.id} (high) breached the acknowledge target at 2026-12-10T11:00:00+00:00: 2% of 250000 = 5000"
    )
    january = svc.credits(OPERATOR, lawfirm, utc(2027, 1, 1))
    assert [(c.incident_id, c.metric, c.amount_minor) for c in january.lines] == [
        (late.id, "notify", 7_500),
        (late.id, "contain", 7_500),
    ]

    capped = svc.credits(OPERATOR, clinic, utc(2026, 12, 1))
    assert [c.amount_minor for c in capped.lines] == [5_000] * 5 + [0]
    assert (capped.total_minor, capped.cap_minor, capped.capped) == (25_000, 25_000, True)
    assert "cut to 0 by the monthly cap of 25% (25000)" in capped.lines[-1].explanation


def test_the_queue_puts_breached_incidents_first(db: Database, clock: FakeClock, lawfirm: TenantId) -> None:
    svc = service(db, clock)
    now = step(clock, utc(2026, 12, 3, 10))
    # standard, 24x7 for medium and above: acknowledge within 4 h (medium), 1 h (high), 30 min (critical)
    low = open_incident(db, lawfirm, "inc-a-low", severity="low", created_at=utc(2026, 12, 3, 9, 55))
    breached = open_incident(db, lawfirm, "inc-b-medium", severity="medium", created_at=utc(2026, 12, 3, 5))
    critical = open_incident(
        db, lawfirm, "inc-c-critical", severity="critical", created_at=utc(2026, 12, 3, 9, 50)
    )
    high = open_incident(db, lawfirm, "inc-d-high", severity="high", created_at=utc(2026, 12, 3, 9, 30))
    rows = svc.queue(OPERATOR, now)
    assert [r.incident.id for r in rows] == [breached.id, critical.id, high.id, low.id]
    first = rows[0].sla
    assert first is not None
    assert (first.metric, first.state, first.remaining_seconds) == ("acknowledge", "breached", -3600)
    assert [r.sla.remaining_seconds for r in rows[1:3] if r.sla] == [20 * 60, 30 * 60]
    # routing's pick for each: the on-duty EMEA T1 (lowest sufficient tier)
    assert {r.suggested for r in rows} == {"dora"}


def test_a_shift_hand_off_moves_open_work_to_the_next_regions_analyst(
    db: Database, clock: FakeClock, clinic: TenantId
) -> None:
    svc = service(db, clock, auto_route=True)
    # premium medium: acknowledge within 2 h, notify within 4 h: no SLA event before 15:00
    incident = open_incident(
        db,
        clinic,
        "inc-clinic-1",
        severity="medium",
        created_at=utc(2026, 12, 3, 13),
        entities=(Entity("user", "frontdesk"),),
        techniques=("T1110.001",),  # brute force: an identity skill
    )
    svc.transition(
        svc.actor("dora"), clinic, incident.id, "acknowledged", now=step(clock, utc(2026, 12, 3, 13, 10))
    )
    assert db.incidents.get(clinic, incident.id).assignee == "dora"

    before = svc.sweep(step(clock, utc(2026, 12, 3, 13, 59)))  # EMEA day shift until 14:00 UTC
    assert (before.handoffs, before.assigned, before.sla_events) == (0, 0, 0)
    handoff_at = step(clock, utc(2026, 12, 3, 14))
    result = svc.sweep(handoff_at)
    assert (result.handoffs, result.assigned) == (1, 0)

    stored: Incident = db.incidents.get(clinic, incident.id)
    # AMER on shift: gus may not work the clinic; hana is the T1 with the identity skill
    assert stored.assignee == "hana"
    last = db.incidents.timeline(clinic, incident.id)[-1]
    assert (last.kind, last.actor, last.at) == ("handoff", "system", handoff_at)
    assert (last.details["from"], last.details["to"]) == ("dora", "hana")
    assert last.summary == "shift hand-off from dora to hana"
    assert "From dora (emea) to hana (amer)" in last.details["note"]
    assert "Next step: start the investigation" in last.details["note"]
    assert svc.sweep(handoff_at).handoffs == 0
