"""Admin API test worlds: a real SQLite database per test, an archive on disk, the app in a TestClient.

Worlds compose: `db` -> `tenant_clinic` / `tenant_lawfirm` (created through storage, as the CLI would)
-> `clinic_token`, `clinic_dead_letters`, ...; `api` is a TestClient carrying the operator token.
`tests/api/test_e2e_server.py` runs the same app under a real uvicorn server on loopback.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from watchfloor.api import create_api_app, new_admin_token
from watchfloor.archive import ArchivedEvent, ArchiveWriter, event_from_raw
from watchfloor.core.types import TenantId
from watchfloor.storage import Contact, Database

ACTOR = "cli:setup"
DAY0 = datetime(2026, 11, 20, tzinfo=UTC)
RECEIVED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AdminToken:
    plaintext: str
    sha256: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.plaintext}"}

    @property
    def actor(self) -> str:
        return f"api:{self.sha256[:8]}"


@dataclass(slots=True)
class ReplayRecorder:
    """The injected replay callable: records what it was handed, answers a summary."""

    calls: list[tuple[TenantId, list[int]]] = field(default_factory=list)

    def __call__(self, tenant: TenantId, ids: list[int]) -> dict[str, Any]:
        self.calls.append((tenant, list(ids)))
        return {"published": len(ids)}


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file made once per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "wf.db"
    Database.open(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def db(tmp_path: Path, migrated_db: Path) -> Iterator[Database]:
    path = tmp_path / "wf.db"
    shutil.copy(migrated_db, path)
    database = Database.open(f"sqlite:///{path}")
    try:
        yield database
    finally:
        database.close()


@pytest.fixture(scope="session")
def admin_token() -> AdminToken:
    return AdminToken(*new_admin_token())


@pytest.fixture
def archive_root(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def replay() -> ReplayRecorder:
    return ReplayRecorder()


@pytest.fixture
def api(db: Database, archive_root: Path, admin_token: AdminToken, replay: ReplayRecorder) -> TestClient:
    """The admin app with a configured operator token; requests carry it."""
    app = create_api_app(db, archive_root=archive_root, admin_token_sha256=admin_token.sha256, replay=replay)
    return TestClient(app, headers=admin_token.headers)


@pytest.fixture
def tenant_clinic(db: Database) -> TenantId:
    return db.tenants.create(
        "clinic",
        name="Northside Family Clinic",
        vertical="healthcare",
        tier="standard",
        contacts=[Contact(name="Sam Ng", email="sam@clinic.example", role="IT", escalation_order=1)],
        actor=ACTOR,
    ).id


@pytest.fixture
def tenant_lawfirm(db: Database) -> TenantId:
    return db.tenants.create(
        "lawfirm", name="Hart & Gale LLP", vertical="legal", tier="premium", actor=ACTOR
    ).id


@pytest.fixture
def two_tenants(tenant_clinic: TenantId, tenant_lawfirm: TenantId) -> tuple[TenantId, TenantId]:
    return tenant_clinic, tenant_lawfirm


def win_event(event_id: int, when: datetime, *, record: int, **data: Any) -> bytes:
    doc = {
        "Channel": "Security",
        "EventID": event_id,
        "EventRecordID": record,
        "Computer": "ws01.local",
        "TimeCreated": when.isoformat().replace("+00:00", "Z"),
        **data,
    }
    return orjson.dumps(doc)


def archived_events() -> list[ArchivedEvent]:
    """clinic: two failed logons and a success; lawfirm: a look-alike failed logon the same hour."""
    t = DAY0 + timedelta(hours=9)
    clinic = [
        win_event(4625, t, record=1, TargetUserName="Administrator", IpAddress="10.1.2.3"),
        win_event(4625, t + timedelta(minutes=1), record=2, TargetUserName="alice", IpAddress="192.168.7.9"),
        win_event(4624, t + timedelta(minutes=2), record=3, TargetUserName="alice", IpAddress="10.200.0.1"),
    ]
    lawfirm = [win_event(4625, t, record=1, TargetUserName="Administrator", IpAddress="10.9.9.9")]
    return [
        *(event_from_raw(r, tenant="clinic", source="ws01.evtx", received_at=RECEIVED) for r in clinic),
        *(event_from_raw(r, tenant="lawfirm", source="dc01.evtx", received_at=RECEIVED) for r in lawfirm),
    ]


@pytest.fixture
def archive(archive_root: Path, two_tenants: tuple[TenantId, TenantId]) -> Path:
    with ArchiveWriter(archive_root, background_flush=False) as writer:
        writer.extend(archived_events())
    return archive_root


def problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert `response` is an RFC 9457 problem with `status` (and `code`); return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == f"urn:watchfloor:problem:{body['code']}"
    assert body["title"]
    assert body["detail"]
    if code is not None:
        assert body["code"] == code
    return body
