"""Response runs storage on SQLite and PostgreSQL: runs, steps, approvals, policies, switches, sealed
credentials, the action log; every change audited in its transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.storage.conftest import ACTOR, FakeClock
from watchfloor.core.types import TenantId
from watchfloor.storage import Database
from watchfloor.storage.errors import NotFoundError
from watchfloor.storage.respond import ApprovalDecidedError, StaleStateError


def new_run(db: Database, tenant: TenantId, *, dry_run: bool = False) -> str:
    run = db.response.create_run(
        tenant,
        incident_id="inc-1",
        playbook_id="pb",
        playbook_version=2,
        steps=[("tell", "notify.slack"), ("approve", None), ("isolate", "mde.isolate_machine")],
        dry_run=dry_run,
        actor=ACTOR,
    )
    return run.id


def test_create_run_with_pending_steps(db: Database, tenant_clinic: TenantId) -> None:
    run_id = new_run(db, tenant_clinic, dry_run=True)
    run = db.response.get_run(tenant_clinic, run_id)
    assert (run.state, run.dry_run, run.playbook_version) == ("pending", True, 2)
    steps = db.response.steps(tenant_clinic, run_id)
    assert [(s.step_id, s.state, s.attempt) for s in steps] == [
        ("tell", "pending", 0),
        ("approve", "pending", 0),
        ("isolate", "pending", 0),
    ]
    assert db.response.unfinished_runs()[0].id == run_id
    audit = db.audit.list(tenant_clinic)
    assert any(e.action == "response.run_create" and e.object_id == run_id for e in audit)


def test_runs_are_per_tenant(db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId) -> None:
    run_id = new_run(db, tenant_clinic)
    with pytest.raises(NotFoundError, match="lawfirm"):
        db.response.get_run(tenant_lawfirm, run_id)
    assert db.response.steps(tenant_lawfirm, run_id) == []
    assert db.response.list_runs(tenant_lawfirm) == []


def test_run_state_is_compare_and_set_and_audited(db: Database, tenant_clinic: TenantId) -> None:
    run_id = new_run(db, tenant_clinic)
    run = db.response.set_run_state(
        tenant_clinic, run_id, expected="pending", state="running", actor="engine", reason="started"
    )
    assert run.state == "running"
    with pytest.raises(StaleStateError, match="is running, not pending"):
        db.response.set_run_state(
            tenant_clinic, run_id, expected="pending", state="running", actor="engine", reason="again"
        )
    with pytest.raises(ValueError, match="not a run state"):
        db.response.set_run_state(
            tenant_clinic, run_id, expected="running", state="exploded", actor="engine", reason="x"
        )
    entries = [e for e in db.audit.list(tenant_clinic) if e.action == "response.run_state"]
    assert entries[-1].details["to"] == "running"


def test_step_updates_log_targets_in_the_same_transaction(
    db: Database, tenant_clinic: TenantId, clock: FakeClock
) -> None:
    run_id = new_run(db, tenant_clinic)
    step = db.response.update_step(
        tenant_clinic,
        run_id,
        "isolate",
        actor="engine",
        expected="pending",
        state="running",
        attempt=1,
        idempotency_key=f"{run_id}:isolate:1",
        inputs={"host": "pc1"},
        started_at=clock.now,
        log_targets=[("mde.isolate_machine", "host", "pc1")],
    )
    assert (step.state, step.attempt, step.inputs) == ("running", 1, {"host": "pc1"})
    logged = db.response.recent_actions(tenant_clinic, since=clock.now - timedelta(hours=1))
    assert [(e.action_id, e.target) for e in logged] == [("mde.isolate_machine", "pc1")]
    with pytest.raises(StaleStateError):
        db.response.update_step(
            tenant_clinic, run_id, "isolate", actor="engine", expected="pending", state="failed"
        )
    with pytest.raises(ValueError, match="no fields"):
        db.response.update_step(tenant_clinic, run_id, "isolate", actor="engine", colour="red")
    clock.advance(timedelta(hours=2))
    assert db.response.recent_actions(tenant_clinic, since=clock.now - timedelta(hours=1)) == []
    assert any(e.action == "response.step_state" for e in db.audit.list(tenant_clinic))


def test_approvals_open_once_and_decide_once(db: Database, tenant_clinic: TenantId, clock: FakeClock) -> None:
    run_id = new_run(db, tenant_clinic)
    deadline = clock.now + timedelta(minutes=20)
    first = db.response.open_approval(
        tenant_clinic,
        run_id,
        "isolate",
        approvers={"roles": ["soc_manager"]},
        reason="r",
        deadline=deadline,
        actor="e",
    )
    again = db.response.open_approval(
        tenant_clinic,
        run_id,
        "isolate",
        approvers={"roles": ["x"]},
        reason="r2",
        deadline=deadline,
        actor="e",
    )
    assert again == first
    assert [a.step_id for a in db.response.open_approvals()] == ["isolate"]
    decided = db.response.decide_approval(
        tenant_clinic, run_id, "isolate", decision="approved", actor="sam@mssp", reason="go"
    )
    assert (decided.decision, decided.decided_by) == ("approved", "sam@mssp")
    with pytest.raises(ApprovalDecidedError, match="already approved"):
        db.response.decide_approval(
            tenant_clinic, run_id, "isolate", decision="rejected", actor="x", reason="no"
        )
    assert db.response.open_approvals(tenant_clinic) == []
    requests = [e for e in db.audit.list(tenant_clinic) if e.action == "response.approval_request"]
    assert len(requests) == 1


def test_policy_and_kill_switch(db: Database, tenant_clinic: TenantId) -> None:
    assert db.response.get_policy(tenant_clinic) is None
    db.response.put_policy(tenant_clinic, {"limits_per_hour": {"host": 2}}, actor=ACTOR)
    db.response.put_policy(tenant_clinic, {"limits_per_hour": {"host": 3}}, actor=ACTOR)
    assert db.response.get_policy(tenant_clinic) == {"limits_per_hour": {"host": 3}}
    assert not db.response.kill_switch()
    db.response.set_switch("kill_switch", enabled=True, reason="vendor outage", actor=ACTOR)
    assert db.response.kill_switch()
    db.response.set_switch("kill_switch", enabled=False, reason="over", actor=ACTOR)
    assert not db.response.kill_switch()
    with pytest.raises(ValueError, match="needs a reason"):
        db.response.set_switch("kill_switch", enabled=True, reason=" ", actor=ACTOR)


def test_credentials_are_listed_without_values(db: Database, tenant_clinic: TenantId) -> None:
    info = db.response.put_credentials(
        tenant_clinic,
        "msgraph",
        ciphertext=b"\x00sealed\xff",
        nonce=b"n" * 12,
        key_id="k1",
        keys=["client_secret", "client_id"],
        actor=ACTOR,
    )
    assert info.keys == ("client_id", "client_secret")
    listed = db.response.list_credentials(tenant_clinic)
    assert [(c.connector, c.keys) for c in listed] == [("msgraph", ("client_id", "client_secret"))]
    assert "sealed" not in repr(listed)
    sealed = db.response.sealed_credentials(tenant_clinic, "msgraph")
    assert sealed is not None
    assert sealed.ciphertext == b"\x00sealed\xff"
    assert "sealed" not in repr(sealed)
    assert db.response.sealed_credentials(TenantId("other"), "msgraph") is None
    assert db.response.delete_credentials(tenant_clinic, "msgraph", actor=ACTOR)
    assert not db.response.delete_credentials(tenant_clinic, "msgraph", actor=ACTOR)
    assert db.response.list_credentials(tenant_clinic) == []
