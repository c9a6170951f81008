"""Event search over the API: a small archive written with ArchiveWriter, conditions, errors."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.conftest import problem

URL = "/api/v1/tenants/clinic/events/search"
RANGE = {"since": "2026-11-20T00:00:00Z", "until": "2026-11-21T00:00:00Z"}


def test_search_by_range_and_condition(api: TestClient, archive: Path) -> None:
    body = api.get(URL, params=RANGE).json()
    assert body["tenant"] == "clinic"
    assert body["count"] == 3
    assert [r["record_id"] for r in body["rows"]] == ["1", "2", "3"]
    assert all(r["tenant"] == "clinic" for r in body["rows"])
    assert "raw" not in body["rows"][0]
    assert body["rows"][0]["fields"]["TargetUserName"] == "Administrator"

    failed = api.get(URL, params={**RANGE, "where": "EventID=4625 AND TargetUserName!=admin*"}).json()
    assert [r["record_id"] for r in failed["rows"]] == ["2"]
    assert failed["where"] == "EventID=4625 AND TargetUserName!=admin*"
    cidr = api.get(URL, params={**RANGE, "where": "IpAddress in 10.0.0.0/8"}).json()
    assert [r["record_id"] for r in cidr["rows"]] == ["1", "3"]
    limited = api.get(URL, params={**RANGE, "limit": 1}).json()
    assert limited["count"] == 1
    assert limited["limit"] == 1


def test_search_outside_the_range_is_empty(api: TestClient, archive: Path) -> None:
    # Default range: the last 24 hours, long after the archived events.
    body = api.get(URL).json()
    assert body["rows"] == []
    assert body["count"] == 0


def test_invalid_condition_is_400_with_the_position(api: TestClient, archive: Path) -> None:
    body = problem(api.get(URL, params={**RANGE, "where": "EventID=4625 AND (User=x"}), 400)
    assert body["code"] == "search.invalid_query"
    assert isinstance(body["offset"], int)
    assert body["column"] == body["offset"] + 1
    assert f"column {body['column']}" in body["detail"]


def test_bad_ranges_are_400_or_422(api: TestClient, archive: Path) -> None:
    reversed_range = {"since": RANGE["until"], "until": RANGE["since"]}
    problem(api.get(URL, params=reversed_range), 400, "archive.invalid_range")
    problem(api.get(URL, params={"since": "last week"}), 422, "api.invalid_request")


def test_unknown_tenant_is_404_even_with_an_archive(api: TestClient, archive: Path) -> None:
    problem(api.get("/api/v1/tenants/bakery/events/search", params=RANGE), 404, "storage.not_found")
