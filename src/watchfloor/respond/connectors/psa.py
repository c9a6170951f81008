"""PSA tickets (the tools MSPs live in): ConnectWise Manage, Autotask (Datto) and HaloPSA, one table each.

Config `psa_vendor` picks the table; `base_url` is the vendor's API site (`https://api-na.myconnectwise.net`,
the Autotask zone `https://webservices2.autotask.net`, `https://clinic.halopsa.com`); `customer_id` is the
customer in the PSA (ConnectWise company identifier, Autotask companyID, Halo client_id); `priority_ids`
(optional mapping low/medium/high/critical -> the PSA's priority id) and `closed_status` override the
vendor defaults. Credentials:

- ConnectWise: API member keys, Basic auth `company_id+public_key:private_key`, header `clientId`
  (`client_id`, from developer.connectwise.com); `board` is the service board name;
- Autotask: an API user's `username` and `secret`, the `api_integration_code` (headers `UserName`,
  `Secret`, `ApiIntegrationCode`); optional `queue_id`;
- HaloPSA: an API application with client credentials (`client_id`, `client_secret`, scope `all`) at
  `auth_url` (default `<base_url>/auth`); optional `ticket_type_id`.

Idempotency: a retried step must never open two tickets. Each ticket title ends with a tag
`(wf-<16 hex>)` derived from the tenant and the step's idempotency key, and the description carries a
line `watchfloor-key: <idempotency key>`; create searches for the tag first (ConnectWise `conditions`
`summary like`, Autotask `Tickets/query` `contains`, Halo `search`). Notes carry the tag too, so a retried
update adds no second note.

Pitfalls: ConnectWise priority ids and board statuses are per instance (set `priority_ids` and
`closed_status`); Halo cloud tenants that need `?tenant=` on the token URL are not supported yet;
Autotask answers 200 `{"item": null}` for an unknown ticket id.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from watchfloor.core.errors import Location
from watchfloor.respond.actions import (
    ActionContext,
    ActionManifest,
    ActionResult,
    ConnectorConfigError,
    ConnectorError,
    InputSpec,
)
from watchfloor.respond.connectors import HttpAction
from watchfloor.respond.http import (
    ClientCredentials,
    ConnectorHttp,
    HttpOptions,
    check_base_url,
    parse_error_body,
    path_segment,
)

CONNECTOR: Final = "psa"
PRIORITIES: Final = ("informational", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticket:
    title: str  # ends with the tag
    description: str
    priority_id: int | str
    tag: str


def _error(response: httpx.Response) -> tuple[str | None, str | None]:
    """ConnectWise `{"code", "message", "errors"}`, Autotask `{"errors": ["..."]}`, Halo plain text."""
    code, message = parse_error_body(response)
    if code is None and message is None:
        try:
            body = response.json()
        except ValueError:
            return None, response.text.strip()[:300] or None
        if isinstance(body, dict):
            errors = body.get("errors")
            if isinstance(errors, list) and errors:
                return None, "; ".join(str(e) for e in errors)
            return None, str(body.get("Message") or body.get("error_description") or "") or None
    return code, message


def _list(response: httpx.Response, key: str | None = None) -> list[dict[str, Any]]:
    """A JSON array body (or the array under `key` of an object), as dicts."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if key is not None and isinstance(body, dict):
        body = body.get(key)
    if not isinstance(body, list):
        raise ConnectorError(
            f"psa answered {response.request.url.path} without a list",
            code="respond.bad_response",
            status=response.status_code,
        )
    return [item for item in body if isinstance(item, dict)]


def _int_config(ctx: ActionContext, key: str) -> int:
    value = ctx.config.get(key)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConnectorConfigError(
            f"psa {key} must be a number for this PSA, got {value!r}",
            location=Location(tenant=ctx.tenant_id, path=f"psa.{key}"),
        ) from None


def _id_of(body: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        if body.get(key) not in (None, ""):
            return str(body[key])
    raise ConnectorError("psa answered without the new item's id", code="respond.bad_response")


# -- the vendor tables -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PsaVendor:
    """One PSA: what it needs, its defaults, and its endpoints as small functions of (api, ...)."""

    name: str
    label: str
    config: tuple[str, ...]  # required keys besides psa_vendor, base_url, customer_id
    title_limit: int
    priorities: Mapping[str, int]
    closed_status: str | int
    connect: Callable[[ActionContext, HttpOptions, str], ConnectorHttp]
    find: Callable[[ConnectorHttp, str], str | None]  # the id of the ticket whose title holds the tag
    create: Callable[[ConnectorHttp, ActionContext, Ticket], str]
    has_note: Callable[[ConnectorHttp, str, str], bool]  # (ticket id, tag)
    add_note: Callable[[ConnectorHttp, str, str], None]  # (ticket id, text)
    status: Callable[[ConnectorHttp, str], tuple[str, bool]]  # (label, closed)
    close: Callable[[ConnectorHttp, str, str | int], None]


def _http(
    ctx: ActionContext,
    options: HttpOptions,
    base: str,
    *,
    headers: Mapping[str, str] | None = None,
    credentials: ClientCredentials | None = None,
) -> ConnectorHttp:
    return ConnectorHttp(
        connector=CONNECTOR,
        tenant_id=ctx.tenant_id,
        base_url=base,
        credentials=credentials,
        options=options,
        wall_clock=ctx.clock,
        error_parser=_error,
        headers=headers,
    )


# ConnectWise Manage REST (`/v4_6_release/apis/3.0`): JSON arrays, `conditions` queries, JSON Patch.


def _cw_connect(ctx: ActionContext, options: HttpOptions, base: str) -> ConnectorHttp:
    c = ctx.config
    login = f"{c['company_id']}+{c['public_key']}:{c['private_key']}"
    headers = {
        "Authorization": "Basic " + base64.b64encode(login.encode()).decode(),
        "clientId": str(c["client_id"]),
    }
    return _http(ctx, options, f"{base}/v4_6_release/apis/3.0", headers=headers)


def _cw_find(api: ConnectorHttp, tag: str) -> str | None:
    params = {"conditions": f'summary like "%{tag}%"', "fields": "id,summary"}
    found = [
        t
        for t in _list(api.request("GET", "/service/tickets", params=params))
        if tag in str(t.get("summary"))
    ]
    return str(found[0]["id"]) if found else None


def _cw_create(api: ConnectorHttp, ctx: ActionContext, ticket: Ticket) -> str:
    body: dict[str, Any] = {
        "summary": ticket.title,
        "initialDescription": ticket.description,
        "company": {"identifier": str(ctx.config["customer_id"])},
        "priority": {"id": ticket.priority_id},
    }
    if ctx.config.get("board"):
        body["board"] = {"name": str(ctx.config["board"])}
    return _id_of(api.json_of(api.request("POST", "/service/tickets", json=body)), "id")


def _cw_has_note(api: ConnectorHttp, ticket_id: str, tag: str) -> bool:
    notes = _list(api.request("GET", f"/service/tickets/{path_segment(ticket_id)}/notes"))
    return any(tag in str(note.get("text")) for note in notes)


def _cw_add_note(api: ConnectorHttp, ticket_id: str, text: str) -> None:
    body = {"text": text, "detailDescriptionFlag": True, "internalAnalysisFlag": False}
    api.request("POST", f"/service/tickets/{path_segment(ticket_id)}/notes", json=body)


def _cw_status(api: ConnectorHttp, ticket_id: str) -> tuple[str, bool]:
    ticket = api.get_json(f"/service/tickets/{path_segment(ticket_id)}")
    return str((ticket.get("status") or {}).get("name")), bool(ticket.get("closedFlag"))


def _cw_close(api: ConnectorHttp, ticket_id: str, status: str | int) -> None:
    patch = [{"op": "replace", "path": "status", "value": {"name": str(status)}}]
    api.request("PATCH", f"/service/tickets/{path_segment(ticket_id)}", json=patch, idempotent=True)


# Autotask REST (`/ATServicesRest/V1.0`): `{"item"}` / `{"items"}` bodies, query with a JSON filter.

_AT: Final = "/ATServicesRest/V1.0"


def _at_connect(ctx: ActionContext, options: HttpOptions, base: str) -> ConnectorHttp:
    c = ctx.config
    headers = {
        "ApiIntegrationCode": str(c["api_integration_code"]),
        "UserName": str(c["username"]),
        "Secret": str(c["secret"]),
    }
    return _http(ctx, options, base, headers=headers)


def _at_query(api: ConnectorHttp, entity: str, *conditions: dict[str, Any]) -> list[dict[str, Any]]:
    search = json.dumps({"filter": list(conditions)})
    return _list(api.request("GET", f"{_AT}/{entity}/query", params={"search": search}), "items")


def _at_find(api: ConnectorHttp, tag: str) -> str | None:
    found = [
        t
        for t in _at_query(api, "Tickets", {"op": "contains", "field": "title", "value": tag})
        if tag in str(t.get("title"))
    ]
    return str(found[0]["id"]) if found else None


def _at_create(api: ConnectorHttp, ctx: ActionContext, ticket: Ticket) -> str:
    body: dict[str, Any] = {
        "companyID": _int_config(ctx, "customer_id"),
        "title": ticket.title,
        "description": ticket.description[:8000],
        "priority": ticket.priority_id,
        "status": 1,  # New
    }
    if ctx.config.get("queue_id"):
        body["queueID"] = _int_config(ctx, "queue_id")
    return _id_of(api.json_of(api.request("POST", f"{_AT}/Tickets", json=body)), "itemId")


def _at_has_note(api: ConnectorHttp, ticket_id: str, tag: str) -> bool:
    notes = _at_query(
        api,
        "TicketNotes",
        {"op": "eq", "field": "ticketID", "value": int(ticket_id)},
        {"op": "contains", "field": "description", "value": tag},
    )
    return any(tag in str(note.get("description")) for note in notes)


def _at_add_note(api: ConnectorHttp, ticket_id: str, text: str) -> None:
    body = {"title": "Watchfloor", "description": text[:32000], "noteType": 1, "publish": 1}
    api.request("POST", f"{_AT}/Tickets/{path_segment(ticket_id)}/Notes", json=body)


def _at_ticket(api: ConnectorHttp, ticket_id: str) -> dict[str, Any]:
    item = api.get_json(f"{_AT}/Tickets/{path_segment(ticket_id)}").get("item")
    if not isinstance(item, dict):
        raise ConnectorError(
            f"Autotask has no ticket {ticket_id}", code="respond.target_not_found", status=404
        )
    return item


def _at_status(api: ConnectorHttp, ticket_id: str) -> tuple[str, bool]:
    status = _at_ticket(api, ticket_id).get("status")
    return str(status), str(status) == "5"


def _at_close(api: ConnectorHttp, ticket_id: str, status: str | int) -> None:
    api.request(
        "PATCH", f"{_AT}/Tickets", json={"id": int(ticket_id), "status": int(status)}, idempotent=True
    )


# HaloPSA (`/api`): OAuth2 client credentials, array bodies for create/update, `search` queries.


def _halo_connect(ctx: ActionContext, options: HttpOptions, base: str) -> ConnectorHttp:
    auth = check_base_url(
        ctx.config.get("auth_url") or f"{base}/auth",
        key="auth_url",
        connector=CONNECTOR,
        tenant_id=ctx.tenant_id,
    )
    credentials = ClientCredentials(
        token_url=f"{auth}/token",
        client_id=str(ctx.config["client_id"]),
        client_secret=str(ctx.config["client_secret"]),
        scope="all",
    )
    return _http(ctx, options, base, credentials=credentials)


def _halo_find(api: ConnectorHttp, tag: str) -> str | None:
    tickets = _list(api.request("GET", "/api/Tickets", params={"search": tag}), "tickets")
    found = [t for t in tickets if tag in str(t.get("summary"))]
    return str(found[0]["id"]) if found else None


def _halo_create(api: ConnectorHttp, ctx: ActionContext, ticket: Ticket) -> str:
    body: dict[str, Any] = {
        "summary": ticket.title,
        "details": ticket.description,
        "client_id": _int_config(ctx, "customer_id"),
        "priority_id": ticket.priority_id,
    }
    if ctx.config.get("ticket_type_id"):
        body["tickettype_id"] = _int_config(ctx, "ticket_type_id")
    return _id_of(api.json_of(api.request("POST", "/api/Tickets", json=[body])), "id")


def _halo_has_note(api: ConnectorHttp, ticket_id: str, tag: str) -> bool:
    actions = _list(api.request("GET", "/api/Actions", params={"ticket_id": ticket_id}), "actions")
    return any(tag in str(action.get("note")) for action in actions)


def _halo_add_note(api: ConnectorHttp, ticket_id: str, text: str) -> None:
    body = [{"ticket_id": int(ticket_id), "note": text, "outcome": "Note", "hiddenfromuser": True}]
    api.request("POST", "/api/Actions", json=body)


def _halo_status(api: ConnectorHttp, ticket_id: str) -> tuple[str, bool]:
    status = api.get_json(f"/api/Tickets/{path_segment(ticket_id)}").get("status_id")
    return str(status), str(status) == "9"


def _halo_close(api: ConnectorHttp, ticket_id: str, status: str | int) -> None:
    api.request(
        "POST", "/api/Tickets", json=[{"id": int(ticket_id), "status_id": int(status)}], idempotent=True
    )


VENDORS: Final[Mapping[str, PsaVendor]] = {
    "connectwise": PsaVendor(
        name="connectwise",
        label="ConnectWise",
        config=("company_id", "public_key", "private_key", "client_id"),
        title_limit=100,
        priorities={"informational": 4, "low": 4, "medium": 3, "high": 2, "critical": 1},
        closed_status=">Closed",
        connect=_cw_connect,
        find=_cw_find,
        create=_cw_create,
        has_note=_cw_has_note,
        add_note=_cw_add_note,
        status=_cw_status,
        close=_cw_close,
    ),
    "autotask": PsaVendor(
        name="autotask",
        label="Autotask",
        config=("api_integration_code", "username", "secret"),
        title_limit=255,
        priorities={"informational": 3, "low": 3, "medium": 2, "high": 1, "critical": 4},
        closed_status=5,  # Complete
        connect=_at_connect,
        find=_at_find,
        create=_at_create,
        has_note=_at_has_note,
        add_note=_at_add_note,
        status=_at_status,
        close=_at_close,
    ),
    "halopsa": PsaVendor(
        name="halopsa",
        label="HaloPSA",
        config=("client_id", "client_secret"),
        title_limit=250,
        priorities={"informational": 4, "low": 4, "medium": 3, "high": 2, "critical": 1},
        closed_status=9,  # Closed
        connect=_halo_connect,
        find=_halo_find,
        create=_halo_create,
        has_note=_halo_has_note,
        add_note=_halo_add_note,
        status=_halo_status,
        close=_halo_close,
    ),
}
CONFIG: Final = (
    "psa_vendor",
    "base_url",
    "customer_id",
    "priority_ids",
    "closed_status",
    "board",
    "queue_id",
    "ticket_type_id",
    "auth_url",
    *dict.fromkeys(key for vendor in VENDORS.values() for key in vendor.config),
)
SECRETS: Final = ("private_key", "api_integration_code", "secret", "client_secret")


def step_tag(ctx: ActionContext) -> str:
    """`wf-<16 hex>`: the step's mark in titles and notes (the same for every retry of the step)."""
    digest = hashlib.sha256(f"{ctx.tenant_id}\n{ctx.idempotency_key}".encode()).hexdigest()
    return f"wf-{digest[:16]}"


class _PsaAction(HttpAction):
    def vendor(self, ctx: ActionContext) -> PsaVendor:
        name = str(ctx.config.get("psa_vendor") or "").lower()
        vendor = VENDORS.get(name)
        if vendor is None:
            raise ConnectorConfigError(
                f"psa_vendor must be one of {', '.join(VENDORS)}, not {name!r}",
                location=Location(tenant=ctx.tenant_id, path="psa.psa_vendor"),
            )
        self.require(ctx, "base_url", "customer_id", *vendor.config)
        return vendor

    def psa(self, ctx: ActionContext, vendor: PsaVendor) -> ConnectorHttp:
        base = check_base_url(
            ctx.config["base_url"], key="base_url", connector=CONNECTOR, tenant_id=ctx.tenant_id
        )
        return vendor.connect(ctx, self.http, base)

    def ticket_id(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> str:
        value = inputs.get("ticket_id")
        ticket_id = str(value).strip() if isinstance(value, int | str) else ""
        if not ticket_id.isdigit():
            raise ConnectorError(
                f"input 'ticket_id' must be a ticket number, not {value!r}",
                code="respond.invalid_input",
                location=self.where(ctx),
            )
        return ticket_id

    def note(
        self, ctx: ActionContext, vendor: PsaVendor, api: ConnectorHttp, ticket_id: str, text: str
    ) -> bool:
        """Add `text` (tagged) to the ticket unless this step did already; whether it was added."""
        tag = step_tag(ctx)
        if vendor.has_note(api, ticket_id, tag):
            return False
        if not ctx.dry_run:
            vendor.add_note(api, ticket_id, f"{text}\n\nwatchfloor-key: {ctx.idempotency_key} ({tag})")
        return True


class CreateTicket(_PsaAction):
    manifest = ActionManifest(
        id="psa.create_ticket",
        title="Open a PSA ticket",
        connector=CONNECTOR,
        description="Opens a service ticket for the customer in ConnectWise Manage, Autotask or HaloPSA "
        "(config psa_vendor). A retried step finds the ticket it opened instead of opening another.",
        inputs=(
            InputSpec(name="summary", description="the ticket title (the step's tag is appended)"),
            InputSpec(name="description"),
            InputSpec(name="priority", description="informational, low, medium, high or critical"),
        ),
        config=CONFIG,
        secrets=SECRETS,
        risk="read_only",
        target="ticket",
        approval="never",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        vendor = self.vendor(ctx)
        summary = " ".join(self.text_input(ctx, inputs, "summary").split())
        description = self.text_input(ctx, inputs, "description")
        priority = self.text_input(ctx, inputs, "priority").lower()
        if priority not in PRIORITIES:
            raise ConnectorError(
                f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}",
                code="respond.invalid_input",
                location=self.where(ctx),
            )
        overrides = ctx.config.get("priority_ids")
        priorities = {**vendor.priorities, **(overrides if isinstance(overrides, Mapping) else {})}
        tag = step_tag(ctx)
        room = vendor.title_limit - len(tag) - 3
        title = f"{summary if len(summary) <= room else summary[: room - 3] + '...'} ({tag})"
        ticket = Ticket(
            title=title,
            description=f"{description}\n\nwatchfloor-key: {ctx.idempotency_key}",
            priority_id=priorities[priority],
            tag=tag,
        )
        output: dict[str, Any] = {"vendor": vendor.name, "title": title, "priority": priority, "tag": tag}
        with self.psa(ctx, vendor) as api:
            existing = vendor.find(api, tag)
            if existing is not None:  # a retry of this step: the ticket is the one it opened
                return ActionResult(
                    status="succeeded",
                    summary=f"{vendor.label} ticket {existing} was already opened by this step",
                    output={**output, "ticket_id": existing},
                    external_ref=existing,
                )
            if ctx.dry_run:
                return ActionResult(
                    status="dry_run", summary=f"would open a {vendor.label} ticket: {title}", output=output
                )
            ticket_id = vendor.create(api, ctx, ticket)
        return ActionResult(
            status="succeeded",
            summary=f"opened {vendor.label} ticket {ticket_id}: {title}",
            changed=True,
            output={**output, "ticket_id": ticket_id},
            external_ref=ticket_id,
        )


class UpdateTicket(_PsaAction):
    manifest = ActionManifest(
        id="psa.update_ticket",
        title="Add a note to a PSA ticket",
        connector=CONNECTOR,
        description="Adds a note to the ticket; a retried step adds no second note.",
        inputs=(
            InputSpec(name="ticket_id", description="the ticket number psa.create_ticket returned"),
            InputSpec(name="note"),
        ),
        config=CONFIG,
        secrets=SECRETS,
        risk="read_only",
        target="ticket",
        approval="never",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        vendor = self.vendor(ctx)
        ticket_id = self.ticket_id(ctx, inputs)
        text = self.text_input(ctx, inputs, "note")
        with self.psa(ctx, vendor) as api:
            added = self.note(ctx, vendor, api, ticket_id, text)
        output = {"vendor": vendor.name, "ticket_id": ticket_id}
        if not added:
            summary = f"{vendor.label} ticket {ticket_id} already has this step's note"
            return ActionResult(status="succeeded", summary=summary, output=output, external_ref=ticket_id)
        if ctx.dry_run:
            summary = f"would add a note to {vendor.label} ticket {ticket_id}"
            return ActionResult(status="dry_run", summary=summary, output=output, external_ref=ticket_id)
        return ActionResult(
            status="succeeded",
            summary=f"added a note to {vendor.label} ticket {ticket_id}",
            changed=True,
            output=output,
            external_ref=ticket_id,
        )


class CloseTicket(_PsaAction):
    manifest = ActionManifest(
        id="psa.close_ticket",
        title="Close a PSA ticket",
        connector=CONNECTOR,
        description="Adds the closing note (if any) and sets the ticket's closed status (config "
        "closed_status; ConnectWise '>Closed', Autotask 5 Complete, Halo 9 Closed by default).",
        inputs=(
            InputSpec(name="ticket_id", description="the ticket number psa.create_ticket returned"),
            InputSpec(name="note", required=False, description="the resolution, added as a note first"),
        ),
        config=CONFIG,
        secrets=SECRETS,
        risk="read_only",
        target="ticket",
        approval="never",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        vendor = self.vendor(ctx)
        ticket_id = self.ticket_id(ctx, inputs)
        closed_status = ctx.config.get("closed_status") or vendor.closed_status
        with self.psa(ctx, vendor) as api:
            label, closed = vendor.status(api, ticket_id)
            output = {"vendor": vendor.name, "ticket_id": ticket_id, "previous_status": label}
            if closed or label == str(closed_status):
                summary = f"{vendor.label} ticket {ticket_id} is already closed"
                return ActionResult(
                    status="succeeded", summary=summary, output=output, external_ref=ticket_id
                )
            if ctx.dry_run:
                summary = f"would close {vendor.label} ticket {ticket_id}"
                return ActionResult(status="dry_run", summary=summary, output=output, external_ref=ticket_id)
            if inputs.get("note"):
                self.note(ctx, vendor, api, ticket_id, self.text_input(ctx, inputs, "note"))
            vendor.close(api, ticket_id, closed_status)
        return ActionResult(
            status="succeeded",
            summary=f"closed {vendor.label} ticket {ticket_id}",
            changed=True,
            output={**output, "status": str(closed_status)},
            external_ref=ticket_id,
        )


ACTIONS: Final = (CreateTicket, UpdateTicket, CloseTicket)
