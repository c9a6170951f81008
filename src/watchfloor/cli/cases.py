"""Case work from the command line, over the system of record (no server needed).

`triage run`, `incidents ...`, `alerts list`, `suppressions ...`, `queue`, `metrics`, `sla sweep|credits`
and `soc workload` call `server.cases.CaseService` (built as `server.service` builds it: tiers from the
`tiers_file` setting, the SOC roster from `soc_roster` or `--roster`) and print a table, or JSON with
`--json`. Every command acts as `--as ANALYST_ID` (a roster analyst or duty manager, with that person's
permissions and tenant scope) or, by default, the operator.

A refused operation (`CaseError`, `PermissionDeniedError`, `NotFoundError`, `ConditionError`) prints one line
to stderr (where, code and why) and exits 1; so does a transition the lifecycle policy rejects or delays
(with the rule that decided). Configuration errors are left to `main()` (exit 2).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, cast, get_args

import orjson
import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from watchfloor.cases.metrics import METRICS, GroupBy, MetricRow, MetricStats, Period
from watchfloor.cases.models import Actor, Incident
from watchfloor.cases.permissions import CaseError
from watchfloor.cases.routing import format_seconds
from watchfloor.cases.sla import SlaStatus
from watchfloor.cases.soc import load_roster
from watchfloor.cases.tiers import format_duration, load_tiers
from watchfloor.cli.admin import ConfigOpt, DataDirOpt, DbOpt, JsonOpt, _db, _settings, _tenant
from watchfloor.core.types import (
    ANALYST_TIERS,
    INCIDENT_STATES,
    SEVERITIES,
    SLA_METRICS,
    AnalystTier,
    IncidentState,
)
from watchfloor.server.cases import CaseService
from watchfloor.server.settings import ServeSettings
from watchfloor.server.triage_stage import BatchResult, TriageWorker
from watchfloor.storage.errors import NotFoundError
from watchfloor.triage.conditions import ConditionError, load_autoclose
from watchfloor.triage.models import Alert, AlertStatus, Suppression

out = Console()
err = Console(stderr=True)

REFUSED: Final = (CaseError, NotFoundError, ConditionError)
GROUP_BYS: Final = cast("tuple[str, ...]", get_args(GroupBy))
PERIODS: Final = cast("tuple[str, ...]", get_args(Period))
ALERT_STATUSES: Final = cast("tuple[str, ...]", get_args(AlertStatus))

RosterOpt = Annotated[
    Path | None,
    typer.Option("--roster", help="SOC roster YAML (default: the soc_roster setting)", exists=True),
]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="act as this roster analyst or duty manager (default: the operator)"),
]
TenantArg = Annotated[str, typer.Argument(help="tenant id")]
IncidentArg = Annotated[str, typer.Argument(help="incident id")]

triage_app = typer.Typer(
    no_args_is_help=True, help="The triage stage: stored detections -> alerts -> incidents."
)
incidents_app = typer.Typer(no_args_is_help=True, help="Work incidents: read, acknowledge, transition, ...")
alerts_app = typer.Typer(no_args_is_help=True, help="A tenant's alerts (rule title and author).")
suppressions_app = typer.Typer(
    no_args_is_help=True, help="Suppressions: close matching alerts, with a reason."
)
sla_app = typer.Typer(no_args_is_help=True, help="The SLA engine: sweep now, monthly credits.")
soc_app = typer.Typer(no_args_is_help=True, help="The SOC: analysts' workload and occupancy.")
case_settings_app = typer.Typer(
    no_args_is_help=True, help="A tenant's time zone, escalation tree and contract (for SLAs and credits)."
)


# -- plumbing ----------------------------------------------------------------------------------------
@contextmanager
def _refusals() -> Iterator[None]:
    """A refused operation: one line on stderr (location, code, message), exit code 1."""
    try:
        yield
    except REFUSED as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@contextmanager
def _cases(
    config: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    roster: Path | None,
    acting_as: str | None,
) -> Iterator[tuple[CaseService, Actor]]:
    """The case service over the configured database (as `server.service` builds it) and the actor."""
    settings = _settings(config, data_dir, database_url)
    roster_path = roster or settings.soc_roster
    with _refusals(), _db(config, data_dir, database_url) as db:
        service = CaseService(
            db,
            load_tiers(settings.tiers_file),
            roster=load_roster(roster_path) if roster_path else None,
        )
        yield service, service.actor(acting_as)


def _jsonable(value: Any) -> Any:
    """Dataclasses, mappings, sequences, sets and datetimes as JSON-ready values (recursively)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _print_json(document: Any) -> None:
    typer.echo(orjson.dumps(_jsonable(document), option=orjson.OPT_INDENT_2).decode())


# Table headers that differ from the JSON keys (narrow terminals fold wide tables).
HEADERS: Final = {
    "tenant_id": "tenant",
    "risk_score": "risk",
    "queue_tier": "tier",
    "incident_id": "incident",
    "rule_title": "rule",
    "rule_author": "author",
    "created_at": "created",
    "conditions_text": "conditions",
    "sla_metric": "sla",
    "sla_state": "clock",
    "remaining": "left",
    "visible_to_customer": "customer",
    "incidents_handled": "incidents",
    "handling_minutes": "handling min",
    "busy_minutes": "busy min",
    "on_duty_minutes": "on duty min",
    "off_shift_minutes": "off shift min",
    "occupancy_percent": "occupancy %",
    "amount_minor": "amount",
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    text = str(value)
    if isinstance(value, str) and len(text) > 19 and text[10] == "T" and text[4] == "-":
        try:  # an ISO time from `_jsonable`: to the second, in UTC
            return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        except ValueError:
            return text
    return text


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str) -> Table:
    """A table that never cuts ids short (cells fold) and shows text as text (no rich markup)."""
    table = Table(title=escape(title))
    for column in columns:
        table.add_column(HEADERS.get(column, column), overflow="fold")
    for row in rows:
        table.add_row(*(escape(_cell(row.get(c))) for c in columns))
    return table


def _emit(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], as_json: bool, title: str) -> None:
    """Rows as a JSON array (every field), or as a table of `columns`."""
    if as_json:
        _print_json(list(rows))
    else:
        out.print(_table(rows, columns, title))


def _when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time or date; without a zone it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option}: not an ISO 8601 time or date: {value!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _choice(value: str, options: Sequence[str], what: str) -> str:
    if value not in options:
        raise typer.BadParameter(f"{what} {value!r} is not one of {', '.join(options)}")
    return value


def _state(value: str) -> IncidentState:
    return cast("IncidentState", _choice(value, INCIDENT_STATES, "state"))


def _tier(value: str) -> AnalystTier:
    return cast("AnalystTier", _choice(value.upper(), ANALYST_TIERS, "tier"))


def _human(seconds: float | None) -> str | None:
    return None if seconds is None else format_seconds(seconds)


def _incident_row(incident: Incident) -> dict[str, Any]:
    return {**_jsonable(incident), "risk_score": incident.risk.score}


def _sla_row(status: SlaStatus) -> dict[str, Any]:
    return {
        **_jsonable(status),
        "target": format_duration(status.target_seconds) if status.target_seconds is not None else None,
        "elapsed": format_seconds(status.elapsed_seconds),
        "remaining": _human(status.remaining_seconds),
    }


def _incident_done(incident: Incident, as_json: bool, said: str) -> None:
    if as_json:
        _print_json(_incident_row(incident))
    else:
        typer.echo(f"{incident.id}: {said}")


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
        _print_json(summary)
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
    states = [_state(s) for s in state] if state else None
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.incidents(actor, owner, states=states, limit=limit)
    _emit([_incident_row(i) for i in found], INCIDENT_COLUMNS, as_json, "incidents")


ALERT_COLUMNS: Final = ("id", "rule_title", "rule_author", "severity", "status", "count", "incident_id")


def _alert_row(alert: Alert) -> dict[str, Any]:
    return {
        **_jsonable(alert),
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
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.incident(actor, owner, incident_id)
        clocks = service.sla(actor, owner, incident_id)
        alerts = service.alerts(actor, owner, incident_id=incident_id, limit=1000)
        notes = service.notes(actor, owner, incident_id)
        evidence = service.evidence(actor, owner, incident_id)
        timeline = service.timeline(actor, owner, incident_id)
    document = {
        "incident": _incident_row(incident),
        "sla": [_sla_row(s) for s in clocks],
        "alerts": [_alert_row(a) for a in alerts],
        "notes": _jsonable(notes),
        "evidence": _jsonable(evidence),
        "timeline": _jsonable(timeline),
    }
    if as_json:
        _print_json(document)
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
    out.print(_table(document["sla"], sla_columns, "SLA clocks"))
    alert_columns = ("id", "rule_title", "rule_author", "severity", "status", "count", "risk_score")
    out.print(_table(document["alerts"], alert_columns, "alerts"))
    factors = [{"factor": f.name, "points": f.points, "detail": f.detail} for f in i.risk.factors]
    out.print(_table(factors, ("factor", "points", "detail"), f"risk {i.risk.score}"))
    if notes:
        out.print(_table(document["notes"], ("at", "author", "visible_to_customer", "text"), "notes"))
    if evidence:
        columns = ("at", "author", "kind", "reference", "description")
        out.print(_table(document["evidence"], columns, "evidence"))
    out.print(_table(document["timeline"], ("at", "actor", "kind", "summary"), "timeline"))


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
    with _cases(*where) as (service, actor):
        before = service.incident(actor, owner, incident_id).state
        outcome = service.transition(
            actor, owner, incident_id, to_state, reason=reason, closure_reason=closure_reason
        )
    verdict = outcome.verdict
    why = getattr(verdict, "reason", None)
    until = getattr(verdict, "until", None)
    if as_json:
        _print_json(
            {
                "accepted": outcome.accepted,
                "from_state": before,
                "to_state": to_state,
                "rule": outcome.rule,
                "reason": why,
                "until": until,
                "incident": _incident_row(outcome.incident),
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
    _transition(tenant, incident_id, _state(to_state), reason, closure_reason, where, as_json)


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
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.assign(actor, owner, incident_id, None if unassign else analyst)
    _incident_done(incident, as_json, f"assigned to {incident.assignee or 'nobody'}")


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
    owner, to_tier = _tenant(tenant), _tier(tier)
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.escalate(actor, owner, incident_id, to_tier, reason)
    _incident_done(incident, as_json, f"escalated to {incident.queue_tier}")


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
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        note = service.add_note(actor, owner, incident_id, text, visible_to_customer=customer_visible)
    if as_json:
        _print_json(note)
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
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        item = service.add_evidence(
            actor, owner, incident_id, kind=kind, reference=reference, description=description
        )
    if as_json:
        _print_json(item)
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
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.notify_customer(actor, owner, incident_id, channel)
    notified = incident.notified_at.isoformat() if incident.notified_at else "-"
    _incident_done(incident, as_json, f"customer notified via {channel} (first at {notified})")


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
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.merge(actor, owner, target, sources)
    _incident_done(incident, as_json, f"merged {', '.join(sources)} ({len(incident.alert_ids)} alerts)")


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
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        remaining, new = service.split(actor, owner, incident_id, alert_ids)
    if as_json:
        _print_json({"remaining": _incident_row(remaining), "new": _incident_row(new)})
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
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        incident = service.link(actor, owner, first, second)
    _incident_done(incident, as_json, f"linked to {second}")


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
    wanted = _choice(status, ALERT_STATUSES, "status") if status else None
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.alerts(actor, owner, incident_id=incident, limit=limit)
    rows = [_alert_row(a) for a in found if wanted is None or a.status == wanted]
    _emit(rows, ALERT_COLUMNS, as_json, f"alerts of {owner}")


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
    return {**_jsonable(suppression), "conditions_text": conditions}


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
    expires_at = _when(expires, "--expires")
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        created = service.suppress_from_alert(
            actor,
            owner,
            alert_id,
            field_names or [],
            reason=reason,
            expires_at=expires_at,
            scope_rule=not all_rules,
        )
    _emit([_suppression_row(created)], SUPPRESSION_COLUMNS, as_json, "suppression created")


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
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.suppressions(actor, owner)
    _emit([_suppression_row(s) for s in found], SUPPRESSION_COLUMNS, as_json, f"suppressions of {owner}")


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
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        service.disable_suppression(actor, owner, suppression_id, reason=reason)
    typer.echo(f"{suppression_id}: disabled")


# -- queue, metrics --------------------------------------------------------------------------------------
QUEUE_COLUMNS: Final = (
    "rank",
    "incident_id",
    "severity",
    "state",
    "sla_metric",
    "remaining",
    "suggested",
    "reason",
)


def queue(
    tenant: Annotated[str | None, typer.Option(help="one tenant (default: every tenant in scope)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open incidents in routing order (breached, least SLA time left, severity, age), with the analyst
    routing would pick now."""
    owner = _tenant(tenant) if tenant else None
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.queue(actor, tenant=owner)
    rows = []
    for rank, row in enumerate(found, start=1):
        incident, clock = row.incident, row.sla
        rows.append(
            {
                "rank": rank,
                "incident_id": incident.id,
                "tenant_id": incident.tenant_id,
                "title": incident.title,
                "severity": incident.severity,
                "state": incident.state,
                "assignee": incident.assignee,
                "queue_tier": incident.queue_tier,
                "sla_metric": clock.metric if clock else None,
                "sla_state": clock.state if clock else None,
                "remaining_seconds": clock.remaining_seconds if clock else None,
                "remaining": _human(clock.remaining_seconds) if clock else None,
                "due_at": clock.due_at if clock else None,
                "suggested": row.suggested,
                "reason": row.reason,
            }
        )
    _emit(rows, QUEUE_COLUMNS, as_json, "queue")


def _stats(values: MetricStats) -> dict[str, Any]:
    return {
        "count": values.count,
        "mean_seconds": values.mean,
        "median_seconds": values.median,
        "p90_seconds": values.p90,
        "min_seconds": values.min,
        "max_seconds": values.max,
        "mean": _human(values.mean),
        "median": _human(values.median),
    }


def _metric_row(row: MetricRow) -> dict[str, Any]:
    sla = {}
    for metric, outcome in row.sla.items():
        share = outcome.share
        sla[metric] = {
            "met": outcome.met,
            "missed": outcome.missed,
            "excluded": outcome.excluded,
            "attainment": share,
            "attainment_text": "-"
            if share is None
            else f"{share:.0%} ({outcome.met}/{outcome.met + outcome.missed})",
        }
    return {
        "group_by": row.group_by,
        "group": row.group,
        "incidents": row.incidents,
        "metrics": {name: _stats(values) for name, values in row.metrics.items()},
        "sla": sla,
    }


def metrics(
    group_by: Annotated[str | None, typer.Option(help=" | ".join(GROUP_BYS))] = None,
    period: Annotated[str, typer.Option(help=f"with --group-by period: {' | '.join(PERIODS)}")] = "month",
    tenant: Annotated[str | None, typer.Option(help="one tenant (default: every tenant in scope)")] = None,
    since: Annotated[str | None, typer.Option(help="incidents created at or after (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="incidents created before (ISO 8601)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """MTTD, MTTT, MTTA, MTTN, MTTC, MTTR (mean and median) and SLA attainment (docs/metrics.md)."""
    grouping = cast("GroupBy", _choice(group_by, GROUP_BYS, "--group-by")) if group_by else None
    chosen = cast("Period", _choice(period, PERIODS, "--period"))
    owner = _tenant(tenant) if tenant else None
    start, end = _when(since, "--since"), _when(until, "--until")
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.metrics(actor, tenant=owner, group_by=grouping, period=chosen, since=start, until=end)
    rows = [_metric_row(r) for r in found]
    if as_json:
        _print_json(rows)
        return
    names = [m.name for m in METRICS]
    table_rows = []
    for row in rows:
        cells: dict[str, Any] = {"group": row["group"] or "all", "incidents": row["incidents"]}
        for name in names:
            s = row["metrics"][name]
            cells[name.upper()] = f"{s['mean']} / {s['median']} (n={s['count']})" if s["count"] else "-"
        for metric in SLA_METRICS:
            cells[f"SLA {metric}"] = row["sla"].get(metric, {}).get("attainment_text", "-")
        table_rows.append(cells)
    columns = ["group", "incidents", *(n.upper() for n in names), *(f"SLA {m}" for m in SLA_METRICS)]
    out.print(_table(table_rows, columns, "SOC metrics (mean / median)"))


# -- SLA engine, SOC -------------------------------------------------------------------------------------
@sla_app.command("sweep")
def sla_sweep(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One SLA engine tick now: warnings, breaches, breach escalations, routing and shift hand-offs."""
    with _cases(config, data_dir, database_url, roster, None) as (service, _actor):
        result = service.sweep()
    if as_json:
        _print_json(result)
    else:
        typer.echo(", ".join(f"{f.name}: {getattr(result, f.name)}" for f in fields(result)))


CREDIT_COLUMNS: Final = (
    "incident_id",
    "metric",
    "severity",
    "breached_at",
    "percent",
    "amount_minor",
    "explanation",
)


def _month(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise typer.BadParameter(f"--month: use YYYY-MM, not {value!r}") from None


@sla_app.command("credits")
def sla_credits(
    tenant: TenantArg,
    month: Annotated[str, typer.Option(help="YYYY-MM (UTC calendar month)")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A month's SLA credits under the tenant's tier and contract, one line per breach."""
    owner, start = _tenant(tenant), _month(month)
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        statement = service.credits(actor, owner, start)
    if as_json:
        _print_json({**_jsonable(statement), "tenant_id": owner, "month": month})
        return
    lines = [{**_jsonable(line), "percent": f"{line.percent_bp / 100:g}%"} for line in statement.lines]
    out.print(_table(lines, CREDIT_COLUMNS, f"SLA credits of {owner}, {month}"))
    capped = " (capped)" if statement.capped else ""
    typer.echo(
        f"tier {statement.tier}, monthly fee {statement.monthly_fee_minor}, cap {statement.cap_minor}; "
        f"total {statement.total_minor}{capped} (minor currency units)"
    )


WORKLOAD_COLUMNS: Final = (
    "analyst_id",
    "incidents_handled",
    "actions",
    "handling_minutes",
    "busy_minutes",
    "on_duty_minutes",
    "off_shift_minutes",
    "occupancy_percent",
    "open_load",
)


@soc_app.command("workload")
def soc_workload(
    since: Annotated[str | None, typer.Option(help="ISO 8601 (default: 7 days before --until)")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 (default: now)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Workload and occupancy per roster analyst over [since, until) (duty managers and the operator)."""
    end = _when(until, "--until") or datetime.now(tz=UTC)
    start = _when(since, "--since") or end - timedelta(days=7)
    if start >= end:
        raise typer.BadParameter("--since must be before --until")
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        if service.roster is None:
            err.print("no SOC roster: set soc_roster or pass --roster")
        found = service.workload(actor, start, end)
    rows = [
        {
            **_jsonable(w),
            "occupancy_percent": None if w.occupancy is None else round(100 * w.occupancy, 1),
        }
        for w in found
    ]
    _emit(rows, WORKLOAD_COLUMNS, as_json, f"workload {start.isoformat()} - {end.isoformat()}")


# -- per-tenant case settings and escalation tree ------------------------------------------------------
@case_settings_app.command("show")
def case_settings_show(
    tenant: TenantArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
) -> None:
    """The tenant's time zone, escalation tree configuration and contract (JSON)."""
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.case_settings(actor, _tenant(tenant))
    _print_json({"tenant_id": tenant, **_jsonable(found)})


@case_settings_app.command("set")
def case_settings_set(
    tenant: TenantArg,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone, e.g. Europe/Berlin")] = None,
    escalation: Annotated[
        Path | None, typer.Option(help="YAML escalation tree (format: src/watchfloor/cases/escalation.py)")
    ] = None,
    monthly_fee: Annotated[int | None, typer.Option(help="contract fee per month, minor units")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217, e.g. EUR")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
) -> None:
    """Change the given parts (the others stay), validated before anything is stored; audited."""
    tree: dict[str, Any] | None = None
    if escalation is not None:
        try:
            loaded = yaml.safe_load(escalation.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise typer.BadParameter(f"{escalation}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise typer.BadParameter(
                f"{escalation}: expected a mapping (timezone, business_hours, severities)"
            )
        tree = loaded
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        owner = _tenant(tenant)
        contract: dict[str, Any] | None = None
        if monthly_fee is not None or currency is not None:
            contract = dict(service.db.settings.get(owner).contract)
            if monthly_fee is not None:
                contract["monthly_fee_minor"] = monthly_fee
            if currency is not None:
                contract["currency"] = currency
        found = service.put_case_settings(actor, owner, timezone=timezone, escalation=tree, contract=contract)
    _print_json({"tenant_id": tenant, **_jsonable(found)})


def escalation(
    tenant: TenantArg,
    severity: Annotated[str, typer.Option(help="critical | high | medium | low")] = "high",
    at: Annotated[str | None, typer.Option(help="ISO 8601 time (default: now)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    roster: RosterOpt = None,
    acting_as: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Whom to call for the tenant, in order, for a severity at a time (its local business hours or not)."""
    if severity not in SEVERITIES:
        raise typer.BadParameter(f"severity must be one of {', '.join(SEVERITIES)}")
    moment = _when(at, "--at")
    with _cases(config, data_dir, database_url, roster, acting_as) as (service, actor):
        band, steps = service.escalation_plan(actor, _tenant(tenant), severity, moment)
    rows = [{"order": n, **_jsonable(step), "address": step.address} for n, step in enumerate(steps, 1)]
    if as_json:
        _print_json({"tenant_id": tenant, "severity": severity, "band": band, "steps": rows})
        return
    title = f"escalation for {tenant}, {severity}, {band.replace('_', ' ')}"
    out.print(_table(rows, ("order", "name", "role", "channel", "address", "wait_minutes"), title))


def register(app: typer.Typer) -> None:
    """Add the case-work commands to the `watchfloor` app."""
    app.add_typer(triage_app, name="triage")
    app.add_typer(incidents_app, name="incidents")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(suppressions_app, name="suppressions")
    app.command(help="Open incidents in routing order, with the analyst routing would pick.")(queue)
    app.command(help="SOC metrics: MTTD ... MTTR and SLA attainment.")(metrics)
    app.add_typer(sla_app, name="sla")
    app.add_typer(soc_app, name="soc")
    app.add_typer(case_settings_app, name="case-settings")
    app.command(help="Whom to call for a tenant, in order, by severity and time of day.")(escalation)
