"""End to end over real HTTP: the router mounted in an application next to other routes, served by uvicorn
on loopback, driven with httpx; and one smoke run on PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import AdminToken, ReplayRecorder
from tests.pg import PgServer, pg_server_or_skip
from watchfloor.api import build_api_router, create_api_app
from watchfloor.core.types import TenantId
from watchfloor.storage import Database

Serve = Callable[[FastAPI], str]


class _Server(uvicorn.Server):
    """Checks `should_exit` every 0.01 s instead of 0.1 s, so teardown is quick."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)


@pytest.fixture
def serve() -> Iterator[Serve]:
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def _serve(app: FastAPI) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)
        running.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield _serve
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


def _service_like_app(db: Database, archive_root: Path, sha256: str, replay: ReplayRecorder) -> FastAPI:
    """What server/service.py does: its own routes, plus the admin router included."""
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(
        build_api_router(db, archive_root=archive_root, admin_token_sha256=sha256, replay=replay)
    )
    return app


def test_operator_session_over_http(
    serve: Serve, db: Database, archive: Path, admin_token: AdminToken, replay: ReplayRecorder
) -> None:
    base = serve(_service_like_app(db, archive, admin_token.sha256, replay))
    headers = {**admin_token.headers, "X-Watchfloor-Actor": "dana"}
    with (
        httpx.Client(base_url=base, headers=headers, timeout=10) as client,
        httpx.Client(base_url=base) as anon,
    ):
        # The guard covers /api/v1 only.
        assert anon.get("/healthz").json() == {"status": "ok"}
        unauthorized = anon.get("/api/v1/tenants")
        assert unauthorized.status_code == 401
        assert unauthorized.headers["content-type"] == "application/problem+json"

        created = client.post(
            "/api/v1/tenants",
            json={"id": "bakery", "name": "Corner Bakery", "vertical": "other", "tier": "basic"},
        )
        assert created.status_code == 201
        assert [t["id"] for t in client.get("/api/v1/tenants").json()] == ["bakery", "clinic", "lawfirm"]

        token = client.post("/api/v1/tenants/bakery/tokens", json={"description": "pos"}).json()
        assert db.tokens.resolve(token["plaintext"]) == "bakery"
        assert token["plaintext"] not in client.get("/api/v1/tenants/bakery/tokens").text

        put = client.put("/api/v1/tenants/bakery/assets/host/pos01", json={"criticality": "high"})
        assert put.status_code == 200

        dead = db.dead_letters.add(
            TenantId("bakery"),
            source="pos.ndjson",
            code="input.invalid_json",
            message="not JSON",
            raw=b"\x01garbage",
            received_at=datetime.now(tz=UTC),
        )
        assert client.get(f"/api/v1/tenants/bakery/dead-letters/{dead}/raw").content == b"\x01garbage"
        replayed = client.post("/api/v1/tenants/bakery/dead-letters/replay", json={"ids": [dead]})
        assert replayed.status_code == 202
        assert replayed.json()["marked"] == 1
        assert replay.calls == [("bakery", [dead])]

        found = client.get(
            "/api/v1/tenants/clinic/events/search",
            params={"since": "2026-11-20", "until": "2026-11-21", "where": "EventID=4625"},
        ).json()
        assert [r["record_id"] for r in found["rows"]] == ["1", "2"]
        bad = client.get("/api/v1/tenants/clinic/events/search", params={"where": "EventID="})
        assert bad.status_code == 400
        assert bad.json()["code"] == "search.invalid_query"

        revoked = client.post(f"/api/v1/tenants/bakery/tokens/{token['token']['id']}/revoke")
        assert revoked.json()["revoked"] is True
        assert db.tokens.resolve(token["plaintext"]) is None
        assert client.post("/api/v1/tenants/bakery/retire").json()["status"] == "retired"

        audit = client.get("/api/v1/tenants/bakery/audit").json()
        assert [e["action"] for e in audit] == [
            "tenant.retire",
            "token.revoke",
            "dead_letter.replay",
            "asset.create",
            "token.create",
            "tenant.create",
        ]
        assert {e["actor"] for e in audit} == {f"{admin_token.actor}/dana"}


def test_not_configured_over_http(
    serve: Serve, db: Database, archive_root: Path, admin_token: AdminToken
) -> None:
    base = serve(create_api_app(db, archive_root=archive_root, admin_token_sha256=None))
    with httpx.Client(base_url=base, headers=admin_token.headers) as client:
        response = client.get("/api/v1/tenants")
    assert response.status_code == 503
    assert "WATCHFLOOR_ADMIN_TOKEN_SHA256" in response.json()["detail"]


@pytest.fixture
def pg_db() -> Iterator[Database]:
    server: PgServer = pg_server_or_skip()
    try:
        name = server.create_database()
        database = Database.open(server.url(name))
        try:
            yield database
        finally:
            database.close()
            server.drop_database(name)
    finally:
        server.stop()


def test_smoke_on_postgresql(pg_db: Database, tmp_path: Path, admin_token: AdminToken) -> None:
    app = create_api_app(pg_db, archive_root=tmp_path, admin_token_sha256=admin_token.sha256)
    api = TestClient(app, headers=admin_token.headers)
    body = {"id": "clinic", "name": "Clinic", "vertical": "healthcare", "tier": "standard"}
    assert api.post("/api/v1/tenants", json=body).status_code == 201
    assert api.post("/api/v1/tenants", json=body).status_code == 409
    token = api.post("/api/v1/tenants/clinic/tokens", json={}).json()
    assert pg_db.tokens.resolve(token["plaintext"]) == "clinic"
    assert api.put("/api/v1/tenants/clinic/assets/user/sam", json={"criticality": "high"}).status_code == 200
    assert api.post(f"/api/v1/tenants/clinic/tokens/{token['token']['id']}/revoke").json()["revoked"]
    actions = [e["action"] for e in api.get("/api/v1/tenants/clinic/audit").json()]
    assert actions == ["token.revoke", "asset.create", "token.create", "tenant.create"]
    assert api.get("/api/v1/tenants/lawfirm").status_code == 404
