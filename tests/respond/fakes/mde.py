"""A stateful fake of the Microsoft Defender for Endpoint API (`/api/...`) as documented: machines
(list with `$filter` on computerDnsName, get by id), isolate/unisolate (201 MachineAction, 400
ActiveRequestAlreadyExists while one is pending), machine actions (list by machineId, get), with the
documented error bodies `{"error": {"code", "message", "target"}}`. Tokens come from `FakeEntra`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.respond.fakes.msgraph import FakeEntra

MDE_SCOPE = "https://api.securitycenter.microsoft.com/.default"
APP_ID = "0d3b8f0e-2a1c-4b7d-8e6f-5a4c3b2d1e0f"


def mde_error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}}


def mde_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(mde_error_body(code, message), status_code=status)


def _utc() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Machine:
    id: str
    computer_dns_name: str
    last_seen: str
    os_platform: str = "Windows11"
    isolated: bool = False

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "computerDnsName": self.computer_dns_name,
            "firstSeen": "2024-01-10T08:00:00Z",
            "lastSeen": self.last_seen,
            "osPlatform": self.os_platform,
            "version": "22H2",
            "lastIpAddress": "10.1.2.17",
            "lastExternalIpAddress": "203.0.113.7",
            "healthStatus": "Active",
            "onboardingStatus": "Onboarded",
            "riskScore": "Medium",
            "exposureLevel": "Medium",
            "isAadJoined": True,
            "aadDeviceId": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.id)),
            "machineTags": [],
        }


class FakeMde:
    """`list_lag`: the machineactions list does not show the newest action yet (the API is eventually
    consistent), so a client that checks first can still meet ActiveRequestAlreadyExists."""

    def __init__(self, entra: FakeEntra | None = None) -> None:
        self.entra = entra or FakeEntra(scopes=(MDE_SCOPE,))
        self.machines: dict[str, Machine] = {}
        self.actions: list[dict[str, Any]] = []
        self.list_lag = False
        self.denied = False

    def add_machine(self, name: str, *, last_seen: str = "2026-12-01T10:00:00Z") -> Machine:
        machine_id = hashlib.sha1(f"{name}{len(self.machines)}".encode()).hexdigest()
        machine = Machine(id=machine_id, computer_dns_name=name, last_seen=last_seen)
        self.machines[machine_id] = machine
        return machine

    def complete(self, status: str = "Succeeded") -> None:
        """Every pending action finishes with `status`; a succeeded Isolate/Unisolate takes effect."""
        for action in self.actions:
            if action["status"] in {"Pending", "InProgress"}:
                action["status"] = status
                action["lastUpdateDateTimeUtc"] = _utc()
                if status == "Succeeded":
                    self.machines[action["machineId"]].isolated = action["type"] == "Isolate"

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                *self.entra.routes(),
                Route("/api/machines", self.list_machines, methods=["GET"]),
                Route("/api/machines/{id}", self.get_machine, methods=["GET"]),
                Route("/api/machines/{id}/isolate", self.isolate, methods=["POST"]),
                Route("/api/machines/{id}/unisolate", self.unisolate, methods=["POST"]),
                Route("/api/machineactions", self.list_actions, methods=["GET"]),
                Route("/api/machineactions/{id}", self.get_action, methods=["GET"]),
            ]
        )

    # -- helpers --------------------------------------------------------------------------------------

    def _auth(self, request: Request) -> Response | None:
        if isinstance(self.entra.bearer(request, MDE_SCOPE), str):
            return mde_error(401, "Unauthorized", "Unauthorized")
        if self.denied:
            return mde_error(
                403, "Forbidden", "The application does not have the required permission Machine.Isolate"
            )
        return None

    @staticmethod
    def _page(items: list[dict[str, Any]], context: str) -> JSONResponse:
        return JSONResponse({"@odata.context": context, "value": items})

    # -- endpoints ------------------------------------------------------------------------------------

    async def list_machines(self, request: Request) -> Response:
        if (refused := self._auth(request)) is not None:
            return refused
        machines = [m.resource() for m in self.machines.values()]
        query = request.query_params.get("$filter")
        if query:
            if match := re.fullmatch(r"computerDnsName eq '((?:[^']|'')*)'", query):
                name = match.group(1).replace("''", "'").lower()
                machines = [m for m in machines if m["computerDnsName"].lower() == name]
            elif match := re.fullmatch(r"startswith\(computerDnsName,\s*'((?:[^']|'')*)'\)", query):
                prefix = match.group(1).replace("''", "'").lower()
                machines = [m for m in machines if m["computerDnsName"].lower().startswith(prefix)]
            else:
                return mde_error(400, "ODataError", f"Invalid OData URI query: {query}")
        return self._page(machines, "https://api.securitycenter.microsoft.com/api/$metadata#Machines")

    async def get_machine(self, request: Request) -> Response:
        if (refused := self._auth(request)) is not None:
            return refused
        machine = self.machines.get(request.path_params["id"])
        if machine is None:
            return mde_error(404, "ResourceNotFound", f"Machine {request.path_params['id']} was not found")
        return JSONResponse(machine.resource())

    async def isolate(self, request: Request) -> Response:
        return await self._machine_action(request, "Isolate")

    async def unisolate(self, request: Request) -> Response:
        return await self._machine_action(request, "Unisolate")

    async def _machine_action(self, request: Request, kind: str) -> Response:
        if (refused := self._auth(request)) is not None:
            return refused
        machine = self.machines.get(request.path_params["id"])
        if machine is None:
            return mde_error(404, "ResourceNotFound", f"Machine {request.path_params['id']} was not found")
        try:
            body = await request.json()
        except ValueError:
            return mde_error(400, "InvalidRequestBody", "Invalid request body.")
        if not isinstance(body, dict) or not body.get("Comment"):
            return mde_error(400, "MissingRequiredParameter", "Parameter Comment is missing.")
        if kind == "Isolate" and body.get("IsolationType", "Full") not in {"Full", "Selective"}:
            return mde_error(
                400, "InvalidInput", f"Invalid input IsolationType: {body.get('IsolationType')}."
            )
        if any(
            a["machineId"] == machine.id and a["status"] in {"Pending", "InProgress"} for a in self.actions
        ):
            return mde_error(400, "ActiveRequestAlreadyExists", "Action is already in progress")
        now = _utc()
        action = {
            "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#MachineActions/$entity",
            "id": str(uuid.uuid4()),
            "type": kind,
            "scope": body.get("IsolationType", "Full") if kind == "Isolate" else None,
            "requestor": APP_ID,
            "requestorComment": body["Comment"],
            "status": "Pending",
            "machineId": machine.id,
            "computerDnsName": machine.computer_dns_name,
            "creationDateTimeUtc": now,
            "lastUpdateDateTimeUtc": now,
            "relatedFileInfo": None,
        }
        self.actions.append(action)
        return JSONResponse(action, status_code=201)

    async def list_actions(self, request: Request) -> Response:
        if (refused := self._auth(request)) is not None:
            return refused
        actions = self.actions[:-1] if self.list_lag else list(self.actions)
        query = request.query_params.get("$filter")
        if query:
            match = re.fullmatch(r"machineId eq '([0-9a-f]+)'", query)
            if match is None:
                return mde_error(400, "ODataError", f"Invalid OData URI query: {query}")
            actions = [a for a in actions if a["machineId"] == match.group(1)]
        return self._page(actions, "https://api.securitycenter.microsoft.com/api/$metadata#MachineActions")

    async def get_action(self, request: Request) -> Response:
        if (refused := self._auth(request)) is not None:
            return refused
        for action in self.actions:
            if action["id"] == request.path_params["id"]:
                return JSONResponse(action)
        return mde_error(404, "ResourceNotFound", f"Machine action {request.path_params['id']} was not found")
