"""Intake tokens over the API: the plaintext once, never again, resolving, revocation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import problem
from watchfloor.core.types import TenantId
from watchfloor.storage import Database


def test_token_is_shown_once_and_resolves(api: TestClient, db: Database, tenant_clinic: TenantId) -> None:
    response = api.post("/api/v1/tenants/clinic/tokens", json={"description": "fluent-bit on ws01"})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    plaintext = created["plaintext"]
    token_id = created["token"]["id"]
    assert plaintext.startswith(f"wf_{token_id}_")
    assert created["token"]["revoked"] is False
    assert db.tokens.resolve(plaintext) == tenant_clinic

    secret = plaintext.rsplit("_", 1)[1]
    for path in ("/api/v1/tenants/clinic/tokens", "/api/v1/tenants/clinic/audit", "/api/v1/tenants/clinic"):
        text = api.get(path).text
        assert secret not in text
        assert "secret_hash" not in text
    [listed] = api.get("/api/v1/tenants/clinic/tokens").json()
    assert listed["id"] == token_id
    assert listed["description"] == "fluent-bit on ws01"
    assert set(listed) == {
        "id",
        "tenant_id",
        "description",
        "hash_scheme",
        "created_at",
        "revoked_at",
        "last_used_at",
        "revoked",
    }
    assert listed["last_used_at"] is not None  # resolve touched it


def test_revoke_stops_the_token(api: TestClient, db: Database, tenant_clinic: TenantId) -> None:
    created = api.post("/api/v1/tenants/clinic/tokens", json={}).json()
    token_id = created["token"]["id"]
    revoked = api.post(f"/api/v1/tenants/clinic/tokens/{token_id}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is True
    assert db.tokens.resolve(created["plaintext"]) is None
    again = api.post(f"/api/v1/tenants/clinic/tokens/{token_id}/revoke").json()
    assert again["revoked_at"] == revoked.json()["revoked_at"]
    assert api.get("/api/v1/tenants/clinic/tokens", params={"include_revoked": "false"}).json() == []
    actions = [e["action"] for e in api.get("/api/v1/tenants/clinic/audit").json()]
    assert actions == ["token.revoke", "token.create", "tenant.create"]


def test_unknown_token_is_404(api: TestClient, tenant_clinic: TenantId) -> None:
    problem(api.post("/api/v1/tenants/clinic/tokens/zzzzzzzz/revoke"), 404, "storage.not_found")


def test_retired_tenant_gets_no_token_and_old_ones_stop(
    api: TestClient, db: Database, tenant_clinic: TenantId
) -> None:
    plaintext = api.post("/api/v1/tenants/clinic/tokens", json={}).json()["plaintext"]
    api.post("/api/v1/tenants/clinic/retire")
    assert db.tokens.resolve(plaintext) is None
    problem(api.post("/api/v1/tenants/clinic/tokens", json={}), 409, "storage.tenant_retired")


def test_description_shaped_like_a_token_is_refused(api: TestClient, tenant_clinic: TenantId) -> None:
    leaked = "wf_abcdefgh_" + "A" * 43
    response = api.post("/api/v1/tenants/clinic/tokens", json={"description": f"copy of {leaked}"})
    problem(response, 422, "storage.secret_in_audit")
    assert leaked not in response.text
    assert api.get("/api/v1/tenants/clinic/tokens").json() == []
