"""External dynamic lists over HTTP: what firewalls poll (basic auth or ?token=, ETag, tenant isolation)
and the operator routes that manage entries and EDL tokens."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from tests.api.conftest import AdminToken, problem
from watchfloor.api import create_api_app
from watchfloor.api import edl as edl_api
from watchfloor.api.auth import AdminGuard
from watchfloor.api.context import ApiContext
from watchfloor.api.edl import build_edl_router
from watchfloor.api.problems import problem_route_class
from watchfloor.core.types import TenantId
from watchfloor.storage import Database

ACTOR = "cli:setup"
REALM = 'Basic realm="watchfloor-edl", charset="UTF-8"'


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def db(tmp_path: Path, migrated_db: Path, clock: MovableClock) -> Iterator[Database]:
    """The API world's database, with a clock the tests move (expiry)."""
    path = tmp_path / "wf.db"
    path.write_bytes(migrated_db.read_bytes())
    database = Database.open(f"sqlite:///{path}", clock=clock)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def app_client(db: Database, archive_root: Path, admin_token: AdminToken) -> TestClient:
    """The admin API (with the EDL operator routes, added here until router.py lists the module) and the
    firewall-facing EDL router, as the service mounts them. No operator token on requests by default."""
    app = create_api_app(db, archive_root=archive_root, admin_token_sha256=admin_token.sha256)
    if not any(getattr(r, "path", "") == "/api/v1/tenants/{tenant}/edl" for r in app.routes):
        router = APIRouter(prefix="/api/v1", route_class=problem_route_class(AdminGuard(admin_token.sha256)))
        edl_api.routes(router, ApiContext(db=db, archive_root=archive_root))
        app.include_router(router)
    app.include_router(build_edl_router(db))
    return TestClient(app)


@pytest.fixture
def operator(app_client: TestClient, admin_token: AdminToken) -> TestClient:
    app_client.headers.update(admin_token.headers)
    return app_client


@pytest.fixture
def firewall(db: Database) -> TestClient:
    """A poller: only the firewall-facing router, no operator token anywhere."""
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(build_edl_router(db))
    return TestClient(app)


@pytest.fixture
def clinic_edl_token(db: Database, tenant_clinic: TenantId) -> str:
    return db.edl.create_token(tenant_clinic, description="PA-440", actor=ACTOR).plaintext


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def block(db: Database, tenant: TenantId, kind: str, value: str, **extra: object) -> None:
    db.edl.add(tenant, kind=kind, value=value, reason="test", actor=ACTOR, **extra)  # type: ignore[arg-type]


# -- what firewalls poll ---------------------------------------------------------------------------
def test_basic_auth_serves_the_plain_text_list(
    firewall: TestClient, db: Database, tenant_clinic: TenantId, clinic_edl_token: str
) -> None:
    block(db, tenant_clinic, "ip", "203.0.113.9")
    block(db, tenant_clinic, "ip", "198.51.100.0/24")
    block(db, tenant_clinic, "domain", "evil.example")
    response = firewall.get("/edl/clinic/ip.txt", headers=basic("clinic", clinic_edl_token))
    assert response.status_code == 200
    assert response.text == "198.51.100.0/24\n203.0.113.9\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["etag"].startswith('"')
    domains = firewall.get("/edl/clinic/domain.txt", headers=basic("clinic", clinic_edl_token))
    assert domains.text == "evil.example\n"
    assert firewall.get("/edl/clinic/url.txt", headers=basic("clinic", clinic_edl_token)).text == ""


def test_query_token_for_pollers_without_basic_auth(
    firewall: TestClient, db: Database, tenant_clinic: TenantId, clinic_edl_token: str
) -> None:
    block(db, tenant_clinic, "url", "https://evil.example/login.php")
    response = firewall.get("/edl/clinic/url.txt", params={"token": clinic_edl_token})
    assert (response.status_code, response.text) == (200, "evil.example/login.php\n")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer something"},
    ],
)
def test_missing_or_malformed_credentials_are_401_with_a_basic_challenge(
    firewall: TestClient, tenant_clinic: TenantId, headers: dict[str, str]
) -> None:
    response = firewall.get("/edl/clinic/ip.txt", headers=headers)
    problem(response, 401, "api.unauthorized")
    assert response.headers["www-authenticate"] == REALM


def test_wrong_credentials_are_401(
    firewall: TestClient, db: Database, tenant_clinic: TenantId, clinic_edl_token: str
) -> None:
    wrong_secret = clinic_edl_token[:-4] + ("AAAA" if not clinic_edl_token.endswith("AAAA") else "BBBB")
    intake = db.tokens.create(tenant_clinic, description="relay", actor=ACTOR).plaintext
    for headers in (
        basic("clinic", wrong_secret),
        basic("lawfirm", clinic_edl_token),  # the user name must be the tenant in the path
        basic("clinic", intake),  # intake tokens never read lists
        basic("clinic", ""),
    ):
        response = firewall.get("/edl/clinic/ip.txt", headers=headers)
        problem(response, 401, "api.unauthorized")
        assert response.headers["www-authenticate"] == REALM
    problem(firewall.get("/edl/clinic/ip.txt", params={"token": wrong_secret}), 401)
    # Basic auth is what counts when both are sent.
    problem(
        firewall.get("/edl/clinic/ip.txt", params={"token": clinic_edl_token}, headers=basic("clinic", "x")),
        401,
    )


def test_tenant_isolation(
    firewall: TestClient,
    db: Database,
    tenant_clinic: TenantId,
    tenant_lawfirm: TenantId,
    clinic_edl_token: str,
) -> None:
    block(db, tenant_lawfirm, "ip", "192.0.2.77")
    block(db, tenant_clinic, "ip", "203.0.113.9")
    for request in (
        {"headers": basic("lawfirm", clinic_edl_token)},
        {"params": {"token": clinic_edl_token}},
    ):
        response = firewall.get("/edl/lawfirm/ip.txt", **request)  # type: ignore[arg-type]
        problem(response, 401, "api.unauthorized")
        assert "192.0.2.77" not in response.text
    # Unknown and invalid tenants look exactly like a wrong token.
    unknown = firewall.get("/edl/nobody/ip.txt", params={"token": clinic_edl_token})
    invalid = firewall.get("/edl/NO%20BODY/ip.txt", params={"token": clinic_edl_token})
    assert unknown.status_code == invalid.status_code == 401
    assert firewall.get("/edl/clinic/ip.txt", params={"token": clinic_edl_token}).text == "203.0.113.9\n"


def test_unknown_kind_is_404_once_authenticated(
    firewall: TestClient, tenant_clinic: TenantId, clinic_edl_token: str
) -> None:
    problem(
        firewall.get("/edl/clinic/hash.txt", params={"token": clinic_edl_token}), 404, "storage.not_found"
    )
    problem(firewall.get("/edl/clinic/hash.txt"), 401)
    assert firewall.get("/edl/clinic/ip", params={"token": clinic_edl_token}).status_code == 404


def test_etag_and_if_none_match(
    firewall: TestClient, db: Database, tenant_clinic: TenantId, clinic_edl_token: str
) -> None:
    auth = basic("clinic", clinic_edl_token)
    block(db, tenant_clinic, "ip", "203.0.113.9")
    first = firewall.get("/edl/clinic/ip.txt", headers=auth)
    tag = first.headers["etag"]
    unchanged = firewall.get("/edl/clinic/ip.txt", headers={**auth, "If-None-Match": tag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == tag
    assert unchanged.headers["cache-control"] == "no-store"
    assert (
        firewall.get("/edl/clinic/ip.txt", headers={**auth, "If-None-Match": f'"x", W/{tag}'}).status_code
        == 304
    )
    block(db, tenant_clinic, "ip", "203.0.113.10")
    changed = firewall.get("/edl/clinic/ip.txt", headers={**auth, "If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag
    assert changed.text == "203.0.113.10\n203.0.113.9\n"
    # A 304 needs the token too.
    problem(firewall.get("/edl/clinic/ip.txt", headers={"If-None-Match": tag}), 401)


def test_expired_entries_are_not_served(
    firewall: TestClient, db: Database, tenant_clinic: TenantId, clinic_edl_token: str, clock: MovableClock
) -> None:
    block(db, tenant_clinic, "domain", "short.example", expires_at=clock.now + timedelta(minutes=10))
    block(db, tenant_clinic, "domain", "long.example")
    auth = basic("clinic", clinic_edl_token)
    assert firewall.get("/edl/clinic/domain.txt", headers=auth).text == "long.example\nshort.example\n"
    clock.now += timedelta(minutes=10)
    assert firewall.get("/edl/clinic/domain.txt", headers=auth).text == "long.example\n"


def test_revoked_token_and_retired_tenant_stop_polling(
    firewall: TestClient, db: Database, tenant_clinic: TenantId
) -> None:
    created = db.edl.create_token(tenant_clinic, description="fw", actor=ACTOR)
    assert firewall.get("/edl/clinic/ip.txt", params={"token": created.plaintext}).status_code == 200
    db.edl.revoke_token(tenant_clinic, created.token.id, actor=ACTOR)
    problem(firewall.get("/edl/clinic/ip.txt", params={"token": created.plaintext}), 401)
    other = db.edl.create_token(tenant_clinic, description="fw2", actor=ACTOR)
    db.tenants.retire(tenant_clinic, actor=ACTOR)
    problem(firewall.get("/edl/clinic/ip.txt", params={"token": other.plaintext}), 401)


def test_the_firewall_path_ignores_the_operator_token(
    firewall: TestClient, tenant_clinic: TenantId, admin_token: AdminToken
) -> None:
    problem(firewall.get("/edl/clinic/ip.txt", headers=admin_token.headers), 401)


# -- operator routes -------------------------------------------------------------------------------
def test_operator_adds_lists_and_removes_entries(
    operator: TestClient, firewall: TestClient, tenant_clinic: TenantId, admin_token: AdminToken
) -> None:
    added = operator.post(
        "/api/v1/tenants/clinic/edl/ip", json={"value": "2001:DB8::7", "reason": "C2", "source_ref": "inc-3"}
    )
    assert added.status_code == 200, added.text
    assert added.json()["outcome"] == "added"
    assert added.json()["entry"]["value"] == "2001:db8::7"
    assert added.json()["entry"]["added_by"] == admin_token.actor
    again = operator.post("/api/v1/tenants/clinic/edl/ip", json={"value": "2001:db8::7", "reason": "C2"})
    assert again.json()["outcome"] == "unchanged"
    timed = operator.post(
        "/api/v1/tenants/clinic/edl/url",
        json={"value": "evil.example/x?y=1", "reason": "kit", "ttl_minutes": 60},
    )
    assert timed.json()["entry"]["expires_at"] is not None

    listed = operator.get("/api/v1/tenants/clinic/edl").json()
    assert [(e["list_kind"], e["value"]) for e in listed] == [
        ("ip", "2001:db8::7"),
        ("url", "evil.example/x?y=1"),
    ]
    assert [
        e["value"] for e in operator.get("/api/v1/tenants/clinic/edl", params={"kind": "url"}).json()
    ] == ["evil.example/x?y=1"]

    gone = operator.delete("/api/v1/tenants/clinic/edl/url", params={"value": "https://EVIL.example/x?y=1"})
    assert gone.status_code == 204
    problem(operator.delete("/api/v1/tenants/clinic/edl/url", params={"value": "evil.example/x?y=1"}), 404)
    actions = [e["action"] for e in operator.get("/api/v1/tenants/clinic/audit").json()]
    assert actions[:3] == ["edl.remove", "edl.add", "edl.add"]


def test_bad_values_are_422_naming_the_value(operator: TestClient, tenant_clinic: TenantId) -> None:
    body = problem(
        operator.post("/api/v1/tenants/clinic/edl/ip", json={"value": "203.0.113.999", "reason": "x"}),
        422,
        "api.invalid_value",
    )
    assert "'203.0.113.999'" in body["detail"]
    body = problem(
        operator.post(
            "/api/v1/tenants/clinic/edl/domain", json={"value": "evil.example\nother.example", "reason": "x"}
        ),
        422,
    )
    assert "evil.example\\nother.example" in body["detail"]
    problem(operator.post("/api/v1/tenants/clinic/edl/hash", json={"value": "x", "reason": "x"}), 422)
    problem(
        operator.post(
            "/api/v1/tenants/clinic/edl/ip", json={"value": "10.0.0.1", "reason": "x", "ttl_minutes": 0}
        ),
        422,
    )
    assert operator.get("/api/v1/tenants/clinic/edl").json() == []


def test_operator_routes_need_the_operator_token(
    app_client: TestClient, tenant_clinic: TenantId, clinic_edl_token: str
) -> None:
    problem(app_client.get("/api/v1/tenants/clinic/edl"), 401)
    problem(
        app_client.get("/api/v1/tenants/clinic/edl", headers={"Authorization": f"Bearer {clinic_edl_token}"}),
        401,
    )
    problem(app_client.post("/api/v1/tenants/clinic/edl-tokens", json={}), 401)


def test_operator_manages_edl_tokens(
    operator: TestClient, firewall: TestClient, tenant_clinic: TenantId, tenant_lawfirm: TenantId
) -> None:
    created = operator.post("/api/v1/tenants/clinic/edl-tokens", json={"description": "PA-440 HQ"})
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    token, plaintext = created.json()["token"], created.json()["plaintext"]
    assert firewall.get("/edl/clinic/ip.txt", headers=basic("clinic", plaintext)).status_code == 200
    listed = operator.get("/api/v1/tenants/clinic/edl-tokens").json()
    assert [t["id"] for t in listed] == [token["id"]]
    assert listed[0]["last_used_at"] is not None
    assert "plaintext" not in listed[0]
    assert "secret_hash" not in listed[0]
    problem(operator.post(f"/api/v1/tenants/lawfirm/edl-tokens/{token['id']}/revoke"), 404)
    revoked = operator.post(f"/api/v1/tenants/clinic/edl-tokens/{token['id']}/revoke")
    assert revoked.json()["revoked"]
    problem(firewall.get("/edl/clinic/ip.txt", headers=basic("clinic", plaintext)), 401)
    problem(operator.get("/api/v1/tenants/nobody/edl-tokens"), 404)
