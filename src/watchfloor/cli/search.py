"""`watchfloor search` and `watchfloor retrohunt`: query a tenant's event archive, or hunt it with rules.

Wire into the main app with `app.add_typer(search_app)` (no name: the two commands join the top level).
Times are ISO dates or datetimes (naive means UTC), `now`, or an age such as `15m`, `24h`, `7d`.
Results go to stdout (table or jsonl); summaries and warnings to stderr.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from watchfloor.archive.model import SearchQueryError
from watchfloor.archive.query import Condition, Node, Not, parse_where
from watchfloor.archive.retrohunt import RetroHit, RetroHuntStats, retrohunt
from watchfloor.archive.search import search as archive_search
from watchfloor.core.errors import WatchfloorError
from watchfloor.core.types import TenantId, tenant_id
from watchfloor.detect.sigma.loader import load_rules

__all__ = ["parse_when", "retrohunt_command", "search_app", "search_command"]

search_app = typer.Typer(no_args_is_help=True, help="Search and retro-hunt the per-tenant event archive.")
err = Console(stderr=True)

TABLE_LIMIT = 200
_AGE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class OutputFormat(StrEnum):
    table = "table"
    jsonl = "jsonl"


def parse_when(text: str, now: datetime) -> datetime:
    """ISO date or datetime (naive = UTC), `now`, or an age before `now` (`30m`, `24h`, `7d`, `2w`)."""
    value = text.strip()
    if value.lower() == "now":
        return now
    age = _AGE.fullmatch(value.lower())
    if age is not None:
        return now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO date/datetime, 'now' or an age like 24h or 7d"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _tenant(value: str) -> TenantId:
    try:
        return tenant_id(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _range(since: str, until: str) -> tuple[datetime, datetime]:
    now = datetime.now(tz=UTC)
    start, end = parse_when(since, now), parse_when(until, now)
    if end < start:
        raise typer.BadParameter(f"--until ({end.isoformat()}) is before --since ({start.isoformat()})")
    return start, end


def _fail(exc: WatchfloorError) -> typer.Exit:
    err.print(f"[red]error[/] {escape(str(exc))}", highlight=False)
    if isinstance(exc, SearchQueryError):
        err.print(f"  {exc.query}\n  {' ' * exc.offset}^", highlight=False, markup=False)
    return typer.Exit(code=2)


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return "" if value is None else str(value)


def _where_fields(node: Node | None) -> list[str]:
    """Field names a condition mentions, in order (extra table columns, so matches are visible)."""
    out: dict[str, None] = {}

    def walk(item: Node) -> None:
        if isinstance(item, Condition):
            out.setdefault(item.field.removeprefix("fields."), None)
        elif isinstance(item, Not):
            walk(item.item)
        else:
            for child in item.items:
                walk(child)

    if node is not None:
        walk(node)
    return [f for f in out if f not in {"logsource", "source", "record_id", "event_key"}]


def _show(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    return "" if value is None else str(value)


@search_app.command("search")
def search_command(
    archive: Annotated[Path, typer.Option("--archive", help="Archive root folder")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id to search (only this tenant is read)")],
    since: Annotated[str, typer.Option(help="Start (inclusive): ISO date/datetime, 'now' or age")] = "24h",
    until: Annotated[str, typer.Option(help="End (exclusive): ISO date/datetime, 'now' or age")] = "now",
    where: Annotated[
        str | None,
        typer.Option(help="Conditions, e.g. 'EventID=4625 AND TargetUserName!=admin' (see archive README)"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Most rows to return")] = 100,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format")] = OutputFormat.table,
    with_raw: Annotated[bool, typer.Option(help="Include the raw record in jsonl output")] = False,
) -> None:
    """Search archived events of one tenant by time range and field conditions (oldest first)."""
    tid = _tenant(tenant)
    start, end = _range(since, until)
    try:
        node = parse_where(where) if where else None
        columns = [
            "event_time",
            "received_at",
            "logsource",
            "source",
            "record_id",
            "event_key",
            "fields",
        ]
        if with_raw:
            columns.append("raw")
        rows = archive_search(archive, tid, since=start, until=end, where=node, limit=limit, columns=columns)
    except WatchfloorError as exc:
        raise _fail(exc) from None
    if fmt is OutputFormat.jsonl:
        out = sys.stdout.buffer
        for row in rows:
            doc: dict[str, Any] = {"tenant": tid, **row}
            doc["event_time"] = _iso(row["event_time"])
            doc["received_at"] = _iso(row["received_at"])
            if with_raw:
                doc["raw"] = row["raw"].decode("utf-8", "replace")
            out.write(orjson.dumps(doc) + b"\n")
        out.flush()
    else:
        extra = _where_fields(node)[:4]
        table = Table(title=f"{len(rows)} events for tenant {tid}")
        for column in ("time", "logsource", "source", "record", *extra):
            table.add_column(column, overflow="fold")
        for row in rows[:TABLE_LIMIT]:
            fields = row["fields"]
            table.add_row(
                _iso(row["event_time"]),
                row["logsource"],
                row["source"],
                row["record_id"] or "",
                *(_show(fields.get(name)) for name in extra),
            )
        Console().print(table)
        if len(rows) >= limit:
            err.print(f"limit of {limit} rows reached; narrow the range or raise --limit")


def _hit_rows(hit: RetroHit) -> Iterator[dict[str, Any]]:
    row = hit.row
    for meta in hit.rules:
        yield {
            "tenant": row.tenant,
            "rule_id": meta.id,
            "rule_title": meta.title,
            "rule_level": meta.level,
            "rule_author": meta.author,
            "tags": list(meta.tags),
            "event_time": _iso(row.event_time),
            "source": row.source,
            "record_id": row.record_id,
            "logsource": row.logsource,
            "event_key": row.event_key,
        }


@search_app.command("retrohunt")
def retrohunt_command(
    archive: Annotated[Path, typer.Option("--archive", help="Archive root folder")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id to hunt (only this tenant is read)")],
    rules: Annotated[
        list[Path], typer.Option("--rules", "-r", help="Sigma rule file or folder (repeatable)")
    ],
    since: Annotated[str, typer.Option(help="Start (inclusive): ISO date/datetime, 'now' or age")] = "30d",
    until: Annotated[str, typer.Option(help="End (exclusive): ISO date/datetime, 'now' or age")] = "now",
    where: Annotated[str | None, typer.Option(help="Only events matching these conditions")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format")] = OutputFormat.table,
) -> None:
    """Run Sigma rules over a tenant's archived events (a new rule over past data)."""
    tid = _tenant(tenant)
    start, end = _range(since, until)
    ruleset = load_rules(rules)
    for error in ruleset.errors:
        err.print(f"[yellow]rule not loaded[/] {error}", highlight=False)
    stats = RetroHuntStats()
    rows: list[dict[str, Any]] = []
    total = 0
    out = sys.stdout.buffer
    try:
        condition = parse_where(where) if where else None
        for hit in retrohunt(archive, tid, ruleset, start, end, where=condition, stats=stats):
            for doc in _hit_rows(hit):
                total += 1
                if fmt is OutputFormat.jsonl:
                    out.write(orjson.dumps(doc) + b"\n")
                elif len(rows) < TABLE_LIMIT:
                    rows.append(doc)
    except WatchfloorError as exc:
        raise _fail(exc) from None
    if fmt is OutputFormat.jsonl:
        out.flush()
    else:
        table = Table(title=f"Matches ({total})")
        for column in ("time", "level", "rule", "author", "source", "record"):
            table.add_column(column, overflow="fold")
        for doc in rows:
            table.add_row(
                doc["event_time"],
                doc["rule_level"],
                doc["rule_title"],
                doc["rule_author"],
                doc["source"],
                doc["record_id"] or "",
            )
        Console().print(table)
        if total > len(rows):
            err.print(f"... {total - len(rows)} more; use --format jsonl for all")
    skipped = ""
    if stats.correlations_skipped:
        skipped = f", {stats.correlations_skipped} correlation rules not run"
    err.print(
        f"{stats.events} archived events scanned for tenant {tid}; {stats.hits} matched "
        f"({stats.matches} rule matches); {stats.active_rules} rules active, "
        f"{stats.inactive_rules} cannot fire, {len(ruleset.errors)} load errors{skipped}",
        highlight=False,
    )
