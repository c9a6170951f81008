"""Response from the command line, over the system of record (no server needed): playbook runs, approvals,
the tenants' response policies and the kill switch.

    watchfloor runs list|show|start|cancel
    watchfloor approvals list|approve|reject
    watchfloor response-policy show|set --file
    watchfloor kill-switch on|off|status --reason

Every command acts as `--as ANALYST_ID` (a roster analyst or duty manager, with that person's permissions
and tenant scope) or, by default, the operator, and applies the same rules as the API
(`server.response_stage`: `start_by_hand`, `decide_approval`, `put_response_policy`, `set_kill_switch`).
`runs start` and `approvals approve` advance the run at once, calling vendors with the connector
credentials from `config_source_for(db, settings)` (see there); the server's response stage picks up
whatever is left (waits, retries) at its next tick. A refusal prints one line to stderr and exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import typer
import yaml

from watchfloor.cases.models import Actor
from watchfloor.cases.permissions import CaseError, allowed, authorize
from watchfloor.cases.soc import load_roster
from watchfloor.cases.tiers import load_tiers
from watchfloor.cli.admin import ConfigOpt, DataDirOpt, DbOpt, JsonOpt, _db, _settings, _tenant
from watchfloor.cli.case_common import AsOpt, RosterOpt, TenantArg, emit, jsonable, print_json
from watchfloor.core.errors import ConfigError
from watchfloor.respond.engine import ConnectorConfigSource, RunEngine, RunEngineError, StaticConfig
from watchfloor.respond.policy import ResponsePolicy, policy_from_json, policy_to_json
from watchfloor.respond.runs import ALL_RUN_STATES
from watchfloor.respond.secrets import CredentialStore, load_keys
from watchfloor.server.cases import CaseService
from watchfloor.server.response_stage import (
    ResponseRefusedError,
    build_response,
    covered_actions,
    decide_approval,
    put_response_policy,
    set_kill_switch,
    start_by_hand,
)
from watchfloor.server.settings import ServeSettings
from watchfloor.storage import Database
from watchfloor.storage.errors import NotFoundError
from watchfloor.storage.respond import ApprovalDecidedError, ApprovalRecord, RunRecord, StaleStateError

runs_app = typer.Typer(no_args_is_help=True, help="Response playbook runs: list, show, start, cancel.")
approvals_app = typer.Typer(no_args_is_help=True, help="Approvals of response actions: list, decide.")
policy_app = typer.Typer(no_args_is_help=True, help="A tenant's response authorization policy.")
switch_app = typer.Typer(no_args_is_help=True, help="The platform-wide response kill switch.")

REFUSED: Final = (
    CaseError,
    NotFoundError,
    RunEngineError,
    ApprovalDecidedError,
    StaleStateError,
    ResponseRefusedError,
)
RUN_COLUMNS: Final = ("id", "incident_id", "playbook_id", "state", "dry_run", "created_by", "created_at")
APPROVAL_COLUMNS: Final = ("tenant_id", "run_id", "step_id", "incident_id", "deadline", "expired", "actions")

PlaybooksOpt = Annotated[
    Path | None,
    typer.Option(
        "--playbooks", help="playbook folder (default: the playbooks_dir setting, else content/playbooks)"
    ),
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="why (kept in the audit log)")]
RunArg = Annotated[str, typer.Argument(help="response run id")]
StepArg = Annotated[str, typer.Argument(help="the step that asks for approval")]


def _no_credentials(db: Database, settings: ServeSettings) -> ConnectorConfigSource:
    """The sealed credential store when a secrets key is configured (or dev_mode), else none (a vendor
    step then fails with the vendor's configuration error)."""
    try:
        return CredentialStore(db, load_keys(settings))
    except ConfigError:
        return StaticConfig({})


config_source_for: Callable[[Database, ServeSettings], ConnectorConfigSource] = _no_credentials
"""Where CLI runs get connector credentials: the encrypted credential store (`respond.secrets`) when a key
is configured; tests replace it."""


@dataclass(frozen=True, slots=True)
class _Env:
    db: Database
    engine: RunEngine
    cases: CaseService
    actor: Actor


@contextmanager
def response_env(
    config: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    roster: Path | None,
    acting_as: str | None,
    playbooks: Path | None,
) -> Iterator[_Env]:
    """The case service, the run engine (as the server builds them) and the acting person; refusals
    become one line on stderr and exit code 1."""
    settings = _settings(config, data_dir, database_url)
    roster_path = roster or settings.soc_roster
    try:
        with _db(config, data_dir, database_url) as db:
            cases = CaseService(
                db, load_tiers(settings.tiers_file), roster=load_roster(roster_path) if roster_path else None
            )
            folder = playbooks or getattr(settings, "playbooks_dir", None)  # the setting, once it exists
            engine, _stage = build_response(db, cases, config_source_for(db, settings), playbooks_dir=folder)
            yield _Env(db=db, engine=engine, cases=cases, actor=cases.actor(acting_as))
    except REFUSED as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _run_document(env: _Env, run: RunRecord) -> dict[str, Any]:
    steps = env.db.response.steps(run.tenant_id, run.id)
    approvals = []
    for step in steps:
        try:
            approvals.append(env.db.response.get_approval(run.tenant_id, run.id, step.step_id))
        except NotFoundError:
            continue
    return {
        "run": jsonable(run),
        "steps": jsonable(steps),
        "approvals": [_approval_row(env, a, run) for a in approvals],
    }


def _approval_row(env: _Env, approval: ApprovalRecord, run: RunRecord) -> dict[str, Any]:
    playbook = env.engine.playbooks.get(run.playbook_id)
    return {
        **jsonable(approval),
        "incident_id": run.incident_id,
        "playbook_id": run.playbook_id,
        "expired": approval.decision is None and env.engine.clock() >= approval.deadline,
        "actions": [a["action"] for a in covered_actions(playbook, approval.step_id)],
    }


def _show_run(env: _Env, run: RunRecord, as_json: bool) -> None:
    document = _run_document(env, run)
    if as_json:
        print_json(document)
        return
    emit([document["run"]], RUN_COLUMNS, False, f"run {run.id}")
    emit(
        document["steps"],
        ("step_id", "action_id", "state", "attempt", "approved_by", "started_at", "finished_at", "error"),
        False,
        "steps",
    )


# -- runs -----------------------------------------------------------------------------------------------
@runs_app.command("list")
def runs_list(
    tenant: TenantArg,
    incident_id: Annotated[str | None, typer.Option("--incident", help="only this incident's runs")] = None,
    state: Annotated[list[str] | None, typer.Option("--state", help="only runs in this state")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A tenant's response runs, oldest first."""
    owner = _tenant(tenant)
    for value in state or ():
        if value not in ALL_RUN_STATES:
            raise typer.BadParameter(f"state {value!r} is not one of {', '.join(sorted(ALL_RUN_STATES))}")
    with response_env(config, data_dir, database_url, roster, acting_as, playbooks) as env:
        authorize(env.actor, "view", owner)
        found = env.db.response.list_runs(owner, incident_id=incident_id, states=state or None)
    emit([jsonable(r) for r in found], RUN_COLUMNS, as_json, f"response runs of {owner}")


@runs_app.command("show")
def runs_show(
    tenant: TenantArg,
    run_id: RunArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A run, its steps (inputs, outputs, timing, approver) and approvals."""
    owner = _tenant(tenant)
    with response_env(config, data_dir, database_url, roster, acting_as, playbooks) as env:
        authorize(env.actor, "view", owner)
        _show_run(env, env.db.response.get_run(owner, run_id), as_json)


@runs_app.command("start")
def runs_start(
    tenant: TenantArg,
    incident_id: Annotated[str, typer.Argument(help="incident id")],
    playbook_id: Annotated[str, typer.Argument(help="playbook id (any loaded playbook)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would happen; change nothing")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a playbook against an incident by hand and advance it (`contain` unless --dry-run)."""
    owner = _tenant(tenant)
    with response_env(config, data_dir, database_url, roster, acting_as, playbooks) as env:
        run = start_by_hand(
            env.engine, env.cases, env.actor, owner, incident_id, playbook_id, dry_run=dry_run
        )
        _show_run(env, run, as_json)


@runs_app.command("cancel")
def runs_cancel(
    tenant: TenantArg,
    run_id: RunArg,
    reason: ReasonOpt,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a run that has not finished (`contain`)."""
    owner = _tenant(tenant)
    with response_env(config, data_dir, database_url, roster, acting_as, playbooks) as env:
        authorize(env.actor, "contain", owner)
        run = env.engine.cancel(owner, run_id, actor=env.actor.id, reason=reason)
        _show_run(env, run, as_json)


@runs_app.command("undo")
def runs_undo(
    tenant: TenantArg,
    run_id: RunArg,
    reason: ReasonOpt,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Undo a finished run's reversible steps, newest first (`contain`): release a host, re-enable a user."""
    owner = _tenant(tenant)
    with response_env(config, data_dir, database_url, roster, acting_as, playbooks) as env:
        authorize(env.actor, "contain", owner)
        run = env.engine.undo(owner, run_id, actor=env.actor.id, reason=reason)
        _show_run(env, run, as_json)


# -- approvals ------------------------------------------------------------------------------------------
@approvals_app.command("list")
def approvals_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Undecided approvals in your scope, earliest deadline first, with what each lets run."""
    owner = _tenant(tenant) if tenant is not None else None
    with response_env(config, data_dir, database_url, roster, acting_as, playbooks) as env:
        if owner is not None:
            authorize(env.actor, "view", owner)
        rows = [
            _approval_row(env, a, env.db.response.get_run(a.tenant_id, a.run_id))
            for a in env.db.response.open_approvals(owner)
            if allowed(env.actor, "view", a.tenant_id)
        ]
    emit(rows, APPROVAL_COLUMNS, as_json, "open approvals")


def _decide(
    approve: bool,
    tenant: str,
    run_id: str,
    step_id: str,
    reason: str,
    options: tuple[Path | None, Path | None, str | None, Path | None, str | None, Path | None],
    as_json: bool,
) -> None:
    owner = _tenant(tenant)
    with response_env(*options) as env:
        run = decide_approval(env.engine, env.actor, owner, run_id, step_id, approve=approve, reason=reason)
        _show_run(env, run, as_json)


@approvals_app.command("approve")
def approvals_approve(
    tenant: TenantArg,
    run_id: RunArg,
    step_id: StepArg,
    reason: ReasonOpt,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve (`approve_response`, and a role the approval names); the run advances at once."""
    options = (config, data_dir, database_url, roster, acting_as, playbooks)
    _decide(True, tenant, run_id, step_id, reason, options, as_json)


@approvals_app.command("reject")
def approvals_reject(
    tenant: TenantArg,
    run_id: RunArg,
    step_id: StepArg,
    reason: ReasonOpt,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject: the run stops (fails closed) and the incident is escalated."""
    options = (config, data_dir, database_url, roster, acting_as, playbooks)
    _decide(False, tenant, run_id, step_id, reason, options, as_json)


# -- policy ---------------------------------------------------------------------------------------------
def _policy_document(tenant: str, stored: dict[str, Any] | None) -> dict[str, Any]:
    effective = ResponsePolicy() if stored is None else policy_from_json(stored)
    return {"tenant_id": tenant, "stored": stored, "effective": policy_to_json(effective)}


def _print_policy(document: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(document)
    else:
        typer.echo(yaml.safe_dump(document, sort_keys=False), nl=False)


@policy_app.command("show")
def policy_show(
    tenant: TenantArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The tenant's stored policy and the policy in effect (defaults filled in)."""
    owner = _tenant(tenant)
    with response_env(config, data_dir, database_url, roster, acting_as, playbooks) as env:
        authorize(env.actor, "view", owner)
        _print_policy(_policy_document(owner, env.db.response.get_policy(owner)), as_json)


@policy_app.command("set")
def policy_set(
    tenant: TenantArg,
    file: Annotated[Path, typer.Option("--file", help="the policy document, JSON or YAML", exists=True)],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    playbooks: PlaybooksOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the tenant's response policy (`manage_tenant`); checked first, the error names the key."""
    owner = _tenant(tenant)
    try:
        text = file.read_text(encoding="utf-8")
        document = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{file}: {exc}") from None
    if not isinstance(document, dict):
        raise typer.BadParameter(f"{file}: a policy is a mapping (actions, risks, limits_per_hour)")
    with response_env(config, data_dir, database_url, roster, acting_as, playbooks) as env:
        put_response_policy(env.db, env.actor, owner, document)
        _print_policy(_policy_document(owner, env.db.response.get_policy(owner)), as_json)


# -- kill switch ----------------------------------------------------------------------------------------
def _switch(
    engaged: bool,
    reason: str,
    options: tuple[Path | None, Path | None, str | None, Path | None, str | None, Path | None],
    as_json: bool,
) -> None:
    with response_env(*options) as env:
        now = set_kill_switch(env.db, env.actor, engaged=engaged, reason=reason)
    if as_json:
        print_json({"engaged": now})
    else:
        typer.echo(f"kill switch {'engaged' if now else 'released'}")


@switch_app.command("on")
def switch_on(
    reason: ReasonOpt,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Engage: no response action but read-only ones runs, anywhere (mssp_admin or soc_manager)."""
    _switch(True, reason, (config, data_dir, database_url, roster, acting_as, None), as_json)


@switch_app.command("off")
def switch_off(
    reason: ReasonOpt,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Release the kill switch (mssp_admin or soc_manager)."""
    _switch(False, reason, (config, data_dir, database_url, roster, acting_as, None), as_json)


@switch_app.command("status")
def switch_status(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Whether the kill switch is engaged."""
    with _db(config, data_dir, database_url) as db:
        engaged = db.response.kill_switch()
    if as_json:
        print_json({"engaged": engaged})
    else:
        typer.echo(f"kill switch {'engaged' if engaged else 'released'}")


def register(app: typer.Typer) -> None:
    """Add the response commands to the `watchfloor` app."""
    app.add_typer(runs_app, name="runs")
    app.add_typer(approvals_app, name="approvals")
    app.add_typer(policy_app, name="response-policy")
    app.add_typer(switch_app, name="kill-switch")
