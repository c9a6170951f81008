"""Dead letters over the API: list, raw bytes, replay through the injected callable, marking, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import AdminToken, ReplayRecorder, problem
from watchfloor.api import create_api_app
from watchfloor.core.types import TenantId
from watchfloor.storage import RAW_CAP_BYTES, Database

RECEIVED = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def clinic_dead_letters(db: Database, tenant_clinic: TenantId) -> list[int]:
    return [
        db.dead_letters.add(
            tenant_clinic,
            source="ws01.ndjson",
            code="input.invalid_json",
            message="not JSON",
            raw=b'{"EventID": 4625, broken',
            received_at=RECEIVED,
            line=7,
        ),
        db.dead_letters.add(
            tenant_clinic,
            source="fw.syslog",
            code="input.too_large",
            message="event too large",
            raw=b"\x00\xff" * (RAW_CAP_BYTES // 2 + 10),
            received_at=RECEIVED,
            offset=1024,
        ),
        db.dead_letters.add(
            tenant_clinic,
            source="ws01.ndjson",
            code="input.invalid_json",
            message="not JSON",
            raw=b"[1, 2",
            received_at=RECEIVED,
            line=9,
        ),
    ]


def test_list_and_raw(api: TestClient, clinic_dead_letters: list[int]) -> None:
    rows = api.get("/api/v1/tenants/clinic/dead-letters").json()
    assert [r["id"] for r in rows] == clinic_dead_letters
    assert rows[0]["line"] == 7
    assert rows[0]["status"] == "pending"
    assert rows[0]["truncated"] is False
    assert rows[1]["truncated"] is True
    assert rows[1]["stored_length"] == RAW_CAP_BYTES
    assert "raw" not in rows[0]

    raw = api.get(f"/api/v1/tenants/clinic/dead-letters/{clinic_dead_letters[0]}/raw")
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.content == b'{"EventID": 4625, broken'
    assert "attachment" in raw.headers["content-disposition"]
    binary = api.get(f"/api/v1/tenants/clinic/dead-letters/{clinic_dead_letters[1]}/raw")
    assert binary.content == (b"\x00\xff" * (RAW_CAP_BYTES // 2 + 10))[:RAW_CAP_BYTES]
    problem(api.get("/api/v1/tenants/clinic/dead-letters/999999/raw"), 404, "storage.not_found")
    problem(api.get("/api/v1/tenants/clinic/dead-letters/abc/raw"), 422)
    assert len(api.get("/api/v1/tenants/clinic/dead-letters", params={"limit": 2}).json()) == 2


def test_replay_chosen_ids(
    api: TestClient,
    db: Database,
    replay: ReplayRecorder,
    clinic_dead_letters: list[int],
    admin_token: AdminToken,
) -> None:
    first, second, third = clinic_dead_letters
    response = api.post(
        "/api/v1/tenants/clinic/dead-letters/replay",
        json={"ids": [third, first, first]},
        headers={"X-Watchfloor-Actor": "dana"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {
        "tenant": "clinic",
        "ids": [first, third],
        "marked": 2,
        "raw_bytes": len(b'{"EventID": 4625, broken') + len(b"[1, 2"),
        "already_replayed": [],
        "truncated": [],
        "result": {"published": 2},
    }
    assert replay.calls == [("clinic", [first, third])]
    pending = api.get("/api/v1/tenants/clinic/dead-letters", params={"status": "pending"}).json()
    assert [r["id"] for r in pending] == [second]
    done = api.get("/api/v1/tenants/clinic/dead-letters", params={"status": "replayed"}).json()
    assert all(r["replayed_at"] for r in done)
    entries = db.audit.list(TenantId("clinic"), action="dead_letter.replay")
    assert {(e.object_id, e.actor) for e in entries} == {
        (str(first), f"{admin_token.actor}/dana"),
        (str(third), f"{admin_token.actor}/dana"),
    }

    again = api.post("/api/v1/tenants/clinic/dead-letters/replay", json={"ids": [first]}).json()
    assert again["ids"] == []
    assert again["already_replayed"] == [first]
    assert again["marked"] == 0
    assert len(replay.calls) == 1  # nothing to hand over: the callable is not called


def test_replay_all_pending(api: TestClient, replay: ReplayRecorder, clinic_dead_letters: list[int]) -> None:
    response = api.post("/api/v1/tenants/clinic/dead-letters/replay")  # no body: every pending entry
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["ids"] == clinic_dead_letters
    assert body["truncated"] == [clinic_dead_letters[1]]
    assert body["raw_bytes"] == 24 + RAW_CAP_BYTES + 5
    assert replay.calls == [("clinic", clinic_dead_letters)]
    assert api.get("/api/v1/tenants/clinic/dead-letters", params={"status": "pending"}).json() == []


def test_replay_unknown_id_is_404_and_changes_nothing(
    api: TestClient, replay: ReplayRecorder, clinic_dead_letters: list[int]
) -> None:
    body = problem(
        api.post("/api/v1/tenants/clinic/dead-letters/replay", json={"ids": [clinic_dead_letters[0], 999]}),
        404,
        "storage.not_found",
    )
    assert body["ids"] == [999]
    assert replay.calls == []
    assert len(api.get("/api/v1/tenants/clinic/dead-letters", params={"status": "pending"}).json()) == 3


def test_replay_failure_marks_nothing(
    db: Database, archive_root: Path, admin_token: AdminToken, clinic_dead_letters: list[int]
) -> None:
    def broken(tenant: TenantId, ids: list[int]) -> dict[str, object]:
        raise OSError("spool is full")

    app = create_api_app(db, archive_root=archive_root, admin_token_sha256=admin_token.sha256, replay=broken)
    client = TestClient(app, headers=admin_token.headers)
    body = problem(client.post("/api/v1/tenants/clinic/dead-letters/replay", json={}), 500, "api.internal")
    assert "spool" not in body["detail"]
    assert len(db.dead_letters.list(TenantId("clinic"), status="pending")) == 3


def test_replay_without_callable_is_501(
    db: Database, archive_root: Path, admin_token: AdminToken, clinic_dead_letters: list[int]
) -> None:
    app = create_api_app(db, archive_root=archive_root, admin_token_sha256=admin_token.sha256)
    client = TestClient(app, headers=admin_token.headers)
    body = problem(client.post("/api/v1/tenants/clinic/dead-letters/replay", json={}), 501)
    assert "watchfloor deadletter replay" in body["detail"]
    assert client.get("/api/v1/tenants/clinic/dead-letters").status_code == 200


def test_bad_status_is_422(api: TestClient, tenant_clinic: TenantId) -> None:
    problem(api.get("/api/v1/tenants/clinic/dead-letters", params={"status": "lost"}), 422)
    problem(api.post("/api/v1/tenants/clinic/dead-letters/replay", json={"ids": ["x"]}), 422)
