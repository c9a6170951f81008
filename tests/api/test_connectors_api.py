"""Connector credentials over the admin API: list (names only), put (204, never echoed), delete, and
that no response body, audit row or log line ever holds a value."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import AdminToken, problem
from watchfloor.api import connectors
from watchfloor.api.auth import AdminGuard
from watchfloor.api.context import ApiContext, bearer_scheme
from watchfloor.api.problems import problem_route_class
from watchfloor.api.router import API_PREFIX
from watchfloor.core.types import TenantId
from watchfloor.respond.registry import ActionRegistry
from watchfloor.respond.secrets import CredentialStore, SecretsKey
from watchfloor.storage import Database

SECRET = "api-s3cr3t-That-Must-Never-Leak"
BASE = f"{API_PREFIX}/tenants"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextWithCredentials(ApiContext):
    """What ApiContext gains when the lead wires the store in (`credentials: CredentialStore | None`)."""

    credentials: CredentialStore | None = None


def make_client(
    db: Database, archive_root: Path, token: AdminToken, store: CredentialStore | None
) -> TestClient:
    ctx = ContextWithCredentials(db=db, archive_root=archive_root, credentials=store)
    router = APIRouter(
        prefix=API_PREFIX,
        route_class=problem_route_class(AdminGuard(token.sha256)),
        dependencies=[Depends(bearer_scheme)],
    )
    connectors.routes(router, ctx)
    app = FastAPI()
    app.include_router(router)
    return TestClient(app, headers=token.headers)


@pytest.fixture(scope="module")
def registry() -> ActionRegistry:
    return ActionRegistry.default(plugins=False)


@pytest.fixture
def key() -> SecretsKey:
    return SecretsKey.generate()


@pytest.fixture
def store(db: Database, key: SecretsKey, registry: ActionRegistry) -> CredentialStore:
    return CredentialStore(db, key, registry=registry)


@pytest.fixture
def client(db: Database, archive_root: Path, admin_token: AdminToken, store: CredentialStore) -> TestClient:
    return make_client(db, archive_root, admin_token, store)


@pytest.fixture
def responses() -> list[Any]:
    return []


def call(client: TestClient, seen: list[Any], method: str, url: str, **kwargs: Any) -> Any:
    response = client.request(method, url, **kwargs)
    seen.append(response)
    return response


def assert_never_leaked(seen: list[Any]) -> None:
    for response in seen:
        assert SECRET not in response.text
        assert SECRET not in str(response.headers)


OKTA = {"org_url": "https://clinic.okta.com", "api_token": SECRET}


def test_put_list_delete_and_nothing_echoed(
    client: TestClient,
    tenant_clinic: TenantId,
    db: Database,
    admin_token: AdminToken,
    responses: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    put = call(client, responses, "PUT", f"{BASE}/clinic/connectors/okta/credentials", json={"values": OKTA})
    assert put.status_code == 204, put.text
    assert put.content == b""
    listed = call(client, responses, "GET", f"{BASE}/clinic/connectors")
    assert listed.status_code == 200
    by_name = {c["connector"]: c for c in listed.json()}
    okta = by_name["okta"]
    assert okta["keys_set"] == ["api_token", "org_url"]
    assert okta["missing_keys"] == []
    assert okta["secret_keys"] == ["api_token"]
    assert "okta.suspend_user" in okta["actions"]
    assert okta["key_id"]
    assert by_name["mde"]["keys_set"] == []
    assert "client_secret" in by_name["mde"]["secret_keys"]
    assert "client_secret" in by_name["mde"]["missing_keys"]

    entries = db.audit.list(tenant_clinic, action="response.credentials_put")
    assert len(entries) == 1
    assert entries[0].actor == admin_token.actor
    assert SECRET not in repr(entries[0].details)

    gone = call(client, responses, "DELETE", f"{BASE}/clinic/connectors/okta/credentials")
    assert gone.status_code == 204
    again = call(client, responses, "DELETE", f"{BASE}/clinic/connectors/okta/credentials")
    problem(again, 404)
    after = call(client, responses, "GET", f"{BASE}/clinic/connectors").json()
    assert {c["connector"]: c for c in after}["okta"]["keys_set"] == []
    assert db.audit.list(tenant_clinic, action="response.credentials_delete")
    assert_never_leaked(responses)
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"values": {"api_tokn": SECRET}}, 422, "respond.credentials_invalid"),
        ({"values": {"api_token": [SECRET]}}, 422, "respond.credentials_invalid"),
        ({"values": {"api_token": {"nested": SECRET}}}, 422, "respond.credentials_invalid"),
        ({"values": {SECRET: 5}}, 422, "respond.credentials_invalid"),
        ({"values": {f"{SECRET}!": "x"}}, 422, "respond.credentials_invalid"),
        ({"values": {"api_token": ""}}, 422, "respond.credentials_invalid"),
        ({"values": {"api_token": SECRET * 1000}}, 422, "respond.credentials_invalid"),
        ({"values": {"api_token": SECRET}, "extra": SECRET}, 422, "respond.credentials_invalid"),
        ({"values": {"api_token": "x"}, SECRET: "x"}, 422, "respond.credentials_invalid"),
        ({"values": {}}, 422, "api.invalid_request"),
        ({"values": SECRET}, 422, "api.invalid_request"),
        ([SECRET], 422, "api.invalid_request"),
    ],
)
def test_refused_bodies_do_not_echo_values(
    client: TestClient,
    tenant_clinic: TenantId,
    responses: list[Any],
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = call(client, responses, "PUT", f"{BASE}/clinic/connectors/okta/credentials", json=body)
    problem(response, status, code)
    assert_never_leaked(responses)


def test_malformed_json_is_not_echoed(
    client: TestClient, tenant_clinic: TenantId, responses: list[Any]
) -> None:
    raw = '{"values": {"api_token": "' + SECRET + '"'  # cut off
    response = call(
        client,
        responses,
        "PUT",
        f"{BASE}/clinic/connectors/okta/credentials",
        content=raw,
        headers={"content-type": "application/json"},
    )
    problem(response, 422)
    assert_never_leaked(responses)


def test_unknown_connector_and_unknown_tenant_are_404(
    client: TestClient, tenant_clinic: TenantId, responses: list[Any]
) -> None:
    body = {"values": {"api_token": SECRET}}
    problem(
        call(client, responses, "PUT", f"{BASE}/clinic/connectors/nosuch/credentials", json=body),
        404,
        "respond.unknown_connector",
    )
    problem(call(client, responses, "PUT", f"{BASE}/nobody/connectors/okta/credentials", json=body), 404)
    problem(call(client, responses, "GET", f"{BASE}/nobody/connectors"), 404)
    assert_never_leaked(responses)


def test_another_tenant_sees_nothing_of_the_first(
    client: TestClient, two_tenants: tuple[TenantId, TenantId], responses: list[Any]
) -> None:
    call(client, responses, "PUT", f"{BASE}/clinic/connectors/okta/credentials", json={"values": OKTA})
    law = call(client, responses, "GET", f"{BASE}/lawfirm/connectors").json()
    assert all(c["keys_set"] == [] for c in law)
    problem(call(client, responses, "DELETE", f"{BASE}/lawfirm/connectors/okta/credentials"), 404)
    assert_never_leaked(responses)


def test_without_a_credential_store_the_routes_answer_503(
    db: Database, archive_root: Path, admin_token: AdminToken, tenant_clinic: TenantId
) -> None:
    plain = ApiContext(db=db, archive_root=archive_root)  # today's context: no `credentials` attribute
    router = APIRouter(prefix=API_PREFIX, route_class=problem_route_class(AdminGuard(admin_token.sha256)))
    connectors.routes(router, plain)
    app = FastAPI()
    app.include_router(router)
    client = TestClient(app, headers=admin_token.headers)
    body = problem(client.get(f"{BASE}/clinic/connectors"), 503, "api.credentials_disabled")
    assert "WATCHFLOOR_SECRETS_KEY" in body["detail"]
    response = client.put(f"{BASE}/clinic/connectors/okta/credentials", json={"values": OKTA})
    problem(response, 503, "api.credentials_disabled")
    assert SECRET not in response.text
    disabled = make_client(db, archive_root, admin_token, None)
    problem(disabled.get(f"{BASE}/clinic/connectors"), 503, "api.credentials_disabled")


def test_a_wrong_token_is_401_before_the_body_is_read(
    db: Database, archive_root: Path, admin_token: AdminToken, store: CredentialStore, tenant_clinic: TenantId
) -> None:
    client = make_client(db, archive_root, admin_token, store)
    response = client.put(
        f"{BASE}/clinic/connectors/okta/credentials",
        json={"values": OKTA},
        headers={"Authorization": "Bearer wrong"},
    )
    problem(response, 401)
    assert SECRET not in response.text
    assert db.response.list_credentials(tenant_clinic) == []
