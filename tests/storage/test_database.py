"""Opening, migrating, dialect settings and column types, on both SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text

from tests.storage.conftest import FakeClock
from watchfloor.core.types import RuleId, TenantId
from watchfloor.storage import Database, NewDetection, UnsupportedUrlError
from watchfloor.storage.columns import UTCDateTime
from watchfloor.storage.engine import database_url, head_revision
from watchfloor.storage.schema import metadata


def test_open_migrates_to_the_newest_revision(db: Database) -> None:
    assert head_revision() == "0005"
    assert db.schema_revision() == head_revision()


def test_migrating_an_empty_database_then_opening_again_changes_nothing(empty_db_url: str) -> None:
    with Database.open(empty_db_url, migrate=False) as raw:
        assert raw.schema_revision() is None
    with Database.open(empty_db_url) as first:
        tenant = first.tenants.create("clinic", name="Clinic", vertical="healthcare", tier="x", actor="a")
    with Database.open(empty_db_url) as second:
        assert second.schema_revision() == head_revision()
        assert second.tenants.get(tenant.id) == tenant
        with second.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


def test_processes_starting_together_migrate_once(empty_db_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            Database.open(empty_db_url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Database.open(empty_db_url) as db:
        assert db.schema_revision() == head_revision()


def test_tables_in_schema_py_match_the_migrated_database(db: Database) -> None:
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_sqlite_runs_in_wal_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    with Database.open(f"sqlite:///{path}", busy_timeout_seconds=7) as db, db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 7000
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_foreign_keys_are_enforced_on_both_dialects(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    from watchfloor.storage.schema import assets

    with pytest.raises(IntegrityError), db.engine.begin() as connection:
        connection.execute(
            insert(assets).values(
                tenant_id="nobody",
                kind="host",
                name="h",
                criticality="low",
                attributes={},
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )


@pytest.mark.parametrize(
    ("given_url", "drivername"),
    [
        ("postgresql://u:pw@db.example/wf", "postgresql+psycopg"),
        ("postgres://u@db.example/wf", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db.example/wf", "postgresql+psycopg"),
        ("sqlite:////var/lib/watchfloor/wf.db", "sqlite+pysqlite"),
    ],
)
def test_urls_are_rewritten_to_our_drivers(given_url: str, drivername: str) -> None:
    assert database_url(given_url).drivername == drivername


@pytest.mark.parametrize(
    "bad_url",
    [
        "postgresql+psycopg2://u:hunter2@db.example/wf",
        "mysql://u:hunter2@db.example/wf",
        "sqlite://",
        "sqlite:///:memory:",
        "not a url",
    ],
)
def test_unsupported_urls_are_refused_without_showing_passwords(bad_url: str) -> None:
    with pytest.raises(UnsupportedUrlError) as caught:
        database_url(bad_url)
    assert "hunter2" not in str(caught.value)
    assert caught.value.code == "storage.url_unsupported"


probe_metadata = MetaData()
probe = Table("probe", probe_metadata, Column("id", Integer, primary_key=True), Column("at", UTCDateTime))

aware = st.datetimes(
    # Hypothesis bounds are naive by contract; `timezones` makes the generated values aware.
    min_value=datetime(1970, 1, 2),  # noqa: DTZ001
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))]
    ),
)


def test_timestamps_round_trip_as_utc_instants(db: Database) -> None:
    probe_metadata.create_all(db.engine)

    @settings(max_examples=50, deadline=None)
    @given(aware)
    def round_trip(value: datetime) -> None:
        with db.engine.begin() as connection:
            connection.execute(probe.delete())
            connection.execute(insert(probe).values(id=1, at=value))
            back = connection.execute(select(probe.c.at)).scalar_one()
        assert back == value
        assert back.tzinfo is UTC

    round_trip()


def test_naive_timestamps_are_refused(db: Database) -> None:
    probe_metadata.create_all(db.engine)
    with pytest.raises(Exception, match="naive datetime"), db.engine.begin() as connection:
        connection.execute(insert(probe).values(id=1, at=datetime(2026, 1, 1)))  # noqa: DTZ001


def test_time_ranges_compare_instants_not_text(db: Database, tenant_clinic: TenantId) -> None:
    plus_two = timezone(timedelta(hours=2))
    times = [
        datetime(2026, 12, 3, 9, 30, tzinfo=UTC),
        datetime(2026, 12, 3, 11, 0, tzinfo=plus_two),  # 09:00 UTC
        datetime(2026, 12, 3, 10, 0, 0, 1, tzinfo=UTC),
    ]
    rows = [
        NewDetection(
            rule_id=RuleId("r"),
            rule_version="1",
            rule_title="t",
            rule_level="low",
            event_key=f"s#{n}",
            source="s",
            record_id=str(n),
            event_time=at,
            matched_at=at,
            event={},
        )
        for n, at in enumerate(times)
    ]
    db.detections.insert_many(tenant_clinic, rows)
    since = datetime(2026, 12, 3, 11, 15, tzinfo=plus_two)  # 09:15 UTC
    found = db.detections.list(tenant_clinic, since=since, until=datetime(2026, 12, 3, 10, tzinfo=UTC))
    assert [d.event_key for d in found] == ["s#0"]
    assert [d.event_key for d in db.detections.list(tenant_clinic)] == ["s#2", "s#0", "s#1"]


def test_a_naive_clock_is_a_bug(db_url: str) -> None:
    with Database.open(db_url, clock=FakeClock(datetime(2026, 1, 1))) as db:  # noqa: DTZ001
        with pytest.raises(ValueError, match="naive datetime"):
            db.tenants.create("clinic", name="C", vertical="other", tier="x", actor="a")
        with db.engine.connect() as connection:
            assert (
                connection.execute(select(func.count()).select_from(metadata.tables["tenants"])).scalar() == 0
            )
