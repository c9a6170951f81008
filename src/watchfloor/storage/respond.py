"""Response runs and what guards them: runs and their steps, approvals, sealed connector credentials,
per-tenant response policies, the action log blast-radius limits count, and platform switches.

No business rules here: which run state may follow which is `respond/runs.py`'s; this module stores what
it decided, refusing a change whose expected current state no longer holds (two engines racing), and
writes an audit entry for every change in the same transaction. Credentials arrive sealed (ciphertext,
nonce, key id); listing them shows which keys are set, never a value.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, delete, insert, select, update

from watchfloor.core.types import TenantId
from watchfloor.storage.audit import append_audit
from watchfloor.storage.engine import Store, dialect_insert
from watchfloor.storage.errors import NotFoundError, StorageError, where
from watchfloor.storage.schema import (
    APPROVAL_DECISIONS,
    RUN_STATES,
    STEP_STATES,
    connector_credentials,
    response_action_log,
    response_approvals,
    response_policies,
    response_runs,
    response_steps,
    response_switches,
)
from watchfloor.storage.tenants import require_tenant

KILL_SWITCH: Final = "kill_switch"
PLATFORM_TENANT: Final = "*"  # the audit entries of platform-wide switches
TERMINAL_RUN_STATES: Final = frozenset({"succeeded", "failed", "failed_closed", "cancelled", "rolled_back"})
_STEP_FIELDS: Final = frozenset(
    {
        "state",
        "attempt",
        "idempotency_key",
        "inputs",
        "output",
        "external_ref",
        "started_at",
        "finished_at",
        "approved_by",
        "error",
    }
)


class StaleStateError(StorageError):
    """The record was no longer in the state the change expected (another process moved it first)."""

    code = "storage.stale_state"


class ApprovalDecidedError(StorageError):
    """The approval was already decided (or expired); a decision is final."""

    code = "storage.approval_decided"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    id: str
    tenant_id: TenantId
    incident_id: str
    playbook_id: str
    playbook_version: int
    state: str
    dry_run: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    not_before: datetime | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_RUN_STATES


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    run_id: str
    step_id: str
    tenant_id: TenantId
    position: int
    action_id: str | None
    state: str
    attempt: int
    idempotency_key: str | None = None
    inputs: Mapping[str, Any] | None = field(default=None, compare=False)
    output: Mapping[str, Any] | None = field(default=None, compare=False)
    external_ref: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    approved_by: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRecord:
    run_id: str
    step_id: str
    tenant_id: TenantId
    approvers: Mapping[str, Any]
    reason: str
    requested_at: datetime
    deadline: datetime
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionLogEntry:
    tenant_id: TenantId
    action_id: str
    target_kind: str
    target: str
    run_id: str
    step_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedCredentials:
    """A connector's configuration as stored: sealed. `keys` names what is set (no values)."""

    tenant_id: TenantId
    connector: str
    ciphertext: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    key_id: str
    keys: tuple[str, ...]
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialInfo:
    """What listing credentials shows: which keys are set, who set them, when. Never a value."""

    tenant_id: TenantId
    connector: str
    keys: tuple[str, ...]
    key_id: str
    updated_by: str
    updated_at: datetime


def _run(row: Mapping[Any, Any]) -> RunRecord:
    return RunRecord(
        id=row["id"],
        tenant_id=TenantId(row["tenant_id"]),
        incident_id=row["incident_id"],
        playbook_id=row["playbook_id"],
        playbook_version=int(row["playbook_version"]),
        state=row["state"],
        dry_run=bool(row["dry_run"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        not_before=row["not_before"],
        error=row["error"],
    )


def _step(row: Mapping[Any, Any]) -> StepRecord:
    return StepRecord(
        run_id=row["run_id"],
        step_id=row["step_id"],
        tenant_id=TenantId(row["tenant_id"]),
        position=int(row["position"]),
        action_id=row["action_id"],
        state=row["state"],
        attempt=int(row["attempt"]),
        idempotency_key=row["idempotency_key"],
        inputs=row["inputs"],
        output=row["output"],
        external_ref=row["external_ref"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        approved_by=row["approved_by"],
        error=row["error"],
    )


def _approval(row: Mapping[Any, Any]) -> ApprovalRecord:
    return ApprovalRecord(
        run_id=row["run_id"],
        step_id=row["step_id"],
        tenant_id=TenantId(row["tenant_id"]),
        approvers=row["approvers"],
        reason=row["reason"],
        requested_at=row["requested_at"],
        deadline=row["deadline"],
        decision=row["decision"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        decision_reason=row["decision_reason"],
    )


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        msg = f"{value!r} is not a {what} ({', '.join(allowed)})"
        raise ValueError(msg)


class ResponseRepository:
    """Runs, steps, approvals, credentials, policies, the action log and switches. One call is one
    transaction; every change writes its audit entry in it."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def now(self) -> datetime:
        return self._store.now()

    # -- runs ------------------------------------------------------------------------------------
    def create_run(
        self,
        tenant_id: TenantId,
        *,
        incident_id: str,
        playbook_id: str,
        playbook_version: int,
        steps: Sequence[tuple[str, str | None]],  # (step id, action id or None), in playbook order
        dry_run: bool,
        actor: str,
        run_id: str | None = None,
    ) -> RunRecord:
        """A new `pending` run with one `pending` step row per playbook step."""
        new_id = run_id or f"run_{uuid.uuid4().hex}"
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            now = self._store.now()
            values = {
                "id": new_id,
                "tenant_id": tenant_id,
                "incident_id": incident_id,
                "playbook_id": playbook_id,
                "playbook_version": playbook_version,
                "state": "pending",
                "dry_run": dry_run,
                "created_by": actor,
                "created_at": now,
                "updated_at": now,
                "not_before": None,
                "error": None,
            }
            connection.execute(insert(response_runs).values(values))
            if steps:
                connection.execute(
                    insert(response_steps),
                    [
                        {
                            "run_id": new_id,
                            "step_id": step_id,
                            "tenant_id": tenant_id,
                            "position": position,
                            "action_id": action_id,
                            "state": "pending",
                            "attempt": 0,
                        }
                        for position, (step_id, action_id) in enumerate(steps)
                    ],
                )
            append_audit(
                connection,
                at=now,
                actor=actor,
                action="response.run_create",
                tenant_id=tenant_id,
                object_type="response_run",
                object_id=new_id,
                details={
                    "incident_id": incident_id,
                    "playbook": f"{playbook_id}@{playbook_version}",
                    "dry_run": dry_run,
                },
            )
        return _run(values)

    def get_run(self, tenant_id: TenantId, run_id: str) -> RunRecord:
        with self._store.read() as connection:
            return self._get_run(connection, tenant_id, run_id)

    @staticmethod
    def _get_run(connection: Connection, tenant_id: TenantId, run_id: str) -> RunRecord:
        row = (
            connection.execute(
                select(response_runs).where(
                    response_runs.c.id == run_id, response_runs.c.tenant_id == tenant_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError(
                f"tenant {tenant_id!r} has no response run {run_id!r}",
                location=where(tenant_id, "response_runs", run_id),
            )
        return _run(row)

    def list_runs(
        self, tenant_id: TenantId, *, incident_id: str | None = None, states: Iterable[str] | None = None
    ) -> builtins.list[RunRecord]:
        query = select(response_runs).where(response_runs.c.tenant_id == tenant_id)
        if incident_id is not None:
            query = query.where(response_runs.c.incident_id == incident_id)
        if states is not None:
            query = query.where(response_runs.c.state.in_(list(states)))
        with self._store.read() as connection:
            rows = connection.execute(
                query.order_by(response_runs.c.created_at, response_runs.c.id)
            ).mappings()
            return [_run(row) for row in rows]

    def unfinished_runs(self) -> builtins.list[RunRecord]:
        """Every run of every tenant not in a final state (what a restarted engine picks up)."""
        query = select(response_runs).where(response_runs.c.state.not_in(sorted(TERMINAL_RUN_STATES)))
        with self._store.read() as connection:
            rows = connection.execute(
                query.order_by(response_runs.c.created_at, response_runs.c.id)
            ).mappings()
            return [_run(row) for row in rows]

    def set_run_state(
        self,
        tenant_id: TenantId,
        run_id: str,
        *,
        expected: str,
        state: str,
        actor: str,
        reason: str,
        error: str | None = None,
        not_before: datetime | None = None,
    ) -> RunRecord:
        """Move a run from `expected` to `state` (StaleStateError when it is no longer in `expected`)."""
        _check(state, RUN_STATES, "run state")
        with self._store.write() as connection:
            now = self._store.now()
            current = self._get_run(connection, tenant_id, run_id)
            if current.state != expected:
                raise StaleStateError(
                    f"run {run_id} is {current.state}, not {expected}",
                    location=where(tenant_id, "response_runs", run_id),
                )
            connection.execute(
                update(response_runs)
                .where(response_runs.c.id == run_id, response_runs.c.state == expected)
                .values(state=state, updated_at=now, error=error, not_before=not_before)
            )
            if state != expected:
                append_audit(
                    connection,
                    at=now,
                    actor=actor,
                    action="response.run_state",
                    tenant_id=tenant_id,
                    object_type="response_run",
                    object_id=run_id,
                    details={"from": expected, "to": state, "reason": reason, "error": error},
                )
            return self._get_run(connection, tenant_id, run_id)

    # -- steps -----------------------------------------------------------------------------------
    def steps(self, tenant_id: TenantId, run_id: str) -> builtins.list[StepRecord]:
        query = (
            select(response_steps)
            .where(response_steps.c.tenant_id == tenant_id, response_steps.c.run_id == run_id)
            .order_by(response_steps.c.position)
        )
        with self._store.read() as connection:
            return [_step(row) for row in connection.execute(query).mappings()]

    def update_step(
        self,
        tenant_id: TenantId,
        run_id: str,
        step_id: str,
        *,
        actor: str,
        expected: str | None = None,
        log_targets: Sequence[tuple[str, str, str]] = (),  # (action id, target kind, target)
        **values: Any,
    ) -> StepRecord:
        """Change a step's recorded fields (and, in the same transaction, log the targets an action is
        about to touch). With `expected`, StaleStateError unless the step is in that state."""
        unknown = set(values) - _STEP_FIELDS
        if unknown:
            msg = f"response_steps has no fields {sorted(unknown)}"
            raise ValueError(msg)
        if "state" in values:
            _check(values["state"], STEP_STATES, "step state")
        mine = (
            (response_steps.c.tenant_id == tenant_id)
            & (response_steps.c.run_id == run_id)
            & (response_steps.c.step_id == step_id)
        )
        with self._store.write() as connection:
            now = self._store.now()
            row = connection.execute(select(response_steps).where(mine)).mappings().first()
            if row is None:
                raise NotFoundError(
                    f"run {run_id} of tenant {tenant_id!r} has no step {step_id!r}",
                    location=where(tenant_id, "response_steps", f"{run_id}/{step_id}"),
                )
            before = _step(row)
            if expected is not None and before.state != expected:
                raise StaleStateError(
                    f"step {step_id} of run {run_id} is {before.state}, not {expected}",
                    location=where(tenant_id, "response_steps", f"{run_id}/{step_id}"),
                )
            connection.execute(update(response_steps).where(mine).values(**values))
            if log_targets:
                connection.execute(
                    insert(response_action_log),
                    [
                        {
                            "tenant_id": tenant_id,
                            "action_id": action_id,
                            "target_kind": kind,
                            "target": target,
                            "run_id": run_id,
                            "step_id": step_id,
                            "at": now,
                        }
                        for action_id, kind, target in log_targets
                    ],
                )
            after = _step(connection.execute(select(response_steps).where(mine)).mappings().one())
            if after.state != before.state or after.attempt != before.attempt:
                append_audit(
                    connection,
                    at=now,
                    actor=actor,
                    action="response.step_state",
                    tenant_id=tenant_id,
                    object_type="response_step",
                    object_id=f"{run_id}/{step_id}",
                    details={
                        "from": before.state,
                        "to": after.state,
                        "attempt": after.attempt,
                        "action_id": after.action_id,
                        "external_ref": after.external_ref,
                        "approved_by": after.approved_by,
                        "error": after.error,
                    },
                )
        return after

    # -- approvals -------------------------------------------------------------------------------
    def open_approval(
        self,
        tenant_id: TenantId,
        run_id: str,
        step_id: str,
        *,
        approvers: Mapping[str, Any],
        reason: str,
        deadline: datetime,
        actor: str,
    ) -> ApprovalRecord:
        """Ask for an approval of a step (idempotent: an open request for the step is returned as is)."""
        with self._store.write() as connection:
            now = self._store.now()
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING.
            inserted = connection.execute(
                dialect_insert(connection, response_approvals)
                .values(
                    run_id=run_id,
                    step_id=step_id,
                    tenant_id=tenant_id,
                    approvers=dict(approvers),
                    reason=reason,
                    requested_at=now,
                    deadline=deadline,
                )
                .on_conflict_do_nothing()
                .returning(response_approvals.c.run_id)
            ).first()
            row = self._approval_row(connection, tenant_id, run_id, step_id)
            if inserted is not None:
                append_audit(
                    connection,
                    at=now,
                    actor=actor,
                    action="response.approval_request",
                    tenant_id=tenant_id,
                    object_type="response_approval",
                    object_id=f"{run_id}/{step_id}",
                    details={
                        "approvers": dict(approvers),
                        "deadline": deadline.isoformat(),
                        "reason": reason,
                    },
                )
            return row

    @staticmethod
    def _approval_row(
        connection: Connection, tenant_id: TenantId, run_id: str, step_id: str
    ) -> ApprovalRecord:
        row = (
            connection.execute(
                select(response_approvals).where(
                    response_approvals.c.tenant_id == tenant_id,
                    response_approvals.c.run_id == run_id,
                    response_approvals.c.step_id == step_id,
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError(
                f"run {run_id} of tenant {tenant_id!r} asks no approval for step {step_id!r}",
                location=where(tenant_id, "response_approvals", f"{run_id}/{step_id}"),
            )
        return _approval(row)

    def get_approval(self, tenant_id: TenantId, run_id: str, step_id: str) -> ApprovalRecord:
        with self._store.read() as connection:
            return self._approval_row(connection, tenant_id, run_id, step_id)

    def decide_approval(
        self, tenant_id: TenantId, run_id: str, step_id: str, *, decision: str, actor: str, reason: str
    ) -> ApprovalRecord:
        """Record the (final) decision; ApprovalDecidedError when it was already decided or expired."""
        _check(decision, APPROVAL_DECISIONS, "approval decision")
        with self._store.write() as connection:
            now = self._store.now()
            current = self._approval_row(connection, tenant_id, run_id, step_id)
            if current.decision is not None:
                raise ApprovalDecidedError(
                    f"the approval of step {step_id} of run {run_id} is already {current.decision}",
                    location=where(tenant_id, "response_approvals", f"{run_id}/{step_id}"),
                )
            connection.execute(
                update(response_approvals)
                .where(
                    response_approvals.c.tenant_id == tenant_id,
                    response_approvals.c.run_id == run_id,
                    response_approvals.c.step_id == step_id,
                    response_approvals.c.decision.is_(None),
                )
                .values(decision=decision, decided_by=actor, decided_at=now, decision_reason=reason)
            )
            append_audit(
                connection,
                at=now,
                actor=actor,
                action=f"response.approval_{decision}",
                tenant_id=tenant_id,
                object_type="response_approval",
                object_id=f"{run_id}/{step_id}",
                details={"reason": reason},
            )
            return self._approval_row(connection, tenant_id, run_id, step_id)

    def open_approvals(self, tenant_id: TenantId | None = None) -> builtins.list[ApprovalRecord]:
        """Undecided approvals (of one tenant, or all), earliest deadline first."""
        query = select(response_approvals).where(response_approvals.c.decision.is_(None))
        if tenant_id is not None:
            query = query.where(response_approvals.c.tenant_id == tenant_id)
        with self._store.read() as connection:
            rows = connection.execute(query.order_by(response_approvals.c.deadline)).mappings()
            return [_approval(row) for row in rows]

    # -- blast radius ----------------------------------------------------------------------------
    def recent_actions(self, tenant_id: TenantId, *, since: datetime) -> builtins.list[ActionLogEntry]:
        query = select(response_action_log).where(
            response_action_log.c.tenant_id == tenant_id, response_action_log.c.at > since
        )
        with self._store.read() as connection:
            return [
                ActionLogEntry(
                    tenant_id=TenantId(row["tenant_id"]),
                    action_id=row["action_id"],
                    target_kind=row["target_kind"],
                    target=row["target"],
                    run_id=row["run_id"],
                    step_id=row["step_id"],
                    at=row["at"],
                )
                for row in connection.execute(query.order_by(response_action_log.c.at)).mappings()
            ]

    # -- policies --------------------------------------------------------------------------------
    def put_policy(self, tenant_id: TenantId, policy: Mapping[str, Any], *, actor: str) -> None:
        """Store the tenant's response policy document (checked by the caller: `respond.policy`)."""
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            now = self._store.now()
            values = {"policy": dict(policy), "updated_by": actor, "updated_at": now}
            connection.execute(
                dialect_insert(connection, response_policies)
                .values(tenant_id=tenant_id, **values)
                .on_conflict_do_update(index_elements=["tenant_id"], set_=values)
            )
            append_audit(
                connection,
                at=now,
                actor=actor,
                action="response.policy_put",
                tenant_id=tenant_id,
                object_type="response_policy",
                object_id=tenant_id,
                details={"policy": dict(policy)},
            )

    def get_policy(self, tenant_id: TenantId) -> dict[str, Any] | None:
        query = select(response_policies.c.policy).where(response_policies.c.tenant_id == tenant_id)
        with self._store.read() as connection:
            value = connection.execute(query).scalar_one_or_none()
        return None if value is None else dict(value)

    # -- switches --------------------------------------------------------------------------------
    def set_switch(self, name: str, *, enabled: bool, reason: str, actor: str) -> None:
        """Turn a platform-wide switch on or off (audited under tenant '*')."""
        if not reason.strip():
            msg = f"turning {name} on or off needs a reason"
            raise ValueError(msg)
        with self._store.write() as connection:
            now = self._store.now()
            values = {"enabled": enabled, "reason": reason, "updated_by": actor, "updated_at": now}
            connection.execute(
                dialect_insert(connection, response_switches)
                .values(name=name, **values)
                .on_conflict_do_update(index_elements=["name"], set_=values)
            )
            append_audit(
                connection,
                at=now,
                actor=actor,
                action=f"response.switch_{'on' if enabled else 'off'}",
                tenant_id=PLATFORM_TENANT,
                object_type="response_switch",
                object_id=name,
                details={"reason": reason},
            )

    def switch(self, name: str) -> bool:
        query = select(response_switches.c.enabled).where(response_switches.c.name == name)
        with self._store.read() as connection:
            return bool(connection.execute(query).scalar_one_or_none())

    def kill_switch(self) -> bool:
        return self.switch(KILL_SWITCH)

    # -- sealed connector credentials ------------------------------------------------------------
    def put_credentials(
        self,
        tenant_id: TenantId,
        connector: str,
        *,
        ciphertext: bytes,
        nonce: bytes,
        key_id: str,
        keys: Iterable[str],
        actor: str,
    ) -> CredentialInfo:
        names = tuple(sorted(set(keys)))
        with self._store.write() as connection:
            require_tenant(connection, tenant_id, active=True)
            now = self._store.now()
            values = {
                "ciphertext": ciphertext,
                "nonce": nonce,
                "key_id": key_id,
                "keys": list(names),
                "updated_by": actor,
                "updated_at": now,
            }
            connection.execute(
                dialect_insert(connection, connector_credentials)
                .values(tenant_id=tenant_id, connector=connector, **values)
                .on_conflict_do_update(index_elements=["tenant_id", "connector"], set_=values)
            )
            append_audit(
                connection,
                at=now,
                actor=actor,
                action="response.credentials_put",
                tenant_id=tenant_id,
                object_type="connector_credentials",
                object_id=connector,
                details={"keys": list(names), "key_id": key_id},
            )
        return CredentialInfo(
            tenant_id=tenant_id,
            connector=connector,
            keys=names,
            key_id=key_id,
            updated_by=actor,
            updated_at=now,
        )

    def sealed_credentials(self, tenant_id: TenantId, connector: str) -> SealedCredentials | None:
        """The sealed record, for the secrets module to open; never show it to a user."""
        query = select(connector_credentials).where(
            connector_credentials.c.tenant_id == tenant_id, connector_credentials.c.connector == connector
        )
        with self._store.read() as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            return None
        return SealedCredentials(
            tenant_id=TenantId(row["tenant_id"]),
            connector=row["connector"],
            ciphertext=bytes(row["ciphertext"]),
            nonce=bytes(row["nonce"]),
            key_id=row["key_id"],
            keys=tuple(row["keys"]),
            updated_by=row["updated_by"],
            updated_at=row["updated_at"],
        )

    def list_credentials(self, tenant_id: TenantId) -> builtins.list[CredentialInfo]:
        """Which connectors have credentials and which keys are set: never a value or ciphertext."""
        columns = [c for c in connector_credentials.c if c.name not in {"ciphertext", "nonce"}]
        query = select(*columns).where(connector_credentials.c.tenant_id == tenant_id)
        with self._store.read() as connection:
            rows = connection.execute(query.order_by(connector_credentials.c.connector)).mappings()
            return [
                CredentialInfo(
                    tenant_id=TenantId(row["tenant_id"]),
                    connector=row["connector"],
                    keys=tuple(row["keys"]),
                    key_id=row["key_id"],
                    updated_by=row["updated_by"],
                    updated_at=row["updated_at"],
                )
                for row in rows
            ]

    def delete_credentials(self, tenant_id: TenantId, connector: str, *, actor: str) -> bool:
        with self._store.write() as connection:
            removed = connection.execute(
                delete(connector_credentials).where(
                    connector_credentials.c.tenant_id == tenant_id,
                    connector_credentials.c.connector == connector,
                )
            ).rowcount
            if removed:
                append_audit(
                    connection,
                    at=self._store.now(),
                    actor=actor,
                    action="response.credentials_delete",
                    tenant_id=tenant_id,
                    object_type="connector_credentials",
                    object_id=connector,
                )
        return bool(removed)
