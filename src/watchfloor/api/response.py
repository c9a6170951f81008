"""Response runs, approvals, the tenants' response policies and the kill switch over the admin API.

Everything needs the run engine (`ctx.response`, a `respond.engine.RunEngine`; absent: 503
`api.response_disabled`) and the case service for the acting analyst (`X-Watchfloor-Actor`, as in
`api/incidents.py`; absent: 503 `api.cases_disabled`). Permissions come from `cases.permissions`:

| route | permission |
|---|---|
| list / show runs, list approvals, show policy, kill switch status | `view` (tenant scope) |
| start a run by hand | `view` for a dry run, else `contain` (any loaded playbook; the kill switch refuses) |
| cancel a run | `contain` |
| undo a finished run's reversible steps | `contain` |
| decide an approval | `approve_response`, and a role the approval names (mssp_admin always) |
| set the response policy | `manage_tenant` |
| engage / release the kill switch | mssp_admin or soc_manager |

Storage writes the audit entry of every change (runs, steps, approvals, policies, switches). Steps show
their inputs, outputs, timing and approver; connector configuration never leaves the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from fastapi import APIRouter, Header, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from watchfloor.api.auth import ACTOR_HEADER
from watchfloor.api.context import ApiContext
from watchfloor.api.problems import PROBLEM_MEDIA_TYPE, ApiProblem, Problem
from watchfloor.cases.models import Actor as CaseActor
from watchfloor.cases.permissions import Action, allowed, authorize
from watchfloor.core.types import TenantId
from watchfloor.respond.engine import RunEngineError
from watchfloor.respond.policy import ResponsePolicy, policy_from_json, policy_to_json
from watchfloor.respond.runs import ALL_RUN_STATES
from watchfloor.server.response_stage import (
    ResponseRefusedError,
    covered_actions,
    decide_approval,
    put_response_policy,
    set_kill_switch,
    start_by_hand,
)
from watchfloor.storage.errors import NotFoundError
from watchfloor.storage.respond import (
    ApprovalDecidedError,
    ApprovalRecord,
    RunRecord,
    StaleStateError,
    StepRecord,
)

if TYPE_CHECKING:
    from watchfloor.respond.engine import RunEngine
    from watchfloor.server.cases import CaseService

RunId = Annotated[str, Path(min_length=1, max_length=200, description="response run id, e.g. run_…")]
StepId = Annotated[str, Path(min_length=1, max_length=128)]
IncidentId = Annotated[str, Path(min_length=1, max_length=200)]
ActorHeader = Annotated[
    str | None,
    Header(
        alias=ACTOR_HEADER,
        description="the SOC roster analyst or duty manager doing the work (default: the operator)",
    ),
]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]


def _problem_doc(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}


_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    403: _problem_doc("unknown X-Watchfloor-Actor, or the actor may not do this (cases.permission_denied)"),
    409: _problem_doc(
        "the approval is already decided or expired (response.approval_decided), the run cannot move "
        "(respond.run), or the kill switch is engaged (response.kill_switch)"
    ),
    503: _problem_doc("response or case work is not enabled on this server"),
}


# -- DTOs ------------------------------------------------------------------------------------------------
class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant_id: str
    incident_id: str
    playbook_id: str
    playbook_version: int
    state: str
    dry_run: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    not_before: datetime | None
    error: str | None


class StepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    step_id: str
    position: int
    action_id: str | None
    state: str
    attempt: int
    idempotency_key: str | None
    inputs: dict[str, Any] | None
    output: dict[str, Any] | None
    external_ref: str | None
    started_at: datetime | None
    finished_at: datetime | None
    approved_by: str | None
    error: str | None


class CoveredAction(BaseModel):
    step_id: str
    action: str
    kind: str


class ApprovalOut(BaseModel):
    tenant_id: str
    run_id: str
    step_id: str
    incident_id: str | None = None
    playbook_id: str | None = None
    approvers: dict[str, Any]
    reason: str
    requested_at: datetime
    deadline: datetime
    expired: bool = Field(description="past the deadline: fails closed at the next tick")
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    actions: list[CoveredAction] = Field(description="what happens once approved")


class RunDetail(BaseModel):
    run: RunOut
    steps: list[StepOut]
    approvals: list[ApprovalOut]


class StartRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playbook_id: str = Field(min_length=1, max_length=128)
    dry_run: bool = False


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    reason: Reason


class PolicyOut(BaseModel):
    tenant_id: str
    stored: dict[str, Any] | None = Field(description="the tenant's document; null: the safe default")
    effective: dict[str, Any] = Field(description="the policy the engine applies, defaults filled in")


class KillSwitchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engaged: bool
    reason: Reason


class KillSwitchOut(BaseModel):
    engaged: bool


# -- helpers ----------------------------------------------------------------------------------------------
@contextmanager
def refusals() -> Iterator[None]:
    """The engine's, storage's and the response operations' refusals as problems."""
    try:
        yield
    except ResponseRefusedError as exc:
        raise ApiProblem(exc.status, exc.message, code=exc.code) from None
    except ApprovalDecidedError as exc:
        raise ApiProblem(409, exc.message, code="response.approval_decided") from None
    except (RunEngineError, StaleStateError) as exc:
        raise ApiProblem(409, exc.message, code=exc.code) from None


def routes(router: APIRouter, ctx: ApiContext) -> None:
    def engine() -> RunEngine:
        found: RunEngine | None = getattr(ctx, "response", None)
        if found is None:
            raise ApiProblem(503, "response is not enabled on this server", code="api.response_disabled")
        return found

    def cases() -> CaseService:
        if ctx.cases is None:
            raise ApiProblem(503, "case work is not enabled on this server", code="api.cases_disabled")
        return ctx.cases

    def who(header: str | None) -> CaseActor:
        return cases().actor(header.strip() if header else None)

    def scoped(
        header: str | None, tenant: str, action: Action = "view"
    ) -> tuple[RunEngine, CaseActor, TenantId]:
        run_engine = engine()
        actor = who(header)
        tid = ctx.tenant_id(tenant)
        authorize(actor, action, tid)
        return run_engine, actor, tid

    def approval_out(run_engine: RunEngine, approval: ApprovalRecord, run: RunRecord | None) -> ApprovalOut:
        playbook = run_engine.playbooks.get(run.playbook_id) if run is not None else None
        return ApprovalOut(
            tenant_id=approval.tenant_id,
            run_id=approval.run_id,
            step_id=approval.step_id,
            incident_id=run.incident_id if run is not None else None,
            playbook_id=run.playbook_id if run is not None else None,
            approvers=dict(approval.approvers),
            reason=approval.reason,
            requested_at=approval.requested_at,
            deadline=approval.deadline,
            expired=approval.decision is None and run_engine.clock() >= approval.deadline,
            decision=approval.decision,
            decided_by=approval.decided_by,
            decided_at=approval.decided_at,
            decision_reason=approval.decision_reason,
            actions=[CoveredAction(**a) for a in covered_actions(playbook, approval.step_id)],
        )

    def detail(run_engine: RunEngine, run: RunRecord) -> RunDetail:
        steps: list[StepRecord] = run_engine.db.response.steps(run.tenant_id, run.id)
        approvals: list[ApprovalOut] = []
        for step in steps:
            if step.state in {"waiting_approval", "succeeded", "rejected", "expired"} or step.approved_by:
                try:
                    record = run_engine.db.response.get_approval(run.tenant_id, run.id, step.step_id)
                except NotFoundError:  # the step asked nobody (a standing or policy approval)
                    continue
                approvals.append(approval_out(run_engine, record, run))
        return RunDetail(
            run=RunOut.model_validate(run),
            steps=[StepOut.model_validate(s) for s in steps],
            approvals=approvals,
        )

    common: dict[str, Any] = {"tags": ["response"], "responses": _RESPONSES}

    # -- runs -------------------------------------------------------------------------------------------
    @router.get("/tenants/{tenant}/runs", **common)
    def list_runs(
        tenant: str,
        x_watchfloor_actor: ActorHeader = None,
        incident_id: Annotated[str | None, Query(max_length=200)] = None,
        state: Annotated[list[str] | None, Query(description="repeat for several")] = None,
    ) -> list[RunOut]:
        """The tenant's response runs (of one incident, in some states), oldest first."""
        run_engine, _actor, tid = scoped(x_watchfloor_actor, tenant)
        for value in state or ():
            if value not in ALL_RUN_STATES:
                choices = ", ".join(sorted(ALL_RUN_STATES))
                raise ApiProblem(400, f"state {value!r} is not one of {choices}", code="api.invalid_value")
        found = run_engine.db.response.list_runs(tid, incident_id=incident_id, states=state)
        return [RunOut.model_validate(r) for r in found]

    @router.get("/tenants/{tenant}/runs/{run_id}", **common)
    def get_run(tenant: str, run_id: RunId, x_watchfloor_actor: ActorHeader = None) -> RunDetail:
        """The run, every step (inputs, outputs, timing, approver) and its approvals."""
        run_engine, _actor, tid = scoped(x_watchfloor_actor, tenant)
        return detail(run_engine, run_engine.db.response.get_run(tid, run_id))

    @router.post(
        "/tenants/{tenant}/incidents/{incident_id}/runs", status_code=status.HTTP_201_CREATED, **common
    )
    def start_run(
        tenant: str, incident_id: IncidentId, body: StartRunIn, x_watchfloor_actor: ActorHeader = None
    ) -> RunDetail:
        """Start any loaded playbook against the incident by hand and advance it (`contain` unless a dry
        run; refused while the kill switch is engaged, except dry runs)."""
        run_engine, actor, tid = scoped(x_watchfloor_actor, tenant)
        with refusals():
            run = start_by_hand(
                run_engine, cases(), actor, tid, incident_id, body.playbook_id, dry_run=body.dry_run
            )
        return detail(run_engine, run)

    @router.post("/tenants/{tenant}/runs/{run_id}/cancel", **common)
    def cancel_run(
        tenant: str, run_id: RunId, body: CancelIn, x_watchfloor_actor: ActorHeader = None
    ) -> RunDetail:
        """Stop a run that has not finished (`contain`); steps done stay done."""
        run_engine, actor, tid = scoped(x_watchfloor_actor, tenant, "contain")
        with refusals():
            run = run_engine.cancel(tid, run_id, actor=actor.id, reason=body.reason)
        return detail(run_engine, run)

    @router.post("/tenants/{tenant}/runs/{run_id}/undo", **common)
    def undo_run(
        tenant: str, run_id: RunId, body: CancelIn, x_watchfloor_actor: ActorHeader = None
    ) -> RunDetail:
        """Undo a finished run's reversible steps, newest first (`contain`): release the host, re-enable
        the user once the incident is over. 409 when the run is not finished or has nothing to undo."""
        run_engine, actor, tid = scoped(x_watchfloor_actor, tenant, "contain")
        with refusals():
            run = run_engine.undo(tid, run_id, actor=actor.id, reason=body.reason)
        return detail(run_engine, run)

    # -- approvals ---------------------------------------------------------------------------------------
    @router.get("/approvals", **common)
    def open_approvals(
        x_watchfloor_actor: ActorHeader = None,
        tenant: Annotated[str | None, Query(max_length=63, description="only this tenant")] = None,
    ) -> list[ApprovalOut]:
        """Undecided approvals in the actor's scope, earliest deadline first, with what each lets run."""
        run_engine = engine()
        actor = who(x_watchfloor_actor)
        tid = ctx.tenant_id(tenant) if tenant is not None else None
        if tid is not None:
            authorize(actor, "view", tid)
        out: list[ApprovalOut] = []
        for approval in run_engine.db.response.open_approvals(tid):
            if not allowed(actor, "view", approval.tenant_id):
                continue
            run = run_engine.db.response.get_run(approval.tenant_id, approval.run_id)
            out.append(approval_out(run_engine, approval, run))
        return out

    @router.post("/tenants/{tenant}/runs/{run_id}/approvals/{step_id}", **common)
    def decide(
        tenant: str, run_id: RunId, step_id: StepId, body: DecisionIn, x_watchfloor_actor: ActorHeader = None
    ) -> RunDetail:
        """Approve or reject an open approval (`approve_response` and a role the approval names); the
        approver's id is recorded and the run advances at once. 409 when decided or past its deadline."""
        run_engine, actor, tid = scoped(x_watchfloor_actor, tenant)
        with refusals():
            run = decide_approval(
                run_engine,
                actor,
                tid,
                run_id,
                step_id,
                approve=body.decision == "approve",
                reason=body.reason,
            )
        return detail(run_engine, run)

    # -- policy ------------------------------------------------------------------------------------------
    def policy_out(tid: TenantId, stored: dict[str, Any] | None) -> PolicyOut:
        effective = ResponsePolicy() if stored is None else policy_from_json(stored)
        return PolicyOut(tenant_id=tid, stored=stored, effective=policy_to_json(effective))

    @router.get("/tenants/{tenant}/response-policy", **common)
    def get_policy(tenant: str, x_watchfloor_actor: ActorHeader = None) -> PolicyOut:
        """The tenant's stored policy document and the policy in effect (defaults filled in)."""
        run_engine, _actor, tid = scoped(x_watchfloor_actor, tenant)
        return policy_out(tid, run_engine.db.response.get_policy(tid))

    @router.put("/tenants/{tenant}/response-policy", **common)
    def put_policy(tenant: str, body: dict[str, Any], x_watchfloor_actor: ActorHeader = None) -> PolicyOut:
        """Replace the tenant's response policy (`manage_tenant`); checked before it is stored (400 names
        the key)."""
        run_engine, actor, tid = scoped(x_watchfloor_actor, tenant)
        with refusals():
            put_response_policy(run_engine.db, actor, tid, body)
        return policy_out(tid, run_engine.db.response.get_policy(tid))

    # -- kill switch -------------------------------------------------------------------------------------
    @router.get("/response/kill-switch", **common)
    def get_kill_switch(x_watchfloor_actor: ActorHeader = None) -> KillSwitchOut:
        """Whether the platform-wide response kill switch is engaged (then nothing but read-only runs)."""
        run_engine = engine()
        who(x_watchfloor_actor)
        return KillSwitchOut(engaged=run_engine.db.response.kill_switch())

    @router.put("/response/kill-switch", **common)
    def put_kill_switch(body: KillSwitchIn, x_watchfloor_actor: ActorHeader = None) -> KillSwitchOut:
        """Engage or release the kill switch (mssp_admin or soc_manager; a reason; audited)."""
        run_engine = engine()
        actor = who(x_watchfloor_actor)
        with refusals():
            engaged = set_kill_switch(run_engine.db, actor, engaged=body.engaged, reason=body.reason)
        return KillSwitchOut(engaged=engaged)
