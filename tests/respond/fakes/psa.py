"""Stateful fakes of three PSAs' ticket APIs as documented, over one ticket store:

- ConnectWise Manage (`/v4_6_release/apis/3.0`): Basic `company+public:private` and `clientId`; tickets
  (POST 201, GET with `conditions` `summary like "%...%"`, PATCH JSON Patch), notes; errors
  `{"code", "message", "errors"}`;
- Autotask (`/ATServicesRest/V1.0`): headers `ApiIntegrationCode`, `UserName`, `Secret`; `POST /Tickets`
  -> `{"itemId"}`, `GET /Tickets/{id}` -> `{"item"}` (null when unknown), `GET /{entity}/query?search=`,
  `PATCH /Tickets`, `POST /Tickets/{id}/Notes`; errors `{"errors": ["..."]}`;
- HaloPSA: `POST /auth/token` (client credentials, scope all), `POST /api/Tickets` with an array (create
  or update by id), `GET /api/Tickets?search=`, `GET /api/Tickets/{id}`, `POST` / `GET /api/Actions`.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CW_COMPANY, CW_PUBLIC, CW_PRIVATE, CW_CLIENT_ID = (
    "clinicmsp",
    "pUbLiCkEy123",
    "cw-PRIVATE-DoNotLog-77",
    "a1b2c3d4",
)
AT_CODE, AT_USER, AT_SECRET = "AT-INTEGRATION-CODE-9", "api@msp.example", "at-SECRET-DoNotLog-42"
HALO_CLIENT_ID, HALO_SECRET = "halo-client-1", "halo-SECRET-DoNotLog-13"
CW = "/v4_6_release/apis/3.0"
AT = "/ATServicesRest/V1.0"


@dataclass
class PsaTicket:
    id: int
    title: str
    description: str
    customer: str
    priority: Any
    status: Any
    closed: bool = False
    notes: list[str] = field(default_factory=list)


class FakePsa:
    def __init__(self) -> None:
        self.tickets: dict[int, PsaTicket] = {}
        self._ids = itertools.count(1001)
        self.halo_tokens: set[str] = set()

    def add_ticket(self, title: str, *, status: Any = "New", closed: bool = False) -> PsaTicket:
        ticket = PsaTicket(next(self._ids), title, "", "clinic", 2, status, closed)
        self.tickets[ticket.id] = ticket
        return ticket

    def _new(self, title: str, description: str, customer: str, priority: Any, status: Any) -> PsaTicket:
        ticket = PsaTicket(next(self._ids), title, description, customer, priority, status)
        self.tickets[ticket.id] = ticket
        return ticket

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{CW}/service/tickets", self.cw_tickets, methods=["GET", "POST"]),
                Route(f"{CW}/service/tickets/{{id:int}}", self.cw_ticket, methods=["GET", "PATCH"]),
                Route(f"{CW}/service/tickets/{{id:int}}/notes", self.cw_notes, methods=["GET", "POST"]),
                Route(f"{AT}/Tickets", self.at_tickets, methods=["POST", "PATCH"]),
                Route(f"{AT}/Tickets/query", self.at_ticket_query, methods=["GET"]),
                Route(f"{AT}/Tickets/{{id:int}}", self.at_ticket, methods=["GET"]),
                Route(f"{AT}/Tickets/{{id:int}}/Notes", self.at_add_note, methods=["POST"]),
                Route(f"{AT}/TicketNotes/query", self.at_note_query, methods=["GET"]),
                Route("/auth/token", self.halo_token, methods=["POST"]),
                Route("/api/Tickets", self.halo_tickets, methods=["GET", "POST"]),
                Route("/api/Tickets/{id:int}", self.halo_ticket, methods=["GET"]),
                Route("/api/Actions", self.halo_actions, methods=["GET", "POST"]),
            ]
        )

    # -- ConnectWise ------------------------------------------------------------------------------------

    @staticmethod
    def _cw_error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": message, "errors": None}, status_code=status)

    def _cw_auth(self, request: Request) -> Response | None:
        login = base64.b64encode(f"{CW_COMPANY}+{CW_PUBLIC}:{CW_PRIVATE}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {login}":
            return self._cw_error(
                401, "Unauthorized", "Unable to authenticate: the credentials are not valid"
            )
        if request.headers.get("clientid") != CW_CLIENT_ID:
            return self._cw_error(400, "InvalidClientId", "clientId header is required")
        return None

    @staticmethod
    def _cw_resource(ticket: PsaTicket) -> dict[str, Any]:
        return {
            "id": ticket.id,
            "summary": ticket.title,
            "status": {"id": 1, "name": ticket.status},
            "company": {"identifier": ticket.customer},
            "priority": {"id": ticket.priority},
            "closedFlag": ticket.closed,
        }

    def _cw_find(self, request: Request) -> PsaTicket | Response:
        if (refused := self._cw_auth(request)) is not None:
            return refused
        ticket = self.tickets.get(request.path_params["id"])
        if ticket is None:
            return self._cw_error(404, "NotFound", f"Ticket ID {request.path_params['id']} not found")
        return ticket

    async def cw_tickets(self, request: Request) -> Response:
        if (refused := self._cw_auth(request)) is not None:
            return refused
        if request.method == "GET":
            tickets = list(self.tickets.values())
            conditions = request.query_params.get("conditions")
            if conditions:
                match = re.fullmatch(r'summary like "%([^"%]*)%"', conditions)
                if match is None:
                    return self._cw_error(400, "InvalidObject", f"Invalid conditions: {conditions}")
                tickets = [t for t in tickets if match.group(1).lower() in t.title.lower()]
            return JSONResponse([self._cw_resource(t) for t in tickets])
        body = await request.json()
        if not body.get("summary") or not str((body.get("company") or {}).get("identifier", "")).strip():
            return JSONResponse(
                {
                    "code": "InvalidObject",
                    "message": "ticket object is invalid",
                    "errors": [
                        {"code": "NullValue", "message": "The company field is required.", "field": "company"}
                    ],
                },
                status_code=400,
            )
        if len(body["summary"]) > 100:
            return self._cw_error(400, "InvalidObject", "summary may not exceed 100 characters")
        ticket = self._new(
            body["summary"], body.get("initialDescription", ""), body["company"]["identifier"],
            body.get("priority", {}).get("id"), "New",
        )  # fmt: skip
        return JSONResponse(self._cw_resource(ticket), status_code=201)

    async def cw_ticket(self, request: Request) -> Response:
        ticket = self._cw_find(request)
        if isinstance(ticket, Response):
            return ticket
        if request.method == "PATCH":
            for op in await request.json():
                if op.get("op") == "replace" and op.get("path") == "status":
                    ticket.status = op["value"]["name"]
                    ticket.closed = ticket.status == ">Closed"
        return JSONResponse(self._cw_resource(ticket))

    async def cw_notes(self, request: Request) -> Response:
        ticket = self._cw_find(request)
        if isinstance(ticket, Response):
            return ticket
        if request.method == "POST":
            ticket.notes.append((await request.json())["text"])
            return JSONResponse({"id": len(ticket.notes), "ticketId": ticket.id}, status_code=201)
        return JSONResponse([{"id": n + 1, "text": text} for n, text in enumerate(ticket.notes)])

    # -- Autotask ---------------------------------------------------------------------------------------

    @staticmethod
    def _at_auth(request: Request) -> Response | None:
        headers = request.headers
        if (headers.get("apiintegrationcode"), headers.get("username"), headers.get("secret")) != (
            AT_CODE,
            AT_USER,
            AT_SECRET,
        ):
            return Response(status_code=401)
        return None

    @staticmethod
    def _at_item(ticket: PsaTicket) -> dict[str, Any]:
        return {
            "id": ticket.id,
            "ticketNumber": f"T20261204.{ticket.id:04d}",
            "title": ticket.title,
            "companyID": ticket.customer,
            "priority": ticket.priority,
            "status": ticket.status,
        }

    @staticmethod
    def _at_filter(request: Request) -> list[dict[str, Any]] | None:
        try:
            search = json.loads(request.query_params.get("search", ""))
        except ValueError:
            return None
        return search.get("filter") if isinstance(search, dict) else None

    async def at_tickets(self, request: Request) -> Response:
        if (refused := self._at_auth(request)) is not None:
            return refused
        body = await request.json()
        if request.method == "PATCH":
            ticket = self.tickets.get(body.get("id"))
            if ticket is None:
                return JSONResponse({"errors": [f"Ticket {body.get('id')} does not exist."]}, status_code=404)
            ticket.status = body.get("status", ticket.status)
            ticket.closed = ticket.status == 5
            return JSONResponse({"itemId": ticket.id})
        missing = [key for key in ("companyID", "title", "priority", "status") if body.get(key) in (None, "")]
        if missing:
            return JSONResponse(
                {"errors": [f"Missing required field: {m}" for m in missing]}, status_code=500
            )
        ticket = self._new(
            body["title"], body.get("description", ""), body["companyID"], body["priority"], body["status"]
        )
        return JSONResponse({"itemId": ticket.id})

    async def at_ticket_query(self, request: Request) -> Response:
        if (refused := self._at_auth(request)) is not None:
            return refused
        conditions = self._at_filter(request)
        if not conditions:
            return JSONResponse({"errors": ["search is required"]}, status_code=500)
        tickets = list(self.tickets.values())
        for cond in conditions:
            if (cond.get("op"), cond.get("field")) != ("contains", "title"):
                return JSONResponse({"errors": [f"Unsupported filter {cond}"]}, status_code=500)
            tickets = [t for t in tickets if str(cond["value"]).lower() in t.title.lower()]
        return JSONResponse(
            {"items": [self._at_item(t) for t in tickets], "pageDetails": {"count": len(tickets)}}
        )

    async def at_ticket(self, request: Request) -> Response:
        if (refused := self._at_auth(request)) is not None:
            return refused
        ticket = self.tickets.get(request.path_params["id"])
        return JSONResponse({"item": self._at_item(ticket) if ticket else None})

    async def at_add_note(self, request: Request) -> Response:
        if (refused := self._at_auth(request)) is not None:
            return refused
        ticket = self.tickets.get(request.path_params["id"])
        if ticket is None:
            return JSONResponse(
                {"errors": [f"Ticket {request.path_params['id']} does not exist."]}, status_code=404
            )
        ticket.notes.append((await request.json())["description"])
        return JSONResponse({"itemId": len(ticket.notes)})

    async def at_note_query(self, request: Request) -> Response:
        if (refused := self._at_auth(request)) is not None:
            return refused
        conditions = {(c.get("op"), c.get("field")): c.get("value") for c in self._at_filter(request) or ()}
        ticket = self.tickets.get(conditions.get(("eq", "ticketID")))  # type: ignore[arg-type]
        words = str(conditions.get(("contains", "description"), ""))
        notes = [n for n in (ticket.notes if ticket else []) if words in n]
        items = [
            {"id": i, "ticketID": ticket.id if ticket else None, "description": n}
            for i, n in enumerate(notes)
        ]
        return JSONResponse({"items": items, "pageDetails": {"count": len(items)}})

    # -- HaloPSA ----------------------------------------------------------------------------------------

    async def halo_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("client_id") != HALO_CLIENT_ID or form.get("client_secret") != HALO_SECRET:
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Invalid client credentials"},
                status_code=400,
            )
        token = secrets.token_urlsafe(24)
        self.halo_tokens.add(token)
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "all"}
        )

    def _halo_auth(self, request: Request) -> Response | None:
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.halo_tokens:
            return Response("Unauthorized", status_code=401)
        return None

    @staticmethod
    def _halo_resource(ticket: PsaTicket) -> dict[str, Any]:
        return {
            "id": ticket.id,
            "summary": ticket.title,
            "details": ticket.description,
            "client_id": ticket.customer,
            "priority_id": ticket.priority,
            "status_id": ticket.status,
        }

    async def halo_tickets(self, request: Request) -> Response:
        if (refused := self._halo_auth(request)) is not None:
            return refused
        if request.method == "GET":
            words = request.query_params.get("search", "").lower()
            found = [self._halo_resource(t) for t in self.tickets.values() if words in t.title.lower()]
            return JSONResponse({"record_count": len(found), "tickets": found})
        body = await request.json()
        if not isinstance(body, list) or len(body) != 1:
            return Response("The request body must be an array", status_code=400)
        item = body[0]
        if "id" in item:
            ticket = self.tickets.get(item["id"])
            if ticket is None:
                return Response(f"Ticket {item['id']} not found", status_code=404)
            ticket.status = item.get("status_id", ticket.status)
            ticket.closed = ticket.status == 9
        else:
            ticket = self._new(
                item["summary"], item.get("details", ""), item["client_id"], item.get("priority_id"), 1
            )
        return JSONResponse(self._halo_resource(ticket), status_code=201)

    async def halo_ticket(self, request: Request) -> Response:
        if (refused := self._halo_auth(request)) is not None:
            return refused
        ticket = self.tickets.get(request.path_params["id"])
        if ticket is None:
            return Response(f"Ticket {request.path_params['id']} not found", status_code=404)
        return JSONResponse(self._halo_resource(ticket))

    async def halo_actions(self, request: Request) -> Response:
        if (refused := self._halo_auth(request)) is not None:
            return refused
        if request.method == "GET":
            ticket = self.tickets.get(int(request.query_params.get("ticket_id", "0")))
            actions = (
                [{"id": n, "ticket_id": ticket.id, "note": t} for n, t in enumerate(ticket.notes)]
                if ticket
                else []
            )
            return JSONResponse({"record_count": len(actions), "actions": actions})
        (item,) = await request.json()
        ticket = self.tickets.get(item.get("ticket_id"))
        if ticket is None:
            return Response(f"Ticket {item.get('ticket_id')} not found", status_code=404)
        ticket.notes.append(item["note"])
        return JSONResponse(
            {"id": len(ticket.notes), "ticket_id": ticket.id, "note": item["note"]}, status_code=201
        )
