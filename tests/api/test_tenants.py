"""Tenants over the API: the full lifecycle, validation and conflicts, and the audit trail."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import AdminToken, problem
from watchfloor.core.types import TenantId
from watchfloor.storage import Database

CLINIC = {
    "id": "clinic",
    "name": "Northside Family Clinic",
    "vertical": "healthcare",
    "tier": "standard",
    "contacts": [
        {"name": "Dana Ruiz", "email": "dana@clinic.example", "role": "manager", "escalation_order": 2},
        {
            "name": "Sam Ng",
            "email": "sam@clinic.example",
            "role": "IT",
            "escalation_order": 1,
            "phone": "+1 5",
        },
    ],
}


def test_full_lifecycle(api: TestClient, db: Database, admin_token: AdminToken) -> None:
    created = api.post("/api/v1/tenants", json=CLINIC)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == "clinic"
    assert body["status"] == "active"
    assert body["retired_at"] is None
    assert [c["name"] for c in body["contacts"]] == ["Sam Ng", "Dana Ruiz"]  # by escalation order

    assert [t["id"] for t in api.get("/api/v1/tenants").json()] == ["clinic"]
    assert api.get("/api/v1/tenants/clinic").json() == body

    patched = api.patch("/api/v1/tenants/clinic", json={"tier": "premium", "contacts": []})
    assert patched.status_code == 200, patched.text
    assert patched.json()["tier"] == "premium"
    assert patched.json()["contacts"] == []
    assert patched.json()["name"] == CLINIC["name"]

    retired = api.post("/api/v1/tenants/clinic/retire")
    assert retired.status_code == 200
    assert retired.json()["status"] == "retired"
    assert retired.json()["retired_at"] is not None
    assert api.post("/api/v1/tenants/clinic/retire").json() == retired.json()  # idempotent

    assert api.get("/api/v1/tenants").json() == []
    listed = api.get("/api/v1/tenants", params={"include_retired": "true"}).json()
    assert [t["id"] for t in listed] == ["clinic"]
    assert api.get("/api/v1/tenants/clinic").json()["status"] == "retired"

    problem(api.patch("/api/v1/tenants/clinic", json={"tier": "basic"}), 409, "storage.tenant_retired")

    audit = api.get("/api/v1/tenants/clinic/audit").json()
    assert [e["action"] for e in audit] == ["tenant.retire", "tenant.update", "tenant.create"]
    assert {e["actor"] for e in audit} == {admin_token.actor}
    assert audit[1]["details"]["changed"] == ["contacts", "tier"]
    assert db.tenants.get(TenantId("clinic")) is not None


def test_duplicate_id_is_409(api: TestClient) -> None:
    assert api.post("/api/v1/tenants", json=CLINIC).status_code == 201
    body = problem(api.post("/api/v1/tenants", json=CLINIC), 409, "storage.already_exists")
    assert "clinic" in body["detail"]


def test_invalid_bodies_are_422_with_errors(api: TestClient) -> None:
    cases = [
        {**CLINIC, "id": "Bad Id"},
        {**CLINIC, "id": "../etc"},
        {**CLINIC, "vertical": "retail"},
        {**CLINIC, "name": ""},
        {**CLINIC, "unexpected": 1},
        {**CLINIC, "contacts": [{"name": "x", "email": "nope", "role": "r", "escalation_order": 1}]},
        {**CLINIC, "contacts": [{"name": "x", "email": "a@b", "role": "r", "escalation_order": 0}]},
        {"id": "clinic"},
    ]
    for case in cases:
        body = problem(api.post("/api/v1/tenants", json=case), 422, "api.invalid_request")
        assert body["errors"], case
        assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])
    assert api.get("/api/v1/tenants").json() == []


def test_whitespace_name_is_refused_by_storage_as_422(api: TestClient) -> None:
    body = problem(api.post("/api/v1/tenants", json={**CLINIC, "name": "   "}), 422, "api.invalid_value")
    assert "name" in body["detail"]


def test_unknown_and_invalid_tenant_ids_are_404(api: TestClient, tenant_clinic: TenantId) -> None:
    for path in ("/api/v1/tenants/nobody", "/api/v1/tenants/NOT-VALID", "/api/v1/tenants/%2e%2e"):
        problem(api.get(path), 404, "storage.not_found")
    problem(api.patch("/api/v1/tenants/nobody", json={"tier": "x"}), 404, "storage.not_found")
    problem(api.post("/api/v1/tenants/nobody/retire"), 404, "storage.not_found")
    problem(api.get("/api/v1/tenants/nobody/audit"), 404, "storage.not_found")


def test_empty_patch_changes_nothing_and_audits_nothing(api: TestClient, tenant_clinic: TenantId) -> None:
    before = api.get("/api/v1/tenants/clinic").json()
    assert api.patch("/api/v1/tenants/clinic", json={}).json() == before
    assert [e["action"] for e in api.get("/api/v1/tenants/clinic/audit").json()] == ["tenant.create"]


def test_audit_limit_and_action_filter(api: TestClient, tenant_clinic: TenantId) -> None:
    for tier in ("a", "b", "c"):
        api.patch("/api/v1/tenants/clinic", json={"tier": tier})
    assert len(api.get("/api/v1/tenants/clinic/audit", params={"limit": 2}).json()) == 2
    updates = api.get("/api/v1/tenants/clinic/audit", params={"action": "tenant.update"}).json()
    assert [e["details"]["tier"] for e in updates] == ["c", "b", "a"]
    problem(api.get("/api/v1/tenants/clinic/audit", params={"limit": 0}), 422, "api.invalid_request")
