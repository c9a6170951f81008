"""Health test worlds: the storage worlds (every database test on SQLite and PostgreSQL), plus a tracker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.storage.conftest import (  # noqa: F401 - fixtures re-used from the storage worlds
    ACTOR,
    FakeClock,
    db,
    db_url,
    pg_server,
    pg_template,
    tenant_clinic,
    tenant_lawfirm,
)
from watchfloor.health import HealthTracker

# Monday 7 December 2026, 00:00 UTC: hour of the week 0.
MONDAY = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY)


@pytest.fixture
def tracker() -> HealthTracker:
    return HealthTracker(started_at=MONDAY, max_fold_hours=24 * 7 * 4)
