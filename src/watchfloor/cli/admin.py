"""Service commands: `serve`, `tenant`, `token`, `asset`, `ingest`, `deadletter`.

Every command opens the system of record named by `--database-url` / `--data-dir` (or their
`WATCHFLOOR_*` variables, or the config file). Changes are audited under `--actor` (default
`cli:<login>`). Output is a table, or JSON with `--json`. Token secrets are printed once, on creation.
"""

from __future__ import annotations

import gc
import getpass
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from watchfloor.bus import SpoolBus
from watchfloor.core.types import TenantId, tenant_id
from watchfloor.ingest.envelope import SUBJECT_RAW, Envelope
from watchfloor.normalize.readers import MemoryDeadLetters, ReadStats, read_records
from watchfloor.server.pipeline import DetectionWorker, dead_letter_envelopes
from watchfloor.server.settings import ServeSettings
from watchfloor.storage import Contact, Database

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML settings file", exists=True)]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="data folder (spool, SQLite)")]
DbOpt = Annotated[str | None, typer.Option("--database-url", help="sqlite:///... or postgresql://...")]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="who is acting, for the audit log (or WATCHFLOOR_ACTOR)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output")]

tenant_app = typer.Typer(no_args_is_help=True, help="Create, list, update and retire tenants.")
token_app = typer.Typer(no_args_is_help=True, help="Per-tenant intake tokens (shown once, stored hashed).")
asset_app = typer.Typer(no_args_is_help=True, help="A tenant's hosts and users, with their criticality.")
deadletter_app = typer.Typer(no_args_is_help=True, help="Inspect and replay what could not be processed.")


def _settings(config: Path | None, data_dir: Path | None, database_url: str | None) -> ServeSettings:
    return ServeSettings.load(config, data_dir=data_dir, database_url=database_url)


@contextmanager
def _db(config: Path | None, data_dir: Path | None, database_url: str | None) -> Iterator[Database]:
    settings = _settings(config, data_dir, database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pepper = settings.token_pepper.get_secret_value().encode() if settings.token_pepper else None
    db = Database.open(settings.resolved_database_url, token_pepper=pepper)
    try:
        yield db
    finally:
        db.close()


def _actor(actor: str | None) -> str:
    actor = actor or os.environ.get("WATCHFLOOR_ACTOR")
    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _tenant(value: str) -> TenantId:
    try:
        return tenant_id(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _emit(rows: list[Any], columns: list[str], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(orjson.dumps([_plain(r) for r in rows], option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        plain = _plain(row)
        table.add_row(*(str(plain.get(c, "")) if plain.get(c) is not None else "" for c in columns))
    out.print(table)


def _contact(text: str) -> Contact:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 5):
        msg = f"contact {text!r}: use 'name,email,role,escalation_order[,phone]'"
        raise typer.BadParameter(msg)
    try:
        order = int(parts[3])
    except ValueError as exc:
        raise typer.BadParameter(f"contact {text!r}: escalation_order must be a number") from exc
    return Contact(
        name=parts[0],
        email=parts[1],
        role=parts[2],
        escalation_order=order,
        phone=parts[4] if len(parts) == 5 else None,
    )


# -- serve -----------------------------------------------------------------------------------------
def serve(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    host: Annotated[str | None, typer.Option(help="HTTP listen address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
    rules: Annotated[
        list[Path] | None, typer.Option("--rules", help="rule files/folders (repeatable)")
    ] = None,
    syslog_udp_port: Annotated[int | None, typer.Option(help="listen for syslog over UDP")] = None,
    syslog_tcp_port: Annotated[int | None, typer.Option(help="listen for syslog over TCP")] = None,
    syslog_tenant: Annotated[str | None, typer.Option(help="tenant of the syslog listeners' senders")] = None,
) -> None:
    """Run the service: intake (Splunk HEC, Elasticsearch _bulk, NDJSON, syslog), detection, storage."""
    from watchfloor.server.service import run  # uvicorn and FastAPI only for this command

    settings = ServeSettings.load(
        config,
        data_dir=data_dir,
        database_url=database_url,
        host=host,
        port=port,
        rules=rules or None,
        syslog_udp_port=syslog_udp_port,
        syslog_tcp_port=syslog_tcp_port,
        syslog_tenant=syslog_tenant,
    )
    err.print(f"watchfloor: data in {settings.data_dir}; HTTP on http://{settings.host}:{settings.port}")
    run(settings)


# -- tenants ---------------------------------------------------------------------------------------
TENANT_COLUMNS = ["id", "name", "vertical", "tier", "status", "created_at"]


@tenant_app.command("create")
def tenant_create(
    ident: Annotated[str, typer.Argument(help="tenant id: [a-z0-9_-]")],
    name: Annotated[str, typer.Option(help="display name")],
    vertical: Annotated[str, typer.Option(help="healthcare | legal | manufacturing | other")] = "other",
    tier: Annotated[str, typer.Option(help="service tier")] = "standard",
    contact: Annotated[
        list[str] | None, typer.Option(help="name,email,role,order[,phone] (repeatable)")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant."""
    contacts = [_contact(c) for c in contact or []]
    with _db(config, data_dir, database_url) as db:
        created = db.tenants.create(
            ident, name=name, vertical=vertical, tier=tier, contacts=contacts, actor=_actor(actor)
        )
    _emit([created], TENANT_COLUMNS, as_json, "tenant created")


@tenant_app.command("list")
def tenant_list(
    include_retired: Annotated[bool, typer.Option("--all", help="include retired tenants")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List tenants."""
    with _db(config, data_dir, database_url) as db:
        rows = db.tenants.list(include_retired=include_retired)
    _emit(rows, TENANT_COLUMNS, as_json, "tenants")


@tenant_app.command("update")
def tenant_update(
    ident: Annotated[str, typer.Argument()],
    name: Annotated[str | None, typer.Option()] = None,
    vertical: Annotated[str | None, typer.Option()] = None,
    tier: Annotated[str | None, typer.Option()] = None,
    contact: Annotated[list[str] | None, typer.Option(help="replaces all contacts (repeatable)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a tenant's name, vertical, tier or contacts."""
    contacts = [_contact(c) for c in contact] if contact else None
    with _db(config, data_dir, database_url) as db:
        updated = db.tenants.update(
            _tenant(ident), name=name, vertical=vertical, tier=tier, contacts=contacts, actor=_actor(actor)
        )
    _emit([updated], TENANT_COLUMNS, as_json, "tenant updated")


@tenant_app.command("retire")
def tenant_retire(
    ident: Annotated[str, typer.Argument()],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retire a tenant: its data stays, its tokens stop working."""
    with _db(config, data_dir, database_url) as db:
        retired = db.tenants.retire(_tenant(ident), actor=_actor(actor))
    _emit([retired], TENANT_COLUMNS, as_json, "tenant retired")


# -- tokens ----------------------------------------------------------------------------------------
TOKEN_COLUMNS = ["id", "tenant_id", "description", "created_at", "revoked_at", "last_used_at"]


@token_app.command("create")
def token_create(
    tenant: Annotated[str, typer.Argument()],
    description: Annotated[str, typer.Option(help="what sends with it")] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an intake token. The secret is printed this once; only its hash is stored."""
    with _db(config, data_dir, database_url) as db:
        created = db.tokens.create(_tenant(tenant), description=description, actor=_actor(actor))
    if as_json:
        typer.echo(orjson.dumps({**_plain(created.token), "token": created.plaintext}).decode())
        return
    err.print(f"token {created.token.id} for tenant {tenant}; copy it now, it cannot be shown again:")
    typer.echo(created.plaintext)


@token_app.command("list")
def token_list(
    tenant: Annotated[str, typer.Argument()],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a tenant's tokens (never their secrets)."""
    with _db(config, data_dir, database_url) as db:
        rows = db.tokens.list(_tenant(tenant))
    _emit(rows, TOKEN_COLUMNS, as_json, f"tokens of {tenant}")


@token_app.command("revoke")
def token_revoke(
    tenant: Annotated[str, typer.Argument()],
    token: Annotated[str, typer.Argument(help="token id (the 8 characters after wf_)")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: senders using it are refused from now on."""
    with _db(config, data_dir, database_url) as db:
        revoked = db.tokens.revoke(_tenant(tenant), token, actor=_actor(actor))
    _emit([revoked], TOKEN_COLUMNS, as_json, "token revoked")


# -- assets ----------------------------------------------------------------------------------------
ASSET_COLUMNS = ["kind", "name", "criticality", "updated_at"]


@asset_app.command("set")
def asset_set(
    tenant: Annotated[str, typer.Argument()],
    kind: Annotated[str, typer.Option(help="host | user")],
    name: Annotated[str, typer.Option(help="host name or user name")],
    criticality: Annotated[str, typer.Option(help="low | medium | high | critical")] = "medium",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an asset or change its criticality."""
    with _db(config, data_dir, database_url) as db:
        asset = db.assets.upsert(
            _tenant(tenant), kind=kind, name=name, criticality=criticality, actor=_actor(actor)
        )
    _emit([asset], ASSET_COLUMNS, as_json, "asset")


@asset_app.command("list")
def asset_list(
    tenant: Annotated[str, typer.Argument()],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A tenant's inventory."""
    with _db(config, data_dir, database_url) as db:
        rows = db.assets.list(_tenant(tenant))
    _emit(rows, ASSET_COLUMNS, as_json, f"assets of {tenant}")


@asset_app.command("remove")
def asset_remove(
    tenant: Annotated[str, typer.Argument()],
    kind: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Remove an asset from the inventory."""
    with _db(config, data_dir, database_url) as db:
        removed = db.assets.delete(_tenant(tenant), kind, name, actor=_actor(actor))
    if not removed:
        err.print(f"no {kind} {name!r} in {tenant}'s inventory")
        raise typer.Exit(1)


# -- ingest and dead letters -----------------------------------------------------------------------
def _pipeline(settings: ServeSettings, db: Database, spool_dir: Path) -> tuple[SpoolBus, DetectionWorker]:
    from watchfloor.server.service import build_engine, correlation_engine

    engine, rules, versions = build_engine(settings)
    bus = SpoolBus(spool_dir)
    worker = DetectionWorker(
        bus,
        db,
        engine,
        versions=versions,
        correlations=correlation_engine(rules),
        correlation_meta={m.id: m for _, m in rules.correlations},
    )
    gc.freeze()  # the compiled rules outlive the run: keep them out of every collection
    return bus, worker


def ingest(
    inputs: Annotated[
        list[Path], typer.Argument(help="EVTX, JSON, JSONL (.gz) files or folders", exists=True)
    ],
    tenant: Annotated[str, typer.Option(help="the tenant these files belong to")],
    rules: Annotated[
        list[Path] | None, typer.Option("--rules", help="rule files/folders (repeatable)")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run files through the service's pipeline for a tenant: detections and dead letters are stored
    exactly as if the events had arrived over the network (ingesting twice stores nothing twice)."""
    owner = _tenant(tenant)
    settings = ServeSettings.load(config, data_dir=data_dir, database_url=database_url, rules=rules or None)
    spool_dir = settings.data_dir / "ingest" / datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S.%f")
    sink, stats = MemoryDeadLetters(), ReadStats()
    with _db(config, data_dir, database_url) as db:
        if db.tenants.get(owner) is None:
            err.print(f"no tenant {owner!r}: create it with `watchfloor tenant create`")
            raise typer.Exit(2)
        bus, worker = _pipeline(settings, db, spool_dir)
        try:
            batch: list[Envelope] = []
            for record in read_records(inputs, tenant=owner, sink=sink, stats=stats):
                prov = record.provenance
                where = f"record {prov.record_id}" if prov.record_id is not None else f"line {prov.line}"
                batch.append(
                    Envelope(
                        tenant=owner,
                        source=f"file:{prov.source}",
                        format="json",
                        body=record.raw,
                        received_at=datetime.now(tz=UTC),
                        offset=where,
                    )
                )
                if len(batch) >= 2000:
                    bus.publish_batch(SUBJECT_RAW, [e.to_publish() for e in batch])
                    batch.clear()
                    worker.drain()
            if batch:
                bus.publish_batch(SUBJECT_RAW, [e.to_publish() for e in batch])
            worker.drain()
            letters = [d for d in sink.dead_letters if d.tenant == owner]
            if letters:
                db.dead_letters.add_many(owner, letters, received_at=datetime.now(tz=UTC))
        finally:
            bus.close()
            shutil.rmtree(spool_dir, ignore_errors=True)
    c = worker.counters
    summary = {
        "tenant": owner,
        "records": stats.records,
        "detections_new": c.detections.get(owner, 0),
        "detections_already_stored": c.duplicates.get(owner, 0),
        "dead_letters": len(sink.dead_letters) + c.dead_letters.get(owner, 0),
    }
    if as_json:
        typer.echo(orjson.dumps(summary).decode())
    else:
        err.print(", ".join(f"{k}: {v}" for k, v in summary.items()))


DEAD_COLUMNS = ["id", "source", "line", "record_id", "code", "message", "raw_length", "received_at", "status"]


@deadletter_app.command("list")
def deadletter_list(
    tenant: Annotated[str, typer.Option()],
    status: Annotated[str | None, typer.Option(help="pending | replayed")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What could not be processed for a tenant, where it came from and why."""
    with _db(config, data_dir, database_url) as db:
        rows = db.dead_letters.list(_tenant(tenant), status=status, limit=limit)  # type: ignore[arg-type]
    _emit(rows, DEAD_COLUMNS, as_json, f"dead letters of {tenant}")


@deadletter_app.command("replay")
def deadletter_replay(
    tenant: Annotated[str, typer.Option()],
    ids: Annotated[
        list[int] | None, typer.Option("--id", help="only these (repeatable); default all pending")
    ] = None,
    rules: Annotated[list[Path] | None, typer.Option("--rules")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run pending dead letters through the pipeline again (after a fix); still-bad ones are
    dead-lettered anew, with their current reason."""
    owner = _tenant(tenant)
    settings = ServeSettings.load(config, data_dir=data_dir, database_url=database_url, rules=rules or None)
    spool_dir = settings.data_dir / "replay" / datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S.%f")
    with _db(config, data_dir, database_url) as db:
        envelopes = dead_letter_envelopes(db, owner, ids or None)
        bus, worker = _pipeline(settings, db, spool_dir)
        try:
            if envelopes:
                bus.publish_batch(SUBJECT_RAW, [e.to_publish() for _id, e in envelopes])
            worker.drain()
            done = [letter_id for letter_id, _e in envelopes]
            replayed = db.dead_letters.mark_replayed(owner, done, actor=_actor(actor))
        finally:
            bus.close()
            shutil.rmtree(spool_dir, ignore_errors=True)
    summary = {
        "tenant": owner,
        "replayed": replayed,
        "detections_new": worker.counters.detections.get(owner, 0),
        "failed_again": worker.counters.dead_letters.get(owner, 0),
    }
    if as_json:
        typer.echo(orjson.dumps(summary).decode())
    else:
        err.print(", ".join(f"{k}: {v}" for k, v in summary.items()))


def admin_token() -> None:
    """Mint an operator token for the /api/v1 admin API: the token is printed once; configure the server with
    its SHA-256 only (WATCHFLOOR_ADMIN_TOKEN_SHA256 or `admin_token_sha256` in the config file)."""
    from watchfloor.api import new_admin_token

    plaintext, digest = new_admin_token()
    err.print("operator token (copy it now, it is not stored anywhere):")
    typer.echo(plaintext)
    err.print(f"server setting: WATCHFLOOR_ADMIN_TOKEN_SHA256={digest}")


def register(app: typer.Typer) -> None:
    """Add the service commands to the `watchfloor` app."""
    app.command(help="Run the service: intake, detection and storage, on the embedded defaults.")(serve)
    app.command(help="Run files through the pipeline for a tenant (stored like network intake).")(ingest)
    app.command("admin-token", help="Mint an operator token for the admin API (shown once).")(admin_token)
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(token_app, name="token")
    app.add_typer(asset_app, name="asset")
    app.add_typer(deadletter_app, name="deadletter")
