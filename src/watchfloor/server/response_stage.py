"""The response engine's place in the running service: a periodic tick that starts playbook runs for open
incidents and keeps every unfinished run moving.

`ResponseStage.tick(now)` (thread-safe; the service's thread calls it every `interval_seconds`, tests call it
directly):

1. for every open, unmerged incident, the enabled playbooks whose trigger matches it (with the tenant's
   service tier and the incident's alerts, `respond.triggers.matching_playbooks`) and that have no run yet
   for this incident and playbook version (dry runs do not count) get one, started by the engine as
   `system:response-engine`. The check reads the stored runs, so it holds across restarts; the stage's lock
   makes it safe within the process (one service process starts runs; a storage unique key on
   (tenant, incident, playbook, version) would make it safe across processes too);
2. every unfinished run is advanced (what `engine.resume_all()` does, one run at a time so that a run that
   cannot advance, e.g. because its playbook version is no longer loaded, is logged and counted and the
   others still move): a waiting run wakes when due, an approval past its deadline fails closed and
   escalates (a timeout is never consent), a decided approval continues. Runs use the engine's clock.

`build_response(db, cases, config_source, playbooks_dir=...)` builds the registry (built-in actions,
plugins, and the EDL actions bound to `db`), loads the playbooks, and returns the engine and the stage.

What people do to runs (start by hand, decide an approval, set a policy, the kill switch) is here too,
with its rules, so the API (`api/response.py`) and the CLI (`cli/response.py`) apply the same ones:
`start_by_hand`, `decide_approval`, `put_response_policy`, `set_kill_switch` (refusals:
`ResponseRefusedError` with the HTTP status, or `PermissionDeniedError`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from sqlalchemy.exc import IntegrityError

from watchfloor.cases.models import Actor
from watchfloor.cases.permissions import PermissionDeniedError, authorize
from watchfloor.core.errors import ConfigError, Location, WatchfloorError
from watchfloor.core.types import CLOSED_STATES, INCIDENT_STATES, TenantId
from watchfloor.respond.actions import Action
from watchfloor.respond.connectors import HttpAction
from watchfloor.respond.connectors.edl import edl_actions
from watchfloor.respond.engine import ConnectorConfigSource, RunEngine
from watchfloor.respond.http import HttpOptions
from watchfloor.respond.playbooks import ActionStep, ApprovalStep, Playbook, load_playbooks
from watchfloor.respond.policy import PolicyError, policy_from_json
from watchfloor.respond.registry import ActionRegistry, ActionRegistryError, builtin_actions, plugin_actions
from watchfloor.respond.triggers import matching_playbooks
from watchfloor.server.cases import CaseService
from watchfloor.storage import Database
from watchfloor.storage.respond import KILL_SWITCH, ApprovalDecidedError, RunRecord

log = logging.getLogger(__name__)

OPEN_STATES: Final = tuple(s for s in INCIDENT_STATES if s not in CLOSED_STATES)
EntryPoints = Callable[..., Iterable[metadata.EntryPoint]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TickResult:
    started: tuple[RunRecord, ...] = ()
    advanced: int = 0
    errors: tuple[str, ...] = ()


@dataclass(slots=True)
class _Counters:
    """Per tenant: runs started, runs advanced, and ticks that failed for a run."""

    started: Counter[TenantId] = field(default_factory=Counter)
    advanced: Counter[TenantId] = field(default_factory=Counter)
    errors: Counter[TenantId] = field(default_factory=Counter)


class ResponseStage:
    """Starts runs for matching incidents and resumes unfinished runs (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        engine: RunEngine,
        cases: CaseService | None,
        playbooks: Iterable[Playbook],
        interval_seconds: float = 15.0,
    ) -> None:
        self.db = db
        self.engine = engine
        self.cases = cases
        self.playbooks = tuple(playbooks)
        self.interval_seconds = interval_seconds
        self.lock = threading.RLock()
        self.counters = _Counters()
        self.last_error: str | None = None
        self.last_tick: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the tick ----------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> TickResult:
        """Start the runs that are due, then advance every unfinished run (as of the engine's clock)."""
        with self.lock:
            at = now or self.engine.clock()
            errors: list[str] = []
            started = self._start_matching(errors)
            advanced = 0
            for run in self.db.response.unfinished_runs():
                try:
                    self.engine.advance(run.tenant_id, run.id)
                except Exception as exc:
                    log.exception("response run %s of tenant %s could not advance", run.id, run.tenant_id)
                    self.counters.errors[run.tenant_id] += 1
                    errors.append(f"{run.tenant_id}/{run.id}: {type(exc).__name__}: {exc}")
                    continue
                advanced += 1
                self.counters.advanced[run.tenant_id] += 1
            self.last_tick = at
            self.last_error = errors[-1] if errors else None
            return TickResult(started=tuple(started), advanced=advanced, errors=tuple(errors))

    def _start_matching(self, errors: list[str]) -> list[RunRecord]:
        if not any(p.enabled for p in self.playbooks):
            return []
        incidents = [
            i for i in self.db.incidents.list(None, states=OPEN_STATES, limit=None) if i.merged_into is None
        ]
        need_alerts = any(p.enabled and p.trigger.rule_ids for p in self.playbooks)
        started: list[RunRecord] = []
        tiers: dict[TenantId, str | None] = {}  # None: unknown or retired tenant, nothing started
        done: dict[TenantId, set[tuple[str, str, int]]] = {}
        for incident in incidents:
            tenant = incident.tenant_id
            if tenant not in tiers:
                record = self.db.tenants.get(tenant)
                tiers[tenant] = record.tier if record is not None and record.active else None
                done[tenant] = {
                    (r.incident_id, r.playbook_id, r.playbook_version)
                    for r in self.db.response.list_runs(tenant)
                    if not r.dry_run
                }
            tier = tiers[tenant]
            if tier is None:
                continue
            # the incident carries its alerts' techniques and tactics; alerts matter for `rule_ids` only
            alerts = self.db.alerts.list(tenant, incident_id=incident.id, limit=500) if need_alerts else []
            for playbook in matching_playbooks(self.playbooks, incident, tier, alerts):
                key = (incident.id, playbook.id, playbook.version)
                if key in done[tenant]:
                    continue
                try:
                    run = self.engine.start(
                        tenant, incident.id, playbook, run_id=automatic_run_id(tenant, incident.id, playbook)
                    )
                except IntegrityError:  # another process started it first: one automatic run each
                    done[tenant].add(key)
                    continue
                except Exception as exc:
                    log.exception("could not start %s for incident %s", playbook.id, incident.id)
                    self.counters.errors[tenant] += 1
                    errors.append(f"{tenant}/{incident.id}: {playbook.id}: {type(exc).__name__}: {exc}")
                    continue
                done[tenant].add(key)
                started.append(run)
                self.counters.started[tenant] += 1
        return started

    # -- thread ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.tick()
            except Exception as exc:
                log.exception("response tick failed")
                self.last_error = f"{type(exc).__name__}: {exc}"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.alive:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="watchfloor-response", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None


# -- composition -------------------------------------------------------------------------------------
def build_registry(
    db: Database,
    *,
    http: HttpOptions | None = None,
    plugins: bool = True,
    entry_points: EntryPoints = metadata.entry_points,
) -> ActionRegistry:
    """`ActionRegistry.default()` plus the EDL actions bound to `db`'s lists (`connectors.edl.edl_actions`);
    `http` (tests: no sleeping, a fresh token cache) goes to every HTTP connector."""
    edl = edl_actions(db)

    def factory(cls: type[Action]) -> Action:
        bound = edl.get(cls.manifest.id)
        if bound is not None and type(bound) is cls:
            return bound
        if http is not None and issubclass(cls, HttpAction):
            return cls(http=http)
        return cls()

    registry = ActionRegistry([*builtin_actions(), *(type(a) for a in edl.values())], factory=factory)
    if plugins:  # as ActionRegistry.default does: a broken or clashing plugin is left out and reported
        found, problems = plugin_actions(entry_points=entry_points)
        registry.problems.extend(problems)
        for action_cls, origin in found:
            try:
                registry.add(action_cls, origin=origin)
            except ActionRegistryError as exc:
                registry.problems.append(str(exc))
        registry.problems.extend(registry.check_reverse_actions(strict=False))
    for problem in registry.problems:
        log.warning("response action plugin left out: %s", problem)
    return registry


def tenant_response_context(db: Database) -> Callable[[TenantId], Mapping[str, Any]]:
    """What playbooks read as `tenant.*`: the tenant contract's `response` mapping (`edr`, `idp`,
    `auto_contain`, ...) and `contacts` by role (lower case) with `primary` = the first to call."""

    def context(tenant: TenantId) -> Mapping[str, Any]:
        settings = db.settings.get(tenant).contract.get("response") or {}
        values: dict[str, Any] = dict(settings) if isinstance(settings, Mapping) else {}
        record = db.tenants.get(tenant)
        contacts: dict[str, str] = {}
        if record is not None:
            ordered = sorted(record.contacts, key=lambda c: c.escalation_order)
            for contact in ordered:
                contacts.setdefault(contact.role.strip().lower(), contact.email)
            if ordered:
                contacts.setdefault("primary", ordered[0].email)
        values["contacts"] = {**contacts, **dict(values.get("contacts") or {})}
        return values

    return context


def automatic_run_id(tenant: TenantId, incident_id: str, playbook: Playbook) -> str:
    """The id of the one automatic run of `playbook` (this version) against an incident: the primary key
    makes a second start fail, whichever process tries."""
    material = "\x1f".join([tenant, incident_id, playbook.id, str(playbook.version)])
    return "run_auto_" + hashlib.blake2b(material.encode(), digest_size=12).hexdigest()


def build_response(
    db: Database,
    cases: CaseService | None,
    config_source: ConnectorConfigSource,
    *,
    playbooks_dir: Path | None = None,
    interval_seconds: float = 15.0,
    http: HttpOptions | None = None,
    plugins: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> tuple[RunEngine, ResponseStage]:
    """The run engine over `db` and its stage: the registry with the EDL actions, the playbooks of
    `playbooks_dir` (default: the project's `content/playbooks`); a playbook that does not load is a
    configuration error (path:line and why)."""
    registry = build_registry(db, http=http, plugins=plugins)
    found = load_playbooks(playbooks_dir, {m.id: m for m in registry.manifests()})
    if found.errors:
        shown = "; ".join(str(e) for e in found.errors[:5])
        more = f" (and {len(found.errors) - 5} more)" if len(found.errors) > 5 else ""
        msg = f"{len(found.errors)} playbook problems: {shown}{more}"
        raise ConfigError(msg)
    engine = RunEngine(
        db,
        registry,
        playbooks={p.id: p for p in found.playbooks},
        secrets=config_source,
        cases=cases,
        clock=clock or (cases.clock if cases is not None else (lambda: datetime.now(tz=UTC))),
        tenant_context=tenant_response_context(db),
    )
    stage = ResponseStage(db, engine, cases, found.playbooks, interval_seconds)
    return engine, stage


# -- what people do (shared by the API and the CLI) ------------------------------------------------------
SWITCH_ROLES: Final = frozenset({"mssp_admin", "soc_manager"})


class ResponseRefusedError(WatchfloorError):
    """A person's response operation that is refused; `status` is the HTTP status the API answers."""

    code = "response.refused"

    def __init__(self, message: str, *, status: int, code: str, location: Location | None = None) -> None:
        super().__init__(message, location=location, code=code)
        self.status = status


def covered_actions(playbook: Playbook | None, step_id: str) -> list[dict[str, str]]:
    """The action steps an approval of `step_id` lets run: the step itself when it is an action; for an
    approval step, the containment steps after it up to the next approval step."""
    if playbook is None:
        return []
    steps = list(playbook.steps)
    index = next((i for i, s in enumerate(steps) if s.id == step_id), None)
    if index is None:
        return []
    step = steps[index]
    if isinstance(step, ActionStep):
        return [{"step_id": step.id, "action": step.action, "kind": step.kind}]
    found: list[dict[str, str]] = []
    for later in steps[index + 1 :]:
        if isinstance(later, ApprovalStep):
            break
        if isinstance(later, ActionStep) and later.kind == "contain":
            found.append({"step_id": later.id, "action": later.action, "kind": later.kind})
    return found


def may_approve(actor: Actor, approvers: Mapping[str, Any]) -> bool:
    """Whether the approval names the actor: `soc_manager`, `analyst` or the analyst's tier (`T3`), or any
    customer contact for a customer admin. An mssp_admin may always; an approval naming nobody is open
    to anyone with `approve_response` (checked separately)."""
    roles = {str(r) for r in approvers.get("roles", ())}
    contacts = list(approvers.get("customer_contacts", ()))
    if actor.role == "mssp_admin" or (not roles and not contacts):
        return True
    if actor.role == "soc_manager":
        return "soc_manager" in roles
    if actor.role == "analyst":
        return "analyst" in roles or (actor.tier or "T1") in roles
    if actor.role == "customer_admin":
        return bool(contacts)
    return False


def start_by_hand(
    engine: RunEngine,
    cases: CaseService,
    actor: Actor,
    tenant: TenantId,
    incident_id: str,
    playbook_id: str,
    *,
    dry_run: bool,
) -> RunRecord:
    """Start any loaded playbook against the incident and advance it: `view` (the incident must be
    visible), plus `contain` unless a dry run; refused while the kill switch is engaged (dry runs work)."""
    cases.incident(actor, tenant, incident_id)  # scope, view, and NotFoundError for another tenant's
    where = Location(tenant=tenant, path=f"incident/{incident_id}")
    if not dry_run:
        authorize(actor, "contain", tenant, incident_id=incident_id)
        if engine.db.response.kill_switch():
            raise ResponseRefusedError(
                "the response kill switch is engaged: no new runs (dry runs still work)",
                status=409,
                code="response.kill_switch",
                location=where,
            )
    playbook = engine.playbooks.get(playbook_id)
    if playbook is None:
        known = ", ".join(sorted(engine.playbooks)) or "none"
        raise ResponseRefusedError(
            f"no playbook {playbook_id!r} is loaded (loaded: {known})",
            status=404,
            code="response.no_playbook",
            location=where,
        )
    run = engine.start(tenant, incident_id, playbook, dry_run=dry_run, actor=actor.id)
    return engine.advance(tenant, run.id)


def decide_approval(
    engine: RunEngine,
    actor: Actor,
    tenant: TenantId,
    run_id: str,
    step_id: str,
    *,
    approve: bool,
    reason: str,
) -> RunRecord:
    """Record `actor`'s decision (`approve_response`, and a role the approval names) and advance the run.
    Refused (409) when already decided or past the deadline (the run then fails closed at once)."""
    authorize(actor, "approve_response", tenant)
    approval = engine.db.response.get_approval(tenant, run_id, step_id)
    where = Location(tenant=tenant, path=f"response_run/{run_id}/{step_id}")
    if not may_approve(actor, approval.approvers):
        raise PermissionDeniedError(
            f"{actor.id} ({actor.role}) is not among the approvers step {step_id} asks for: "
            f"{dict(approval.approvers)}",
            location=where,
        )
    if approval.decision is not None:
        raise ResponseRefusedError(
            f"the approval of step {step_id} is already {approval.decision}",
            status=409,
            code="response.approval_decided",
            location=where,
        )
    if engine.clock() >= approval.deadline:
        engine.advance(tenant, run_id)  # fails closed and escalates now
        raise ResponseRefusedError(
            f"the approval of step {step_id} expired at {approval.deadline.isoformat()}: nothing was done",
            status=409,
            code="response.approval_decided",
            location=where,
        )
    try:
        return engine.approve(tenant, run_id, step_id, actor=actor.id, approved=approve, reason=reason)
    except ApprovalDecidedError as exc:  # decided by someone else meanwhile
        raise ResponseRefusedError(exc.message, status=409, code="response.approval_decided") from None


def put_response_policy(db: Database, actor: Actor, tenant: TenantId, document: Mapping[str, Any]) -> None:
    """Store the tenant's response policy (`manage_tenant`), checked first (400 names the key)."""
    authorize(actor, "manage_tenant", tenant)
    try:
        policy_from_json(document)
    except PolicyError as exc:
        raise ResponseRefusedError(
            str(exc), status=400, code="response.policy_invalid", location=Location(tenant=tenant)
        ) from None
    db.response.put_policy(tenant, document, actor=actor.id)


def set_kill_switch(db: Database, actor: Actor, *, engaged: bool, reason: str) -> bool:
    """Engage or release the platform-wide kill switch (mssp_admin or soc_manager; a reason; audited)."""
    if actor.role not in SWITCH_ROLES:
        raise PermissionDeniedError(
            f"{actor.id} ({actor.role}) may not turn the response kill switch on or off: "
            "mssp_admin and soc_manager only"
        )
    if not reason.strip():
        raise ResponseRefusedError(
            "turning the kill switch on or off needs a reason", status=400, code="response.reason_missing"
        )
    db.response.set_switch(KILL_SWITCH, enabled=engaged, reason=reason.strip(), actor=actor.id)
    return db.response.kill_switch()
