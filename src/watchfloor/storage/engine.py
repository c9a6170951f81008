"""Engines, transactions and migrations for SQLite and PostgreSQL (psycopg 3).

SQLite: WAL, foreign keys on, a busy timeout, `synchronous=FULL`; SQLAlchemy (not the `sqlite3` module)
emits BEGIN, so DDL is transactional and writers start with `BEGIN IMMEDIATE` (no lock upgrades, no surprise
`database is locked` in the middle of a transaction). PostgreSQL: `postgresql://` runs on
`postgresql+psycopg`, and migrations hold an advisory lock so two processes starting together migrate once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from watchfloor.storage.columns import as_utc
from watchfloor.storage.errors import UnsupportedUrlError

Clock = Callable[[], datetime]

MIGRATIONS = "watchfloor.storage:migrations"
DEFAULT_BUSY_TIMEOUT_SECONDS = 5.0
# pg_advisory_xact_lock key for migrations: any constant bigint, the same in every process.
MIGRATION_LOCK_KEY = 0x5746_4D49_4752  # "WFMIGR"

_WRITE_OPTION = "watchfloor_write"


def database_url(url: str) -> URL:
    """Parse and check a database URL; `postgresql://` (or `postgres://`) becomes `postgresql+psycopg://`."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        msg = "not a database URL: use sqlite:///path/to/file.db or postgresql://user@host/db"
        raise UnsupportedUrlError(msg) from None
    backend, _, driver = parsed.drivername.partition("+")
    shown = parsed.render_as_string(hide_password=True)
    if backend in {"postgresql", "postgres"}:
        if driver not in {"", "psycopg"}:
            msg = f"{shown}: PostgreSQL runs on the psycopg 3 driver only (postgresql+psycopg://)"
            raise UnsupportedUrlError(msg)
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in {"", "pysqlite"}:
            msg = f"{shown}: SQLite runs on the standard sqlite3 driver only"
            raise UnsupportedUrlError(msg)
        if not parsed.database or parsed.database == ":memory:" or parsed.query.get("mode") == "memory":
            msg = f"{shown}: in-memory SQLite is not supported; give a file path (sqlite:///path/to/file.db)"
            raise UnsupportedUrlError(msg)
        return parsed.set(drivername="sqlite+pysqlite")
    msg = f"{shown}: unsupported database; use sqlite:///path or postgresql://..."
    raise UnsupportedUrlError(msg)


def json_text(value: Any) -> str:
    """JSON columns are written with orjson (~10x the standard library on event documents); values
    orjson refuses (integers beyond 64 bits) fall back to the standard library."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def json_value(text: str | bytes) -> Any:
    """JSON columns are read with orjson too (the stage that tails detections decodes every event); what
    orjson refuses (integers beyond 64 bits, NaN written by the standard library) falls back."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def create_store_engine(url: str, *, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS) -> Engine:
    """A configured engine for `url` (see `database_url`). Does not connect and does not migrate."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            connect_args={"timeout": busy_timeout_seconds},
            json_serializer=json_text,
            json_deserializer=json_value,
        )
        _configure_sqlite(engine, busy_timeout_ms=round(busy_timeout_seconds * 1000))
        return engine
    return create_engine(parsed, pool_pre_ping=True, json_serializer=json_text, json_deserializer=json_value)


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        # Take BEGIN away from the sqlite3 module (it skips it for DDL and SELECT); `_on_begin` emits it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            # Switching to WAL needs a moment of exclusive access, which processes opening the same new
            # file together contend for ("database is locked" despite busy_timeout): switch only when the
            # file is not in WAL yet, and retry briefly while another process is doing it.
            for attempt in range(50):
                try:
                    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        cursor.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 49:
                        raise
                    time.sleep(0.05)
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(_WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


class Store:
    """What every repository shares: the engine, transactions, the clock and the token pepper."""

    __slots__ = ("_writer", "clock", "engine", "token_pepper")

    def __init__(self, engine: Engine, *, clock: Clock, token_pepper: bytes | None) -> None:
        self.engine = engine
        self.clock = clock
        self.token_pepper = token_pepper
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One read-write transaction, committed on success (`BEGIN IMMEDIATE` on SQLite)."""
        with self._writer.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One transaction for reading (plain BEGIN on SQLite), rolled back at the end."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    def now(self) -> datetime:
        """The clock's time in UTC (a naive clock is a bug and raises)."""
        return as_utc(self.clock())


def dialect_insert(connection: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT with `on_conflict_do_nothing` / `on_conflict_do_update` for the connection's dialect."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def migration_config(url: str | None = None) -> Config:
    """An Alembic config for the migrations shipped in this package (no alembic.ini needed).

    With `url`, the `alembic` command API can run against it directly, e.g. to autogenerate a revision:
    `command.revision(migration_config("sqlite:////tmp/dev.db"), autogenerate=True, message="...")`.
    """
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if url is not None:
        config.set_main_option("sqlalchemy.url", database_url(url).render_as_string(hide_password=False))
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Migrate to the newest revision in one transaction; a no-op when already there."""
    config = migration_config()
    with engine.execution_options(**{_WRITE_OPTION: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def head_revision() -> str | None:
    """The newest revision shipped in `migrations/versions/`."""
    return ScriptDirectory.from_config(migration_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
