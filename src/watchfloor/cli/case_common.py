"""What the case-work commands share: the case service over the configured database, the acting
analyst, refusals as one line and exit code 1, tables and JSON output."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, cast, get_args

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from watchfloor.cases.metrics import GroupBy, Period
from watchfloor.cases.models import Actor, Incident
from watchfloor.cases.permissions import CaseError
from watchfloor.cases.routing import format_seconds
from watchfloor.cases.sla import SlaStatus
from watchfloor.cases.soc import load_roster
from watchfloor.cases.tiers import format_duration, load_tiers
from watchfloor.cli.admin import _db, _settings
from watchfloor.core.types import (
    ANALYST_TIERS,
    INCIDENT_STATES,
    AnalystTier,
    IncidentState,
)
from watchfloor.server.cases import CaseService
from watchfloor.storage.errors import NotFoundError
from watchfloor.triage.conditions import ConditionError
from watchfloor.triage.models import AlertStatus

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


# -- plumbing ----------------------------------------------------------------------------------------
@contextmanager
def refusals() -> Iterator[None]:
    """A refused operation: one line on stderr (location, code, message), exit code 1."""
    try:
        yield
    except REFUSED as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@contextmanager
def case_service(
    config: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    roster: Path | None,
    acting_as: str | None,
) -> Iterator[tuple[CaseService, Actor]]:
    """The case service over the configured database (as `server.service` builds it) and the actor."""
    settings = _settings(config, data_dir, database_url)
    roster_path = roster or settings.soc_roster
    with refusals(), _db(config, data_dir, database_url) as db:
        service = CaseService(
            db,
            load_tiers(settings.tiers_file),
            roster=load_roster(roster_path) if roster_path else None,
        )
        yield service, service.actor(acting_as)


def jsonable(value: Any) -> Any:
    """Dataclasses, mappings, sequences, sets and datetimes as JSON-ready values (recursively)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    return value


def print_json(document: Any) -> None:
    typer.echo(orjson.dumps(jsonable(document), option=orjson.OPT_INDENT_2).decode())


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


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    text = str(value)
    if isinstance(value, str) and len(text) > 19 and text[10] == "T" and text[4] == "-":
        try:  # an ISO time from `jsonable`: to the second, in UTC
            return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        except ValueError:
            return text
    return text


def make_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str) -> Table:
    """A table that never cuts ids short (cells fold) and shows text as text (no rich markup)."""
    table = Table(title=escape(title))
    for column in columns:
        table.add_column(HEADERS.get(column, column), overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell(row.get(c))) for c in columns))
    return table


def emit(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], as_json: bool, title: str) -> None:
    """Rows as a JSON array (every field), or as a table of `columns`."""
    if as_json:
        print_json(list(rows))
    else:
        out.print(make_table(rows, columns, title))


def parse_when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time or date; without a zone it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option}: not an ISO 8601 time or date: {value!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def parse_choice(value: str, options: Sequence[str], what: str) -> str:
    if value not in options:
        raise typer.BadParameter(f"{what} {value!r} is not one of {', '.join(options)}")
    return value


def parse_state(value: str) -> IncidentState:
    return cast("IncidentState", parse_choice(value, INCIDENT_STATES, "state"))


def parse_tier(value: str) -> AnalystTier:
    return cast("AnalystTier", parse_choice(value.upper(), ANALYST_TIERS, "tier"))


def human_duration(seconds: float | None) -> str | None:
    return None if seconds is None else format_seconds(seconds)


def incident_row(incident: Incident) -> dict[str, Any]:
    return {**jsonable(incident), "risk_score": incident.risk.score}


def sla_row(status: SlaStatus) -> dict[str, Any]:
    return {
        **jsonable(status),
        "target": format_duration(status.target_seconds) if status.target_seconds is not None else None,
        "elapsed": format_seconds(status.elapsed_seconds),
        "remaining": human_duration(status.remaining_seconds),
    }


def incident_done(incident: Incident, as_json: bool, said: str) -> None:
    if as_json:
        print_json(incident_row(incident))
    else:
        typer.echo(f"{incident.id}: {said}")
