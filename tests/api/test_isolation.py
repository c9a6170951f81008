"""Tenant isolation: through one tenant's path, another tenant's objects are 404 exactly like missing ones,
and lists never show them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import problem
from watchfloor.core.types import RuleId, TenantId
from watchfloor.storage import Database, NewDetection

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SECRET_MARK = "lawfirm-only-marker"


@dataclass(frozen=True, slots=True)
class LawfirmObjects:
    token_id: str
    token_plaintext: str
    dead_letter_id: int


@pytest.fixture
def lawfirm_objects(api: TestClient, db: Database, two_tenants: tuple[TenantId, TenantId]) -> LawfirmObjects:
    _, lawfirm = two_tenants
    created = api.post("/api/v1/tenants/lawfirm/tokens", json={"description": SECRET_MARK}).json()
    api.put(
        "/api/v1/tenants/lawfirm/assets/host/dc01",
        json={"criticality": "critical", "attributes": {"m": SECRET_MARK}},
    )
    dead = db.dead_letters.add(
        lawfirm, source=SECRET_MARK, code="c", message=SECRET_MARK, raw=SECRET_MARK.encode(), received_at=NOW
    )
    db.detections.insert_many(
        lawfirm,
        [
            NewDetection(
                rule_id=RuleId("r"),
                rule_version="1",
                rule_title=SECRET_MARK,
                rule_level="low",
                event_key="k#1",
                source="s",
                record_id="1",
                event_time=NOW,
                matched_at=NOW,
                event={"m": SECRET_MARK},
            )
        ],
    )
    return LawfirmObjects(created["token"]["id"], created["plaintext"], dead)


def test_object_routes_refuse_another_tenants_ids(
    api: TestClient, db: Database, lawfirm_objects: LawfirmObjects
) -> None:
    crafted = [
        ("POST", f"/api/v1/tenants/clinic/tokens/{lawfirm_objects.token_id}/revoke", None),
        ("GET", "/api/v1/tenants/clinic/assets/host/dc01", None),
        ("DELETE", "/api/v1/tenants/clinic/assets/host/dc01", None),
        ("GET", f"/api/v1/tenants/clinic/dead-letters/{lawfirm_objects.dead_letter_id}/raw", None),
        ("POST", "/api/v1/tenants/clinic/dead-letters/replay", {"ids": [lawfirm_objects.dead_letter_id]}),
    ]
    missing = [
        ("POST", "/api/v1/tenants/clinic/tokens/zz999999/revoke", None),
        ("GET", "/api/v1/tenants/clinic/assets/host/nope", None),
        ("DELETE", "/api/v1/tenants/clinic/assets/host/nope", None),
        ("GET", "/api/v1/tenants/clinic/dead-letters/999999/raw", None),
        ("POST", "/api/v1/tenants/clinic/dead-letters/replay", {"ids": [999999]}),
    ]
    for (method, path, body), (m_method, m_path, m_body) in zip(crafted, missing, strict=True):
        response = api.request(method, path, json=body)
        answer = problem(response, 404, "storage.not_found")
        assert SECRET_MARK not in response.text
        assert "lawfirm" not in response.text
        shape = problem(api.request(m_method, m_path, json=m_body), 404, "storage.not_found")
        assert set(answer) == set(shape)  # same members: nothing tells "someone else's" from "missing"

    # Nothing of lawfirm's changed.
    assert db.tokens.resolve(lawfirm_objects.token_plaintext) == "lawfirm"
    assert db.assets.get(TenantId("lawfirm"), "host", "dc01") is not None
    assert db.dead_letters.list(TenantId("lawfirm"), status="pending")
    assert [e.tenant_id for e in db.audit.list(TenantId("clinic"))] == ["clinic"]


def test_lists_show_only_the_tenant_in_the_path(
    api: TestClient, lawfirm_objects: LawfirmObjects, archive: Path
) -> None:
    for path in (
        "/api/v1/tenants/clinic/tokens",
        "/api/v1/tenants/clinic/assets",
        "/api/v1/tenants/clinic/detections",
        "/api/v1/tenants/clinic/dead-letters",
        "/api/v1/tenants/clinic/audit",
    ):
        response = api.get(path)
        assert response.status_code == 200
        assert SECRET_MARK not in response.text, path
        assert "lawfirm" not in response.text, path
    found = api.get(
        "/api/v1/tenants/clinic/events/search",
        params={
            "since": "2026-11-20T00:00:00Z",
            "until": "2026-11-21T00:00:00Z",
            "where": "IpAddress=10.9.9.9",
        },
    ).json()
    assert found["rows"] == []  # lawfirm's event matches, but lives in another tenant's partition
    own = api.get(
        "/api/v1/tenants/lawfirm/events/search",
        params={
            "since": "2026-11-20T00:00:00Z",
            "until": "2026-11-21T00:00:00Z",
            "where": "IpAddress=10.9.9.9",
        },
    ).json()
    assert [r["tenant"] for r in own["rows"]] == ["lawfirm"]


def test_replay_mixed_ids_touches_nothing(
    api: TestClient, db: Database, lawfirm_objects: LawfirmObjects
) -> None:
    own = db.dead_letters.add(
        TenantId("clinic"), source="s", code="c", message="m", raw=b"x", received_at=NOW
    )
    body = {"ids": [own, lawfirm_objects.dead_letter_id]}
    problem(api.post("/api/v1/tenants/clinic/dead-letters/replay", json=body), 404, "storage.not_found")
    assert [d.status for d in db.dead_letters.list(TenantId("clinic"))] == ["pending"]
    assert [d.status for d in db.dead_letters.list(TenantId("lawfirm"))] == ["pending"]
