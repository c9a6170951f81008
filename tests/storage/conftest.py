"""Storage test worlds: every repository test runs on SQLite (a tmp_path file) and on PostgreSQL.

`db_url` is a fresh, migrated database per test: a SQLite file, or a copy of a per-session migrated template
on the session's PostgreSQL server (`tests/pg.py`). `empty_db_url` is the same without migrations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tests.pg import PgServer, pg_server_or_skip
from watchfloor.core.types import TenantId
from watchfloor.storage import Contact, Database, Tenant

DIALECTS = ["sqlite", "postgresql"]
ACTOR = "analyst@watchfloor.test"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = pg_server_or_skip()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> str:
    """A database migrated once per session; each test gets a copy (CREATE DATABASE ... TEMPLATE)."""
    name = pg_server.create_database()
    Database.open(pg_server.url(name)).close()
    return name


def _new_url(request: pytest.FixtureRequest, *, migrated: bool) -> str:
    if request.param == "sqlite":
        tmp_path = request.getfixturevalue("tmp_path")
        return f"sqlite:///{tmp_path / 'watchfloor.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_template") if migrated else None
    name = server.create_database(template=template)
    request.addfinalizer(lambda: server.drop_database(name))
    return server.url(name)


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest) -> str:
    return _new_url(request, migrated=True)


@pytest.fixture(params=DIALECTS)
def empty_db_url(request: pytest.FixtureRequest) -> str:
    return _new_url(request, migrated=False)


@dataclass(slots=True)
class FakeClock:
    """A clock tests move by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))


@pytest.fixture
def db(db_url: str, clock: FakeClock) -> Iterator[Database]:
    database = Database.open(db_url, clock=clock)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def open_db(db_url: str) -> Iterator[Callable[..., Database]]:
    """Open more handles on the test's database (other clock, pepper...); all closed at the end."""
    opened: list[Database] = []

    def _open(**options: object) -> Database:
        database = Database.open(db_url, **options)  # type: ignore[arg-type]
        opened.append(database)
        return database

    yield _open
    for database in opened:
        database.close()


def make_clinic(db: Database) -> Tenant:
    return db.tenants.create(
        "clinic",
        name="Northside Family Clinic",
        vertical="healthcare",
        tier="standard",
        contacts=[
            Contact(
                name="Dana Ruiz", email="dana@clinic.example", role="practice manager", escalation_order=2
            ),
            Contact(
                name="Sam Ng", email="sam@clinic.example", phone="+1 555 0100", role="IT", escalation_order=1
            ),
        ],
        actor=ACTOR,
    )


@pytest.fixture
def tenant_clinic(db: Database) -> TenantId:
    return make_clinic(db).id


@pytest.fixture
def tenant_lawfirm(db: Database) -> TenantId:
    return db.tenants.create(
        "lawfirm", name="Hart & Gale LLP", vertical="legal", tier="premium", actor=ACTOR
    ).id
