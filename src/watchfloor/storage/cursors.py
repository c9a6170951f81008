"""Stage cursors: how far a stage that tails a table has got, advanced inside the stage's own transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from watchfloor.storage.engine import dialect_insert
from watchfloor.storage.schema import stage_cursors


def read_cursor(connection: Connection, name: str) -> int:
    """The last position `name` has processed (0 before its first batch)."""
    value = connection.execute(
        select(stage_cursors.c.position).where(stage_cursors.c.name == name)
    ).scalar_one_or_none()
    return int(value) if value is not None else 0


def advance_cursor(connection: Connection, name: str, position: int, *, at: datetime) -> None:
    """Move `name` to `position` (never backwards) on the caller's transaction."""
    if position < read_cursor(connection, name):
        msg = f"stage cursor {name!r} cannot move backwards to {position}"
        raise ValueError(msg)
    statement = dialect_insert(connection, stage_cursors).values(name=name, position=position, updated_at=at)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[stage_cursors.c.name], set_={"position": position, "updated_at": at}
        )
    )
