"""The run engine end to end: a stored incident, a playbook, the Defender for Endpoint actions against the
loopback fake, the tenant's policy, approvals, the kill switch, blast-radius limits, dry runs, restarts,
retries and rollback. Plus the run lifecycle rules."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from tests.respond.fakes.mde import MDE_SCOPE, FakeMde
from tests.respond.fakes.msgraph import CLIENT_ID, CLIENT_SECRET, DIRECTORY_ID, FakeEntra
from tests.respond.fakes.server import LoopbackServer
from tests.storage import conftest as storage_fixtures
from tests.storage.conftest import FakeClock, make_clinic
from watchfloor.cases.lifecycle import ACCEPT, Delay, Reject
from watchfloor.cases.models import Incident
from watchfloor.cases.tiers import load_tiers
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import (
    Action,
    ActionContext,
    ActionManifest,
    ActionResult,
    ConnectorError,
    InputSpec,
)
from watchfloor.respond.connectors.mde import GetMachineAction, IsolateMachine, ReleaseMachine
from watchfloor.respond.engine import RunEngine, RunEngineError, StaticConfig
from watchfloor.respond.http import HttpOptions, TokenCache
from watchfloor.respond.playbooks import Playbook, parse_playbook
from watchfloor.respond.registry import ActionRegistry
from watchfloor.respond.runs import RunTransition, check_run_transition
from watchfloor.server.cases import CaseService
from watchfloor.storage import Database
from watchfloor.storage.incidents import Change
from watchfloor.storage.respond import KILL_SWITCH
from watchfloor.triage.models import Entity, RiskScore

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
CLINIC = TenantId("clinic")
AUTOMATIC = {"risks": {"containment": {"mode": "automatic"}}}


class Crash(BaseException):
    """The process dies (not an error the engine handles)."""


class Ticket(Action):
    """A stand-in ticketing action: counts its calls; fails as told."""

    manifest: ClassVar[ActionManifest] = ActionManifest(
        id="psa.create_ticket",
        title="Open a ticket",
        connector="psa",
        description="test",
        inputs=(InputSpec(name="summary"),),
        target="ticket",
    )
    calls: ClassVar[list[str]] = []
    failures: ClassVar[list[ConnectorError]] = []
    fail_steps: ClassVar[dict[str, ConnectorError]] = {}  # step id -> the error it always raises
    before_failure: ClassVar[list[Any]] = []

    def __init__(self, http: HttpOptions | None = None) -> None:
        self.http = http

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        Ticket.calls.append(ctx.idempotency_key)
        if ctx.step_id in Ticket.fail_steps:
            for hook in Ticket.before_failure:
                hook()
            raise Ticket.fail_steps[ctx.step_id]
        if Ticket.failures:
            raise Ticket.failures.pop(0)
        status = "dry_run" if ctx.dry_run else "succeeded"
        return ActionResult(
            status=status, summary=f"ticket {inputs['summary']}", changed=True, external_ref="T-1"
        )


@pytest.fixture(autouse=True)
def _reset_ticket() -> None:
    Ticket.calls.clear()
    Ticket.failures.clear()
    Ticket.fail_steps.clear()
    Ticket.before_failure.clear()


@pytest.fixture
def mde() -> FakeMde:
    fake = FakeMde(FakeEntra(scopes=(MDE_SCOPE,)))
    fake.add_machine("ws-17.clinic.local", last_seen="2026-12-04T08:00:00Z")
    fake.add_machine("reception-pc.clinic.local")
    return fake


@pytest.fixture
def server(mde: FakeMde) -> Iterator[LoopbackServer]:
    with LoopbackServer(mde.app()) as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


db_url = storage_fixtures.db_url  # every engine test on SQLite and on PostgreSQL
pg_template = storage_fixtures.pg_template


@pytest.fixture
def db(db_url: str, clock: FakeClock) -> Iterator[Database]:
    database = Database.open(db_url, clock=clock)
    make_clinic(database)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def registry() -> ActionRegistry:
    http = HttpOptions(sleep=lambda _: None, token_cache=TokenCache())
    return ActionRegistry(
        [IsolateMachine, ReleaseMachine, GetMachineAction, Ticket],
        factory=lambda cls: cls(http=http),  # type: ignore[call-arg]
    )


def store_incident(
    db: Database, incident_id: str = "inc-1", host: str = "ws-17", *, user: str = "dana"
) -> Incident:
    incident = Incident(
        id=incident_id,
        tenant_id=CLINIC,
        title=f"Office started encoded PowerShell on {host}",
        state="investigating",
        severity="high",
        risk=RiskScore(score=80),
        created_at=T0,
        updated_at=T0,
        first_event_at=T0 - timedelta(minutes=3),
        entities=(Entity("host", host), Entity("user", user)),
        techniques=("T1566.001", "T1059.001"),
    )
    return db.incidents.create(Change(incident=incident), actor="triage")


PLAYBOOK_HEAD = """
id: isolate-host
name: Isolate the host
version: 1
author: tests
description: test playbook
trigger: {severity_at_least: high}
steps:
"""

WITH_APPROVAL = (
    PLAYBOOK_HEAD
    + """
  - id: open_ticket
    kind: ticket
    action: psa.create_ticket
    with: {summary: "incident {{ incident.id }}"}
  - id: approve_isolation
    kind: approval
    who: {roles: [soc_manager]}
    timeout_minutes: 20
    message: "Isolate {{ incident.entities.host[0] }}?"
  - id: isolate
    kind: contain
    action: mde.isolate_machine
    with: {host: "{{ incident.entities.host[0] }}", comment: "incident {{ incident.id }}"}
"""
)

NO_APPROVAL = (
    PLAYBOOK_HEAD
    + """
  - id: open_ticket
    kind: ticket
    action: psa.create_ticket
    with: {summary: "incident {{ incident.id }}"}
  - id: isolate
    kind: contain
    action: mde.isolate_machine
    rollback_on_failure: true
    with: {host: "{{ incident.entities.host[0] }}"}
  - id: note_ticket
    kind: ticket
    action: psa.create_ticket
    with: {summary: "isolated {{ steps.isolate.output.machine_id }}"}
"""
)


def playbook(registry: ActionRegistry, text: str) -> Playbook:
    return parse_playbook(text, known_actions={m.id: m for m in registry.manifests()})


def make_engine(
    db: Database, registry: ActionRegistry, server: LoopbackServer, clock: FakeClock, pb: Playbook
) -> RunEngine:
    config = {
        "tenant_id": DIRECTORY_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "authority": server.url,
        "mde_base": server.url,
    }
    cases = CaseService(db, load_tiers(), auto_route=False, clock=clock)
    return RunEngine(
        db,
        registry,
        playbooks={pb.id: pb},
        secrets=StaticConfig({"mde": config}),
        cases=cases,
        clock=clock,
        backoff_seconds=60,
    )


def states(db: Database, run_id: str) -> dict[str, str]:
    return {s.step_id: s.state for s in db.response.steps(CLINIC, run_id)}


def timeline(db: Database, incident_id: str = "inc-1") -> list[str]:
    return [e.summary for e in db.incidents.timeline(CLINIC, incident_id)]


# -- approvals -----------------------------------------------------------------------------------------


def test_ask_approval_waits_then_acts_and_contains(db, registry, server, mde, clock) -> None:
    store_incident(db)
    pb = playbook(registry, WITH_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.start(CLINIC, "inc-1", pb)
    run = engine.advance(CLINIC, run.id)
    assert run.state == "waiting_approval"
    assert states(db, run.id) == {
        "open_ticket": "succeeded",
        "approve_isolation": "waiting_approval",
        "isolate": "pending",
    }
    assert server.writes() == []
    assert engine.advance(CLINIC, run.id).state == "waiting_approval"  # nothing decided: still waits

    clock.advance(timedelta(minutes=5))
    run = engine.approve(CLINIC, run.id, "approve_isolation", actor="sam@mssp", approved=True, reason="go")
    assert run.state == "succeeded"
    (action,) = mde.actions
    assert action["type"] == "Isolate"
    steps = {s.step_id: s for s in db.response.steps(CLINIC, run.id)}
    assert steps["isolate"].approved_by == "sam@mssp"
    assert steps["isolate"].idempotency_key == f"{run.id}:isolate:1"
    assert steps["isolate"].inputs == {"host": "ws-17", "comment": "incident inc-1"}
    assert steps["isolate"].external_ref == action["id"]
    assert steps["isolate"].started_at == clock.now
    incident = db.incidents.get(CLINIC, "inc-1")
    assert incident.state == "contained"
    assert incident.contained_at == clock.now
    assert any("approved by sam@mssp" in s for s in timeline(db))


def test_no_answer_by_the_deadline_fails_closed_and_escalates(db, registry, server, mde, clock) -> None:
    store_incident(db)
    pb = playbook(registry, WITH_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    clock.advance(timedelta(minutes=21))
    run = engine.advance(CLINIC, run.id)
    assert run.state == "failed_closed"
    assert states(db, run.id)["approve_isolation"] == "expired"
    assert states(db, run.id)["isolate"] == "pending"
    assert mde.actions == []
    assert db.response.get_approval(CLINIC, run.id, "approve_isolation").decision == "expired"
    escalations = [e for e in db.incidents.timeline(CLINIC, "inc-1") if e.kind == "escalated"]
    assert len(escalations) == 1
    assert "soc_manager" in escalations[0].summary
    # whom to call: the clinic's escalation contacts in order (make_clinic: Sam Ng first, with a phone)
    customer = escalations[0].details["customer_escalation"]
    assert customer.startswith("Sam Ng by ")
    assert customer.index("Sam Ng") < customer.index("Dana Ruiz")
    assert db.incidents.get(CLINIC, "inc-1").contained_at is None
    with pytest.raises(Exception, match="already expired"):
        engine.approve(CLINIC, run.id, "approve_isolation", actor="late@mssp", approved=True, reason="sorry")


def test_rejection_fails_closed(db, registry, server, mde, clock) -> None:
    store_incident(db)
    pb = playbook(registry, WITH_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    run = engine.approve(
        CLINIC, run.id, "approve_isolation", actor="sam@mssp", approved=False, reason="server"
    )
    assert run.state == "failed_closed"
    assert states(db, run.id)["approve_isolation"] == "rejected"
    assert mde.actions == []


def test_policy_asks_approval_for_containment_without_an_approval_step(
    db, registry, server, mde, clock
) -> None:
    store_incident(db)
    pb = playbook(registry, NO_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    assert run.state == "waiting_approval"
    approval = db.response.get_approval(CLINIC, run.id, "isolate")
    assert approval.deadline == clock.now + timedelta(minutes=30)
    assert "soc_manager" in approval.approvers["roles"]
    run = engine.approve(CLINIC, run.id, "isolate", actor="t3@mssp", approved=True, reason="ok")
    assert run.state == "succeeded"
    assert len(mde.actions) == 1


# -- refusals ------------------------------------------------------------------------------------------


def test_kill_switch_refuses(db, registry, server, mde, clock) -> None:
    store_incident(db)
    db.response.put_policy(CLINIC, AUTOMATIC, actor="admin")
    db.response.set_switch("kill_switch", enabled=True, reason="bad vendor day", actor="admin")
    pb = playbook(registry, NO_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    assert run.state == "failed_closed"
    step = {s.step_id: s for s in db.response.steps(CLINIC, run.id)}["isolate"]
    assert step.state == "refused"
    assert "kill switch" in (step.error or "")
    assert mde.actions == []


def test_blast_radius_limit_refuses_with_reason(db, registry, server, mde, clock) -> None:
    store_incident(db, "inc-1", "ws-17")
    store_incident(db, "inc-2", "reception-pc")
    db.response.put_policy(CLINIC, {**AUTOMATIC, "limits_per_hour": {"host": 1}}, actor="admin")
    pb = playbook(registry, NO_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    first = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    assert first.state == "succeeded"
    second = engine.advance(CLINIC, engine.start(CLINIC, "inc-2", pb).id)
    assert second.state == "failed_closed"
    step = {s.step_id: s for s in db.response.steps(CLINIC, second.id)}["isolate"]
    assert "blast-radius limit" in (step.error or "")
    assert len(mde.actions) == 1
    clock.advance(timedelta(minutes=61))  # an hour later the window has room again
    third = engine.advance(CLINIC, engine.start(CLINIC, "inc-2", pb).id)
    assert third.state == "succeeded"


def test_two_runs_advanced_at_once_cannot_both_pass_the_limit(db, registry, server, mde, clock) -> None:
    """The stage's thread and an API request advance two runs at the same moment: one host per hour."""
    store_incident(db, "inc-1", "ws-17")
    store_incident(db, "inc-2", "reception-pc")
    db.response.put_policy(CLINIC, {**AUTOMATIC, "limits_per_hour": {"host": 1}}, actor="admin")
    pb = playbook(registry, NO_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    runs = [engine.start(CLINIC, incident, pb).id for incident in ("inc-1", "inc-2")]
    barrier = threading.Barrier(2)
    ended: dict[str, str] = {}

    def advance(run_id: str) -> None:
        barrier.wait()
        ended[run_id] = engine.advance(CLINIC, run_id).state

    threads = [threading.Thread(target=advance, args=(r,)) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(ended.values()) == ["failed_closed", "succeeded"]
    assert [a["type"] for a in mde.actions] == ["Isolate"]


# -- dry run, restart, retry, rollback -----------------------------------------------------------------


def test_dry_run_makes_no_write_call(db, registry, server, mde, clock) -> None:
    store_incident(db)
    pb = playbook(registry, WITH_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb, dry_run=True).id)
    assert run.state == "succeeded"
    assert server.writes() == []
    assert mde.actions == []
    steps = {s.step_id: s for s in db.response.steps(CLINIC, run.id)}
    assert steps["isolate"].output is not None
    assert steps["isolate"].output["record"]["status"] == "dry_run"
    assert steps["isolate"].output["policy"] == "ask_approval"
    assert db.response.recent_actions(CLINIC, since=T0 - timedelta(hours=1)) == []
    assert db.incidents.get(CLINIC, "inc-1").contained_at is None


def test_restart_mid_step_reruns_with_the_same_key_and_repeats_no_done_step(
    db, registry, server, mde, clock
) -> None:
    store_incident(db)
    db.response.put_policy(CLINIC, AUTOMATIC, actor="admin")
    pb = playbook(registry, NO_APPROVAL)
    keys: list[str] = []

    class CrashingIsolate(IsolateMachine):
        def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
            keys.append(ctx.idempotency_key)
            result = super().run(ctx, inputs)
            if len(keys) == 1:
                raise Crash  # the call went out, the process died before recording it
            return result

    http = HttpOptions(sleep=lambda _: None, token_cache=TokenCache())
    crashing = ActionRegistry(
        [CrashingIsolate, ReleaseMachine, GetMachineAction, Ticket], factory=lambda c: c(http=http)
    )  # type: ignore[call-arg]
    engine = make_engine(db, crashing, server, clock, pb)
    run = engine.start(CLINIC, "inc-1", pb)
    with pytest.raises(Crash):
        engine.advance(CLINIC, run.id)
    assert states(db, run.id)["isolate"] == "running"

    restarted = make_engine(db, crashing, server, clock, pb)
    (resumed,) = restarted.resume_all()
    assert resumed.state == "succeeded"
    assert keys == [f"{run.id}:isolate:1", f"{run.id}:isolate:1"]
    assert len(Ticket.calls) == 2  # open_ticket once, note_ticket once: nothing done is repeated
    assert len([a for a in mde.actions if a["type"] == "Isolate"]) == 1


def test_retryable_errors_back_off_then_retry(db, registry, server, mde, clock) -> None:
    store_incident(db)
    Ticket.failures.append(ConnectorError("busy", status=503, retryable=True))
    pb = playbook(registry, WITH_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    assert run.state == "waiting"
    assert run.not_before == clock.now + timedelta(seconds=60)
    assert engine.advance(CLINIC, run.id).state == "waiting"  # not due yet
    clock.advance(timedelta(seconds=61))
    run = engine.advance(CLINIC, run.id)
    assert run.state == "waiting_approval"
    assert Ticket.calls == [f"{run.id}:open_ticket:1", f"{run.id}:open_ticket:2"]


def test_failure_rolls_back_the_earlier_isolation(db, registry, server, mde, clock) -> None:
    store_incident(db)
    db.response.put_policy(CLINIC, AUTOMATIC, actor="admin")
    pb = playbook(registry, NO_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    # note_ticket (after the isolation, once MDE finished it) fails for good
    Ticket.fail_steps["note_ticket"] = ConnectorError("PSA refused the ticket", status=400)
    Ticket.before_failure.append(mde.complete)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    assert run.state == "rolled_back"
    assert "PSA refused" in (run.error or "")
    assert [a["type"] for a in mde.actions] == ["Isolate", "Unisolate"]
    assert states(db, run.id) == {
        "open_ticket": "succeeded",
        "isolate": "rolled_back",
        "note_ticket": "failed",
    }


# -- the lifecycle rules -------------------------------------------------------------------------------


def request(from_state: str, to_state: str, **kw: Any) -> RunTransition:
    return RunTransition(
        run_id="r", from_state=from_state, to_state=to_state, now=T0, reason=kw.pop("reason", "x"), **kw
    )  # type: ignore[arg-type]


def test_run_rules() -> None:
    assert check_run_transition(request("pending", "running")) is ACCEPT
    assert isinstance(check_run_transition(request("succeeded", "running")), Reject)
    assert isinstance(check_run_transition(request("pending", "succeeded")), Reject)
    assert isinstance(check_run_transition(request("running", "failed", reason=" ")), Reject)
    delayed = check_run_transition(request("waiting", "running", not_before=T0 + timedelta(minutes=1)))
    assert isinstance(delayed, Delay)
    assert delayed.until == T0 + timedelta(minutes=1)
    refused = check_run_transition(request("waiting_approval", "running", approval_open=True))
    assert isinstance(refused, Reject)
    assert "not decided" in refused.reason


BRANCH_AND_WAIT = (
    PLAYBOOK_HEAD
    + """
  - id: approve
    kind: approval
    who: {roles: [soc_manager], customer_contacts: [primary]}
    timeout_minutes: 20
    auto_approve_if: {ref: tenant.auto_contain, equals: true, default: false}
  - id: which_edr
    kind: branch
    if: {ref: tenant.edr, equals: mde}
    then: [isolate]
    else: [open_ticket]
  - id: isolate
    kind: contain
    action: mde.isolate_machine
    with: {host: "{{ incident.entities.host[0] }}"}
  - id: open_ticket
    kind: ticket
    action: psa.create_ticket
    with: {summary: "isolate {{ incident.entities.host[0] }} by hand"}
  - id: pause
    kind: wait
    minutes: 10
  - id: tell
    kind: ticket
    action: psa.create_ticket
    with: {summary: "done: {{ steps.isolate.summary }}"}
"""
)


def test_branches_standing_approval_and_waits(db, registry, server, mde, clock) -> None:
    store_incident(db)
    pb = playbook(registry, BRANCH_AND_WAIT)
    engine = make_engine(db, registry, server, clock, pb)
    engine.tenant_context = lambda _tenant: {"edr": "mde", "auto_contain": True}
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    assert run.state == "waiting"
    assert run.not_before == clock.now + timedelta(minutes=10)
    assert states(db, run.id) == {
        "approve": "succeeded",
        "which_edr": "succeeded",
        "isolate": "succeeded",
        "open_ticket": "skipped",
        "pause": "waiting",
        "tell": "pending",
    }
    isolate = {s.step_id: s for s in db.response.steps(CLINIC, run.id)}["isolate"]
    assert isolate.approved_by == "standing approval (auto_approve_if)"
    clock.advance(timedelta(minutes=5))
    assert engine.advance(CLINIC, run.id).state == "waiting"
    clock.advance(timedelta(minutes=5))
    run = engine.advance(CLINIC, run.id)
    assert run.state == "succeeded"
    assert len(Ticket.calls) == 1  # only `tell`; open_ticket was on the other branch
    summaries = timeline(db)
    assert any(s.startswith("step isolate:") for s in summaries)
    assert any(s.startswith("step tell:") for s in summaries)


def test_other_branch_and_cancel(db, registry, server, mde, clock) -> None:
    store_incident(db)
    pb = playbook(registry, BRANCH_AND_WAIT)
    engine = make_engine(db, registry, server, clock, pb)
    engine.tenant_context = lambda _tenant: {"edr": "falcon"}
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    assert run.state == "waiting_approval"  # no standing approval: a person is asked
    (asked,) = [a.step_id for a in db.response.open_approvals(CLINIC) if a.run_id == run.id]
    run = engine.cancel(CLINIC, run.id, actor="sam@mssp", reason="handled by phone")
    assert run.state == "cancelled"
    assert engine.advance(CLINIC, run.id).state == "cancelled"
    assert mde.actions == []
    # the open approval is closed with the cancellation: nobody approves a step of a cancelled run later
    assert [a for a in db.response.open_approvals(CLINIC) if a.run_id == run.id] == []
    with pytest.raises(Exception, match="already rejected"):
        engine.approve(CLINIC, run.id, asked, actor="late@mssp", approved=True, reason="go")


def test_a_step_rerun_after_a_crash_rechecks_the_kill_switch(db, registry, server, mde, clock) -> None:
    store_incident(db)
    db.response.put_policy(CLINIC, AUTOMATIC, actor="admin")
    pb = playbook(registry, NO_APPROVAL)

    class CrashBeforeTheCall(IsolateMachine):
        def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
            raise Crash  # the process dies with the step marked running, before any vendor call

    http = HttpOptions(sleep=lambda _: None, token_cache=TokenCache())
    crashing = ActionRegistry(
        [CrashBeforeTheCall, ReleaseMachine, GetMachineAction, Ticket], factory=lambda c: c(http=http)
    )  # type: ignore[call-arg]
    run = make_engine(db, crashing, server, clock, pb).start(CLINIC, "inc-1", pb)
    with pytest.raises(Crash):
        make_engine(db, crashing, server, clock, pb).advance(CLINIC, run.id)
    assert states(db, run.id)["isolate"] == "running"
    db.response.set_switch(KILL_SWITCH, enabled=True, actor="duty-manager", reason="runaway isolations")
    (resumed,) = make_engine(db, registry, server, clock, pb).resume_all()
    assert resumed.state == "failed_closed"
    assert states(db, run.id)["isolate"] == "refused"
    assert mde.actions == []


PROCEED = (
    PLAYBOOK_HEAD
    + """
  - id: ask
    kind: approval
    who: {roles: [analyst]}
    timeout_minutes: 5
    on_timeout: proceed
  - id: tell
    kind: ticket
    action: psa.create_ticket
    with: {summary: "heads up"}
"""
)


def test_on_timeout_proceed_continues_without_consent_for_non_containment(
    db, registry, server, clock
) -> None:
    store_incident(db)
    pb = playbook(registry, PROCEED)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    assert run.state == "waiting_approval"
    clock.advance(timedelta(minutes=6))
    run = engine.advance(CLINIC, run.id)
    assert run.state == "succeeded"
    assert len(Ticket.calls) == 1
    assert db.response.get_approval(CLINIC, run.id, "ask").decision == "expired"


def test_a_changed_playbook_version_is_not_continued(db, registry, server, clock) -> None:
    store_incident(db)
    pb = playbook(registry, WITH_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    newer = playbook(registry, WITH_APPROVAL.replace("version: 1", "version: 2"))
    other = make_engine(db, registry, server, clock, newer)
    with pytest.raises(Exception, match="v1, loaded is v2"):
        other.advance(CLINIC, run.id)


# -- Microsoft Graph: the compromised-account path -------------------------------------------------------

DISABLE_USER = (
    PLAYBOOK_HEAD
    + """
  - id: disable
    kind: contain
    action: msgraph.disable_user
    with: {user: "{{ incident.entities.user[0] }}"}
"""
)


def test_graph_disable_user_after_approval(db, clock) -> None:
    from tests.respond.fakes.msgraph import FakeGraph
    from watchfloor.respond.connectors import msgraph

    graph = FakeGraph()
    graph.add_user("dana@clinic.example", mail="dana@clinic.example")
    http = HttpOptions(sleep=lambda _: None, token_cache=TokenCache())
    graph_registry = ActionRegistry(msgraph.ACTIONS, factory=lambda cls: cls(http=http))  # type: ignore[call-arg]
    store_incident(db, user="dana@clinic.example")
    pb = playbook(graph_registry, DISABLE_USER)
    with LoopbackServer(graph.app()) as server:
        config = {
            "tenant_id": DIRECTORY_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authority": server.url,
            "graph_base": server.url,
            "internal_domains": ["clinic.example"],
        }
        engine = RunEngine(
            db,
            graph_registry,
            playbooks={pb.id: pb},
            secrets=StaticConfig({"msgraph": config}),
            cases=CaseService(db, load_tiers(), auto_route=False, clock=clock),
            clock=clock,
        )
        run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
        assert run.state == "waiting_approval"
        assert server.writes() == []
        run = engine.approve(CLINIC, run.id, "disable", actor="t3@mssp", approved=True, reason="BEC")
        assert run.state == "succeeded"
        assert len(server.writes()) == 1
    dana = next(u for u in graph.users.values() if u.user_principal_name == "dana@clinic.example")
    assert dana.account_enabled is False
    assert db.incidents.get(CLINIC, "inc-1").contained_at == clock.now
    logged = db.response.recent_actions(CLINIC, since=clock.now - timedelta(hours=1))
    assert [(e.target_kind, e.target) for e in logged] == [("user", "dana@clinic.example")]


def test_a_reference_that_does_not_resolve_fails_the_run_and_says_which(
    db, registry, server, mde, clock
) -> None:
    store_incident(db)
    pb = playbook(registry, BRANCH_AND_WAIT)
    engine = make_engine(db, registry, server, clock, pb)  # no tenant settings: tenant.edr is missing
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    run = engine.approve(CLINIC, run.id, "approve", actor="sam@mssp", approved=True, reason="ok")
    assert run.state == "failed"
    assert "tenant.edr" in (run.error or "")
    assert mde.actions == []


def test_kill_switch_turned_on_while_waiting_still_refuses_after_approval(
    db, registry, server, mde, clock
) -> None:
    store_incident(db)
    pb = playbook(registry, WITH_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    db.response.set_switch("kill_switch", enabled=True, reason="incident at the vendor", actor="admin")
    run = engine.approve(CLINIC, run.id, "approve_isolation", actor="sam@mssp", approved=True, reason="go")
    assert run.state == "failed_closed"
    assert states(db, run.id)["isolate"] == "refused"
    assert mde.actions == []


def test_an_analyst_undoes_a_finished_run(db, registry, server, mde, clock) -> None:
    """The incident is over: the analyst releases the host by undoing the run's reversible steps."""
    store_incident(db)
    db.response.put_policy(CLINIC, AUTOMATIC, actor="admin")
    pb = playbook(registry, NO_APPROVAL)
    engine = make_engine(db, registry, server, clock, pb)
    run = engine.advance(CLINIC, engine.start(CLINIC, "inc-1", pb).id)
    assert run.state == "succeeded"
    assert [a["type"] for a in mde.actions] == ["Isolate"]
    mde.complete()  # Defender finished isolating (a pending isolation cannot be released yet)
    assert next(iter(mde.machines.values())).isolated
    with pytest.raises(RunEngineError, match="needs a reason"):
        engine.undo(CLINIC, run.id, actor="ben", reason=" ")
    undone = engine.undo(CLINIC, run.id, actor="ben", reason="host reimaged, incident resolved")
    assert undone.state == "rolled_back", undone.error
    assert [a["type"] for a in mde.actions] == ["Isolate", "Unisolate"]
    mde.complete()
    assert not next(iter(mde.machines.values())).isolated
    assert states(db, run.id)["isolate"] == "rolled_back"
    assert states(db, run.id)["open_ticket"] == "succeeded"  # tickets are not reversible: they stay
    assert any("ben undoes response run" in t for t in timeline(db))
    with pytest.raises(RunEngineError, match="only a finished run"):
        engine.undo(CLINIC, run.id, actor="ben", reason="again")
