"""SOC-wide commands over the system of record: the queue, metrics (MTTD ... MTTR, SLA attainment), the
SLA engine (`sla sweep`, `sla credits`), analysts' workload, per-tenant case settings and escalation trees.
They act as `--as ANALYST_ID` or the operator, like `cli/cases.py`."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, cast

import typer
import yaml

from watchfloor.cases.metrics import METRICS, GroupBy, MetricRow, MetricStats, Period
from watchfloor.cli.admin import ConfigOpt, DataDirOpt, DbOpt, JsonOpt, _tenant
from watchfloor.cli.case_common import (
    GROUP_BYS,
    PERIODS,
    AsOpt,
    RosterOpt,
    TenantArg,
    case_service,
    emit,
    err,
    human_duration,
    jsonable,
    make_table,
    out,
    parse_choice,
    parse_when,
    print_json,
)
from watchfloor.core.types import (
    SEVERITIES,
    SLA_METRICS,
)

sla_app = typer.Typer(no_args_is_help=True, help="The SLA engine: sweep now, monthly credits.")

soc_app = typer.Typer(no_args_is_help=True, help="The SOC: analysts' workload and occupancy.")

case_settings_app = typer.Typer(
    no_args_is_help=True, help="A tenant's time zone, escalation tree and contract (for SLAs and credits)."
)


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
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
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
                "remaining": human_duration(clock.remaining_seconds) if clock else None,
                "due_at": clock.due_at if clock else None,
                "suggested": row.suggested,
                "reason": row.reason,
            }
        )
    emit(rows, QUEUE_COLUMNS, as_json, "queue")


def _stats(values: MetricStats) -> dict[str, Any]:
    return {
        "count": values.count,
        "mean_seconds": values.mean,
        "median_seconds": values.median,
        "p90_seconds": values.p90,
        "min_seconds": values.min,
        "max_seconds": values.max,
        "mean": human_duration(values.mean),
        "median": human_duration(values.median),
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
    grouping = cast("GroupBy", parse_choice(group_by, GROUP_BYS, "--group-by")) if group_by else None
    chosen = cast("Period", parse_choice(period, PERIODS, "--period"))
    owner = _tenant(tenant) if tenant else None
    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.metrics(actor, tenant=owner, group_by=grouping, period=chosen, since=start, until=end)
    rows = [_metric_row(r) for r in found]
    if as_json:
        print_json(rows)
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
    out.print(make_table(table_rows, columns, "SOC metrics (mean / median)"))


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
    with case_service(config, data_dir, database_url, roster, None) as (service, _actor):
        result = service.sweep()
    if as_json:
        print_json(result)
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
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        statement = service.credits(actor, owner, start)
    if as_json:
        print_json({**jsonable(statement), "tenant_id": owner, "month": month})
        return
    lines = [{**jsonable(line), "percent": f"{line.percent_bp / 100:g}%"} for line in statement.lines]
    out.print(make_table(lines, CREDIT_COLUMNS, f"SLA credits of {owner}, {month}"))
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
    end = parse_when(until, "--until") or datetime.now(tz=UTC)
    start = parse_when(since, "--since") or end - timedelta(days=7)
    if start >= end:
        raise typer.BadParameter("--since must be before --until")
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        if service.roster is None:
            err.print("no SOC roster: set soc_roster or pass --roster")
        found = service.workload(actor, start, end)
    rows = [
        {
            **jsonable(w),
            "occupancy_percent": None if w.occupancy is None else round(100 * w.occupancy, 1),
        }
        for w in found
    ]
    emit(rows, WORKLOAD_COLUMNS, as_json, f"workload {start.isoformat()} - {end.isoformat()}")


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
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        found = service.case_settings(actor, _tenant(tenant))
    print_json({"tenant_id": tenant, **jsonable(found)})


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
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        owner = _tenant(tenant)
        contract: dict[str, Any] | None = None
        if monthly_fee is not None or currency is not None:
            contract = dict(service.db.settings.get(owner).contract)
            if monthly_fee is not None:
                contract["monthly_fee_minor"] = monthly_fee
            if currency is not None:
                contract["currency"] = currency
        found = service.put_case_settings(actor, owner, timezone=timezone, escalation=tree, contract=contract)
    print_json({"tenant_id": tenant, **jsonable(found)})


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
    moment = parse_when(at, "--at")
    with case_service(config, data_dir, database_url, roster, acting_as) as (service, actor):
        band, steps = service.escalation_plan(actor, _tenant(tenant), severity, moment)
    rows = [{"order": n, **jsonable(step), "address": step.address} for n, step in enumerate(steps, 1)]
    if as_json:
        print_json({"tenant_id": tenant, "severity": severity, "band": band, "steps": rows})
        return
    title = f"escalation for {tenant}, {severity}, {band.replace('_', ' ')}"
    out.print(make_table(rows, ("order", "name", "role", "channel", "address", "wait_minutes"), title))


def register(app: typer.Typer) -> None:
    """Add the SOC-wide commands to the `watchfloor` app."""
    app.command(help="Open incidents in routing order, with the analyst routing would pick.")(queue)
    app.command(help="SOC metrics: MTTD ... MTTR and SLA attainment.")(metrics)
    app.add_typer(sla_app, name="sla")
    app.add_typer(soc_app, name="soc")
    app.add_typer(case_settings_app, name="case-settings")
    app.command(help="Whom to call for a tenant, in order, by severity and time of day.")(escalation)
