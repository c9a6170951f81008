"""Response test worlds: the engine tests run on SQLite and on a real PostgreSQL (one cluster a session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PgServer, pg_server_or_skip


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = pg_server_or_skip()
    try:
        yield server
    finally:
        server.stop()
