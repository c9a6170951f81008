"""The triage stage over a real database (SQLite and PostgreSQL): stored detections -> alerts -> incidents,
exactly once across reruns, restarts and failed writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

import watchfloor.server.triage_stage as triage_stage
from tests.server import cases_fixtures as fx
from tests.server.cases_fixtures import Rule, detection, host_event, ingest, make_tenant, utc
from tests.storage import conftest as storage_fixtures
from tests.storage.conftest import FakeClock
from watchfloor.cases.models import SYSTEM
from watchfloor.core.types import TenantId
from watchfloor.server.cases import OPERATOR, CaseService
from watchfloor.server.triage_stage import CURSOR, TriageWorker
from watchfloor.storage import Database
from watchfloor.storage.cursors import read_cursor
from watchfloor.triage.models import AutoClosePolicy, Condition

# PostgreSQL databases are copies of a per-session migrated template (tests/storage/conftest.py).
db_url = storage_fixtures.db_url
pg_template = storage_fixtures.pg_template

T0 = utc(2026, 12, 3, 9)  # a Thursday
MINUTE = timedelta(minutes=1)

PS_ENCODED = Rule(id="ps-encoded", level="high", tags=("attack.execution", "attack.t1059.001"))
LSASS = Rule(id="lsass-access", level="critical", tags=("attack.credential_access", "attack.t1003.001"))
PSEXEC = Rule(id="psexec-lateral", level="high", tags=("attack.lateral_movement", "attack.t1021.002"))
DEFENDER_TOOL = Rule(id="mpcmdrun-exec", level="high", tags=("attack.defense_evasion", "attack.t1218"))

DEFENDER = "C:\\Program Files\\Windows Defender"
DEFENDER_POLICY = AutoClosePolicy(
    name="defender-own-tool",
    reason="Defender's own MpCmdRun started by MsMpEng",
    conditions=(
        Condition(field="process.parent.executable", op="equals", value=f"{DEFENDER}\\MsMpEng.exe"),
        Condition(field="process.executable", op="equals", value=f"{DEFENDER}\\MpCmdRun.exe"),
    ),
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def db(db_url: str, clock: FakeClock) -> Iterator[Database]:
    with fx.opened(db_url, clock) as database:
        yield database


@pytest.fixture
def clinic(db: Database) -> TenantId:
    return make_tenant(db, "clinic", tier="premium", vertical="healthcare")


@pytest.fixture
def bakery(db: Database) -> TenantId:
    return make_tenant(db, "bakery", tier="basic", vertical="other")


@pytest.fixture
def reference_url(db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second fresh database of the same dialect (to compare a faulty run with a clean one)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'reference.db'}"
        return
    server = request.getfixturevalue("pg_server")
    name = server.create_database(template=request.getfixturevalue("pg_template"))
    yield str(server.url(name))
    server.drop_database(name)


def worker(db: Database, clock: FakeClock, **options: Any) -> TriageWorker:
    return TriageWorker(db, lag_seconds=0, clock=clock, **options)


def cursor_of(db: Database) -> int:
    with db.store.read() as connection:
        return read_cursor(connection, CURSOR)


def snapshot(db: Database, tenants: list[TenantId]) -> dict[str, Any]:
    """Everything the stage writes, comparable across databases."""
    alerts = sorted(
        (
            a.id,
            a.tenant_id,
            a.count,
            a.status,
            a.incident_id,
            a.detection_ids,
            a.first_seen,
            a.last_seen,
            a.closed_reason,
        )
        for t in tenants
        for a in db.alerts.list(t, limit=1000)
    )
    incidents = sorted(
        (i.id, i.tenant_id, i.state, i.severity, i.alert_ids, i.entities, i.techniques, i.tactics)
        for i in db.incidents.list(tenants, limit=None)
    )
    timelines = {
        i.id: [(e.kind, e.actor, e.at, e.summary) for e in db.incidents.timeline(i.tenant_id, i.id)]
        for i in db.incidents.list(tenants, limit=None)
    }
    return {"alerts": alerts, "incidents": incidents, "timelines": timelines, "cursor": cursor_of(db)}


# -- deduplication and grouping -----------------------------------------------------------------------
def test_repeats_of_one_rule_on_one_host_update_one_alert(
    db: Database, clock: FakeClock, clinic: TenantId
) -> None:
    stage = worker(db, clock)
    ws17 = host_event("WS-17.clinic.local", "CLINIC\\alice")
    at = ingest(
        db,
        clock,
        T0 + 30 * MINUTE,
        [(clinic, detection(PS_ENCODED, T0 + m * MINUTE, ws17)) for m in (0, 5, 20)],
    )
    first = stage.run_once(at)
    assert (first.detections, first.incidents_created) == (3, 1)

    # a fourth repeat in a later batch, 30 min after the last one: still the same alert
    at = ingest(db, clock, T0 + 55 * MINUTE, [(clinic, detection(PS_ENCODED, T0 + 50 * MINUTE, ws17))])
    second = stage.run_once(at)
    assert (second.detections, second.incidents_created, second.incidents_updated) == (1, 0, 1)

    [alert] = db.alerts.list(clinic)
    assert alert.count == 4
    assert alert.first_seen == T0
    assert alert.last_seen == T0 + 50 * MINUTE
    assert len(alert.detection_ids) == 4
    [incident] = db.incidents.list([clinic])
    assert incident.alert_ids == (alert.id,)
    assert alert.incident_id == incident.id
    kinds = [e.kind for e in db.incidents.timeline(clinic, incident.id)]
    assert kinds == ["created"]  # repeats that add nothing to the incident write no timeline entry

    # more than the dedup window (1 h) after the last repeat: a new alert, on the same incident (same host)
    at = ingest(db, clock, T0 + 3 * 60 * MINUTE, [(clinic, detection(PS_ENCODED, T0 + 170 * MINUTE, ws17))])
    stage.run_once(at)
    assert db.alerts.count(clinic) == 2
    [incident] = db.incidents.list([clinic])
    assert len(incident.alert_ids) == 2
    assert [e.kind for e in db.incidents.timeline(clinic, incident.id)] == ["created", "alert_attached"]


def test_detections_sharing_a_host_or_user_group_into_one_incident(
    db: Database, clock: FakeClock, clinic: TenantId
) -> None:
    stage = worker(db, clock)
    rows = [
        (clinic, detection(PS_ENCODED, T0, host_event("WS-17", "alice"))),
        (clinic, detection(LSASS, T0 + 10 * MINUTE, host_event("WS-17", "svc-backup"))),  # shares the host
        (clinic, detection(PSEXEC, T0 + 20 * MINUTE, host_event("SRV-02", "alice"))),  # shares the user
        (clinic, detection(PS_ENCODED, T0 + 25 * MINUTE, host_event("WS-99", "bob"))),  # shares nothing
    ]
    at = ingest(db, clock, T0 + 30 * MINUTE, rows)
    result = stage.run_once(at)
    assert (result.detections, result.incidents_created) == (4, 2)

    incidents = {i.title: i for i in db.incidents.list([clinic])}
    assert set(incidents) == {"ps-encoded on host ws-17", "ps-encoded on host ws-99"}
    story = incidents["ps-encoded on host ws-17"]
    assert len(story.alert_ids) == 3
    assert story.severity == "critical"  # raised by the LSASS alert
    assert story.tactics == ("execution", "credential-access", "lateral-movement")
    assert story.techniques == ("T1059.001", "T1003.001", "T1021.002")
    assert {e.kind for e in story.entities} >= {"host", "user"}
    assert len(incidents["ps-encoded on host ws-99"].alert_ids) == 1
    for alert in db.alerts.list(clinic):
        assert alert.status == "incident"
        assert (
            alert.id
            in incidents[next(t for t, i in incidents.items() if i.id == alert.incident_id)].alert_ids
        )


def test_different_tenants_never_share_an_incident(
    db: Database, clock: FakeClock, clinic: TenantId, bakery: TenantId
) -> None:
    stage = worker(db, clock)
    same = host_event("WS-17", "alice")
    rows = [
        (clinic, detection(PS_ENCODED, T0, same)),
        (bakery, detection(PS_ENCODED, T0, same)),
        (clinic, detection(LSASS, T0 + 5 * MINUTE, same)),
        (bakery, detection(LSASS, T0 + 5 * MINUTE, same)),
    ]
    at = ingest(db, clock, T0 + 10 * MINUTE, rows)
    assert stage.run_once(at).incidents_created == 2

    [clinic_incident] = db.incidents.list([clinic])
    [bakery_incident] = db.incidents.list([bakery])
    assert clinic_incident.id != bakery_incident.id
    assert clinic_incident.id.startswith("inc-clinic-")
    assert bakery_incident.id.startswith("inc-bakery-")
    clinic_alerts = {a.id for a in db.alerts.list(clinic)}
    bakery_alerts = {a.id for a in db.alerts.list(bakery)}
    assert len(clinic_alerts) == len(bakery_alerts) == 2
    assert not clinic_alerts & bakery_alerts
    assert set(clinic_incident.alert_ids) == clinic_alerts
    assert set(bakery_incident.alert_ids) == bakery_alerts


# -- exactly once ---------------------------------------------------------------------------------------
def test_the_cursor_makes_reruns_and_restarts_repeat_nothing_and_skip_nothing(
    db: Database, clock: FakeClock, clinic: TenantId
) -> None:
    ws17 = host_event("WS-17", "alice")
    stage = worker(db, clock)
    at = ingest(
        db,
        clock,
        T0 + 10 * MINUTE,
        [(clinic, detection(PS_ENCODED, T0 + m * MINUTE, ws17)) for m in (0, 1, 2)],
    )
    assert stage.run_once(at).detections == 3
    cursor = cursor_of(db)
    before = snapshot(db, [clinic])

    again = stage.run_once(at + MINUTE)
    assert (again.detections, again.alerts_written, again.incidents_created) == (0, 0, 0)
    assert again.cursor == cursor
    assert snapshot(db, [clinic]) == before

    # stored while the stage was down: a restarted stage triages it, and only it
    at = ingest(db, clock, T0 + 20 * MINUTE, [(clinic, detection(LSASS, T0 + 15 * MINUTE, ws17))])
    restarted = worker(db, clock)
    batch = restarted.run_once(at)
    assert (batch.detections, batch.incidents_created, batch.incidents_updated) == (1, 0, 1)
    assert restarted.run_once(at + MINUTE).detections == 0

    # a repeat after the restart continues the stored alert (count 4), it does not open a second one
    at = ingest(db, clock, T0 + 30 * MINUTE, [(clinic, detection(PS_ENCODED, T0 + 25 * MINUTE, ws17))])
    another = worker(db, clock)
    assert another.run_once(at).detections == 1

    alerts = {a.rule_id: a for a in db.alerts.list(clinic)}
    assert set(alerts) == {"ps-encoded", "lsass-access"}
    assert alerts["ps-encoded"].count == 4
    assert alerts["lsass-access"].count == 1
    [incident] = db.incidents.list([clinic])
    assert set(incident.alert_ids) == {a.id for a in alerts.values()}
    assert cursor_of(db) == cursor + 2
    assert db.detections.count(clinic) == 5
    kinds = [e.kind for e in db.incidents.timeline(clinic, incident.id)]
    assert kinds == ["created", "alert_attached"]


def test_a_failed_batch_write_leaves_nothing_and_the_retry_matches_a_clean_run(
    db: Database,
    clock: FakeClock,
    clinic: TenantId,
    reference_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws17, srv = host_event("WS-17", "alice"), host_event("SRV-02", "alice")
    stream = [
        (PS_ENCODED, 0, ws17),
        (PS_ENCODED, 1, ws17),
        (LSASS, 2, ws17),
        (PSEXEC, 3, srv),  # second batch: attaches through the user
        (PS_ENCODED, 4, ws17),  # second batch: a repeat of the first alert
        (LSASS, 5, host_event("WS-88", "carol")),  # second batch: a new incident
    ]

    def run(database: Database, its_clock: FakeClock, tenant: TenantId) -> TriageWorker:
        rows = [(tenant, detection(rule, T0 + m * MINUTE, event)) for rule, m, event in stream]
        ingest(database, its_clock, T0 + 10 * MINUTE, rows)
        return worker(database, its_clock, batch_size=3)

    # the clean run, on its own database
    ref_clock = FakeClock(T0)
    with fx.opened(reference_url, ref_clock) as reference:
        ref_tenant = make_tenant(reference, "clinic", tier="premium", vertical="healthcare")
        ref_stage = run(reference, ref_clock, ref_tenant)
        ref_stage.run_once(T0 + 10 * MINUTE)
        after_first = snapshot(reference, [ref_tenant])
        ref_stage.run_once(T0 + 10 * MINUTE)
        clean = snapshot(reference, [ref_tenant])
        clean_risk = {i.id: i.risk for i in reference.incidents.list([ref_tenant])}

    stage = run(db, clock, clinic)
    stage.run_once(T0 + 10 * MINUTE)
    assert snapshot(db, [clinic]) == after_first

    real = triage_stage.advance_cursor
    calls: list[int] = []

    def fail_once(connection: Connection, name: str, position: int, *, at: Any) -> None:
        calls.append(position)
        if len(calls) == 1:
            raise RuntimeError("injected: the database went away mid-batch")
        real(connection, name, position, at=at)

    monkeypatch.setattr(triage_stage, "advance_cursor", fail_once)
    with pytest.raises(RuntimeError, match="injected"):
        stage.run_once(T0 + 10 * MINUTE)
    # nothing of the failed batch is stored: not its alerts, incidents, timeline entries or cursor
    assert snapshot(db, [clinic]) == after_first

    retry = stage.run_once(T0 + 10 * MINUTE)
    assert (retry.detections, retry.incidents_created, retry.incidents_updated) == (3, 1, 1)
    assert snapshot(db, [clinic]) == clean
    assert stage.run_once(T0 + 11 * MINUTE).detections == 0
    # risk scores too, but for rarity: the rebuilt engine forgot the first batch's rule counts, so a
    # retried batch's rarity may only be higher (the documented restart behaviour of triage/scoring.py)
    risk = {i.id: i.risk for i in db.incidents.list([clinic])}
    assert set(risk) == set(clean_risk)
    for incident_id, score in risk.items():
        mine = {f.name: f.points for f in score.factors}
        theirs = {f.name: f.points for f in clean_risk[incident_id].factors}
        assert mine["rarity"] >= theirs.pop("rarity")
        del mine["rarity"]
        assert mine == theirs


# -- auto-close, reopen, risk -------------------------------------------------------------------------
def test_an_auto_close_policy_closes_a_matching_alert_with_its_reason_and_makes_no_incident(
    db: Database, clock: FakeClock, clinic: TenantId
) -> None:
    stage = worker(db, clock, policies=[DEFENDER_POLICY])
    benign = host_event(
        "WS-17",
        process={
            "executable": f"{DEFENDER}\\MpCmdRun.exe",
            "parent": {"executable": f"{DEFENDER}\\MsMpEng.exe"},
        },
    )
    lookalike = host_event(
        "WS-17",
        process={
            "executable": f"{DEFENDER}\\MpCmdRun.exe",
            "parent": {"executable": "C:\\Windows\\explorer.exe"},
        },
    )
    at = ingest(
        db,
        clock,
        T0 + 10 * MINUTE,
        [
            (clinic, detection(DEFENDER_TOOL, T0, benign)),
            (clinic, detection(DEFENDER_TOOL, T0 + MINUTE, benign)),  # the same benign activity: same alert
        ],
    )
    result = stage.run_once(at)
    assert (result.detections, result.incidents_created) == (2, 0)
    [closed] = db.alerts.list(clinic)
    assert closed.status == "auto_closed"
    assert closed.count == 2
    assert closed.incident_id is None
    assert closed.closed_reason == (
        "auto-closed by policy defender-own-tool: Defender's own MpCmdRun started by MsMpEng"
    )
    assert db.incidents.count(clinic) == 0

    # the same tool started by something else is not the benign pattern: its own alert and incident
    at = ingest(
        db, clock, T0 + 20 * MINUTE, [(clinic, detection(DEFENDER_TOOL, T0 + 15 * MINUTE, lookalike))]
    )
    assert stage.run_once(at).incidents_created == 1
    statuses = sorted(a.status for a in db.alerts.list(clinic))
    assert statuses == ["auto_closed", "incident"]


def test_a_closed_incident_is_reopened_by_a_new_matching_alert_within_the_reopen_window(
    db: Database, clock: FakeClock, clinic: TenantId
) -> None:
    stage = worker(db, clock)
    cases = CaseService(db, fx.TIERS, roster=fx.ROSTER, observer=stage.observe_incident, clock=clock)
    ws17 = host_event("WS-17", "alice")
    at = ingest(db, clock, T0 + 5 * MINUTE, [(clinic, detection(PS_ENCODED, T0, ws17))])
    stage.run_once(at)
    [incident] = db.incidents.list([clinic])

    emil = cases.actor("emil")  # in-house T2
    closed_at = clock.now = T0 + 60 * MINUTE
    outcome = cases.transition(
        emil, clinic, incident.id, "closed_false_positive", closure_reason="admin testing", now=closed_at
    )
    assert outcome.accepted

    # three days later the same technique on the same host: reopened, not a new incident
    later = T0 + timedelta(days=3)
    at = ingest(db, clock, later, [(clinic, detection(PS_ENCODED, later - 10 * MINUTE, ws17))])
    result = stage.run_once(at)
    assert (result.incidents_created, result.incidents_updated) == (0, 1)
    [reopened] = db.incidents.list([clinic])
    assert reopened.id == incident.id
    assert reopened.state == "investigating"
    assert reopened.closure_reason is None
    assert reopened.closed_at == closed_at  # the first closure is kept
    assert len(reopened.alert_ids) == 2
    timeline = db.incidents.timeline(clinic, incident.id)
    assert [(e.kind, e.actor) for e in timeline[-3:]] == [
        ("alert_attached", SYSTEM.id),
        ("state_changed", SYSTEM.id),
        ("reopened", SYSTEM.id),
    ]
    assert timeline[-1].at == later


def test_after_a_restart_an_old_incident_closed_recently_is_still_reopened(
    db: Database, clock: FakeClock, clinic: TenantId
) -> None:
    # regression: the stage seeded closed incidents by created_at (>= now - 8 d), not by closed_at
    stage = worker(db, clock)
    cases = CaseService(db, fx.TIERS, roster=fx.ROSTER, observer=stage.observe_incident, clock=clock)
    ws17 = host_event("WS-17", "alice")
    at = ingest(db, clock, T0 + 5 * MINUTE, [(clinic, detection(PS_ENCODED, T0, ws17))])
    stage.run_once(at)
    [incident] = db.incidents.list([clinic])
    closed_at = clock.now = T0 + timedelta(days=9)  # worked for 9 days, then closed
    assert cases.transition(
        cases.actor("emil"), clinic, incident.id, "closed_false_positive", closure_reason="x", now=closed_at
    ).accepted

    later = T0 + timedelta(days=10)  # one day after the closure: well inside the 7-day reopen window
    at = ingest(db, clock, later, [(clinic, detection(PS_ENCODED, later - MINUTE, ws17))])
    worker(db, clock).run_once(at)  # a restarted stage
    assert [i.id for i in db.incidents.list([clinic])] == [incident.id]
    assert db.incidents.get(clinic, incident.id).state == "investigating"


def test_repeats_of_an_alert_of_a_merged_incident_go_to_the_merge_target(
    db: Database, clock: FakeClock, clinic: TenantId
) -> None:
    stage = worker(db, clock)
    cases = CaseService(
        db,
        fx.TIERS,
        observer=stage.observe_incident,
        alert_observer=stage.replace_alert,
        suppressions_changed=stage.set_suppressions,
        clock=clock,
    )
    at = ingest(
        db,
        clock,
        T0 + 5 * MINUTE,
        [
            (clinic, detection(PS_ENCODED, T0, host_event("WS-1", "alice"))),
            (clinic, detection(LSASS, T0 + MINUTE, host_event("WS-2", "bob"))),
        ],
    )
    stage.run_once(at)
    first, second = db.incidents.list([clinic])
    target = cases.merge(OPERATOR, clinic, first.id, [second.id], now=at)
    for n in range(2):  # the LSASS alert keeps firing on WS-2
        moment = at + (n + 1) * 5 * MINUTE
        ingest(db, clock, moment, [(clinic, detection(LSASS, moment - MINUTE, host_event("WS-2", "bob")))])
        stage.run_once(moment)
    lsass = next(a for a in db.alerts.list(clinic) if a.rule_id == "lsass-access")
    assert lsass.count == 3
    assert lsass.incident_id == target.id
    assert db.incidents.count(clinic) == 2  # the target and the merged source, nothing new


def test_repeats_of_a_split_off_alert_stay_on_the_new_incident(
    db: Database, clock: FakeClock, clinic: TenantId
) -> None:
    stage = worker(db, clock)
    cases = CaseService(
        db,
        fx.TIERS,
        observer=stage.observe_incident,
        alert_observer=stage.replace_alert,
        suppressions_changed=stage.set_suppressions,
        clock=clock,
    )
    ws1 = host_event("WS-1", "alice")
    rows = [(clinic, detection(PS_ENCODED, T0, ws1)), (clinic, detection(LSASS, T0 + MINUTE, ws1))]
    at = ingest(db, clock, T0 + 5 * MINUTE, rows)
    stage.run_once(at)
    [incident] = db.incidents.list([clinic])
    lsass = next(a for a in db.alerts.list(clinic) if a.rule_id == "lsass-access")
    remaining, split_off = cases.split(OPERATOR, clinic, incident.id, [lsass.id], now=at)
    assert lsass.id not in remaining.alert_ids

    moment = at + 5 * MINUTE  # the LSASS alert fires again
    ingest(db, clock, moment, [(clinic, detection(LSASS, moment - MINUTE, ws1))])
    stage.run_once(moment)
    repeated = db.alerts.get(clinic, lsass.id)
    assert repeated.count == 2
    assert repeated.incident_id == split_off.id
    assert lsass.id not in db.incidents.get(clinic, incident.id).alert_ids


def test_asset_criticality_from_the_inventory_raises_the_risk_of_the_same_rule(
    db: Database, clock: FakeClock, clinic: TenantId
) -> None:
    db.assets.upsert(
        clinic, kind="host", name="EHR-DB01.clinic.local", criticality="critical", actor=fx.ACTOR
    )
    db.assets.upsert(clinic, kind="host", name="ws-kiosk", criticality="low", actor=fx.ACTOR)
    stage = worker(db, clock, rule_statuses={"ps-encoded": "stable"})
    rows = [
        (clinic, detection(PS_ENCODED, T0, host_event("WS-UNKNOWN"))),
        (clinic, detection(PS_ENCODED, T0 + MINUTE, host_event("ehr-db01"))),
    ]
    at = ingest(db, clock, T0 + 5 * MINUTE, rows)
    stage.run_once(at)
    alerts = {a.entities[0].value: a for a in db.alerts.list(clinic)}
    unknown, critical = alerts["ws-unknown"].risk, alerts["ehr-db01"].risk
    unknown_factors = {f.name: f.points for f in unknown.factors}
    critical_factors = {f.name: f for f in critical.factors}
    assert unknown_factors["asset_criticality"] == 0
    assert critical_factors["asset_criticality"].points == 20
    assert (
        critical_factors["asset_criticality"].detail == "host ehr-db01 is critical in the tenant's inventory"
    )
    # high rule 45 + stable 10 + criticality + no intel + execution is no data-theft tactic + rarity
    # (first hit of the tenant: 1 - 1/20 -> 9.5; second: 1 - 2/20 -> 9.0)
    assert unknown.score == round(45 + 10 + 0 + 9.5) == 64
    assert critical.score == round(45 + 10 + 20 + 9.0) == 84
    assert critical.score > unknown.score
    incidents = {i.title: i for i in db.incidents.list([clinic])}
    assert incidents["ps-encoded on host ehr-db01"].risk.score == 84
