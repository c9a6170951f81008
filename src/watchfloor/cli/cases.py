"""Case work from the command line, over the system of record (no server needed).

`triage run`, `incidents ...`, `alerts list` and `suppressions ...` call (the SOC-wide commands are in
`cli/soc.py`) `server.cases.CaseService` (built as `server.service` builds it: tiers from the
`tiers_file` setting, the SOC roster from `soc_roster` or `--roster`) and print a table, or JSON with
`--json`. Every command acts as `--as ANALYST_ID` (a roster analyst or duty manager, with that person's
permissions and tenant scope) or, by default, the operator.

A refused operation (`CaseError`, `PermissionDeniedError`, `NotFoundError`, `ConditionError`) prints one line
to stderr (where, code and why) and exits 1; so does a transition the lifecycle policy rejects or delays
(with the rule that decided). Configuration errors are left to `main()` (exit 2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.markup import escape

from watchfloor.cli import soc
from watchfloor.cli.admin import ConfigOpt, DataDirOpt, DbOpt, JsonOpt, _db, _tenant
from watchfloor.cli.case_common import (
    ALERT_STATUSES,
    AsOpt,
    IncidentArg,
    RosterOpt,
    TenantArg,
    case_service,
    emit,
    err,
    incident_done,
    incident_row,
    jsonable,
    make_table,
    out,
    parse_choice,
    parse_state,
    parse_tier,
    parse_when,
    print_json,
    sla_row,
)
from watchfloor.core.types import (
    INCIDENT_STATES,
    IncidentState,
)
from watchfloor.server.settings import ServeSettings
from watchfloor.server.triage_stage import BatchResult, TriageWorker
from watchfloor.triage.conditions import load_autoclose
from watchfloor.triage.models import Alert, Suppression

triage_app = typer.Typer(
    no_args_is_help=True, help="The triage stage: stored detections -> alerts -> incidents."
)

incidents_app = typer.Typer(no_args_is_help=True, help="Work incidents: read, acknowledge, transition, ...")

alerts_app = typer.Typer(no_args_is_help=True, help="A tenant's alerts (rule title and author).")

suppressions_app = typer.Typer(
    no_args_is_help=True, help="Suppressions: close matching alerts, with a reason."
)


# -- triage ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Totals:
    detections: int = 0
    alerts_written: int = 0
    incidents_created: int = 0
    incidents_updated: int = 0
    cursor: int = 0
    passes: int = 0

    def add(self, batch: BatchResult) -> None:
        self.detections += batch.detections
        self.alerts_written += batch.alerts_written
        self.incidents_created += batch.incidents_created
        self.incidents_updated += batch.incidents_updated
        self.cursor = batch.cursor


def _drain(worker: TriageWorker, totals: _Totals) -> int:
    """`TriageWorker.drain`, keeping each batch's counts: batches until one is short; detections seen."""
    seen = 0
    while True:
        batch = worker.run_once()
        totals.add(batch)
        seen += batch.detections
        if batch.detections < worker.batch_size:
            return seen


def _rule_metadata(settings: ServeSettings) -> tuple[dict[str, str], dict[str, str]]:
    """Rule statuses and authors (alerts carry the author, as the Detection Rule License asks)."""
    from watchfloor.server.service import load_service_rules  # FastAPI only when triage runs

    rules = load_service_rules(settings.rules)
    for error in rules.errors:
        err.print(f"[yellow]rule not loaded[/] {escape(str(error))}", highlight=False)
    metas = [m for _, m in [*rules.rules, *rules.correlations]]
    return {m.id: m.status for m in metas}, {m.id: m.author for m in metas}


@triage_app.command("run")
def triage_run(
    until_idle: Annotated[
        bool,
        typer.Option(
            "--until-idle",
            help="after draining, wait --idle-seconds and drain again, until a wait brings nothing new",
        ),
    ] = False,
    idle_seconds: Annotated[float, typer.Option(help="the wait of --until-idle")] = 2.0,
    rules: Annotated[
        list[Path] | None, typer.Option("--rules", help="rule files/folders, for rule authors and statuses")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drain the triage stage once: every stored detection not yet triaged becomes alerts and incidents."""
    settings = ServeSettings.load(config, data_dir=data_dir, database_url=database_url, rules=rules or None)
    statuses, authors = _rule_metadata(settings)
    totals = _Totals()
    with _db(config, data_dir, database_url) as db:
        worker = TriageWorker(
            db,
            policies=load_autoclose(settings.autoclose_file),
            rule_statuses=statuses,
            rule_authors=authors,
            lag_seconds=settings.triage_lag_seconds,
        )
        while True:
            totals.passes += 1
            found = _drain(worker, totals)
            if not until_idle or (found == 0 and totals.passes > 1):
                break
            time.sleep(idle_seconds)
        by_tenant = {
            str(t): {k: v for k, v in sorted(c.items()) if v} for t, c in sorted(worker.counters.items())
        }
    summary = {
        "detections": totals.detections,
        "alerts_written": totals.alerts_written,
        "incidents_created": totals.incidents_created,
        "incidents_updated": totals.incidents_updated,
        "cursor": totals.cursor,
        "by_tenant": by_tenant,
    }
    if as_json:
        print_json(summary)
        return
    typer.echo(
        f"detections triaged: {totals.detections}, alerts written: {totals.alerts_written}, "
        f"incidents created: {totals.incidents_created}, incidents updated: {totals.incidents_updated}"
    )
    for tenant, counts in by_tenant.items():
        typer.echo(f"  {tenant}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


# -- incidents: reading --------------------------------------------------------------------------------
INCIDENT_COLUMNS: Final = (
    "id",
    "tenant_id",
    "state",
    "severity",
    "risk_score",
    "assignee",
    "title",
    "created_at",
)


@incidents_app.command("list")
def incidents_list(
    tenant: Annotated[str | None, typer.Option(help="one tenant (default: every tenant in scope)")] = None,
    state: Annotated[list[str] | None, typer.Option("--state", help="only these states (repeatable)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many (oldest first)")] = 500,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Incidents the actor may see."""
    owner = _tenant(tenant) if tenant else None
    states = [parse_state(s) for s in state] if state else None
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.incidents(actor, owner, states=states, limit=limit)
    emit([incident_row(i) for i in found], INCIDENT_COLUMNS, as_json, "incidents")


ALERT_COLUMNS: Final = ("id", "rule_title", "rule_author", "severity", "status", "count", "incident_id")


def _alert_row(alert: Alert) -> dict[str, Any]:
    return {
        **jsonable(alert),
        "rule_author": alert.rule_author or "(unknown)",
        "risk_score": alert.risk.score,
    }


@incidents_app.command("show")
def incidents_show(
    tenant: TenantArg,
    incident_id: IncidentArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An incident: SLA clocks, alerts (rule title and author), risk factors, notes, evidence, timeline."""
    owner = _tenant(tenant)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.incident(actor, owner, incident_id)
        clocks = service.sla(actor, owner, incident_id)
        alerts = service.alerts(actor, owner, incident_id=incident_id, limit=1000)
        notes = service.notes(actor, owner, incident_id)
        evidence = service.evidence(actor, owner, incident_id)
        timeline = service.timeline(actor, owner, incident_id)
    document = {
        "incident": incident_row(incident),
        "sla": [sla_row(s) for s in clocks],
        "alerts": [_alert_row(a) for a in alerts],
        "notes": jsonable(notes),
        "evidence": jsonable(evidence),
        "timeline": jsonable(timeline),
    }
    if as_json:
        print_json(document)
        return
    i = incident
    lines = [
        f"[bold]{escape(i.id)}[/] {escape(i.title)}",
        (
            f"tenant {i.tenant_id}, state {i.state}, severity {i.severity}, risk {i.risk.score}, "
            f"queue {i.queue_tier}, assignee {i.assignee or '-'}"
        ),
        f"created {i.created_at.isoformat()}, first event {i.first_event_at.isoformat()}",
    ]
    if i.merged_into:
        lines.append(f"merged into {i.merged_into}")
    if i.linked:
        lines.append(f"linked: {', '.join(i.linked)}")
    if i.closure_reason:
        lines.append(f"closure reason: {escape(i.closure_reason)}")
    if i.techniques:
        lines.append(f"ATT&CK: {', '.join(i.techniques)} ({', '.join(i.tactics)})")
    if i.entities:
        lines.append("entities: " + escape(", ".join(e.key for e in i.entities)))
    for line in lines:
        out.print(line, highlight=False)
    sla_columns = ("metric", "state", "target", "elapsed", "remaining", "due_at", "achieved_at")
    out.print(make_table(document["sla"], sla_columns, "SLA clocks"))
    alert_columns = ("id", "rule_title", "rule_author", "severity", "status", "count", "risk_score")
    out.print(make_table(document["alerts"], alert_columns, "alerts"))
    factors = [{"factor": f.name, "points": f.points, "detail": f.detail} for f in i.risk.factors]
    out.print(make_table(factors, ("factor", "points", "detail"), f"risk {i.risk.score}"))
    if notes:
        out.print(make_table(document["notes"], ("at", "author", "visible_to_customer", "text"), "notes"))
    if evidence:
        columns = ("at", "author", "kind", "reference", "description")
        out.print(make_table(document["evidence"], columns, "evidence"))
    out.print(make_table(document["timeline"], ("at", "actor", "kind", "summary"), "timeline"))


# -- incidents: changing -------------------------------------------------------------------------------
def _transition(
    tenant: str,
    incident_id: str,
    to_state: IncidentState,
    reason: str,
    closure_reason: str | None,
    where: tuple[Path | None, Path | None, str | None, Path | None, str | None],
    as_json: bool,
) -> None:
    owner = _tenant(tenant)
    with case_service(*where) as (service, actor):
        before = service.incident(actor, owner, incident_id).state
        outcome = service.transition(
            actor, owner, incident_id, to_state, reason=reason, closure_reason=closure_reason
        )
    verdict = outcome.verdict
    why = getattr(verdict, "reason", None)
    until = getattr(verdict, "until", None)
    if as_json:
        print_json(
            {
                "accepted": outcome.accepted,
                "from_state": before,
                "to_state": to_state,
                "rule": outcome.rule,
                "reason": why,
                "until": until,
                "incident": incident_row(outcome.incident),
            }
        )
    if outcome.accepted:
        if not as_json:
            typer.echo(f"{incident_id}: {before} -> {outcome.incident.state}")
        return
    verb = f"delayed until {until.isoformat()}" if until is not None else "rejected"
    typer.echo(f"{incident_id}: {before} -> {to_state} {verb} by {outcome.rule}: {why}", err=True)
    raise typer.Exit(1)


@incidents_app.command("ack")
def incidents_ack(
    tenant: TenantArg,
    incident_id: IncidentArg,
    reason: Annotated[str, typer.Option(help="why (recorded on the timeline)")] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge: new -> acknowledged (takes the incident when it is unassigned)."""
    where = (config, data_dir, database_url, roster, acting_as)
    _transition(tenant, incident_id, "acknowledged", reason, None, where, as_json)


@incidents_app.command("transition")
def incidents_transition(
    tenant: TenantArg,
    incident_id: IncidentArg,
    to_state: Annotated[str, typer.Argument(help=f"one of {', '.join(INCIDENT_STATES)}")],
    reason: Annotated[str, typer.Option(help="why (recorded on the timeline)")] = "",
    closure_reason: Annotated[
        str | None, typer.Option(help="required when closing (goes into the customer report)")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an incident to another state; a rejection or delay prints the rule and reason, exit code 1."""
    where = (config, data_dir, database_url, roster, acting_as)
    _transition(tenant, incident_id, parse_state(to_state), reason, closure_reason, where, as_json)


@incidents_app.command("assign")
def incidents_assign(
    tenant: TenantArg,
    incident_id: IncidentArg,
    analyst: Annotated[str | None, typer.Argument(help="roster analyst id")] = None,
    unassign: Annotated[bool, typer.Option("--none", help="leave it unassigned")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Assign an incident to an analyst, or (`--none`) take it off whoever has it."""
    if (analyst is None) == (not unassign):
        raise typer.BadParameter("give an analyst id or --none (not both)")
    owner = _tenant(tenant)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.assign(actor, owner, incident_id, None if unassign else analyst)
    incident_done(incident, as_json, f"assigned to {incident.assignee or 'nobody'}")


@incidents_app.command("escalate")
def incidents_escalate(
    tenant: TenantArg,
    incident_id: IncidentArg,
    tier: Annotated[str, typer.Argument(help="T1 | T2 | T3")],
    reason: Annotated[str, typer.Option(help="why it needs that tier")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Raise the analyst tier that should work the incident."""
    owner, to_tier = _tenant(tenant), parse_tier(tier)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.escalate(actor, owner, incident_id, to_tier, reason)
    incident_done(incident, as_json, f"escalated to {incident.queue_tier}")


@incidents_app.command("note")
def incidents_note(
    tenant: TenantArg,
    incident_id: IncidentArg,
    text: Annotated[str, typer.Argument(help="the note")],
    customer_visible: Annotated[bool, typer.Option(help="the customer sees it too")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a note (internal unless --customer-visible)."""
    owner = _tenant(tenant)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        note = service.add_note(actor, owner, incident_id, text, visible_to_customer=customer_visible)
    if as_json:
        print_json(note)
    else:
        typer.echo(f"{incident_id}: note by {note.author} at {note.at.isoformat()}")


@incidents_app.command("evidence")
def incidents_evidence(
    tenant: TenantArg,
    incident_id: IncidentArg,
    kind: Annotated[str, typer.Option(help="event | detection | file | url | note")],
    reference: Annotated[str, typer.Option(help="detection id, event key, sha256, URL")],
    description: Annotated[str, typer.Option(help="what it shows")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Attach a pointer to evidence."""
    owner = _tenant(tenant)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        item = service.add_evidence(
            actor, owner, incident_id, kind=kind, reference=reference, description=description
        )
    if as_json:
        print_json(item)
    else:
        typer.echo(f"{incident_id}: evidence {item.kind} {item.reference}")


@incidents_app.command("notify")
def incidents_notify(
    tenant: TenantArg,
    incident_id: IncidentArg,
    channel: Annotated[str, typer.Option(help="how the customer was told: email, phone, portal, ...")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record that the customer was notified (the notify SLA milestone)."""
    owner = _tenant(tenant)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.notify_customer(actor, owner, incident_id, channel)
    notified = incident.notified_at.isoformat() if incident.notified_at else "-"
    incident_done(incident, as_json, f"customer notified via {channel} (first at {notified})")


@incidents_app.command("merge")
def incidents_merge(
    tenant: TenantArg,
    target: Annotated[str, typer.Argument(help="the incident that stays")],
    sources: Annotated[list[str], typer.Argument(help="incidents folded into it")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fold incidents into a target: their alerts move to it, they are marked merged."""
    owner = _tenant(tenant)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.merge(actor, owner, target, sources)
    incident_done(incident, as_json, f"merged {', '.join(sources)} ({len(incident.alert_ids)} alerts)")


@incidents_app.command("split")
def incidents_split(
    tenant: TenantArg,
    incident_id: IncidentArg,
    alert_ids: Annotated[list[str], typer.Argument(help="alerts that move to a new incident")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move some alerts to a new incident, linked to this one."""
    owner = _tenant(tenant)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        remaining, new = service.split(actor, owner, incident_id, alert_ids)
    if as_json:
        print_json({"remaining": incident_row(remaining), "new": incident_row(new)})
    else:
        typer.echo(f"{remaining.id}: {len(alert_ids)} alert(s) moved to new incident {new.id}")


@incidents_app.command("link")
def incidents_link(
    tenant: TenantArg,
    first: Annotated[str, typer.Argument(help="incident id")],
    second: Annotated[str, typer.Argument(help="related incident id")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record that two incidents are related (without merging them)."""
    owner = _tenant(tenant)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.link(actor, owner, first, second)
    incident_done(incident, as_json, f"linked to {second}")


# -- alerts and suppressions ---------------------------------------------------------------------------
@alerts_app.command("list")
def alerts_list(
    tenant: TenantArg,
    incident: Annotated[str | None, typer.Option("--incident", help="only this incident's alerts")] = None,
    status: Annotated[str | None, typer.Option(help=" | ".join(ALERT_STATUSES))] = None,
    limit: Annotated[int, typer.Option(help="at most this many (newest first)")] = 200,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A tenant's alerts, newest first, with the rule's title and author."""
    owner = _tenant(tenant)
    wanted = parse_choice(status, ALERT_STATUSES, "status") if status else None
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.alerts(actor, owner, incident_id=incident, limit=limit)
    rows = [_alert_row(a) for a in found if wanted is None or a.status == wanted]
    emit(rows, ALERT_COLUMNS, as_json, f"alerts of {owner}")


SUPPRESSION_COLUMNS: Final = (
    "id",
    "enabled",
    "rule_id",
    "conditions_text",
    "reason",
    "author",
    "created_at",
    "expires_at",
)


def _suppression_row(suppression: Suppression) -> dict[str, Any]:
    conditions = "; ".join(f"{c.field} {c.op} {c.value}" for c in suppression.conditions)
    return {**jsonable(suppression), "conditions_text": conditions}


@suppressions_app.command("create")
def suppressions_create(
    tenant: TenantArg,
    alert_id: Annotated[str, typer.Argument(help="the alert whose values it suppresses")],
    field_names: Annotated[
        list[str] | None,
        typer.Option("--field", help="event field (host.name) or alert.entity.<kind> (repeatable)"),
    ] = None,
    reason: Annotated[str, typer.Option(help="why (shown on every alert it closes)")] = "",
    expires: Annotated[str | None, typer.Option(help="ISO 8601 expiry (default: never)")] = None,
    all_rules: Annotated[bool, typer.Option("--all-rules", help="not only this alert's rule")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suppress from an alert: conditions from its values; the alert itself is closed by it."""
    owner = _tenant(tenant)
    expires_at = parse_when(expires, "--expires")
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        created = service.suppress_from_alert(
            actor,
            owner,
            alert_id,
            field_names or [],
            reason=reason,
            expires_at=expires_at,
            scope_rule=not all_rules,
        )
    emit([_suppression_row(created)], SUPPRESSION_COLUMNS, as_json, "suppression created")


@suppressions_app.command("list")
def suppressions_list(
    tenant: TenantArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A tenant's suppressions (enabled and disabled)."""
    owner = _tenant(tenant)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.suppressions(actor, owner)
    emit([_suppression_row(s) for s in found], SUPPRESSION_COLUMNS, as_json, f"suppressions of {owner}")


@suppressions_app.command("disable")
def suppressions_disable(
    tenant: TenantArg,
    suppression_id: Annotated[str, typer.Argument(help="sup-...")],
    reason: Annotated[str, typer.Option(help="why (audited)")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
) -> None:
    """Stop a suppression: new matching alerts are triaged again."""
    owner = _tenant(tenant)
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        service.disable_suppression(actor, owner, suppression_id, reason=reason)
    typer.echo(f"{suppression_id}: disabled")


def register(app: typer.Typer) -> None:
    """Add the case-work commands to the `watchfloor` app."""
    app.add_typer(triage_app, name="triage")
    app.add_typer(incidents_app, name="incidents")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(suppressions_app, name="suppressions")
    soc.register(app)
