"""The response stage over real components: a SQLite system of record, the case service with the shipped
tiers and the example SOC roster, the run engine built by `build_response` (registry with the EDL
actions, playbooks from a folder) and Defender for Endpoint as a loopback fake with `StaticConfig`
credentials. The clock moves only when a test moves it.

`ResponseWorld` / `response_world` are shared with `tests/api/test_response_api.py` and
`tests/cli/test_response_cli.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.respond.fakes.mde import MDE_SCOPE, FakeMde
from tests.respond.fakes.msgraph import CLIENT_ID, CLIENT_SECRET, DIRECTORY_ID, FakeEntra
from tests.respond.fakes.server import LoopbackServer
from tests.storage.conftest import FakeClock, make_clinic
from watchfloor.cases.models import Actor, Incident
from watchfloor.cases.soc import load_roster
from watchfloor.cases.tiers import load_tiers
from watchfloor.core.content import content_dir
from watchfloor.core.errors import ConfigError
from watchfloor.core.types import IncidentState, Severity, TenantId
from watchfloor.respond.engine import RunEngine, StaticConfig
from watchfloor.respond.http import HttpOptions, TokenCache
from watchfloor.server.cases import CaseService
from watchfloor.server.response_stage import (
    ResponseStage,
    build_registry,
    build_response,
    may_approve,
    tenant_response_context,
)
from watchfloor.storage import Database
from watchfloor.storage.incidents import Change
from watchfloor.triage.models import Entity, RiskScore

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # a Wednesday: the EMEA day shift is on duty
CLINIC = TenantId("clinic")
ROSTER = content_dir() / "soc" / "roster.example.yml"

ISOLATE_HOST = """
id: isolate-host
name: Isolate the host
version: 1
author: tests
description: Office started encoded PowerShell; isolate the host once a person approves.
trigger: {severity_at_least: high, techniques: [T1059.001]}
steps:
  - id: approve
    kind: approval
    who: {roles: [analyst, soc_manager]}
    timeout_minutes: 20
    message: "Isolate {{ incident.entities.host[0] }}?"
  - id: isolate
    kind: contain
    action: mde.isolate_machine
    with: {host: "{{ incident.entities.host[0] }}", comment: "incident {{ incident.id }}"}
"""


@dataclass
class ResponseWorld:
    db: Database
    clock: FakeClock
    cases: CaseService
    engine: RunEngine
    stage: ResponseStage
    mde: FakeMde
    server: LoopbackServer
    playbooks: Path
    config: StaticConfig
    url: str

    def rebuild(self) -> tuple[RunEngine, ResponseStage]:
        """A fresh engine and stage over the same database (what a restarted service builds)."""
        return build_response(
            self.db,
            self.cases,
            self.config,
            playbooks_dir=self.playbooks,
            http=HttpOptions(sleep=lambda _: None, token_cache=TokenCache()),
            plugins=False,
            clock=self.clock,
        )

    def steps(self, run_id: str) -> dict[str, str]:
        return {s.step_id: s.state for s in self.db.response.steps(CLINIC, run_id)}


def write_playbooks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "isolate-host.yml").write_text(ISOLATE_HOST, encoding="utf-8")
    return folder


def store_incident(
    db: Database,
    incident_id: str = "inc-1",
    *,
    host: str = "ws-17",
    severity: Severity = "high",
    state: IncidentState = "new",
    techniques: tuple[str, ...] = ("T1566.001", "T1059.001"),
) -> Incident:
    incident = Incident(
        id=incident_id,
        tenant_id=CLINIC,
        title=f"Office started encoded PowerShell on {host}",
        state=state,
        severity=severity,
        risk=RiskScore(score=80),
        created_at=T0,
        updated_at=T0,
        first_event_at=T0 - timedelta(minutes=3),
        entities=(Entity("host", host), Entity("user", "dana")),
        techniques=techniques,
    )
    return db.incidents.create(Change(incident=incident), actor="triage")


def mde_config(url: str) -> dict[str, Any]:
    return {
        "tenant_id": DIRECTORY_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "authority": url,
        "mde_base": url,
    }


@contextmanager
def response_world(tmp_path: Path, *, start: datetime = T0) -> Iterator[ResponseWorld]:
    clock = FakeClock(start)
    db = Database.open(f"sqlite:///{tmp_path / 'wf.db'}", clock=clock)
    make_clinic(db)
    mde = FakeMde(FakeEntra(scopes=(MDE_SCOPE,)))
    mde.add_machine("ws-17.clinic.local", last_seen="2026-12-02T08:00:00Z")
    mde.add_machine("reception-pc.clinic.local")
    cases = CaseService(db, load_tiers(), roster=load_roster(ROSTER), auto_route=False, clock=clock)
    playbooks = write_playbooks(tmp_path / "playbooks")
    try:
        with LoopbackServer(mde.app()) as server:
            config = StaticConfig({"mde": mde_config(server.url)})
            engine, stage = build_response(
                db,
                cases,
                config,
                playbooks_dir=playbooks,
                http=HttpOptions(sleep=lambda _: None, token_cache=TokenCache()),
                plugins=False,
                clock=clock,
            )
            yield ResponseWorld(
                db=db,
                clock=clock,
                cases=cases,
                engine=engine,
                stage=stage,
                mde=mde,
                server=server,
                playbooks=playbooks,
                config=config,
                url=server.url,
            )
    finally:
        db.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ResponseWorld]:
    with response_world(tmp_path) as built:
        yield built


# -- starting runs -----------------------------------------------------------------------------------------


def test_a_matching_incident_gets_one_run_across_ticks_and_a_restart(world: ResponseWorld) -> None:
    store_incident(world.db)
    first = world.stage.tick()
    assert [(r.incident_id, r.playbook_id, r.playbook_version) for r in first.started] == [
        ("inc-1", "isolate-host", 1)
    ]
    (run,) = world.db.response.list_runs(CLINIC)
    assert run.state == "waiting_approval"
    assert run.created_by == "system:response-engine"
    assert world.steps(run.id) == {"approve": "waiting_approval", "isolate": "pending"}
    assert world.stage.counters.started[CLINIC] == 1

    assert world.stage.tick().started == ()
    _engine, restarted = world.rebuild()
    assert restarted.tick().started == ()
    assert [r.id for r in world.db.response.list_runs(CLINIC)] == [run.id]
    assert world.server.writes() == []
    assert world.mde.actions == []


def test_two_stages_racing_start_one_automatic_run(
    world: ResponseWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process started the run between this stage's check and its start: the deterministic run
    id makes the second start fail in the database, and the stage counts it as done, not as an error."""
    store_incident(world.db)
    (run,) = world.stage.tick().started
    assert run.id.startswith("run_auto_")
    _engine, other = world.rebuild()
    # it has not seen the run yet (a fault injected into what the stage reads, not into what it writes)
    monkeypatch.setattr(type(world.db.response), "list_runs", lambda *_a, **_k: [])
    assert other.tick().started == ()
    assert other.counters.errors[CLINIC] == 0
    monkeypatch.undo()
    assert [r.id for r in world.db.response.list_runs(CLINIC)] == [run.id]
    started = [e for e in world.db.incidents.timeline(CLINIC, "inc-1") if "started" in e.summary]
    assert len(started) == 1


def test_incidents_that_do_not_match_get_no_run(world: ResponseWorld) -> None:
    store_incident(world.db, "inc-low", severity="medium")
    store_incident(world.db, "inc-other", techniques=("T1110",))
    store_incident(world.db, "inc-closed", state="closed_false_positive")
    assert world.stage.tick().started == ()
    assert world.db.response.list_runs(CLINIC) == []


def test_a_dry_run_by_hand_does_not_stop_the_real_run(world: ResponseWorld) -> None:
    store_incident(world.db)
    playbook = world.engine.playbooks["isolate-host"]
    dry = world.engine.advance(CLINIC, world.engine.start(CLINIC, "inc-1", playbook, dry_run=True).id)
    assert dry.state == "succeeded"
    (started,) = world.stage.tick().started
    assert not started.dry_run
    assert world.server.writes() == []


# -- resuming runs -----------------------------------------------------------------------------------------


def test_an_approval_past_its_deadline_fails_closed_on_the_next_tick(world: ResponseWorld) -> None:
    store_incident(world.db)
    (run,) = world.stage.tick().started
    world.clock.advance(timedelta(minutes=19))
    world.stage.tick()
    assert world.db.response.get_run(CLINIC, run.id).state == "waiting_approval"

    world.clock.advance(timedelta(minutes=2))
    result = world.stage.tick()
    assert result.errors == ()
    assert world.db.response.get_run(CLINIC, run.id).state == "failed_closed"
    assert world.steps(run.id) == {"approve": "expired", "isolate": "pending"}
    assert world.db.response.get_approval(CLINIC, run.id, "approve").decision == "expired"
    escalated = [e for e in world.db.incidents.timeline(CLINIC, "inc-1") if e.kind == "escalated"]
    assert len(escalated) == 1
    assert world.mde.actions == []
    assert world.server.writes() == []
    assert world.stage.tick().started == ()  # the failed run still counts: nothing is retried by itself


def test_an_approved_run_is_carried_on_by_the_stage(world: ResponseWorld) -> None:
    store_incident(world.db)
    (run,) = world.stage.tick().started
    world.db.response.decide_approval(
        CLINIC, run.id, "approve", decision="approved", actor="frieda", reason="go"
    )  # decided elsewhere (another process): the next tick acts on it
    world.stage.tick()
    assert world.db.response.get_run(CLINIC, run.id).state == "succeeded"
    assert [a["type"] for a in world.mde.actions] == ["Isolate"]
    isolate = {s.step_id: s for s in world.db.response.steps(CLINIC, run.id)}["isolate"]
    assert isolate.approved_by == "frieda"
    assert world.stage.counters.advanced[CLINIC] >= 2


def test_a_run_that_cannot_advance_is_counted_and_the_others_go_on(world: ResponseWorld) -> None:
    store_incident(world.db, "inc-1")
    store_incident(world.db, "inc-2", host="reception-pc")
    first, second = world.stage.tick().started
    (world.playbooks / "isolate-host.yml").write_text(
        ISOLATE_HOST.replace("version: 1", "version: 2"), encoding="utf-8"
    )
    engine, stage = world.rebuild()
    engine.db.response.decide_approval(
        CLINIC, second.id, "approve", decision="approved", actor="frieda", reason="go"
    )
    result = stage.tick()  # v2 is loaded: v1 runs are not continued; new v2 runs start
    assert len(result.errors) == 2
    assert "loaded is v2" in result.errors[0]
    assert stage.counters.errors[CLINIC] == 2
    assert {r.playbook_version for r in result.started} == {2}
    assert world.db.response.get_run(CLINIC, first.id).state == "waiting_approval"


# -- composition -------------------------------------------------------------------------------------------


def test_build_response_loads_the_project_playbooks_with_the_edl_actions(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'wf.db'}")
    try:
        engine, stage = build_response(db, None, StaticConfig({}), plugins=False)
        assert "brute-force-then-logon" in engine.playbooks  # uses edl.block_ip
        assert {"edl.block_ip", "edl.unblock_ip", "mde.isolate_machine"} <= set(engine.registry)
        assert len(stage.playbooks) == len(engine.playbooks) >= 5
        registry = build_registry(db, plugins=False)
        assert registry.problems == []
    finally:
        db.close()


def test_a_playbook_that_does_not_load_is_a_configuration_error(tmp_path: Path) -> None:
    folder = write_playbooks(tmp_path / "playbooks")
    (folder / "broken.yml").write_text(ISOLATE_HOST.replace("mde.isolate_machine", "mde.nuke"), "utf-8")
    db = Database.open(f"sqlite:///{tmp_path / 'wf.db'}")
    try:
        with pytest.raises(ConfigError, match=r"mde\.nuke"):
            build_response(db, None, StaticConfig({}), playbooks_dir=folder, plugins=False)
    finally:
        db.close()


def test_tenant_context_reads_the_contract_and_the_contacts(world: ResponseWorld) -> None:
    context = tenant_response_context(world.db)(CLINIC)
    assert context["contacts"]["primary"] == "sam@clinic.example"  # escalation order 1
    assert context["contacts"]["it"] == "sam@clinic.example"
    settings = world.db.settings.get(CLINIC)
    world.db.settings.put(
        type(settings)(tenant_id=CLINIC, contract={"response": {"edr": "mde", "auto_contain": True}}),
        actor="tests",
    )
    context = tenant_response_context(world.db)(CLINIC)
    assert context["edr"] == "mde"
    assert context["auto_contain"] is True


def test_the_thread_starts_and_stops(world: ResponseWorld) -> None:
    store_incident(world.db)
    world.stage.interval_seconds = 0.01
    world.stage.start()
    try:
        assert world.stage.alive
        for _ in range(500):
            if world.db.response.list_runs(CLINIC):
                break
            world.stage._stop.wait(0.01)
    finally:
        world.stage.stop()
    assert not world.stage.alive
    assert len(world.db.response.list_runs(CLINIC)) == 1


def test_who_may_decide_an_approval_the_step_names() -> None:
    t3 = Actor(id="frieda", role="analyst", tier="T3")
    manager = Actor(id="dm-emea", role="soc_manager")
    customer = Actor(id="owner", role="customer_admin", tenants=frozenset({CLINIC}))
    admin = Actor(id="operator", role="mssp_admin")
    assert may_approve(t3, {"roles": ["analyst"]})
    assert may_approve(t3, {"roles": ["T3", "soc_manager"]})  # the policy's default approvers
    assert not may_approve(t3, {"roles": ["soc_manager"]})
    assert may_approve(manager, {"roles": ["soc_manager"]})
    assert not may_approve(manager, {"roles": ["analyst"]})
    assert may_approve(customer, {"roles": ["soc_manager"], "customer_contacts": ["primary"]})
    assert not may_approve(customer, {"roles": ["soc_manager"]})
    assert may_approve(admin, {"roles": ["soc_manager"]})
    assert may_approve(t3, {})  # naming nobody: `approve_response` alone decides
