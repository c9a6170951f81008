"""Alembic environment: run on the connection `upgrade_to_head` hands over, or on `sqlalchemy.url`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from watchfloor.storage.engine import create_store_engine
from watchfloor.storage.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    if context.is_offline_mode():
        msg = "offline (--sql) migrations are not supported; migrate a live database"
        raise RuntimeError(msg)
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        msg = "no connection and no sqlalchemy.url: use watchfloor.storage.engine.migration_config(url)"
        raise RuntimeError(msg)
    engine = create_store_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


run_migrations()
