"""A stateful fake of the Okta Users API as documented: SSWS token auth, `GET /api/v1/users/{id or login}`,
the suspend / unsuspend lifecycle operations (200 `{}`; 400 E0000001 from the wrong status) and
`DELETE /api/v1/users/{id}/sessions` (204), with the documented error body
`{"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_TOKEN = "00Okta-API-token-DoNotLog-7f3a9c2e1b"


def okta_error_body(code: str, summary: str, causes: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": "oae" + uuid.uuid4().hex[:20],
        "errorCauses": [{"errorSummary": cause} for cause in causes],
    }


def okta_error(status: int, code: str, summary: str, causes: tuple[str, ...] = ()) -> JSONResponse:
    return JSONResponse(okta_error_body(code, summary, causes), status_code=status)


@dataclass
class OktaUser:
    id: str
    login: str
    status: str = "ACTIVE"
    session_clears: int = 0

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "created": "2023-03-01T09:00:00.000Z",
            "lastLogin": "2026-12-04T07:55:00.000Z",
            "statusChanged": None,
            "profile": {"login": self.login, "email": self.login, "firstName": "Dana", "lastName": "Reyes"},
            "_links": {"self": {"href": f"https://clinic.okta.com/api/v1/users/{self.id}"}},
        }


class FakeOkta:
    def __init__(self) -> None:
        self.users: dict[str, OktaUser] = {}

    def add_user(self, login: str, status: str = "ACTIVE") -> OktaUser:
        user = OktaUser("00u" + uuid.uuid4().hex[:17], login, status)
        self.users[user.id] = user
        return user

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/users/{user}", self.get_user, methods=["GET"]),
                Route("/api/v1/users/{user}/lifecycle/{op}", self.lifecycle, methods=["POST"]),
                Route("/api/v1/users/{user}/sessions", self.clear_sessions, methods=["DELETE"]),
            ]
        )

    def _find(self, request: Request) -> OktaUser | Response:
        if request.headers.get("authorization") != f"SSWS {API_TOKEN}":
            return okta_error(401, "E0000011", "Invalid token provided")
        key = request.path_params["user"]
        for user in self.users.values():
            if key in {user.id, user.login}:
                return user
        return okta_error(404, "E0000007", f"Not found: Resource not found: {key} (User)")

    async def get_user(self, request: Request) -> Response:
        user = self._find(request)
        return user if isinstance(user, Response) else JSONResponse(user.resource())

    async def lifecycle(self, request: Request) -> Response:
        user = self._find(request)
        if isinstance(user, Response):
            return user
        op = request.path_params["op"]
        needed, new = {"suspend": ("ACTIVE", "SUSPENDED"), "unsuspend": ("SUSPENDED", "ACTIVE")}.get(
            op, ("", "")
        )
        if not needed:
            return okta_error(404, "E0000007", f"Not found: Resource not found: {op} (Operation)")
        if user.status != needed:
            cause = f"Cannot {op} a user that is not {needed.lower()}"
            return okta_error(400, "E0000001", f"Api validation failed: {op}", (cause,))
        user.status = new
        return JSONResponse({})

    async def clear_sessions(self, request: Request) -> Response:
        user = self._find(request)
        if isinstance(user, Response):
            return user
        user.session_clears += 1
        return Response(status_code=204)
