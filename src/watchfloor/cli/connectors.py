"""`watchfloor connectors list|set|delete|rotate`: a tenant's connector credentials, sealed at rest.

Values never reach the output and should not reach shell history either: `KEY=-` reads the value from
stdin (one line per such key, in order), a bare `KEY` asks for it with hidden input, and `--from-file`
reads a YAML mapping of key -> value. The secrets key comes from `WATCHFLOOR_SECRETS_KEY` (or the config
file); with `dev_mode` a development key under the data folder is used.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.markup import escape

from watchfloor.cli.admin import (
    ActorOpt,
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    JsonOpt,
    _actor,
    _db,
    _emit,
    _settings,
    _tenant,
    err,
    out,
)
from watchfloor.core.errors import WatchfloorError
from watchfloor.respond.secrets import CredentialStore, SealedOpenError, load_keys, shown_key

connectors_app = typer.Typer(
    no_args_is_help=True, help="A tenant's connector credentials (sealed at rest; values never shown)."
)

LIST_COLUMNS = ["connector", "keys_set", "missing_keys", "secret_keys", "key_id"]
SET_COLUMNS = ["tenant_id", "connector", "keys", "key_id", "updated_by", "updated_at"]


def _store(config: Path | None, data_dir: Path | None, database_url: str | None, db: Any) -> CredentialStore:
    return CredentialStore(db, load_keys(_settings(config, data_dir, database_url)))


def _fail(exc: WatchfloorError) -> typer.Exit:
    err.print(f"[red]error[/] {escape(str(exc))}", highlight=False)
    return typer.Exit(code=2)


def _from_file(path: Path) -> dict[str, str]:
    """A YAML mapping of key -> scalar; errors give the line, never the file's text."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise typer.BadParameter(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise typer.BadParameter(f"{path}{line}: not valid YAML") from None
    except yaml.YAMLError:
        raise typer.BadParameter(f"{path}: not valid YAML") from None
    if not isinstance(loaded, dict):
        raise typer.BadParameter(f"{path}: expected a mapping of config key -> value")
    values: dict[str, str] = {}
    for key, value in loaded.items():
        if isinstance(value, dict | list) or value is None:
            raise typer.BadParameter(
                f"{path}: the value of {shown_key(str(key))} must be a single string or number"
            )
        values[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def _assignments(items: list[str]) -> tuple[dict[str, str], set[str]]:
    """KEY=VALUE, KEY=- (one stdin line), KEY (hidden prompt); and the keys given inline (KEY=VALUE)."""
    values: dict[str, str] = {}
    inline: set[str] = set()
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key:
            raise typer.BadParameter("expected KEY=VALUE, KEY=- (stdin) or KEY (prompt)")
        if not sep:
            value = typer.prompt(f"{key}", hide_input=True, err=True)
        elif value == "-":
            line = sys.stdin.readline()
            if not line:
                raise typer.BadParameter(f"{key}=-: stdin has no line left for it")
            value = line.rstrip("\r\n")
        else:
            inline.add(key)
        values[key] = value
    return values, inline


@connectors_app.command("list")
def connectors_list(
    tenant: Annotated[str, typer.Argument(help="tenant id")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every connector, its config keys and which this tenant has set (names only)."""
    tid = _tenant(tenant)
    with _db(config, data_dir, database_url) as db:
        try:
            store = _store(config, data_dir, database_url, db)
            if db.tenants.get(tid) is None:
                err.print(f"no tenant {tid}")
                raise typer.Exit(code=2)
            stored = {info.connector: info for info in store.credentials(tid)}
            rows = []
            for name, spec in store.specs().items():
                info = stored.get(name)
                keys_set = sorted(info.keys) if info is not None else []
                rows.append(
                    {
                        "connector": name,
                        "actions": list(spec.actions),
                        "config_keys": list(spec.config),
                        "secret_keys": list(spec.secrets),
                        "keys_set": keys_set,
                        "missing_keys": [k for k in spec.config if k not in keys_set],
                        "key_id": info.key_id if info is not None else None,
                    }
                )
        except WatchfloorError as exc:
            raise _fail(exc) from None
    if as_json:
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table_rows = [{k: ", ".join(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows]
    _emit(table_rows, LIST_COLUMNS, False, f"connectors of {tid}")


@connectors_app.command("set")
def connectors_set(
    tenant: Annotated[str, typer.Argument(help="tenant id")],
    connector: Annotated[str, typer.Argument(help="connector, e.g. mde, okta (see `connectors list`)")],
    assignments: Annotated[
        list[str] | None,
        typer.Argument(help="KEY=VALUE; KEY=- reads the value from stdin; a bare KEY asks (hidden input)"),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="YAML mapping of key -> value", exists=True)
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="replace every stored key (default: merge into them)")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Seal and store connector credentials for a tenant. Prints key names, never values."""
    tid = _tenant(tenant)
    values = _from_file(from_file) if from_file is not None else {}
    given, inline = _assignments(assignments or [])
    values.update(given)
    if not values:
        raise typer.BadParameter("give KEY=VALUE pairs or --from-file")
    with _db(config, data_dir, database_url) as db:
        try:
            store = _store(config, data_dir, database_url, db)
            spec = store.specs().get(connector)
            exposed = sorted(inline & set(spec.secrets)) if spec is not None else []
            for name in exposed:
                err.print(
                    f"[yellow]warning[/] {name} was given on the command line and may be in your shell "
                    f"history; next time use {name}=- (stdin) or a bare {name} (hidden prompt)",
                    highlight=False,
                )
            info = store.put(tid, connector, values, actor=_actor(actor), merge=not replace)
        except SealedOpenError as exc:
            err.print("the stored values cannot be merged; give every key again with --replace")
            raise _fail(exc) from None
        except WatchfloorError as exc:
            raise _fail(exc) from None
    if as_json:
        _emit([info], SET_COLUMNS, True, "")
        return
    keys = ", ".join(info.keys)
    out.print(f"{tid}/{escape(connector)}: set {keys} (sealed with key {info.key_id})", highlight=False)


@connectors_app.command("delete")
def connectors_delete(
    tenant: Annotated[str, typer.Argument(help="tenant id")],
    connector: Annotated[str, typer.Argument(help="connector")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Delete a tenant's credentials for a connector (its actions then fail for want of config)."""
    tid = _tenant(tenant)
    with _db(config, data_dir, database_url) as db:
        removed = db.response.delete_credentials(tid, connector, actor=_actor(actor))
    if not removed:
        err.print(f"{tid} has no credentials for connector {escape(connector)}")
        raise typer.Exit(code=1)
    out.print(f"{tid}/{connector}: credentials deleted")


@connectors_app.command("rotate")
def connectors_rotate(
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="only these tenants (repeatable; default: all)")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DbOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Re-seal credentials sealed with an older key under the current one (the first of
    WATCHFLOOR_SECRETS_KEY); afterwards the older keys can be dropped from the setting."""
    with _db(config, data_dir, database_url) as db:
        try:
            store = _store(config, data_dir, database_url, db)
            tenants = [_tenant(t) for t in tenant] if tenant else [t.id for t in db.tenants.list()]
            moved = store.rotate(tenants, actor=_actor(actor))
        except WatchfloorError as exc:
            raise _fail(exc) from None
    out.print(f"{moved} connector credentials re-sealed with key {store.key_id}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `connectors` to the `watchfloor` app."""
    app.add_typer(connectors_app, name="connectors")
