"""The durable run engine: a playbook run against one incident, step by step, every decision stored.

`RunEngine.start(tenant, incident_id, playbook)` stores a `pending` run with one row per step;
`advance(tenant, run_id)` executes the next steps in order until the run ends or has to wait (for an
approval, a wait step or a retry backoff), and is safe to call again at any time, from any process:

- action steps: inputs resolved (`resolve_inputs`), the tenant's policy asked (`policy.decide`: kill switch,
  blast-radius limits, notify only / ask approval / automatic); an action runs through the registry with
  `idempotency_key = "<run>:<step>:<attempt>"`, the attempt stored *before* the call, so a step that was
  `running` when the process died is re-run with the same key (the action's idempotency makes it safe);
- an approved approval step covers the containment steps after it; without one, a step the policy wants
  approved opens its own approval. A rejection, or no answer by the deadline, stops the run
  (`failed_closed`, the step `rejected`/`expired`) and escalates on the incident's timeline: a timeout is
  never consent;
- retryable `ConnectorError`s are retried with exponential backoff (the run `waiting` meanwhile); a failed
  step with `rollback_on_failure` undoes the earlier reversible steps of the run, newest first;
- a dry run executes every action with `dry_run=True`, asks nobody, waits for nothing, logs no targets and
  records what would have happened.

Every step writes a timeline entry on the incident; a containment step that succeeded moves the incident
to `contained` through `CaseService.transition` (time to contain feeds the SLA metrics).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from watchfloor.cases.lifecycle import ACCEPT
from watchfloor.cases.models import SYSTEM, Incident, TimelineEntry, TimelineKind
from watchfloor.cases.soc import duty_managers_at
from watchfloor.core.errors import Location, WatchfloorError
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import ActionContext, ActionManifest, ActionResult, ConnectorError
from watchfloor.respond.playbook_schema import PlaybookRuntimeError, evaluate
from watchfloor.respond.playbooks import (
    ActionStep,
    ApprovalStep,
    BranchStep,
    Playbook,
    WaitStep,
    resolve_inputs,
    run_context,
    step_record,
)
from watchfloor.respond.policy import (
    BLAST_WINDOW,
    Decision,
    RecentAction,
    ResponsePolicy,
    decide,
    policy_from_json,
)
from watchfloor.respond.registry import ActionRegistry
from watchfloor.respond.runs import RunState, RunTransition, check_run_transition, run_state
from watchfloor.storage.incidents import Change
from watchfloor.storage.respond import RunRecord, StepRecord

if TYPE_CHECKING:  # the server package is not imported at run time
    from watchfloor.server.cases import CaseService
    from watchfloor.storage import Database

log = logging.getLogger(__name__)

ENGINE_ACTOR: Final = "system:response-engine"
DONE_STEP_STATES: Final = frozenset({"succeeded", "skipped", "rolled_back"})
TARGET_INPUT_TYPES: Final[Mapping[str, frozenset[str]]] = {
    "user": frozenset({"user", "email"}),
    "mailbox": frozenset({"user", "email"}),
    "host": frozenset({"host", "ip"}),
    "credential": frozenset({"user", "string"}),
    "network": frozenset({"ip", "domain", "url"}),
}


class RunEngineError(WatchfloorError):
    """A run that cannot be advanced (unknown playbook, changed playbook version, refused transition)."""

    code = "respond.run"


class ConnectorConfigSource(Protocol):
    """Where the engine gets a tenant's connector configuration (secrets included, never logged)."""

    def config_for(self, tenant_id: TenantId, connector: str) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class StaticConfig:
    """Connector configuration from a mapping (tests, development): connector -> config."""

    configs: Mapping[str, Mapping[str, Any]]

    def config_for(self, tenant_id: TenantId, connector: str) -> Mapping[str, Any]:  # noqa: ARG002
        return self.configs.get(connector, {})


class _Pause(Exception):  # noqa: N818 - control flow inside `advance`, never escapes it
    """The run has to wait (approval, wait step, backoff) or has ended."""


class RunEngine:
    """Runs playbooks durably over `db` (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        registry: ActionRegistry,
        *,
        playbooks: Mapping[str, Playbook],
        secrets: ConnectorConfigSource,
        cases: CaseService | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
        tenant_context: Callable[[TenantId], Mapping[str, Any]] | None = None,
        max_attempts: int = 3,
        backoff_seconds: float = 30.0,
    ) -> None:
        self.db = db
        self.registry = registry
        self.playbooks = playbooks
        self.secrets = secrets
        self.cases = cases
        self._decide_lock = threading.RLock()
        self.clock = clock
        self.tenant_context = tenant_context or (lambda _tenant: {})
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds

    # -- public ----------------------------------------------------------------------------------
    def start(
        self,
        tenant_id: TenantId,
        incident_id: str,
        playbook: Playbook,
        *,
        dry_run: bool = False,
        actor: str = ENGINE_ACTOR,
        run_id: str | None = None,
    ) -> RunRecord:
        """A new pending run of `playbook` against the incident (call `advance` to execute it). A given
        `run_id` that exists already raises the database's integrity error and records nothing: the
        response stage starts automatic runs under a deterministic id, so two processes start one."""
        self.db.incidents.get(tenant_id, incident_id)  # NotFoundError for another tenant's incident
        steps = [(s.id, s.action if isinstance(s, ActionStep) else None) for s in playbook.steps]
        run = self.db.response.create_run(
            tenant_id,
            incident_id=incident_id,
            playbook_id=playbook.id,
            playbook_version=playbook.version,
            steps=steps,
            dry_run=dry_run,
            actor=actor,
            run_id=run_id,
        )
        mode = "dry run" if dry_run else "run"
        self._timeline(run, f"playbook {playbook.id} v{playbook.version}: {mode} {run.id} started", "note")
        return run

    def approve(
        self, tenant_id: TenantId, run_id: str, step_id: str, *, actor: str, approved: bool, reason: str
    ) -> RunRecord:
        """Record a person's decision on an open approval, then advance the run."""
        decision = "approved" if approved else "rejected"
        self.db.response.decide_approval(
            tenant_id, run_id, step_id, decision=decision, actor=actor, reason=reason
        )
        return self.advance(tenant_id, run_id)

    def cancel(self, tenant_id: TenantId, run_id: str, *, actor: str, reason: str) -> RunRecord:
        """Stop the run; its open approvals are closed as rejected by the canceller (nobody can approve a
        step of a cancelled run afterwards)."""
        run = self.db.response.get_run(tenant_id, run_id)
        moved = self._move(run, "cancelled", reason=reason, actor=actor)
        for approval in self.db.response.open_approvals(tenant_id):
            if approval.run_id == run_id:
                self.db.response.decide_approval(
                    tenant_id,
                    run_id,
                    approval.step_id,
                    decision="rejected",
                    actor=actor,
                    reason=f"run cancelled: {reason}",
                )
        return moved

    def resume_all(self) -> list[RunRecord]:
        """Advance every unfinished run of every tenant (after a restart, or from a periodic sweep)."""
        return [self.advance(run.tenant_id, run.id) for run in self.db.response.unfinished_runs()]

    def advance(self, tenant_id: TenantId, run_id: str) -> RunRecord:
        """Execute the run's next steps until it ends or waits; returns the stored run."""
        run = self.db.response.get_run(tenant_id, run_id)
        if run_state(run.state) in {"succeeded", "failed", "failed_closed", "cancelled", "rolled_back"}:
            return run
        playbook = self._playbook(run)
        now = self._now()
        if run.state == "waiting" and run.not_before is not None and now < run.not_before:
            return run
        if run.state != "running":
            open_approval = run.state == "waiting_approval" and self._open_approval(run)
            if open_approval and not self._approval_expired(run, now):
                return run
            if not open_approval:
                run = self._move(run, "running", reason="resumed")
        try:
            self._execute(run, playbook)
        except _Pause:
            pass
        except PlaybookRuntimeError as exc:  # a reference that does not resolve (missing setting, ...)
            current = self.db.response.get_run(tenant_id, run_id)
            if current.state == "running":
                self._move(current, "failed", reason="a playbook reference did not resolve", error=str(exc))
                self._timeline(current, f"response run {run_id} failed: {exc}", "note")
            else:
                raise
        return self.db.response.get_run(tenant_id, run_id)

    # -- the step loop ---------------------------------------------------------------------------
    def _execute(self, run: RunRecord, playbook: Playbook) -> None:
        incident = self.db.incidents.get(run.tenant_id, run.incident_id)
        records: dict[str, dict[str, Any]] = {}
        decisions: dict[str, bool] = {}
        approved_by: str | None = None
        for row in self.db.response.steps(run.tenant_id, run.id):
            step = playbook.step(row.step_id)
            if row.state in DONE_STEP_STATES or (row.state == "failed" and step.on_error == "continue"):
                if row.output is not None and "record" in row.output:
                    records[row.step_id] = dict(row.output["record"])
                if isinstance(step, BranchStep) and row.output is not None:
                    decisions[step.id] = bool(row.output.get("decision"))
                if isinstance(step, ApprovalStep) and row.state == "succeeded":
                    approved_by = row.approved_by
                continue
            if not playbook.should_run(step.id, decisions):
                self._step(run, row, state="skipped", finished_at=self._now())
                continue
            context = run_context(incident, tenant=self.tenant_context(run.tenant_id), steps=records)
            if isinstance(step, BranchStep):
                held = evaluate(step.condition, context, location=playbook.location_of(step))
                decisions[step.id] = held
                self._step(run, row, state="succeeded", output={"decision": held}, finished_at=self._now())
            elif isinstance(step, WaitStep):
                self._wait(run, row, step, context, playbook)
            elif isinstance(step, ApprovalStep):
                approved_by = self._approval_step(run, row, step, context, incident)
            else:
                record = self._action_step(run, row, step, context, incident, playbook, approved_by)
                if record is not None:
                    records[step.id] = record
                incident = self.db.incidents.get(run.tenant_id, run.incident_id)
        self._move(run, "succeeded", reason="every step done")
        self._timeline(run, f"playbook {run.playbook_id}: run {run.id} finished", "note")

    # -- waits -----------------------------------------------------------------------------------
    def _wait(
        self, run: RunRecord, row: StepRecord, step: WaitStep, context: Mapping[str, Any], playbook: Playbook
    ) -> None:
        now = self._now()
        if run.dry_run:
            self._step(run, row, state="succeeded", output={"dry_run": "would wait"}, finished_at=now)
            return
        started = row.started_at or now
        if row.state == "pending":
            self._step(run, row, state="waiting", started_at=now)
        limit = step.minutes if step.minutes is not None else step.timeout_minutes
        due = started + timedelta(minutes=limit) if limit is not None else None
        if step.until is not None and evaluate(step.until, context, location=playbook.location_of(step)):
            self._step(run, row, state="succeeded", output={"condition": True}, finished_at=now)
            return
        if due is not None and now >= due:
            if step.until is None or step.on_timeout == "continue":
                self._step(
                    run, row, state="succeeded", output={"timed_out": step.until is not None}, finished_at=now
                )
                return
            self._step(run, row, state="failed", error="the wait timed out", finished_at=now)
            self._move(run, "failed", reason=f"wait step {step.id} timed out")
            raise _Pause
        # re-check a condition every minute; a plain wait sleeps until it is due
        next_check = due if step.until is None and due is not None else now + timedelta(minutes=1)
        self._move(run, "waiting", reason=f"wait step {step.id}", not_before=next_check)
        raise _Pause

    # -- approvals -------------------------------------------------------------------------------
    def _approval_step(
        self,
        run: RunRecord,
        row: StepRecord,
        step: ApprovalStep,
        context: Mapping[str, Any],
        incident: Incident,
    ) -> str | None:
        now = self._now()
        who = {"roles": list(step.roles), "customer_contacts": list(step.customer_contacts)}
        if run.dry_run:
            self._step(run, row, state="succeeded", output={"dry_run": f"would ask {who}"}, finished_at=now)
            return "dry-run"
        if step.auto_approve_if is not None and evaluate(step.auto_approve_if, context):
            standing = "standing approval (auto_approve_if)"
            self._step(run, row, state="succeeded", approved_by=standing, finished_at=now)
            self._timeline(run, f"step {step.id}: approved by the tenant's standing approval", "note")
            return standing
        deadline = now + timedelta(minutes=step.timeout_minutes)
        by = self._await_approval(
            run,
            row,
            who,
            step.message or f"approve step {step.id}",
            deadline,
            incident,
            proceed_on_timeout=step.on_timeout == "proceed",
        )
        if by is None:  # no answer, and the playbook says proceed (never before containment)
            self._step(run, row, state="succeeded", output={"timed_out": True}, finished_at=self._now())
            self._timeline(run, f"step {step.id}: no answer by the deadline; the playbook proceeds", "note")
            return None
        self._step(run, row, state="succeeded", approved_by=by, finished_at=self._now())
        self._timeline(run, f"step {step.id}: approved by {by}", "note")
        return by

    def _await_approval(
        self,
        run: RunRecord,
        row: StepRecord,
        approvers: Mapping[str, Any],
        reason: str,
        deadline: datetime,
        incident: Incident,
        *,
        proceed_on_timeout: bool = False,
    ) -> str | None:
        """The approver's id once approved; None when it expired and `proceed_on_timeout`; else the run
        waits (_Pause) or fails closed."""
        now = self._now()
        if row.state != "waiting_approval":
            self.db.response.open_approval(
                run.tenant_id,
                run.id,
                row.step_id,
                approvers=approvers,
                reason=reason,
                deadline=deadline,
                actor=ENGINE_ACTOR,
            )
            self._step(run, row, state="waiting_approval", started_at=now)
            self._timeline(
                run,
                f"step {row.step_id}: approval asked of {_whom(approvers)} by {deadline.isoformat()}",
                "note",
            )
        approval = self.db.response.get_approval(run.tenant_id, run.id, row.step_id)
        if approval.decision is None and now >= approval.deadline:
            approval = self.db.response.decide_approval(
                run.tenant_id,
                run.id,
                row.step_id,
                decision="expired",
                actor=ENGINE_ACTOR,
                reason="deadline passed",
            )
        if approval.decision == "approved":
            return approval.decided_by or "unknown"
        if approval.decision == "expired" and proceed_on_timeout:
            self._move(run, "running", reason=f"approval of {row.step_id} timed out; on_timeout: proceed")
            return None
        if approval.decision is None:
            self._move(run, "waiting_approval", reason=f"step {row.step_id} waits for an approval")
            raise _Pause
        state = "expired" if approval.decision == "expired" else "rejected"
        self._step(run, row, state=state, error=approval.decision_reason, finished_at=now)
        why = (
            f"no approval for step {row.step_id} by {approval.deadline.isoformat()}: nothing done"
            if state == "expired"
            else f"step {row.step_id} rejected by {approval.decided_by}: {approval.decision_reason}"
        )
        self._fail_closed(run, why, approvers, incident)
        raise _Pause

    def _fail_closed(
        self, run: RunRecord, why: str, approvers: Mapping[str, Any], incident: Incident
    ) -> None:
        current = self.db.response.get_run(run.tenant_id, run.id)
        self._move(current, "failed_closed", reason=why)
        managers, customer = self._who_to_call(incident)
        self._timeline(
            run,
            f"response run {run.id} stopped ({why}); escalate: call {_whom(approvers)} "
            f"about incident {incident.id}"
            + (f"; duty manager on duty: {managers}" if managers else "")
            + (f"; customer escalation: {customer}" if customer else ""),
            "escalated",
            details={
                "run_id": run.id,
                "approvers": dict(approvers),
                "duty_managers": managers,
                "customer_escalation": customer,
            },
        )

    def _who_to_call(self, incident: Incident) -> tuple[str, str]:
        """The duty managers on duty now and the tenant's escalation contacts for the incident's severity
        at this hour (its time zone), in order: the people a failed-closed run is escalated to."""
        if self.cases is None:
            return "", ""
        now = self.clock()
        managers = ""
        if self.cases.roster is not None:
            found = duty_managers_at(self.cases.roster, now)
            managers = ", ".join(f"{m.name} ({m.phone or m.email or m.region})" for m in found)
        try:
            band, steps = self.cases.escalation_plan(SYSTEM, incident.tenant_id, incident.severity, now)
        except WatchfloorError as exc:  # a broken tree must not hide the failure itself
            log.warning("tenant %s: no escalation plan: %s", incident.tenant_id, exc)
            return managers, ""
        customer = ", ".join(f"{s.name} by {s.channel} at {s.address}" for s in steps)
        return managers, f"{customer} ({band.replace('_', ' ')})" if customer else ""

    def _open_approval(self, run: RunRecord) -> bool:
        return any(a.run_id == run.id for a in self.db.response.open_approvals(run.tenant_id))

    def _approval_expired(self, run: RunRecord, now: datetime) -> bool:
        return any(
            a.run_id == run.id and now >= a.deadline for a in self.db.response.open_approvals(run.tenant_id)
        )

    # -- actions ---------------------------------------------------------------------------------
    def _action_step(
        self,
        run: RunRecord,
        row: StepRecord,
        step: ActionStep,
        context: Mapping[str, Any],
        incident: Incident,
        playbook: Playbook,
        approved_by: str | None,
    ) -> dict[str, Any] | None:
        action = self.registry.get(step.action)
        manifest = action.manifest
        now = self._now()
        try:
            inputs = resolve_inputs(playbook, step, context)
        except PlaybookRuntimeError as exc:
            return self._failed(run, row, step, playbook, str(exc))
        retry = row.state == "waiting"  # a retry after a backoff: the policy already allowed it
        resumed = row.state == "running"  # the process died mid-call: same attempt, same key
        # the policy decision (limits counted) and the step marked running with its targets logged happen
        # under one lock: two runs of this process cannot both pass a blast-radius limit
        with self._decide_lock:
            if row.state in {"pending", "waiting_approval"}:
                decision = self._decide(run, manifest, inputs, incident, now)
                if run.dry_run:
                    pass  # recorded below with the result: nothing is asked, changed or counted
                elif decision.refused:
                    self._step(
                        run, row, state="refused", error=decision.reason, inputs=inputs, finished_at=now
                    )
                    self._fail_closed(run, decision.reason, _approvers(decision.approvers), incident)
                    raise _Pause
                elif decision.mode == "notify_only":
                    self._step(
                        run,
                        row,
                        state="skipped",
                        inputs=inputs,
                        output={"notify_only": decision.reason},
                        finished_at=now,
                    )
                    self._timeline(
                        run, f"step {step.id}: {manifest.id} not run, the policy says notify only", "note"
                    )
                    return None
                elif decision.mode == "ask_approval" and approved_by is None:
                    deadline = decision.deadline or now
                    approved_by = self._await_approval(
                        run, row, _approvers(decision.approvers), decision.reason, deadline, incident
                    )
                if decision.mode != "ask_approval" and not run.dry_run:
                    approved_by = approved_by or f"policy: {decision.mode}"
                dry_note = {"policy": decision.mode, "reason": decision.reason} if run.dry_run else {}
            else:
                dry_note = {}
                # a retry or a re-run after a crash was allowed before; the kill switch may be engaged since
                if not run.dry_run and manifest.risk != "read_only" and self.db.response.kill_switch():
                    why = f"the kill switch is engaged: step {step.id} ({manifest.id}) not retried"
                    self._step(run, row, state="refused", error=why, inputs=inputs, finished_at=now)
                    self._fail_closed(run, why, {}, incident)
                    raise _Pause
            attempt = row.attempt if resumed else row.attempt + 1
            key = f"{run.id}:{step.id}:{attempt}"
            targets = [] if run.dry_run or resumed or retry else _targets(manifest, inputs)
            row = self._step(
                run,
                row,
                expected=row.state,  # two engines racing: only one calls the vendor
                state="running",
                attempt=attempt,
                idempotency_key=key,
                inputs=inputs,
                started_at=row.started_at if resumed else now,
                approved_by=approved_by if not retry and not resumed else row.approved_by,
                log_targets=[(manifest.id, manifest.target, t) for t in targets],
            )
        try:  # credentials that do not open (lost key, tampering) fail the step like a vendor error
            ctx = ActionContext(
                tenant_id=run.tenant_id,
                run_id=run.id,
                step_id=step.id,
                idempotency_key=key,
                config=self.secrets.config_for(run.tenant_id, manifest.connector),
                dry_run=run.dry_run,
                clock=self.clock,
            )
            result = action.run(ctx, inputs)
        except ConnectorError as exc:
            if exc.retryable and attempt < self.max_attempts:
                delay = timedelta(seconds=self.backoff_seconds * 2 ** (attempt - 1))
                self._step(run, row, state="waiting", error=exc.message)
                self._timeline(run, f"step {step.id}: {manifest.id} failed ({exc.message}); retrying", "note")
                self._move(run, "waiting", reason=f"retry {step.id}", not_before=self._now() + delay)
                raise _Pause from None
            return self._failed(run, row, step, playbook, exc.message)
        record = step_record(result)
        output = {"record": record, **dry_note}
        self._step(
            run,
            row,
            state="succeeded",
            output=output,
            external_ref=result.external_ref,
            finished_at=self._now(),
            error=None,
        )
        self._timeline(
            run,
            f"step {step.id}: {'(dry run) ' if run.dry_run else ''}{result.summary}",
            "note",
            details={
                "run_id": run.id,
                "step_id": step.id,
                "action": manifest.id,
                "approved_by": row.approved_by,
            },
        )
        if step.kind == "contain" and not run.dry_run and result.status == "succeeded":
            self._contained(run, step, result)
        return record

    def _decide(
        self,
        run: RunRecord,
        manifest: ActionManifest,
        inputs: Mapping[str, Any],
        incident: Incident,
        now: datetime,
    ) -> Decision:
        stored = self.db.response.get_policy(run.tenant_id)
        policy = ResponsePolicy() if stored is None else policy_from_json(stored)
        recent = [
            RecentAction(action_id=e.action_id, target_kind=e.target_kind, target=e.target, at=e.at)  # type: ignore[arg-type]
            for e in self.db.response.recent_actions(run.tenant_id, since=now - BLAST_WINDOW)
        ]
        return decide(
            policy,
            manifest,
            incident.severity,
            now,
            targets=_targets(manifest, inputs),
            recent_actions=recent,
            kill_switch=self.db.response.kill_switch(),
        )

    def _failed(
        self, run: RunRecord, row: StepRecord, step: ActionStep, playbook: Playbook, error: str
    ) -> dict[str, Any] | None:
        now = self._now()
        record = {"status": "failed", "summary": error, "changed": False, "output": {}, "external_ref": None}
        self._step(run, row, state="failed", error=error, output={"record": record}, finished_at=now)
        self._timeline(run, f"step {step.id} failed: {error}", "note")
        if step.on_error == "continue":
            return record
        undoable = [
            r
            for r in self.db.response.steps(run.tenant_id, run.id)
            if r.state == "succeeded"
            and isinstance(s := playbook.step(r.step_id), ActionStep)
            and s.rollback_on_failure
        ]
        if undoable:
            self._rollback(run, playbook, undoable, error)
        else:
            self._move(run, "failed", reason=f"step {step.id} failed", error=error)
        raise _Pause

    def undo(self, tenant_id: TenantId, run_id: str, *, actor: str, reason: str) -> RunRecord:
        """Undo a finished run's reversible steps that changed something, newest first (release the host
        once the incident is over); the run ends `rolled_back`, or `failed` when an undo failed."""
        run = self.db.response.get_run(tenant_id, run_id)
        where = Location(tenant=tenant_id, path=f"response_runs/{run_id}")
        if run.state not in ("succeeded", "failed", "cancelled"):
            msg = f"run {run_id} is {run.state}: only a finished run (succeeded, failed, cancelled) is undone"
            raise RunEngineError(msg, location=where, code="respond.undo_invalid")
        if not reason.strip():
            raise RunEngineError("undoing a run needs a reason", location=where, code="respond.undo_invalid")
        playbook = self._playbook(run)
        rows = []
        for row in self.db.response.steps(tenant_id, run_id):
            step = playbook.step(row.step_id)
            if row.state != "succeeded" or not isinstance(step, ActionStep):
                continue
            if self.registry.get(step.action).manifest.reversible:
                rows.append(row)
        if not rows:
            msg = f"run {run_id} has no reversible step that succeeded: nothing to undo"
            raise RunEngineError(msg, location=where, code="respond.undo_invalid")
        self._timeline(run, f"{actor} undoes response run {run.id}: {reason}", "note")
        self._rollback(run, playbook, rows, f"undone by {actor}: {reason}", because=f"undone by {actor}")
        return self.db.response.get_run(tenant_id, run_id)

    def _rollback(
        self,
        run: RunRecord,
        playbook: Playbook,
        rows: list[StepRecord],
        error: str,
        *,
        because: str = "a step failed; earlier steps undone",
    ) -> None:
        """Undo the run's earlier reversible steps (those marked rollback_on_failure), newest first."""
        problems: list[str] = []
        for row in reversed(rows):
            step = playbook.step(row.step_id)
            if not isinstance(step, ActionStep):
                continue
            action = self.registry.get(step.action)
            record = dict((row.output or {}).get("record") or {})
            done = ActionResult(
                status="succeeded",
                summary=str(record.get("summary", "")),
                changed=bool(record.get("changed")),
                output=dict(record.get("output") or {}),
                external_ref=row.external_ref,
            )
            try:
                ctx = ActionContext(
                    tenant_id=run.tenant_id,
                    run_id=run.id,
                    step_id=step.id,
                    idempotency_key=f"{run.id}:{step.id}:rollback",
                    config=self.secrets.config_for(run.tenant_id, action.manifest.connector),
                    dry_run=run.dry_run,
                    clock=self.clock,
                )
                undone = action.rollback(ctx, row.inputs or {}, done)
            except ConnectorError as exc:
                problems.append(f"{step.id}: {exc.message}")
                self._timeline(run, f"rollback of step {step.id} failed: {exc.message}", "note")
                continue
            self._step(run, row, state="rolled_back", error=None)
            self._timeline(run, f"rolled back step {step.id}: {undone.summary}", "note")
        if problems and run.state == "failed":  # undoing a failed run: it stays failed, the note says why
            self._timeline(run, f"undo of run {run.id} incomplete: {'; '.join(problems)}", "note")
        elif problems:
            self._move(
                run, "failed", reason="rollback incomplete", error=f"{error}; rollback: {'; '.join(problems)}"
            )
        else:
            self._move(run, "rolled_back", reason=because, error=error)

    def _contained(self, run: RunRecord, step: ActionStep, result: ActionResult) -> None:
        if self.cases is None:
            return
        outcome = self.cases.transition(
            SYSTEM,
            run.tenant_id,
            run.incident_id,
            "contained",
            reason=f"response step {step.id}: {result.summary}",
        )
        if outcome.verdict is not ACCEPT:
            log.info("incident %s not moved to contained: %s", run.incident_id, outcome.verdict)

    # -- plumbing --------------------------------------------------------------------------------
    def _playbook(self, run: RunRecord) -> Playbook:
        playbook = self.playbooks.get(run.playbook_id)
        where = Location(tenant=run.tenant_id, path=f"response_run/{run.id}")
        if playbook is None:
            raise RunEngineError(f"run {run.id}: playbook {run.playbook_id!r} is not loaded", location=where)
        if playbook.version != run.playbook_version:
            raise RunEngineError(
                f"run {run.id} started on {run.playbook_id} v{run.playbook_version}, "
                f"loaded is v{playbook.version}",
                location=where,
            )
        return playbook

    def _now(self) -> datetime:
        return self.clock()

    def _move(
        self,
        run: RunRecord,
        to: RunState,
        *,
        reason: str,
        actor: str = ENGINE_ACTOR,
        error: str | None = None,
        not_before: datetime | None = None,
    ) -> RunRecord:
        current = self.db.response.get_run(run.tenant_id, run.id)
        if current.state == to and to in {"waiting", "waiting_approval"}:
            return current
        verdict = check_run_transition(
            RunTransition(
                run_id=run.id,
                from_state=run_state(current.state),
                to_state=to,
                now=self._now(),
                reason=reason,
                not_before=current.not_before,
                approval_open=current.state == "waiting_approval" and self._open_approval(current),
            )
        )
        if verdict is not ACCEPT:
            why = getattr(verdict, "reason", "refused")
            raise RunEngineError(why, location=Location(tenant=run.tenant_id, path=f"response_run/{run.id}"))
        return self.db.response.set_run_state(
            run.tenant_id,
            run.id,
            expected=current.state,
            state=to,
            actor=actor,
            reason=reason,
            error=error,
            not_before=not_before,
        )

    def _step(self, run: RunRecord, row: StepRecord, **values: Any) -> StepRecord:
        return self.db.response.update_step(run.tenant_id, run.id, row.step_id, actor=ENGINE_ACTOR, **values)

    def _timeline(
        self, run: RunRecord, summary: str, kind: TimelineKind, *, details: Mapping[str, Any] | None = None
    ) -> None:
        entry_details = dict(details or {"run_id": run.id})

        def change(incident: Incident) -> Change:
            entry = TimelineEntry(
                incident_id=incident.id,
                tenant_id=incident.tenant_id,
                at=self._now(),
                actor=ENGINE_ACTOR,
                kind=kind,
                summary=summary,
                details=entry_details,
            )
            return Change(incident=incident, timeline=(entry,))

        self.db.incidents.modify(run.tenant_id, run.incident_id, change, actor=ENGINE_ACTOR)


def _targets(manifest: ActionManifest, inputs: Mapping[str, Any]) -> list[str]:
    """The values the blast-radius limits count: inputs whose type fits the manifest's target kind."""
    kinds = TARGET_INPUT_TYPES.get(manifest.target)
    if kinds is None:
        return []
    found: list[str] = []
    for spec in manifest.inputs:
        value = inputs.get(spec.name)
        if spec.type in kinds and value not in (None, ""):
            values = value if isinstance(value, list) else [value]
            found.extend(str(v).lower() for v in values)
    return sorted(set(found))


def _approvers(approvers: Any) -> dict[str, Any]:
    return {"roles": list(approvers.roles), "customer_contacts": list(approvers.customer_contacts)}


def _whom(approvers: Mapping[str, Any]) -> str:
    names = [
        *approvers.get("roles", ()),
        *(f"customer contact {c}" for c in approvers.get("customer_contacts", ())),
    ]
    return ", ".join(names) or "the SOC duty manager"
