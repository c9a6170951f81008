"""The PSA ticket actions against loopback fakes of ConnectWise Manage, Autotask and HaloPSA."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.respond.fakes import psa as fake
from tests.respond.fakes.psa import CW, FakePsa
from tests.respond.fakes.server import LoopbackServer
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import ActionContext, ConnectorError
from watchfloor.respond.connectors.psa import CloseTicket, CreateTicket, UpdateTicket, step_tag
from watchfloor.respond.http import HttpOptions, TokenCache

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
VENDORS = ("connectwise", "autotask", "halopsa")
TICKET = {
    "summary": "Password guessed for dana@clinic.example - incident inc-42",
    "description": "Brute force then logon. Reset the password.",
    "priority": "high",
}
SECRETS = {"connectwise": fake.CW_PRIVATE, "autotask": fake.AT_SECRET, "halopsa": fake.HALO_SECRET}


def config(vendor: str, url: str) -> dict[str, Any]:
    common = {"psa_vendor": vendor, "base_url": url}
    if vendor == "connectwise":
        return {
            **common,
            "customer_id": "ClinicInc",
            "company_id": fake.CW_COMPANY,
            "public_key": fake.CW_PUBLIC,
            "private_key": fake.CW_PRIVATE,
            "client_id": fake.CW_CLIENT_ID,
            "board": "SOC",
        }
    if vendor == "autotask":
        return {
            **common,
            "customer_id": "174",
            "api_integration_code": fake.AT_CODE,
            "username": fake.AT_USER,
            "secret": fake.AT_SECRET,
        }
    return {
        **common,
        "customer_id": "12",
        "client_id": fake.HALO_CLIENT_ID,
        "client_secret": fake.HALO_SECRET,
    }


@pytest.fixture
def psa() -> FakePsa:
    return FakePsa()


@pytest.fixture
def server(psa: FakePsa) -> Iterator[LoopbackServer]:
    with LoopbackServer(psa.app()) as running:
        yield running


@pytest.fixture
def http() -> HttpOptions:
    return HttpOptions(sleep=lambda _: None, token_cache=TokenCache())


def context(
    server: LoopbackServer, vendor: str, *, step: str = "open_ticket", dry_run: bool = False, **extra: Any
) -> ActionContext:
    return ActionContext(
        tenant_id=TenantId("clinic"),
        run_id="run-9",
        step_id=step,
        idempotency_key=f"run-9/{step}",
        config={**config(vendor, server.url), **extra},
        dry_run=dry_run,
        clock=lambda: NOW,
    )


@pytest.mark.parametrize("vendor", VENDORS)
def test_create_a_ticket(server, psa, http, vendor):
    result = CreateTicket(http=http).run(context(server, vendor), TICKET)
    (ticket,) = psa.tickets.values()
    assert (result.status, result.changed, result.external_ref) == ("succeeded", True, str(ticket.id))
    tag = step_tag(context(server, vendor))
    assert ticket.title == f"{TICKET['summary']} ({tag})"
    assert ticket.description.endswith("\n\nwatchfloor-key: run-9/open_ticket")
    assert ticket.priority == {"connectwise": 2, "autotask": 1, "halopsa": 2}[vendor]
    (post,) = server.writes()
    if vendor == "halopsa":
        assert isinstance(post.json(), list)  # Halo takes an array of tickets


def test_connectwise_request_shape(server, psa, http):
    CreateTicket(http=http).run(context(server, "connectwise"), TICKET)
    (post,) = server.writes()
    assert post.path == f"{CW}/service/tickets"
    assert post.headers["clientid"] == fake.CW_CLIENT_ID
    assert post.headers["authorization"].startswith("Basic ")
    body = post.json()
    assert (body["company"], body["board"], body["priority"]) == (
        {"identifier": "ClinicInc"},
        {"name": "SOC"},
        {"id": 2},
    )
    search = server.log("GET", "/service/tickets")[0]
    assert search.query["conditions"] == [f'summary like "%{step_tag(context(server, "connectwise"))}%"']


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_retried_create_finds_its_ticket(server, psa, http, vendor):
    first = CreateTicket(http=http).run(context(server, vendor), TICKET)
    again = CreateTicket(http=http).run(context(server, vendor), TICKET)
    assert (again.changed, again.external_ref) == (False, first.external_ref)
    assert len(psa.tickets) == 1
    other = CreateTicket(http=http).run(context(server, vendor, step="another_step"), TICKET)
    assert other.changed
    assert len(psa.tickets) == 2


@pytest.mark.parametrize("vendor", VENDORS)
def test_create_dry_run_makes_no_write_call(server, psa, http, vendor):
    result = CreateTicket(http=http).run(context(server, vendor, dry_run=True), TICKET)
    assert result.status == "dry_run"
    assert psa.tickets == {}
    assert server.writes() == []


def test_a_long_summary_is_cut_to_keep_the_tag(server, psa, http):
    CreateTicket(http=http).run(context(server, "connectwise"), {**TICKET, "summary": "x" * 300})
    (ticket,) = psa.tickets.values()
    assert len(ticket.title) == 100
    assert ticket.title.endswith(f"... ({step_tag(context(server, 'connectwise'))})")


def test_an_unknown_priority_is_refused_before_any_call(server, http):
    with pytest.raises(ConnectorError) as caught:
        CreateTicket(http=http).run(context(server, "halopsa"), {**TICKET, "priority": "urgent"})
    assert caught.value.code == "respond.invalid_input"
    assert server.log() == []


def test_priority_ids_from_config(server, psa, http):
    ctx = context(server, "connectwise", priority_ids={"critical": 7})
    CreateTicket(http=http).run(ctx, {**TICKET, "priority": "critical"})
    assert next(iter(psa.tickets.values())).priority == 7


def test_an_unknown_vendor_is_a_config_error(server, http):
    with pytest.raises(ConnectorError) as caught:
        CreateTicket(http=http).run(context(server, "servicenow"), TICKET)
    assert caught.value.code == "respond.connector_config"


@pytest.mark.parametrize("vendor", VENDORS)
def test_update_adds_a_note_once(server, psa, http, vendor):
    ticket = psa.add_ticket("Ransomware precursors on ws-17")
    inputs = {"ticket_id": str(ticket.id), "note": "ws-17 is isolated."}
    ctx = context(server, vendor, step="note_ticket")
    result = UpdateTicket(http=http).run(ctx, inputs)
    assert (result.changed, result.external_ref) == (True, str(ticket.id))
    (note,) = ticket.notes
    assert note.startswith("ws-17 is isolated.\n\nwatchfloor-key: run-9/note_ticket")
    again = UpdateTicket(http=http).run(ctx, inputs)
    assert again.changed is False
    assert len(ticket.notes) == 1


@pytest.mark.parametrize("vendor", VENDORS)
def test_update_dry_run_makes_no_write_call(server, psa, http, vendor):
    ticket = psa.add_ticket("t")
    result = UpdateTicket(http=http).run(
        context(server, vendor, dry_run=True), {"ticket_id": ticket.id, "note": "n"}
    )
    assert result.status == "dry_run"
    assert server.writes() == []
    assert ticket.notes == []


@pytest.mark.parametrize("vendor", VENDORS)
def test_close_a_ticket(server, psa, http, vendor):
    ticket = psa.add_ticket("t", status={"connectwise": "New", "autotask": 1, "halopsa": 1}[vendor])
    ctx = context(server, vendor, step="close")
    result = CloseTicket(http=http).run(
        ctx, {"ticket_id": str(ticket.id), "note": "Resolved: password reset."}
    )
    assert result.changed
    assert ticket.closed
    assert len(ticket.notes) == 1
    again = CloseTicket(http=http).run(
        ctx, {"ticket_id": str(ticket.id), "note": "Resolved: password reset."}
    )
    assert (again.changed, again.summary.endswith("is already closed")) == (False, True)
    if vendor == "connectwise":
        patch = server.log("PATCH")[0].json()
        assert patch == [{"op": "replace", "path": "status", "value": {"name": ">Closed"}}]


@pytest.mark.parametrize("vendor", VENDORS)
def test_close_dry_run_makes_no_write_call(server, psa, http, vendor):
    ticket = psa.add_ticket("t", status=1)
    assert (
        CloseTicket(http=http).run(context(server, vendor, dry_run=True), {"ticket_id": ticket.id}).status
        == "dry_run"
    )
    assert server.writes() == []
    assert not ticket.closed


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_unknown_ticket_is_not_found(server, http, vendor):
    with pytest.raises(ConnectorError) as caught:
        CloseTicket(http=http).run(context(server, vendor), {"ticket_id": "999999"})
    assert caught.value.code == "respond.target_not_found"
    assert server.writes() == []


def test_a_bad_ticket_id_is_refused(server, http):
    with pytest.raises(ConnectorError) as caught:
        UpdateTicket(http=http).run(context(server, "autotask"), {"ticket_id": "../Companies", "note": "x"})
    assert caught.value.code == "respond.invalid_input"


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_throttled_create_waits_for_retry_after(server, psa, vendor):
    waits: list[float] = []
    http = HttpOptions(sleep=waits.append, token_cache=TokenCache())
    server.faults.fail_next(
        1, 429, json={"message": "Too many requests"}, headers={"Retry-After": "4"}, method="POST"
    )
    result = CreateTicket(http=http).run(context(server, vendor), TICKET)
    assert result.changed
    assert waits == [4.0]
    assert len(psa.tickets) == 1


@pytest.mark.parametrize("vendor", VENDORS)
def test_wrong_credentials_fail_without_naming_the_secret(server, psa, http, vendor, caplog):
    caplog.set_level(logging.DEBUG)
    key = {"connectwise": "private_key", "autotask": "secret", "halopsa": "client_secret"}[vendor]
    wrong = "WRONG-secret-value-0000"
    with pytest.raises(ConnectorError) as caught:
        CreateTicket(http=http).run(context(server, vendor, **{key: wrong}), TICKET)
    assert caught.value.code in {"respond.unauthorized", "respond.auth_failed"}
    assert psa.tickets == {}
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert wrong not in text
        assert SECRETS[vendor] not in text


def test_connectwise_validation_errors_are_passed_on(server, http):
    ctx = context(server, "connectwise", customer_id=" ")
    with pytest.raises(ConnectorError) as caught:
        CreateTicket(http=http).run(ctx, TICKET)
    error = caught.value
    assert (error.code, error.status, error.vendor_code) == ("respond.bad_request", 400, "NullValue")
    assert "The company field is required." in error.message


@pytest.mark.parametrize("vendor", ["autotask", "halopsa"])
def test_a_customer_id_that_is_not_a_number_is_a_config_error(server, psa, http, vendor):
    with pytest.raises(ConnectorError) as caught:
        CreateTicket(http=http).run(context(server, vendor, customer_id="ClinicInc"), TICKET)
    assert caught.value.code == "respond.connector_config"
    assert psa.tickets == {}
    assert server.writes() == []


def test_halo_token_is_fetched_once_and_reused(server, psa, http):
    CreateTicket(http=http).run(context(server, "halopsa"), TICKET)
    UpdateTicket(http=http).run(context(server, "halopsa", step="note"), {"ticket_id": "1001", "note": "n"})
    (token,) = server.log("POST", "/auth/token")
    assert token.form()["scope"] == "all"
    assert token.form()["grant_type"] == "client_credentials"
