"""The error format: RFC 9457 problem+json everywhere, stable codes, nothing secret echoed back."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import problem
from watchfloor.api import ApiProblem
from watchfloor.api.problems import problem_for
from watchfloor.archive import SearchQueryError
from watchfloor.core.errors import WatchfloorError
from watchfloor.core.types import TenantId
from watchfloor.storage import AlreadyExistsError, NotFoundError, StorageError, TenantRetiredError


def test_mapping_of_errors() -> None:
    assert problem_for(NotFoundError("x")).status == 404
    assert problem_for(AlreadyExistsError("x")).status == 409
    assert problem_for(TenantRetiredError("x")).status == 409
    assert problem_for(ValueError("bad vertical")).status == 422
    query = problem_for(SearchQueryError("unexpected end", query="a=(", offset=2))
    assert (query.status, query.extra) == (400, {"offset": 2, "column": 3})
    hidden = problem_for(StorageError("postgresql://user:pw@db failed"))
    assert hidden.status == 500
    assert "pw" not in hidden.detail
    assert hidden.code == "storage.error"
    assert problem_for(WatchfloorError("x", code="bus.full")).code == "bus.full"
    assert problem_for(RuntimeError("frame locals")).detail == "unexpected error; see the server log"


def test_problem_response_members() -> None:
    response = ApiProblem(409, "taken", code="storage.already_exists", extra={"ids": [1]}).response("/p")
    assert response.media_type == "application/problem+json"
    assert response.status_code == 409
    assert bytes(response.body).startswith(b'{"type":"urn:watchfloor:problem:storage.already_exists"')


def test_validation_errors_do_not_echo_the_input(api: TestClient, tenant_clinic: TenantId) -> None:
    secret = "wf_abcdefgh_" + "S" * 43
    response = api.post("/api/v1/tenants/clinic/tokens", json={"description": 12, "token": secret})
    body = problem(response, 422, "api.invalid_request")
    assert secret not in response.text
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "description"), ("body", "token")}
    assert body["instance"] == "/api/v1/tenants/clinic/tokens"


def test_malformed_json_body_is_a_problem(api: TestClient) -> None:
    response = api.post("/api/v1/tenants", content=b"{nope", headers={"Content-Type": "application/json"})
    problem(response, 422, "api.invalid_request")


def test_every_documented_problem_has_a_code(api: TestClient, tenant_clinic: TenantId) -> None:
    seen = {
        problem(api.get("/api/v1/tenants/nobody"), 404)["code"],
        problem(
            api.post("/api/v1/tenants", json={"id": "clinic", "name": "n", "vertical": "other", "tier": "t"}),
            409,
        )["code"],
        problem(api.get("/api/v1/tenants/clinic/detections", params={"limit": -1}), 422)["code"],
    }
    assert seen == {"storage.not_found", "storage.already_exists", "api.invalid_request"}
