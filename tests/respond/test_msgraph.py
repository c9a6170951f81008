"""The Microsoft Graph actions against a loopback fake of Graph and the identity platform."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.respond.fakes.msgraph import (
    CLIENT_ID,
    CLIENT_SECRET,
    DIRECTORY_ID,
    FakeGraph,
    GraphUser,
    graph_error_body,
    message_rule,
)
from tests.respond.fakes.server import LoopbackServer
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import ActionContext, ConnectorConfigError, ConnectorError
from watchfloor.respond.connectors import msgraph
from watchfloor.respond.connectors.msgraph import (
    DisableUser,
    EnableUser,
    GetUser,
    ListInboxRules,
    RemoveInboxRules,
    RevokeSessions,
)
from watchfloor.respond.http import HttpOptions, TokenCache

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def graph() -> FakeGraph:
    fake = FakeGraph()
    dana = fake.add_user("dana@clinic.example", mail="dana@clinic.example")
    dana.rules = [
        message_rule("invoices to me", forward_to=("dana.private@gmail.example",)),
        message_rule("move newsletters", move_to="Archive"),
        message_rule("team copy", forward_to=("frontdesk@clinic.example",)),
        message_rule(".", redirect_to=("collect@evil.example",), attach_to=("drop@evil.example",)),
        message_rule("flag boss", enabled=False),
    ]
    fake.add_user("sync.user@clinic.example", on_premises_sync_enabled=True)
    fake.add_user("ann_fabrikam.com#EXT#@clinic.onmicrosoft.com")
    fake.add_user("nomail@clinic.example", has_mailbox=False)
    return fake


@pytest.fixture
def server(graph: FakeGraph) -> Iterator[LoopbackServer]:
    with LoopbackServer(graph.app()) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(sleeps: list[float]) -> HttpOptions:
    return HttpOptions(sleep=sleeps.append, random=lambda: 0.5, token_cache=TokenCache())


def context(server: LoopbackServer, *, dry_run: bool = False, **config: Any) -> ActionContext:
    base = {
        "tenant_id": DIRECTORY_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "authority": server.url,
        "graph_base": server.url,
        "internal_domains": ["clinic.example"],
    }
    return ActionContext(
        tenant_id=TenantId("clinic"),
        run_id="run-7",
        step_id="contain",
        idempotency_key="run-7/contain",
        config={**base, **config},
        dry_run=dry_run,
        clock=lambda: NOW,
    )


def user(graph: FakeGraph, upn: str) -> GraphUser:
    return next(u for u in graph.users.values() if u.user_principal_name == upn)


# -- get_user -----------------------------------------------------------------------------------------


def test_get_user_reads_the_account(server, graph, http):
    result = GetUser(http=http).run(context(server), {"user": "dana@clinic.example"})
    assert result.status == "succeeded"
    assert not result.changed
    assert result.output["user_id"] == user(graph, "dana@clinic.example").id
    assert result.output["account_enabled"] is True
    assert result.output["department"] == "Front desk"
    assert server.writes() == []
    (read,) = server.log("GET", "/v1.0/users/")
    assert "accountEnabled" in read.query["$select"][0]


def test_get_user_of_an_unknown_user_is_target_not_found(server, http):
    with pytest.raises(ConnectorError) as caught:
        GetUser(http=http).run(context(server), {"user": "ghost@clinic.example"})
    assert caught.value.code == "respond.target_not_found"
    assert caught.value.vendor_code == "Request_ResourceNotFound"


def test_a_guest_upn_is_escaped_in_the_path(server, graph, http):
    upn = "ann_fabrikam.com#EXT#@clinic.onmicrosoft.com"
    result = GetUser(http=http).run(context(server), {"user": upn})
    assert result.output["user_principal_name"] == upn
    assert result.output["user_type"] == "Guest"


# -- disable / enable ---------------------------------------------------------------------------------


def test_disable_user_disables_the_account(server, graph, http):
    result = DisableUser(http=http).run(context(server), {"user": "dana@clinic.example"})
    dana = user(graph, "dana@clinic.example")
    assert (result.status, result.changed) == ("succeeded", True)
    assert dana.account_enabled is False
    assert result.output == {
        "user_id": dana.id,
        "user_principal_name": "dana@clinic.example",
        "previous_account_enabled": True,
        "account_enabled": False,
    }
    assert result.external_ref == dana.id
    (patch,) = server.writes()
    assert (patch.method, patch.path, patch.json(), patch.status) == (
        "PATCH",
        f"/v1.0/users/{dana.id}",
        {"accountEnabled": False},
        204,
    )


def test_disabling_a_disabled_user_changes_nothing(server, graph, http):
    action = DisableUser(http=http)
    action.run(context(server), {"user": "dana@clinic.example"})
    again = action.run(context(server), {"user": "dana@clinic.example"})
    assert (again.status, again.changed) == ("succeeded", False)
    assert "already disabled" in again.summary
    assert len(server.writes()) == 1


def test_disable_user_dry_run_makes_no_write_call(server, graph, http):
    result = DisableUser(http=http).run(context(server, dry_run=True), {"user": "dana@clinic.example"})
    assert result.status == "dry_run"
    assert result.summary == "would disable user dana@clinic.example in Entra ID"
    assert user(graph, "dana@clinic.example").account_enabled is True
    assert server.writes() == []


def test_rollback_of_disable_enables_the_user_again(server, graph, http):
    action = DisableUser(http=http)
    done = action.run(context(server), {"user": "dana@clinic.example"})
    undone = action.rollback(context(server), {"user": "dana@clinic.example"}, done)
    assert (undone.status, undone.changed) == ("succeeded", True)
    assert undone.summary == "enabled user dana@clinic.example in Entra ID"
    assert user(graph, "dana@clinic.example").account_enabled is True


def test_rollback_leaves_a_user_that_was_disabled_before_us_disabled(server, graph, http):
    user(graph, "dana@clinic.example").account_enabled = False
    action = DisableUser(http=http)
    done = action.run(context(server), {"user": "dana@clinic.example"})
    undone = action.rollback(context(server), {"user": "dana@clinic.example"}, done)
    assert (undone.status, undone.changed) == ("skipped", False)
    assert user(graph, "dana@clinic.example").account_enabled is False
    assert server.writes() == []


def test_enable_user(server, graph, http):
    user(graph, "dana@clinic.example").account_enabled = False
    result = EnableUser(http=http).run(context(server), {"user": "dana@clinic.example"})
    assert (result.status, result.changed) == ("succeeded", True)
    assert user(graph, "dana@clinic.example").account_enabled is True


def test_an_on_premises_synced_user_cannot_be_disabled_in_the_cloud(server, graph, http):
    with pytest.raises(ConnectorError) as caught:
        DisableUser(http=http).run(context(server), {"user": "sync.user@clinic.example"})
    error = caught.value
    assert (error.code, error.status, error.vendor_code) == ("respond.bad_request", 400, "Request_BadRequest")
    assert "on-premises mastered" in error.message
    assert not error.retryable


def test_disable_without_the_permission_is_forbidden_and_not_retryable(server, graph, http, sleeps):
    graph.denied.add("update_user")
    with pytest.raises(ConnectorError) as caught:
        DisableUser(http=http).run(context(server), {"user": "dana@clinic.example"})
    assert (caught.value.code, caught.value.vendor_code) == (
        "respond.forbidden",
        "Authorization_RequestDenied",
    )
    assert not caught.value.retryable
    assert sleeps == []


def test_a_throttled_disable_waits_as_graph_asks_then_succeeds(server, graph, http, sleeps):
    body = graph_error_body("TooManyRequests", "Too many requests")
    server.faults.fail_next(1, 429, json=body, headers={"Retry-After": "4"}, method="PATCH")
    result = DisableUser(http=http).run(context(server), {"user": "dana@clinic.example"})
    assert result.changed
    assert sleeps == [4.0]
    assert user(graph, "dana@clinic.example").account_enabled is False


def test_missing_config_names_the_keys_and_never_the_secret(server, http):
    ctx = context(server, client_id="", tenant_id=None)
    with pytest.raises(ConnectorConfigError) as caught:
        DisableUser(http=http).run(ctx, {"user": "dana@clinic.example"})
    assert "tenant_id" in str(caught.value)
    assert "client_id" in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)
    assert server.log() == []


def test_a_missing_user_input_is_refused_before_any_call(server, http):
    with pytest.raises(ConnectorError) as caught:
        DisableUser(http=http).run(context(server), {"user": "  "})
    assert caught.value.code == "respond.invalid_input"
    assert server.log() == []


# -- revoke sessions ----------------------------------------------------------------------------------


def test_revoke_sessions(server, graph, http):
    result = RevokeSessions(http=http).run(context(server), {"user": "dana@clinic.example"})
    assert (result.status, result.changed) == ("succeeded", True)
    assert result.output["revoked_at"] == NOW.isoformat()
    assert user(graph, "dana@clinic.example").revocations == 1
    (post,) = server.writes()
    assert post.path.endswith("/revokeSignInSessions")


def test_revoke_sessions_dry_run_makes_no_write_call(server, graph, http):
    result = RevokeSessions(http=http).run(context(server, dry_run=True), {"user": "dana@clinic.example"})
    assert result.status == "dry_run"
    assert user(graph, "dana@clinic.example").revocations == 0
    assert server.writes() == []


def test_revoke_sessions_is_not_reversible(server, http):
    action = RevokeSessions(http=http)
    done = action.run(context(server), {"user": "dana@clinic.example"})
    with pytest.raises(ConnectorError) as caught:
        action.rollback(context(server), {"user": "dana@clinic.example"}, done)
    assert caught.value.code == "respond.not_reversible"


# -- inbox rules --------------------------------------------------------------------------------------


def test_list_inbox_rules_reports_forwarding_and_external_addresses(server, graph, http):
    result = ListInboxRules(http=http).run(context(server), {"user": "dana@clinic.example"})
    output = result.output
    assert output["rule_count"] == 5
    assert [rule["display_name"] for rule in output["forwarding_rules"]] == [
        "invoices to me",
        "team copy",
        ".",
    ]
    team = output["forwarding_rules"][1]
    assert team["external"] is False
    assert team["targets"] == [
        {"action": "forwardTo", "address": "frontdesk@clinic.example", "external": False}
    ]
    hidden = output["forwarding_rules"][2]
    assert hidden["targets"] == [
        {"action": "redirectTo", "address": "collect@evil.example", "external": True},
        {"action": "forwardAsAttachmentTo", "address": "drop@evil.example", "external": True},
    ]
    assert output["external_addresses"] == [
        "collect@evil.example",
        "dana.private@gmail.example",
        "drop@evil.example",
    ]
    assert len(output["external_rule_ids"]) == 2
    assert "2 outside the organisation" in result.summary
    assert len(server.log("GET", "/messageRules")) == 3  # 5 rules, 2 a page
    assert server.writes() == []


def test_remove_inbox_rules_removes_forwarding_rules_and_keeps_the_others(server, graph, http):
    result = RemoveInboxRules(http=http).run(context(server), {"user": "dana@clinic.example"})
    dana = user(graph, "dana@clinic.example")
    assert (result.status, result.changed) == ("succeeded", True)
    assert [rule["displayName"] for rule in dana.rules] == ["move newsletters", "flag boss"]
    removed = result.output["removed"]
    assert [rule["displayName"] for rule in removed] == ["invoices to me", "team copy", "."]
    assert removed[2]["actions"]["redirectTo"] == [
        {"emailAddress": {"name": "collect@evil.example", "address": "collect@evil.example"}}
    ]  # the full definition, for the record
    assert result.output["kept_rule_ids"] == [rule["id"] for rule in dana.rules]
    assert [w.method for w in server.writes()] == ["DELETE"] * 3
    assert "collect@evil.example" in result.summary


def test_removing_inbox_rules_again_changes_nothing(server, graph, http):
    action = RemoveInboxRules(http=http)
    action.run(context(server), {"user": "dana@clinic.example"})
    again = action.run(context(server), {"user": "dana@clinic.example"})
    assert (again.status, again.changed) == ("succeeded", False)
    assert again.output["removed"] == []
    assert len(server.writes()) == 3


def test_remove_inbox_rules_by_id(server, graph, http):
    dana = user(graph, "dana@clinic.example")
    newsletter = dana.rules[1]["id"]
    result = RemoveInboxRules(http=http).run(
        context(server), {"user": "dana@clinic.example", "rule_ids": [newsletter, "AQAAAgone="]}
    )
    assert [rule["id"] for rule in result.output["removed"]] == [newsletter]
    assert result.output["not_found_rule_ids"] == ["AQAAAgone="]
    assert len(dana.rules) == 4


def test_remove_inbox_rules_dry_run_makes_no_write_call(server, graph, http):
    result = RemoveInboxRules(http=http).run(context(server, dry_run=True), {"user": "dana@clinic.example"})
    assert result.status == "dry_run"
    assert [rule["displayName"] for rule in result.output["would_remove"]] == [
        "invoices to me",
        "team copy",
        ".",
    ]
    assert len(user(graph, "dana@clinic.example").rules) == 5
    assert server.writes() == []


def test_a_failure_half_way_keeps_the_record_of_what_was_removed(server, graph, http):
    body = graph_error_body("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    server.faults.fail_next(1, 403, json=body, method="DELETE")  # the first DELETE fails...
    with pytest.raises(ConnectorError):  # ... nothing removed yet: a plain error
        RemoveInboxRules(http=http).run(context(server), {"user": "dana@clinic.example"})
    server.faults.clear()
    graph.page_size = 10
    # Now the second DELETE fails: the first removal is reported with its definition.
    second = user(graph, "dana@clinic.example").rules[2]["id"]
    server.faults.fail_next(1, 403, json=body, path_contains=second.rstrip("="), method="DELETE")
    result = RemoveInboxRules(http=http).run(context(server), {"user": "dana@clinic.example"})
    assert (result.status, result.changed) == ("failed", True)
    assert [rule["displayName"] for rule in result.output["removed"]] == ["invoices to me"]
    assert result.output["error"]["vendor_code"] == "ErrorAccessDenied"


def test_a_user_without_a_mailbox(server, http):
    with pytest.raises(ConnectorError) as caught:
        ListInboxRules(http=http).run(context(server), {"user": "nomail@clinic.example"})
    assert caught.value.vendor_code == "MailboxNotEnabledForRESTAPI"


# -- manifests ----------------------------------------------------------------------------------------


def test_manifests_declare_config_secrets_and_reversibility():
    manifests = {cls.manifest.id: cls.manifest for cls in msgraph.ACTIONS}
    assert set(manifests) == {
        "msgraph.get_user",
        "msgraph.disable_user",
        "msgraph.enable_user",
        "msgraph.revoke_sessions",
        "msgraph.list_inbox_rules",
        "msgraph.remove_inbox_rules",
    }
    for manifest in manifests.values():
        assert manifest.secrets == ("client_secret",)
        assert {"tenant_id", "client_id", "client_secret"} <= set(manifest.config)
        if manifest.reverse_action:
            assert manifest.reverse_action in manifests
    assert manifests["msgraph.disable_user"].reverse_action == "msgraph.enable_user"
    assert not manifests["msgraph.remove_inbox_rules"].reversible
    assert manifests["msgraph.list_inbox_rules"].risk == "read_only"
    assert manifests["msgraph.remove_inbox_rules"].target == "mailbox"
