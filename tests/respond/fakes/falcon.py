"""A stateful fake of the CrowdStrike Falcon API as documented: `POST /oauth2/token` (form client_id,
client_secret), the device query with an FQL `hostname:'...'` filter, device entities v2 and the
devices-actions v2 `contain` / `lift_containment` (202), with the documented envelope
`{"meta": {...}, "resources": [...], "errors": [{"code", "message"}]}`."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CLIENT_ID = "5f3c1a9e0b7d4e2f8a6c4b2d0e9f7a1c"
CLIENT_SECRET = "fAlCoN-secret-DoNotLog-0123456789abcdef"


def falcon_body(resources: list[Any], errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "meta": {"query_time": 0.004, "powered_by": "device-api", "trace_id": str(uuid.uuid4())},
        "resources": resources,
        "errors": errors or [],
    }


def falcon_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(falcon_body([], [{"code": status, "message": message}]), status_code=status)


@dataclass
class Device:
    device_id: str
    hostname: str
    last_seen: str
    status: str = "normal"

    def resource(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "cid": "0123456789abcdef0123456789abcdef",
            "hostname": self.hostname,
            "platform_name": "Windows",
            "os_version": "Windows 11",
            "local_ip": "10.1.2.17",
            "first_seen": "2024-01-10T08:00:00Z",
            "last_seen": self.last_seen,
            "status": self.status,
        }


class FakeFalcon:
    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.tokens: set[str] = set()
        self.denied = False

    def add_device(
        self, hostname: str, *, last_seen: str = "2026-12-04T08:00:00Z", status: str = "normal"
    ) -> Device:
        device = Device(uuid.uuid4().hex, hostname, last_seen, status)
        self.devices[device.device_id] = device
        return device

    def complete(self) -> None:
        """The sensors confirm: pending containment and lifts take effect."""
        for device in self.devices.values():
            device.status = {"containment_pending": "contained", "lift_containment_pending": "normal"}.get(
                device.status, device.status
            )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/oauth2/token", self.token, methods=["POST"]),
                Route("/devices/queries/devices/v1", self.query, methods=["GET"]),
                Route("/devices/entities/devices/v2", self.entities, methods=["GET"]),
                Route("/devices/entities/devices-actions/v2", self.action, methods=["POST"]),
            ]
        )

    async def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return falcon_error(403, "access denied, authorization failed")
        token = secrets.token_urlsafe(32)
        self.tokens.add(token)
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": 1799}, status_code=201
        )

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
            return falcon_error(401, "access denied, invalid bearer token")
        if self.denied:
            return falcon_error(403, "access denied, authorization failed")
        return None

    async def query(self, request: Request) -> Response:
        if (refused := self._auth(request)) is not None:
            return refused
        fql = request.query_params.get("filter", "")
        match = re.fullmatch(r"hostname:'([^']*)'", fql)
        if match is None:
            return falcon_error(400, f"Invalid filter: {fql}")
        ids = [d.device_id for d in self.devices.values() if d.hostname.lower() == match.group(1).lower()]
        body = falcon_body(ids)
        body["meta"]["pagination"] = {"offset": 0, "limit": 100, "total": len(ids)}
        return JSONResponse(body)

    async def entities(self, request: Request) -> Response:
        if (refused := self._auth(request)) is not None:
            return refused
        found = [self.devices[i].resource() for i in request.query_params.getlist("ids") if i in self.devices]
        if not found:
            return JSONResponse(
                falcon_body([], [{"code": 404, "message": "Device not found"}]), status_code=404
            )
        return JSONResponse(falcon_body(found))

    async def action(self, request: Request) -> Response:
        if (refused := self._auth(request)) is not None:
            return refused
        name = request.query_params.get("action_name")
        if name not in {"contain", "lift_containment"}:
            return falcon_error(400, f"Invalid action_name: {name}")
        body = await request.json()
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            return falcon_error(400, "ids is required")
        resources, errors = [], []
        for aid in ids:
            device = self.devices.get(aid)
            if device is None:
                errors.append({"code": 404, "message": f"Device {aid} not found"})
                continue
            device.status = "containment_pending" if name == "contain" else "lift_containment_pending"
            resources.append({"id": aid, "path": ""})
        if errors and not resources:
            return JSONResponse(falcon_body([], errors), status_code=404)
        return JSONResponse(falcon_body(resources, errors), status_code=202)
