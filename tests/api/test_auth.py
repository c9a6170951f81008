"""Operator authentication: 503 without a configured token, 401 for a wrong one, the audit actor."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.api.conftest import AdminToken, problem
from watchfloor.api import build_api_router, create_api_app, hash_admin_token, new_admin_token
from watchfloor.core.errors import ConfigError
from watchfloor.core.types import TenantId
from watchfloor.storage import Database


def _routes(db: Database, archive_root: Path) -> list[tuple[str, str]]:
    router = build_api_router(db, archive_root=archive_root, admin_token_sha256=None)
    found: list[tuple[str, str]] = []
    for route in router.routes:
        assert isinstance(route, APIRoute)
        path = route.path.format(
            tenant="clinic",
            kind="host",
            name="ws01",
            token_id="abc",
            dead_letter_id=1,
            incident_id="inc-x",
            alert_id="al-x",
            suppression_id="sup-x",
            connector="msgraph",
            run_id="run-x",
            step_id="isolate",
        )
        found.extend((method, path) for method in sorted(route.methods or ()))
    return found


def test_hash_and_new_token() -> None:
    plaintext, digest = new_admin_token()
    assert plaintext.startswith("wfa_")
    assert len(plaintext) > 40
    assert digest == hashlib.sha256(plaintext.encode()).hexdigest() == hash_admin_token(plaintext)
    assert new_admin_token()[0] != plaintext


@pytest.mark.parametrize("configured", [None, "", "   "])
def test_every_route_answers_503_without_a_configured_token(
    db: Database, archive_root: Path, admin_token: AdminToken, configured: str | None
) -> None:
    client = TestClient(create_api_app(db, archive_root=archive_root, admin_token_sha256=configured))
    routes = _routes(db, archive_root)
    assert len(routes) >= 17
    for method, path in routes:
        # Even with a token that would be right if configured: nothing works until one is.
        response = client.request(method, path, headers=admin_token.headers, json={})
        body = problem(response, 503, "api.admin_token_not_configured")
        assert "WATCHFLOOR_ADMIN_TOKEN_SHA256" in body["detail"]


def test_malformed_configured_hash_refuses_to_build(db: Database, archive_root: Path) -> None:
    with pytest.raises(ConfigError, match="WATCHFLOOR_ADMIN_TOKEN_SHA256"):
        build_api_router(db, archive_root=archive_root, admin_token_sha256="not-a-hash")


def test_upper_case_configured_hash_is_accepted(
    db: Database, archive_root: Path, admin_token: AdminToken
) -> None:
    app = create_api_app(db, archive_root=archive_root, admin_token_sha256=admin_token.sha256.upper())
    assert TestClient(app).get("/api/v1/tenants", headers=admin_token.headers).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        "Basic dXNlcjpwYXNz",
        "Token {token}",
        "Bearer {token}x",
        "Bearer {hash}",
    ],
)
def test_wrong_or_missing_token_is_401(
    db: Database, archive_root: Path, admin_token: AdminToken, authorization: str | None
) -> None:
    client = TestClient(create_api_app(db, archive_root=archive_root, admin_token_sha256=admin_token.sha256))
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(token=admin_token.plaintext, hash=admin_token.sha256)
    response = client.get("/api/v1/tenants", headers=headers)
    body = problem(response, 401, "api.unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert admin_token.plaintext not in response.text
    assert admin_token.sha256 not in response.text
    assert body["instance"] == "/api/v1/tenants"


def test_wrong_token_is_checked_before_the_body(
    db: Database, archive_root: Path, admin_token: AdminToken
) -> None:
    client = TestClient(create_api_app(db, archive_root=archive_root, admin_token_sha256=admin_token.sha256))
    response = client.post(
        "/api/v1/tenants", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    problem(response, 401, "api.unauthorized")


def test_right_token_is_200_and_scheme_is_case_insensitive(api: TestClient, admin_token: AdminToken) -> None:
    assert api.get("/api/v1/tenants").status_code == 200
    lower = {"Authorization": f"bearer {admin_token.plaintext}"}
    assert api.get("/api/v1/tenants", headers=lower).json() == []


def test_actor_is_the_token_hash_prefix(api: TestClient, db: Database, admin_token: AdminToken) -> None:
    body = {"id": "bakery", "name": "Corner Bakery", "vertical": "other", "tier": "basic"}
    assert api.post("/api/v1/tenants", json=body).status_code == 201
    [entry] = db.audit.list(TenantId("bakery"))
    assert entry.actor == admin_token.actor
    assert entry.action == "tenant.create"


def test_actor_header_names_the_person(api: TestClient, db: Database, admin_token: AdminToken) -> None:
    body = {"id": "bakery", "name": "Corner Bakery", "vertical": "other", "tier": "basic"}
    response = api.post(
        "/api/v1/tenants", json=body, headers={"X-Watchfloor-Actor": "dana.ruiz@mssp.example"}
    )
    assert response.status_code == 201
    [entry] = db.audit.list(TenantId("bakery"))
    assert entry.actor == f"{admin_token.actor}/dana.ruiz@mssp.example"


@pytest.mark.parametrize("name", ["", "  ", "a/b", "x" * 65, "eve\u202e".encode(), "-leading-dash"])
def test_invalid_actor_header_is_400(api: TestClient, db: Database, name: str | bytes) -> None:
    body = {"id": "bakery", "name": "Corner Bakery", "vertical": "other", "tier": "basic"}
    response = api.post("/api/v1/tenants", json=body, headers={"X-Watchfloor-Actor": name})
    problem(response, 400, "api.invalid_actor")
    assert db.tenants.get(TenantId("bakery")) is None


def test_openapi_declares_the_bearer_scheme(api: TestClient) -> None:
    schema = api.app.openapi()  # type: ignore[attr-defined]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert "/api/v1/tenants/{tenant}/events/search" in schema["paths"]
