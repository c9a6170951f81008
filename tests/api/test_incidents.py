"""Case work over the admin API, on real components: SQLite storage, incidents made by the real triage stage
from stored detections, the real `CaseService` with the shipped tiers and the example SOC roster.

Who is who (`content/soc/roster.example.yml`): `pia` is an outsourced partner T1 (nightwatch: clinic, bakery,
dental-smile, lawfirm-kb), `ben` an in-house T2 (all tenants), `dm-emea` a duty manager. The tenants are
`clinic` (standard tier, the partner's) and `lawfirm-ms` (premium, not the partner's). The clock starts on
Wednesday 2026-12-02 09:00 UTC (the EMEA day shift is on duty) and moves only when a test moves it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import AdminToken, problem
from watchfloor.api import create_api_app
from watchfloor.cases.soc import load_roster
from watchfloor.cases.tiers import load_tiers
from watchfloor.core.content import content_dir
from watchfloor.core.types import RuleId, RuleLevel, TenantId
from watchfloor.server.cases import CaseService
from watchfloor.server.triage_stage import TriageWorker
from watchfloor.storage import Contact, Database, NewDetection
from watchfloor.storage.incidents import TenantSettings

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
CREATED = T0 + timedelta(seconds=1)  # the triage run that opens the incidents
AUTHORS = {"r-lsass": "Jane Doe", "r-ps": "Florian Roth"}
PARTNER = {"X-Watchfloor-Actor": "pia"}
T2 = {"X-Watchfloor-Actor": "ben"}
MANAGER = {"X-Watchfloor-Actor": "dm-emea"}
V1 = "/api/v1"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass(frozen=True, slots=True)
class World:
    api: TestClient
    db: Database
    clock: Clock
    cases: CaseService
    critical: str  # clinic, ws-17: LSASS (critical, Jane Doe) + PowerShell (high, Florian Roth)
    ws99: str  # clinic, ws-99: PowerShell (high)
    law: str  # lawfirm-ms, dc01: PowerShell (high)

    def url(self, incident_id: str, tail: str = "") -> str:
        tenant = "lawfirm-ms" if incident_id == self.law else "clinic"
        return f"{V1}/tenants/{tenant}/incidents/{incident_id}{tail}"

    def incident(self, incident_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.api.get(self.url(incident_id)).json()["incident"]
        return body

    def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.api.get(self.url(incident_id, "/timeline")).json()
        return entries

    def alert_id(self, rule_id: str, host: str) -> str:
        for alert in self.api.get(f"{V1}/tenants/{_tenant_of(host)}/alerts").json():
            if alert["rule_id"] == rule_id and {"kind": "host", "value": host} in alert["entities"]:
                return str(alert["id"])
        raise AssertionError(f"no {rule_id} alert on {host}")


def _tenant_of(host: str) -> str:
    return "lawfirm-ms" if host == "dc01" else "clinic"


def _detection(rule_id: str, title: str, level: RuleLevel, host: str, user: str, key: str) -> NewDetection:
    return NewDetection(
        rule_id=RuleId(rule_id),
        rule_version="1",
        rule_title=title,
        rule_level=level,
        event_key=key,
        source="ws.evtx",
        record_id=key,
        event_time=T0 - timedelta(minutes=5),
        matched_at=T0,
        event={"host": {"name": host}, "user": {"name": user}, "process": {"name": "powershell.exe"}},
        tags=("attack.t1059.001", "attack.execution"),
    )


@pytest.fixture
def world(tmp_path: Path, migrated_db: Path, admin_token: AdminToken) -> Iterator[World]:
    clock = Clock(T0)
    path = tmp_path / "w.db"
    shutil.copy(migrated_db, path)
    db = Database.open(f"sqlite:///{path}", clock=clock)
    contacts = [Contact(name="Sam Ng", email="sam@clinic.example", role="IT", escalation_order=1)]
    db.tenants.create(
        "clinic",
        name="Northside Clinic",
        vertical="healthcare",
        tier="standard",
        contacts=contacts,
        actor="t",
    )
    db.tenants.create("lawfirm-ms", name="Hart & Gale", vertical="legal", tier="premium", actor="t")
    db.detections.insert_many(
        TenantId("clinic"),
        [
            _detection("r-lsass", "LSASS access", "critical", "ws-17", "alice", "k1"),
            _detection("r-ps", "Suspicious PowerShell", "high", "ws-17", "alice", "k2"),
            _detection("r-ps", "Suspicious PowerShell", "high", "ws-99", "bob", "k3"),
        ],
    )
    db.detections.insert_many(
        TenantId("lawfirm-ms"), [_detection("r-ps", "Suspicious PowerShell", "high", "dc01", "carol", "k4")]
    )
    clock.advance(1)
    batch = TriageWorker(db, rule_authors=AUTHORS, clock=clock).run_once(clock())
    assert (batch.detections, batch.incidents_created) == (4, 3)
    by_host = {i.entities[0].value: i.id for i in db.incidents.list(None)}
    service = CaseService(
        db, load_tiers(), roster=load_roster(content_dir() / "soc" / "roster.example.yml"), clock=clock
    )
    app = create_api_app(
        db, archive_root=tmp_path / "archive", admin_token_sha256=admin_token.sha256, cases=service
    )
    try:
        yield World(
            api=TestClient(app, headers=admin_token.headers),
            db=db,
            clock=clock,
            cases=service,
            critical=by_host["ws-17"],
            ws99=by_host["ws-99"],
            law=by_host["dc01"],
        )
    finally:
        db.close()


# -- reading ---------------------------------------------------------------------------------------------
def test_list_and_show_incidents_with_rule_authors_and_risk_factors(world: World) -> None:
    api = world.api
    listed = api.get(f"{V1}/incidents").json()
    assert sorted(i["id"] for i in listed) == sorted([world.critical, world.ws99, world.law])
    assert {i["id"] for i in api.get(f"{V1}/tenants/clinic/incidents").json()} == {world.critical, world.ws99}
    assert [i["id"] for i in api.get(f"{V1}/incidents", params={"tenant": "lawfirm-ms"}).json()] == [
        world.law
    ]
    assert api.get(f"{V1}/incidents", params={"state": "acknowledged"}).json() == []
    assert len(api.get(f"{V1}/incidents", params={"state": ["new", "acknowledged"]}).json()) == 3
    assert len(api.get(f"{V1}/incidents", params={"limit": 1}).json()) == 1
    assert api.get(f"{V1}/incidents", params={"since": "2026-12-02T09:00:02"}).json() == []

    detail = api.get(world.url(world.critical)).json()
    incident = detail["incident"]
    assert incident["tenant_id"] == "clinic"
    assert (incident["state"], incident["severity"], incident["queue_tier"]) == ("new", "critical", "T1")
    assert incident["created_at"] == "2026-12-02T09:00:01Z"
    assert incident["first_event_at"] == "2026-12-02T08:55:00Z"
    assert {"kind": "host", "value": "ws-17"} in incident["entities"]
    assert incident["techniques"] == ["T1059.001"]
    assert incident["risk"]["score"] == max(a["risk"]["score"] for a in detail["alerts"])

    alerts = {a["rule_id"]: a for a in detail["alerts"]}
    assert set(alerts) == {"r-lsass", "r-ps"}
    assert (alerts["r-lsass"]["rule_title"], alerts["r-lsass"]["rule_author"]) == ("LSASS access", "Jane Doe")
    assert (alerts["r-ps"]["rule_title"], alerts["r-ps"]["rule_author"]) == (
        "Suspicious PowerShell",
        "Florian Roth",
    )
    factors = {f["name"]: f for f in alerts["r-lsass"]["risk"]["factors"]}
    assert factors["rule_level"]["points"] == 60.0
    assert factors["rule_level"]["detail"] == "the rule's level is critical"
    assert {"confidence", "asset_criticality", "intel", "vertical", "rarity"} <= set(factors)
    assert alerts["r-lsass"]["risk"]["score"] == round(sum(f["points"] for f in factors.values()))
    assert all(a["status"] == "incident" and a["incident_id"] == world.critical for a in detail["alerts"])

    sla = {s["metric"]: s for s in detail["sla"]}
    assert sla["acknowledge"]["target_seconds"] == 1800  # standard tier, critical: 30 min
    assert sla["acknowledge"]["state"] == "running"
    assert sla["acknowledge"]["due_at"] == "2026-12-02T09:30:01Z"
    assert sla["notify"]["target_seconds"] == 3600
    assert sla["contain"]["target_seconds"] == 4 * 3600
    assert "contain" in detail["allowed_actions"]  # the operator is an mssp_admin
    partner_view = api.get(world.url(world.critical), headers=PARTNER).json()
    assert partner_view["allowed_actions"] == ["acknowledge", "annotate", "escalate", "triage", "view"]

    created = world.timeline(world.critical)
    assert [e["kind"] for e in created] == ["created", "alert_attached"]
    assert created[0]["actor"] == "system"


def test_a_t2_acknowledges_then_investigates_and_contains(world: World) -> None:
    api = world.api
    world.clock.advance(300)
    acked = api.post(world.url(world.critical, "/acknowledge"), headers=T2)
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert (body["state"], body["acknowledged_by"], body["assignee"]) == ("acknowledged", "ben", "ben")
    assert body["acknowledged_at"] == "2026-12-02T09:05:01Z"

    world.clock.advance(60)
    investigating = api.post(
        world.url(world.critical, "/transition"),
        json={"to_state": "investigating", "reason": "LSASS read by an unsigned binary"},
        headers=T2,
    )
    assert investigating.status_code == 200, investigating.text
    assert investigating.json()["triaged_at"] == "2026-12-02T09:06:01Z"
    world.clock.advance(60)
    contained = api.post(
        world.url(world.critical, "/transition"),
        json={"to_state": "contained", "reason": "isolated ws-17 via EDR"},
        headers=T2,
    ).json()
    assert (contained["state"], contained["contained_at"]) == ("contained", "2026-12-02T09:07:01Z")

    changes = [e for e in world.timeline(world.critical) if e["kind"] == "state_changed"]
    assert [(e["actor"], e["details"]["from_state"], e["details"]["to_state"]) for e in changes] == [
        ("ben", "new", "acknowledged"),
        ("ben", "acknowledged", "investigating"),
        ("ben", "investigating", "contained"),
    ]
    assert changes[2]["summary"] == "ben: investigating -> contained: isolated ws-17 via EDR"
    audited = world.db.audit.list(TenantId("clinic"), action="incident.state_changed")
    assert [(a.actor, a.object_id, a.details["to_state"]) for a in reversed(audited)] == [
        ("ben", world.critical, "acknowledged"),
        ("ben", world.critical, "investigating"),
        ("ben", world.critical, "contained"),
    ]
    sla = {s["metric"]: s for s in api.get(world.url(world.critical)).json()["sla"]}
    assert (sla["acknowledge"]["state"], sla["acknowledge"]["elapsed_seconds"]) == ("met", 300.0)
    assert (sla["contain"]["state"], sla["contain"]["elapsed_seconds"]) == ("met", 420.0)


def test_the_partner_t1_triages_its_tenant_but_may_not_contain_or_see_other_tenants(world: World) -> None:
    api = world.api
    assert {i["id"] for i in api.get(f"{V1}/incidents", headers=PARTNER).json()} == {
        world.critical,
        world.ws99,
    }
    assert {r["incident_id"] for r in api.get(f"{V1}/queue", headers=PARTNER).json()} == {
        world.critical,
        world.ws99,
    }

    acked = api.post(world.url(world.critical, "/acknowledge"), headers=PARTNER)
    assert acked.status_code == 200, acked.text
    assert (acked.json()["state"], acked.json()["acknowledged_by"]) == ("acknowledged", "pia")
    note = api.post(
        world.url(world.critical, "/notes"),
        json={"text": "lsass dump pattern, handing to T2"},
        headers=PARTNER,
    )
    assert note.status_code == 201, note.text
    assert note.json()["author"] == "pia"

    denied = problem(
        api.post(world.url(world.critical, "/transition"), json={"to_state": "contained"}, headers=PARTNER),
        403,
        "cases.permission_denied",
    )
    assert denied["rule"] == "AuthorizeTransition"
    assert "may not contain" in denied["detail"]
    assert world.incident(world.critical)["state"] == "acknowledged"
    assert world.timeline(world.critical)[-1]["kind"] == "transition_rejected"  # the attempt is audited

    escalated = api.post(
        world.url(world.critical, "/escalate"),
        json={"to_tier": "T2", "reason": "credential theft needs T2"},
        headers=PARTNER,
    ).json()
    assert (escalated["queue_tier"], escalated["assignee"]) == ("T2", None)
    problem(
        api.post(
            f"{V1}/tenants/clinic/incidents/{world.ws99}/merge",
            json={"sources": [world.critical]},
            headers=PARTNER,
        ),
        403,
        "cases.permission_denied",
    )
    problem(
        api.post(
            f"{V1}/tenants/clinic/alerts/{world.alert_id('r-ps', 'ws-99')}/suppress",
            json={"fields": ["host.name"], "reason": "admin script"},
            headers=PARTNER,
        ),
        403,
        "cases.permission_denied",
    )

    # another tenant: 403 whether or not the incident exists, and nothing is written there
    before = world.timeline(world.law)
    for method, tail, body in [
        ("GET", "", None),
        ("GET", "/timeline", None),
        ("POST", "/acknowledge", None),
        ("POST", "/transition", {"to_state": "acknowledged"}),
        ("POST", "/notes", {"text": "peek"}),
    ]:
        refused = problem(
            api.request(method, world.url(world.law, tail), json=body, headers=PARTNER),
            403,
            "cases.permission_denied",
        )
        assert "outside its tenants" in refused["detail"]
    problem(api.get(f"{V1}/tenants/lawfirm-ms/incidents/inc-nope", headers=PARTNER), 403)
    problem(api.get(f"{V1}/tenants/lawfirm-ms/incidents", headers=PARTNER), 403, "cases.permission_denied")
    problem(api.get(f"{V1}/queue", params={"tenant": "lawfirm-ms"}, headers=PARTNER), 403)
    assert world.timeline(world.law) == before
    assert world.incident(world.law)["state"] == "new"
    assert all(a.actor != "pia" for a in world.db.audit.list(TenantId("lawfirm-ms")))
    # the other tenant's incident through the partner's own tenant: not found, like a missing one
    problem(api.get(f"{V1}/tenants/clinic/incidents/{world.law}", headers=PARTNER), 404, "storage.not_found")
    problem(api.post(f"{V1}/tenants/clinic/incidents/{world.law}/acknowledge"), 404, "storage.not_found")


def test_rejected_and_delayed_transitions_are_409_and_on_the_timeline(world: World) -> None:
    api = world.api
    rejected = problem(
        api.post(world.url(world.critical, "/transition"), json={"to_state": "resolved"}),
        409,
        "cases.transition_rejected",
    )
    assert (
        rejected["detail"]
        == "no transition from new to resolved; from new: acknowledged, closed_false_positive, contained"
    )
    assert (rejected["rule"], rejected["state"]) == ("EnforceTransitionGraph", "new")
    last = world.timeline(world.critical)[-1]
    assert (last["kind"], last["actor"]) == ("transition_rejected", "operator")
    assert last["details"] == {
        "from_state": "new",
        "to_state": "resolved",
        "rule": "EnforceTransitionGraph",
        "reason": rejected["detail"],
    }
    assert world.incident(world.critical)["state"] == "new"

    no_reason = problem(
        api.post(world.url(world.critical, "/transition"), json={"to_state": "closed_false_positive"}),
        409,
        "cases.transition_rejected",
    )
    assert no_reason["rule"] == "RequireClosureReason"

    for step in ("acknowledged", "investigating"):
        assert api.post(world.url(world.critical, "/transition"), json={"to_state": step}).status_code == 200
    unnotified = problem(
        api.post(world.url(world.critical, "/transition"), json={"to_state": "resolved"}), 409
    )
    assert unnotified["rule"] == "NotifyCustomerBeforeResolving"
    notified = api.post(world.url(world.critical, "/notify"), json={"channel": "phone"}).json()
    assert notified["notified_at"] == "2026-12-02T09:00:01Z"
    resolved = api.post(world.url(world.critical, "/transition"), json={"to_state": "resolved"}).json()
    assert resolved["state"] == "resolved"

    world.clock.advance(3600)
    response = api.post(
        world.url(world.critical, "/transition"),
        json={"to_state": "closed_true_positive", "closure_reason": "credential theft contained"},
    )
    delayed = problem(response, 409, "cases.transition_delayed")
    assert delayed["rule"] == "WatchBeforeClosing"
    assert delayed["until"] == "2026-12-03T09:00:01+00:00"  # resolved_at + 24 h
    assert delayed["retry_after"] == 23 * 3600
    assert response.headers["Retry-After"] == str(23 * 3600)
    assert world.timeline(world.critical)[-1]["kind"] == "transition_delayed"
    assert world.incident(world.critical)["state"] == "resolved"


def test_notes_and_evidence_are_201_and_on_the_timeline(world: World) -> None:
    api = world.api
    note = api.post(
        world.url(world.ws99, "/notes"),
        json={"text": "bob ran an admin script\nsecond line", "visible_to_customer": True},
        headers=T2,
    )
    assert note.status_code == 201, note.text
    assert note.json() == {
        "incident_id": world.ws99,
        "tenant_id": "clinic",
        "at": "2026-12-02T09:00:01Z",
        "author": "ben",
        "text": "bob ran an admin script\nsecond line",
        "visible_to_customer": True,
    }
    evidence = api.post(
        world.url(world.ws99, "/evidence"),
        json={"kind": "file", "reference": "sha256:" + "ab" * 32, "description": "the script"},
        headers=T2,
    )
    assert evidence.status_code == 201, evidence.text
    assert (evidence.json()["kind"], evidence.json()["author"]) == ("file", "ben")
    assert [n["text"] for n in api.get(world.url(world.ws99, "/notes")).json()] == [
        "bob ran an admin script\nsecond line"
    ]
    assert [e["description"] for e in api.get(world.url(world.ws99, "/evidence")).json()] == ["the script"]
    kinds = [(e["kind"], e["summary"]) for e in world.timeline(world.ws99)][-2:]
    assert kinds == [
        ("note", "ben noted: bob ran an admin script"),
        ("evidence", f"ben added file evidence sha256:{'ab' * 32}"),
    ]
    problem(api.post(world.url(world.ws99, "/notes"), json={"text": "   "}), 409, "cases.empty_note")
    problem(api.post(world.url(world.ws99, "/notes"), json={"txt": "typo"}), 422, "api.invalid_request")
    assert len(api.get(world.url(world.ws99, "/notes")).json()) == 1


def test_assign_and_escalate(world: World) -> None:
    api = world.api
    assigned = api.post(world.url(world.ws99, "/assign"), json={"analyst_id": "emil"}, headers=T2).json()
    assert assigned["assignee"] == "emil"
    problem(
        api.post(world.url(world.law, "/assign"), json={"analyst_id": "pia"}), 409, "cases.assign_invalid"
    )
    problem(
        api.post(world.url(world.ws99, "/assign"), json={"analyst_id": "emil"}, headers=PARTNER),
        403,
        "cases.permission_denied",
    )
    assert api.post(world.url(world.ws99, "/assign"), json={"analyst_id": None}).json()["assignee"] is None
    problem(api.post(world.url(world.ws99, "/assign"), json={}), 422)
    escalated = api.post(
        world.url(world.ws99, "/escalate"), json={"to_tier": "T3", "reason": "looks targeted"}
    ).json()
    assert escalated["queue_tier"] == "T3"
    problem(
        api.post(world.url(world.ws99, "/escalate"), json={"to_tier": "T2", "reason": "lower"}),
        409,
        "cases.escalation_invalid",
    )
    assert [e["kind"] for e in world.timeline(world.ws99)][-3:] == ["assigned", "assigned", "escalated"]


# -- alerts and suppressions -------------------------------------------------------------------------------
def test_suppress_from_an_alert_closes_it_and_is_audited(world: World) -> None:
    api = world.api
    alert_id = world.alert_id("r-ps", "ws-99")
    response = api.post(
        f"{V1}/tenants/clinic/alerts/{alert_id}/suppress",
        json={"fields": ["host.name", "user.name"], "reason": "bob's nightly admin script"},
        headers=T2,
    )
    assert response.status_code == 201, response.text
    suppression = response.json()
    assert suppression["conditions"] == [
        {"field": "host.name", "op": "equals", "value": "ws-99"},
        {"field": "user.name", "op": "equals", "value": "bob"},
    ]
    assert (suppression["rule_id"], suppression["author"], suppression["enabled"]) == ("r-ps", "ben", True)
    sup_id = suppression["id"]

    alert = next(a for a in api.get(f"{V1}/tenants/clinic/alerts").json() if a["id"] == alert_id)
    assert alert["status"] == "suppressed"
    assert alert["closed_reason"] == f"suppressed by {sup_id} (ben): bob's nightly admin script"
    assert alert["incident_id"] == world.ws99
    by_incident = api.get(f"{V1}/tenants/clinic/alerts", params={"incident_id": world.ws99}).json()
    assert [a["id"] for a in by_incident] == [alert_id]
    last = world.timeline(world.ws99)[-1]
    assert (last["kind"], last["actor"]) == ("suppression_created", "ben")
    assert last["details"] == {"suppression_id": sup_id, "alert_id": alert_id}

    created = world.db.audit.list(TenantId("clinic"), action="suppression.create")
    assert [(a.actor, a.object_id, a.details["reason"]) for a in created] == [
        ("ben", sup_id, "bob's nightly admin script")
    ]
    assert [
        a.object_id for a in world.db.audit.list(TenantId("clinic"), action="incident.suppression_created")
    ] == [world.ws99]

    assert [s["id"] for s in api.get(f"{V1}/tenants/clinic/suppressions").json()] == [sup_id]
    assert api.get(f"{V1}/tenants/lawfirm-ms/suppressions").json() == []
    problem(api.delete(f"{V1}/tenants/clinic/suppressions/{sup_id}"), 422, "api.reason_required")
    problem(
        api.request("DELETE", f"{V1}/tenants/lawfirm-ms/suppressions/{sup_id}", json={"reason": "x"}),
        404,
        "storage.not_found",
    )
    gone = api.request(
        "DELETE", f"{V1}/tenants/clinic/suppressions/{sup_id}", json={"reason": "script retired"}, headers=T2
    )
    assert gone.status_code == 204, gone.text
    assert api.get(f"{V1}/tenants/clinic/suppressions").json()[0]["enabled"] is False
    disabled = world.db.audit.list(TenantId("clinic"), action="suppression.disable")
    assert [(a.actor, a.details) for a in disabled] == [("ben", {"reason": "script retired"})]
    assert (
        api.delete(f"{V1}/tenants/clinic/suppressions/{sup_id}", params={"reason": "again"}).status_code
        == 204
    )


def test_suppress_refusals(world: World) -> None:
    api = world.api
    alert_id = world.alert_id("r-ps", "ws-99")
    url = f"{V1}/tenants/clinic/alerts/{alert_id}/suppress"
    bad_field = problem(
        api.post(url, json={"fields": ["registry.path"], "reason": "x"}), 400, "triage.condition_invalid"
    )
    assert "has no value" in bad_field["detail"]
    problem(api.post(url, json={"fields": ["host.name"], "reason": " "}), 400, "triage.condition_invalid")
    law_alert = world.alert_id("r-ps", "dc01")
    problem(
        api.post(f"{V1}/tenants/clinic/alerts/{law_alert}/suppress", json={"fields": [], "reason": "x"}),
        404,
        "storage.not_found",
    )
    assert api.get(f"{V1}/tenants/clinic/suppressions").json() == []
    assert next(a for a in api.get(f"{V1}/tenants/clinic/alerts").json() if a["id"] == alert_id)[
        "status"
    ] == ("incident")


# -- merge, split, link -----------------------------------------------------------------------------------
def test_split_merge_and_link(world: World) -> None:
    api = world.api
    ps_alert = world.alert_id("r-ps", "ws-17")
    lsass_alert = world.alert_id("r-lsass", "ws-17")
    split = api.post(world.url(world.critical, "/split"), json={"alert_ids": [ps_alert]}, headers=T2)
    assert split.status_code == 201, split.text
    remaining, new = split.json()["remaining"], split.json()["new"]
    assert (remaining["id"], remaining["alert_ids"]) == (world.critical, [lsass_alert])
    assert new["id"].startswith(f"{world.critical}-s")
    assert (new["alert_ids"], new["severity"], new["state"]) == ([ps_alert], "high", "new")
    assert new["linked"] == [world.critical]
    assert remaining["linked"] == [new["id"]]
    moved = api.get(f"{V1}/tenants/clinic/alerts", params={"incident_id": new["id"]}).json()
    assert [(a["id"], a["rule_author"]) for a in moved] == [(ps_alert, "Florian Roth")]
    problem(
        api.post(world.url(world.critical, "/split"), json={"alert_ids": [lsass_alert]}, headers=T2),
        409,
        "cases.split_invalid",
    )
    problem(
        api.post(world.url(world.critical, "/split"), json={"alert_ids": [lsass_alert]}, headers=PARTNER),
        403,
        "cases.permission_denied",
    )

    linked = api.post(world.url(world.critical, "/link"), json={"other": world.ws99}).json()
    assert world.ws99 in linked["linked"]
    assert world.critical in world.incident(world.ws99)["linked"]
    problem(api.post(world.url(world.critical, "/link"), json={"other": world.law}), 404, "storage.not_found")

    merged = api.post(
        world.url(world.critical, "/merge"), json={"sources": [world.ws99, new["id"]]}, headers=T2
    )
    assert merged.status_code == 200, merged.text
    target = merged.json()
    assert set(target["alert_ids"]) == {lsass_alert, ps_alert, world.alert_id("r-ps", "ws-99")}
    assert world.incident(world.ws99)["merged_into"] == world.critical
    assert world.incident(new["id"])["merged_into"] == world.critical
    pointed = api.get(f"{V1}/tenants/clinic/alerts", params={"incident_id": world.critical}).json()
    assert len(pointed) == 3
    assert world.timeline(world.ws99)[-1]["summary"] == f"ben merged this incident into {world.critical}"
    problem(
        api.post(world.url(world.critical, "/merge"), json={"sources": [world.critical]}),
        409,
        "cases.merge_invalid",
    )
    problem(api.post(world.url(world.critical, "/merge"), json={"sources": []}), 422)
    # merged incidents leave the queue
    assert [r["incident_id"] for r in api.get(f"{V1}/queue", params={"tenant": "clinic"}).json()] == [
        world.critical
    ]


# -- the SOC: queue, metrics, sweep, credits, workload --------------------------------------------------
def test_queue_puts_breached_incidents_first(world: World) -> None:
    api = world.api
    fresh = api.get(f"{V1}/queue").json()
    assert [r["sla_state"] for r in fresh] == ["running", "running", "running"]
    world.clock.advance(45 * 60)
    rows = api.get(f"{V1}/queue").json()
    # critical (standard: ack 30 min) and lawfirm's high (premium: ack 30 min) are 15 min over; the
    # clinic's high (standard: ack 1 h) has 15 min left
    assert [r["incident_id"] for r in rows] == [world.critical, world.law, world.ws99]
    assert [(r["sla_metric"], r["sla_state"], r["sla_remaining_seconds"]) for r in rows] == [
        ("acknowledge", "breached", -900.0),
        ("acknowledge", "breached", -900.0),
        ("acknowledge", "warning", 900.0),  # 45 of 60 min: the 75 % warning
    ]
    assert rows[0]["sla_due_at"] == "2026-12-02T09:30:01Z"
    assert rows[2]["sla_due_at"] == "2026-12-02T10:00:01Z"
    # routing would hand the T1 work to dora (EMEA T1, on duty, windows skills)
    assert {r["suggested"] for r in rows} == {"dora"}
    assert all(r["assignee"] is None and r["reason"].startswith("T1 on duty") for r in rows)
    only = api.get(f"{V1}/queue", params={"tenant": "lawfirm-ms"}).json()
    assert [r["incident_id"] for r in only] == [world.law]
    problem(api.get(f"{V1}/queue", params={"tenant": "nobody"}), 404)


def test_soc_metrics_show_mtta_of_the_acknowledgement(world: World) -> None:
    api = world.api
    world.clock.advance(600)
    assert api.post(world.url(world.critical, "/acknowledge"), headers=T2).status_code == 200
    rows = api.get(f"{V1}/metrics/soc", params={"group_by": "tenant"}).json()
    assert [(r["group_by"], r["group"], r["incidents"]) for r in rows] == [
        ("tenant", "clinic", 2),
        ("tenant", "lawfirm-ms", 1),
    ]
    clinic, law = rows
    assert clinic["metrics"]["mtta"] == {
        "count": 1,
        "mean": 600.0,
        "median": 600.0,
        "p90": 600.0,
        "min": 600.0,
        "max": 600.0,
    }
    assert clinic["metrics"]["mttd"]["mean"] == 301.0  # first event 08:55:00, opened 09:00:01
    assert law["metrics"]["mtta"]["count"] == 0
    assert law["metrics"]["mtta"]["mean"] is None
    assert clinic["sla"]["acknowledge"] == {"met": 1, "missed": 0, "excluded": 1, "attainment_percent": 100.0}
    assert law["sla"]["acknowledge"]["attainment_percent"] is None

    by_analyst = api.get(f"{V1}/metrics/soc", params={"group_by": "analyst"}).json()
    assert [(r["group"], r["metrics"]["mtta"]["count"]) for r in by_analyst] == [
        ("ben", 1),
        ("unassigned", 0),
    ]
    overall = api.get(f"{V1}/metrics/soc", params={"tenant": "clinic"}).json()
    assert [(r["group_by"], r["group"], r["incidents"]) for r in overall] == [(None, None, 2)]
    monthly = api.get(f"{V1}/metrics/soc", params={"group_by": "period", "period": "month"}).json()
    assert [(r["group"], r["incidents"]) for r in monthly] == [("2026-12-01", 3)]
    scoped = api.get(f"{V1}/metrics/soc", params={"group_by": "tenant"}, headers=PARTNER).json()
    assert [r["group"] for r in scoped] == ["clinic"]
    problem(api.get(f"{V1}/metrics/soc", params={"group_by": "planet"}), 422)


def test_sla_sweep_records_breaches_on_the_timeline(world: World) -> None:
    api = world.api
    world.clock.advance(44 * 60)  # 09:44:01
    problem(api.post(f"{V1}/sla/sweep", headers=PARTNER), 403, "cases.permission_denied")
    problem(api.post(f"{V1}/sla/sweep", headers=T2), 403, "cases.permission_denied")
    assert world.db.sla.events(TenantId("clinic")) == []

    swept = api.post(f"{V1}/sla/sweep", headers=MANAGER)
    assert swept.status_code == 200, swept.text
    # clinic critical: acknowledge warning (22.5 min) + breach (30 min); lawfirm-ms high (premium, warn at
    # half): acknowledge warning + breach, notify warning (30 of 60 min). Both breached incidents go to T2.
    assert swept.json() == {"sla_events": 5, "escalations": 2, "assigned": 3, "handoffs": 0}

    timeline = world.timeline(world.critical)
    breach = next(e for e in timeline if e["kind"] == "sla_breached")
    assert (breach["actor"], breach["at"]) == ("system", "2026-12-02T09:30:01Z")
    assert breach["details"] == {"metric": "acknowledge", "target_seconds": 1800, "tier": "standard"}
    warning = next(e for e in timeline if e["kind"] == "sla_warning")
    assert warning["at"] == "2026-12-02T09:22:31Z"
    escalated = next(e for e in timeline if e["kind"] == "escalated")
    assert escalated["details"]["to_tier"] == "T2"
    incident = world.incident(world.critical)
    assert incident["queue_tier"] == "T2"
    assert incident["assignee"] is not None  # routed to an on-duty analyst of T2 or above
    assert world.incident(world.ws99)["assignee"] == "dora"

    again = api.post(f"{V1}/sla/sweep").json()
    assert again["sla_events"] == 0  # idempotent
    kinds = [(e.incident_id, e.metric, e.kind) for e in world.db.sla.events(TenantId("clinic"))]
    assert kinds == [
        (world.critical, "acknowledge", "sla_warning"),
        (world.critical, "acknowledge", "sla_breached"),
    ]


def test_credits_for_a_month_with_breaches(world: World) -> None:
    api = world.api
    world.db.settings.put(
        TenantSettings(
            tenant_id=TenantId("clinic"), contract={"monthly_fee_minor": 500_000, "currency": "EUR"}
        ),
        actor="t",
    )
    world.clock.advance(90 * 60)
    assert api.post(f"{V1}/sla/sweep").status_code == 200
    statement = api.get(f"{V1}/tenants/clinic/credits", params={"month": "2026-12"}).json()
    assert {k: v for k, v in statement.items() if k != "lines"} == {
        "month": "2026-12",
        "tenant_id": "clinic",
        "tier": "standard",
        "currency": "EUR",
        "monthly_fee_minor": 500_000,
        "cap_minor": 75_000,  # 15 %
        "total_minor": 40_000,
        "capped": False,
    }
    # standard: critical 3 %, high 2 % per breach. By 10:30:01 the critical incident missed acknowledge
    # (30 min) and notify (1 h), the clinic's high one acknowledge (1 h).
    assert [
        (line["incident_id"], line["metric"], line["severity"], line["amount_minor"], line["breached_at"])
        for line in statement["lines"]
    ] == [
        (world.critical, "acknowledge", "critical", 15_000, "2026-12-02T09:30:01Z"),
        (world.ws99, "acknowledge", "high", 10_000, "2026-12-02T10:00:01Z"),  # same instant: by id
        (world.critical, "notify", "critical", 15_000, "2026-12-02T10:00:01Z"),
    ]
    assert statement["lines"][0]["percent_bp"] == 300
    assert statement["lines"][0]["explanation"].endswith("3% of 500000 = 15000")
    assert api.get(f"{V1}/tenants/clinic/credits").json()["total_minor"] == 40_000  # the current month
    november = api.get(f"{V1}/tenants/clinic/credits", params={"month": "2026-11"}).json()
    assert (november["lines"], november["total_minor"], november["cap_minor"]) == ([], 0, 75_000)
    law = api.get(f"{V1}/tenants/lawfirm-ms/credits", params={"month": "2026-12"}).json()
    assert (law["tier"], law["monthly_fee_minor"], law["total_minor"]) == ("premium", 0, 0)
    problem(api.get(f"{V1}/tenants/clinic/credits", params={"month": "2026-13"}), 422)
    problem(api.get(f"{V1}/tenants/lawfirm-ms/credits", headers=PARTNER), 403, "cases.permission_denied")


def test_workload_is_for_managers(world: World) -> None:
    api = world.api
    world.clock.advance(600)
    api.post(world.url(world.critical, "/acknowledge"), headers=T2)
    api.post(world.url(world.critical, "/notes"), json={"text": "on it"}, headers=T2)
    hour = {"since": "2026-12-02T09:00:00Z", "until": "2026-12-02T10:00:00Z"}
    rows = api.get(f"{V1}/soc/workload", params=hour, headers=MANAGER).json()
    by_id = {r["analyst_id"]: r for r in rows}
    assert world.cases.roster is not None
    assert set(by_id) == {a.id for a in world.cases.roster.analysts}
    ben = by_id["ben"]
    assert (ben["incidents_handled"], ben["actions"], ben["open_load"]) == (1, 2, 1)
    assert ben["handling_minutes"] == 5.0  # one short session counts the 5-minute minimum
    assert (ben["start"], ben["end"]) == ("2026-12-02T09:00:00Z", "2026-12-02T10:00:00Z")
    # ben works the APAC day (20:00-05:00 UTC): this was off shift; dora (EMEA day) was on duty, idle
    assert (ben["on_duty_minutes"], ben["off_shift_minutes"], ben["occupancy"]) == (0.0, 5.0, None)
    assert (by_id["dora"]["actions"], by_id["dora"]["on_duty_minutes"], by_id["dora"]["occupancy"]) == (
        0,
        60.0,
        0.0,
    )
    world.clock.advance(60)  # the default window: the last 24 h up to now (exclusive)
    default = {r["analyst_id"]: r for r in api.get(f"{V1}/soc/workload").json()}  # the operator
    assert (default["ben"]["start"], default["ben"]["end"]) == (
        "2026-12-01T09:11:01Z",
        "2026-12-02T09:11:01Z",
    )
    assert default["ben"]["actions"] == 2
    problem(api.get(f"{V1}/soc/workload", headers=T2), 403, "cases.permission_denied")
    problem(
        api.get(
            f"{V1}/soc/workload", params={"since": "2026-12-02T10:00:00Z", "until": "2026-12-02T09:00:00Z"}
        ),
        400,
        "api.invalid_range",
    )


# -- who may ask --------------------------------------------------------------------------------------------
def test_authentication_and_actors(world: World, tmp_path: Path, admin_token: AdminToken) -> None:
    anonymous = TestClient(world.api.app)
    for path in (f"{V1}/incidents", f"{V1}/queue", world.url(world.critical)):
        problem(anonymous.get(path), 401, "api.unauthorized")
    problem(anonymous.post(world.url(world.critical, "/acknowledge")), 401)
    unknown = problem(
        world.api.post(world.url(world.critical, "/acknowledge"), headers={"X-Watchfloor-Actor": "mallory"}),
        403,
        "cases.unknown_actor",
    )
    assert "mallory" in unknown["detail"]
    problem(
        world.api.get(f"{V1}/incidents", headers={"X-Watchfloor-Actor": "bad/name"}), 400, "api.invalid_actor"
    )
    assert world.incident(world.critical)["state"] == "new"
    operator = world.api.post(
        world.url(world.critical, "/acknowledge"), headers={"X-Watchfloor-Actor": "operator"}
    )
    assert operator.json()["acknowledged_by"] == "operator"
    problem(world.api.get(f"{V1}/tenants/nobody/incidents"), 404, "storage.not_found")

    bare = create_api_app(world.db, archive_root=tmp_path / "a2", admin_token_sha256=admin_token.sha256)
    disabled = TestClient(bare, headers=admin_token.headers)
    for method, path in [("GET", f"{V1}/incidents"), ("POST", f"{V1}/sla/sweep"), ("GET", f"{V1}/queue")]:
        problem(disabled.request(method, path), 503, "api.cases_disabled")


def test_case_settings_and_escalation_plan(world: World) -> None:
    api = world.api
    url = "/api/v1/tenants/clinic/case-settings"
    before = api.get(url).json()
    assert before == {"timezone": "UTC", "escalation": {}, "contract": {}}
    body = {
        "timezone": "Europe/Berlin",
        "escalation": {"severities": {"critical": {"any": [{"contact": "Sam Ng", "channel": "email"}]}}},
        "contract": {"monthly_fee_minor": 90_000, "currency": "EUR"},
    }
    response = api.put(url, json=body)
    assert response.status_code == 200, response.text
    assert api.get(url).json() == body
    # 2026-12-02 09:00 UTC is 10:00 in Berlin, a Wednesday: business hours there
    plan = api.get(
        "/api/v1/tenants/clinic/escalation", params={"severity": "critical", "at": "2026-12-02T09:00:00Z"}
    ).json()
    assert plan["band"] == "business_hours"
    assert plan["steps"] == [
        {
            "name": "Sam Ng",
            "role": "IT",
            "channel": "email",
            "address": "sam@clinic.example",
            "wait_minutes": 15,
        }
    ]
    # invalid settings are 400 with the key path, and nothing changes
    bad = api.put(url, json={"contract": {"monthly_fee_minor": -1}})
    assert bad.status_code == 400
    assert bad.json()["code"] == "cases.settings_invalid"
    assert "monthly_fee_minor" in bad.json()["detail"]
    unknown = api.put(url, json={"escalation": {"severities": {"high": {"any": [{"contact": "Nobody"}]}}}})
    assert unknown.status_code == 400
    assert api.get(url).json() == body
    # a partner analyst may not change a tenant's settings
    denied = api.put(url, json={"timezone": "UTC"}, headers={"X-Watchfloor-Actor": "pia"})
    assert denied.status_code == 403
    assert api.get(url).json()["timezone"] == "Europe/Berlin"
    audit = [e.action for e in world.db.audit.list(TenantId("clinic"), limit=100)]
    assert audit.count("tenant.settings") == 1
