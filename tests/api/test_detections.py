"""Detections over the API: newest first, time range, rule filter, limit cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.api.conftest import problem
from watchfloor.api import MAX_PAGE
from watchfloor.core.types import RuleId, TenantId
from watchfloor.storage import Database, NewDetection, event_key

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def detection(rule: str, record: int, minutes: int) -> NewDetection:
    return NewDetection(
        rule_id=RuleId(rule),
        rule_version="1",
        rule_title=f"rule {rule}",
        rule_level="high",
        event_key=event_key("ws01.evtx", record),
        source="ws01.evtx",
        record_id=str(record),
        event_time=T0 + timedelta(minutes=minutes),
        matched_at=T0 + timedelta(minutes=minutes, seconds=5),
        event={"EventID": 4625, "TargetUserName": "alice"},
        tags=("attack.t1110",),
    )


def test_list_filters_and_order(api: TestClient, db: Database, tenant_clinic: TenantId) -> None:
    db.detections.insert_many(
        tenant_clinic, [detection("r-brute", 1, 0), detection("r-brute", 2, 10), detection("r-ps", 3, 20)]
    )
    rows = api.get("/api/v1/tenants/clinic/detections").json()
    assert [r["record_id"] for r in rows] == ["3", "2", "1"]
    assert rows[0]["event"] == {"EventID": 4625, "TargetUserName": "alice"}
    assert rows[0]["tags"] == ["attack.t1110"]
    assert rows[0]["tenant_id"] == "clinic"

    brute = api.get("/api/v1/tenants/clinic/detections", params={"rule_id": "r-brute"}).json()
    assert [r["record_id"] for r in brute] == ["2", "1"]
    window = api.get(
        "/api/v1/tenants/clinic/detections",
        params={"since": (T0 + timedelta(minutes=5)).isoformat(), "until": "2026-12-03T09:20:00"},
    ).json()  # naive until means UTC; until is exclusive
    assert [r["record_id"] for r in window] == ["2"]
    by_event = api.get(
        "/api/v1/tenants/clinic/detections", params={"by": "event_time", "since": "2026-12-03T09:20:00Z"}
    ).json()
    assert [r["record_id"] for r in by_event] == ["3"]
    assert len(api.get("/api/v1/tenants/clinic/detections", params={"limit": 1}).json()) == 1


def test_limit_is_capped(api: TestClient, db: Database, tenant_clinic: TenantId) -> None:
    db.detections.insert_many(tenant_clinic, [detection("r", i, i % 50) for i in range(MAX_PAGE + 5)])
    rows = api.get("/api/v1/tenants/clinic/detections", params={"limit": 50_000}).json()
    assert len(rows) == MAX_PAGE


def test_bad_parameters(api: TestClient, tenant_clinic: TenantId) -> None:
    problem(api.get("/api/v1/tenants/clinic/detections", params={"since": "yesterday"}), 422)
    problem(api.get("/api/v1/tenants/clinic/detections", params={"by": "stored_at"}), 422)
    problem(api.get("/api/v1/tenants/nobody/detections"), 404, "storage.not_found")
