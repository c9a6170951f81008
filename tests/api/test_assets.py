"""The asset inventory over the API: upsert by (kind, name), list, filters, delete."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import problem
from watchfloor.core.types import TenantId


def test_put_list_get_delete(api: TestClient, tenant_clinic: TenantId) -> None:
    url = "/api/v1/tenants/clinic/assets/host/ws01.clinic.local"
    put = api.put(url, json={"criticality": "high", "attributes": {"os": "windows 11", "tags": ["ehr"]}})
    assert put.status_code == 200, put.text
    assert put.json()["criticality"] == "high"
    assert put.json()["attributes"] == {"os": "windows 11", "tags": ["ehr"]}
    assert api.put(url, json={"criticality": "high", "attributes": {"os": "windows 11", "tags": ["ehr"]}})
    api.put("/api/v1/tenants/clinic/assets/user/sam", json={"criticality": "critical"})

    listed = api.get("/api/v1/tenants/clinic/assets").json()
    assert [(a["kind"], a["name"]) for a in listed] == [("host", "ws01.clinic.local"), ("user", "sam")]
    only_users = api.get("/api/v1/tenants/clinic/assets", params={"kind": "user"}).json()
    assert [a["name"] for a in only_users] == ["sam"]
    critical = api.get("/api/v1/tenants/clinic/assets", params={"criticality": "critical"}).json()
    assert [a["name"] for a in critical] == ["sam"]
    assert api.get(url).json()["name"] == "ws01.clinic.local"

    changed = api.put(url, json={"criticality": "low"}).json()
    assert changed["criticality"] == "low"
    assert changed["attributes"] == {}

    assert api.delete(url).status_code == 204
    problem(api.get(url), 404, "storage.not_found")
    problem(api.delete(url), 404, "storage.not_found")

    actions = [e["action"] for e in api.get("/api/v1/tenants/clinic/audit").json()]
    # the identical second PUT wrote nothing
    assert actions == ["asset.delete", "asset.update", "asset.create", "asset.create", "tenant.create"]


def test_invalid_asset_requests_are_422(api: TestClient, tenant_clinic: TenantId) -> None:
    problem(api.put("/api/v1/tenants/clinic/assets/host/a", json={"criticality": "huge"}), 422)
    problem(api.put("/api/v1/tenants/clinic/assets/printer/a", json={"criticality": "low"}), 422)
    problem(api.put("/api/v1/tenants/clinic/assets/host/a", json={}), 422)
    problem(api.get("/api/v1/tenants/clinic/assets", params={"kind": "printer"}), 422)
    assert api.get("/api/v1/tenants/clinic/assets").json() == []


def test_retired_tenant_assets_are_read_only(api: TestClient, tenant_clinic: TenantId) -> None:
    url = "/api/v1/tenants/clinic/assets/host/ws01"
    api.put(url, json={"criticality": "medium"})
    api.post("/api/v1/tenants/clinic/retire")
    assert len(api.get("/api/v1/tenants/clinic/assets").json()) == 1
    problem(api.put(url, json={"criticality": "high"}), 409, "storage.tenant_retired")
    problem(api.delete(url), 409, "storage.tenant_retired")


def test_unknown_tenant_assets_are_404(api: TestClient) -> None:
    problem(api.get("/api/v1/tenants/nobody/assets"), 404, "storage.not_found")
    problem(api.put("/api/v1/tenants/nobody/assets/host/a", json={"criticality": "low"}), 404)
