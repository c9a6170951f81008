"""The Defender for Endpoint actions against a loopback fake of the MDE API; and the action registry
that serves them (with the Graph ones) to the run engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from tests.respond.fakes.mde import MDE_SCOPE, FakeMde, Machine, mde_error_body
from tests.respond.fakes.msgraph import CLIENT_ID, CLIENT_SECRET, DIRECTORY_ID, FakeEntra
from tests.respond.fakes.server import LoopbackServer
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import Action, ActionContext, ActionManifest, ActionResult, ConnectorError
from watchfloor.respond.connectors.mde import GetMachineAction, IsolateMachine, ReleaseMachine
from watchfloor.respond.http import ClientCredentials, ConnectorHttp, HttpOptions, TokenCache
from watchfloor.respond.registry import ActionRegistry, ActionRegistryError, UnknownActionError

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def mde() -> FakeMde:
    fake = FakeMde(FakeEntra(scopes=(MDE_SCOPE,)))
    fake.add_machine("ws-17.clinic.local", last_seen="2026-12-04T08:00:00Z")
    fake.add_machine("ws-17.clinic.local", last_seen="2025-06-01T08:00:00Z")  # a stale duplicate record
    fake.add_machine("reception-pc.clinic.local")
    return fake


@pytest.fixture
def server(mde: FakeMde) -> Iterator[LoopbackServer]:
    with LoopbackServer(mde.app()) as running:
        yield running


@pytest.fixture
def http() -> HttpOptions:
    return HttpOptions(sleep=lambda _: None, token_cache=TokenCache())


def context(server: LoopbackServer, *, dry_run: bool = False, step: str = "isolate") -> ActionContext:
    return ActionContext(
        tenant_id=TenantId("clinic"),
        run_id="run-9",
        step_id=step,
        idempotency_key=f"run-9/{step}",
        config={
            "tenant_id": DIRECTORY_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authority": server.url,
            "mde_base": server.url,
        },
        dry_run=dry_run,
        clock=lambda: NOW,
    )


def machine(mde: FakeMde, name: str) -> Machine:
    return max((m for m in mde.machines.values() if m.computer_dns_name == name), key=lambda m: m.last_seen)


# -- isolate ------------------------------------------------------------------------------------------


def test_isolate_a_machine_by_short_name(server, mde, http):
    result = IsolateMachine(http=http).run(context(server), {"host": "WS-17", "comment": "INC-42 ransomware"})
    target = machine(mde, "ws-17.clinic.local")
    assert (result.status, result.changed) == ("succeeded", True)
    (action,) = mde.actions
    assert (action["type"], action["status"], action["machineId"]) == ("Isolate", "Pending", target.id)
    assert result.external_ref == action["id"]
    assert result.output["machine_id"] == target.id  # the most recently seen of the two records
    assert len(result.output["same_name_machine_ids"]) == 1
    assert result.output["action_status"] == "Pending"
    (post,) = server.writes()
    assert post.path == f"/api/machines/{target.id}/isolate"
    assert post.json() == {"Comment": "INC-42 ransomware [watchfloor run-9/isolate]", "IsolationType": "Full"}
    assert post.status == 201


def test_isolate_by_fqdn_or_machine_id_and_selective(server, mde, http):
    reception = machine(mde, "reception-pc.clinic.local")
    result = IsolateMachine(http=http).run(
        context(server), {"host": reception.id, "isolation_type": "selective"}
    )
    assert result.output["computer_dns_name"] == "reception-pc.clinic.local"
    assert server.writes()[0].json()["IsolationType"] == "Selective"
    assert server.writes()[0].json()["Comment"].startswith("Watchfloor run run-9 step isolate")


def test_an_unknown_isolation_type_is_refused_before_any_call(server, http):
    with pytest.raises(ConnectorError) as caught:
        IsolateMachine(http=http).run(context(server), {"host": "ws-17", "isolation_type": "Partial"})
    assert caught.value.code == "respond.invalid_input"
    assert server.log() == []


def test_host_not_found(server, http):
    with pytest.raises(ConnectorError) as caught:
        IsolateMachine(http=http).run(context(server), {"host": "ws-99"})
    error = caught.value
    assert error.code == "respond.target_not_found"
    assert "no machine named 'ws-99'" in error.message
    assert server.writes() == []


def test_an_unknown_machine_id_is_looked_up_as_a_name_then_not_found(server, http):
    with pytest.raises(ConnectorError) as caught:
        IsolateMachine(http=http).run(context(server), {"host": "0" * 40})
    assert caught.value.code == "respond.target_not_found"


def test_isolate_dry_run_makes_no_write_call(server, mde, http):
    result = IsolateMachine(http=http).run(context(server, dry_run=True), {"host": "ws-17"})
    assert result.status == "dry_run"
    assert result.summary == "would isolate machine ws-17.clinic.local in Defender"
    assert mde.actions == []
    assert server.writes() == []


def test_isolating_again_while_pending_changes_nothing(server, mde, http):
    IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    again = IsolateMachine(http=http).run(context(server, step="isolate-again"), {"host": "ws-17"})
    assert (again.status, again.changed) == ("succeeded", False)
    assert "already pending" in again.summary
    assert again.external_ref == mde.actions[0]["id"]
    assert len(server.writes()) == 1


def test_a_retried_step_recognises_its_own_request(server, mde, http):
    first = IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    retried = IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    assert retried.changed  # the same idempotency key: the change is this step's (rollback must undo it)
    assert retried.external_ref == first.external_ref
    assert len(server.writes()) == 1


def test_isolating_an_isolated_machine_changes_nothing(server, mde, http):
    IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    mde.complete()
    again = IsolateMachine(http=http).run(context(server, step="later"), {"host": "ws-17"})
    assert (again.changed, again.summary) == (False, "machine ws-17.clinic.local is already isolated")


def test_active_request_already_exists_is_idempotent_success(server, mde, http):
    IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    mde.list_lag = True  # the action list does not show the pending request yet: the POST meets the 400
    again = IsolateMachine(http=http).run(context(server, step="other"), {"host": "ws-17"})
    assert (again.status, again.changed) == ("succeeded", False)
    posts = server.log("POST", "/isolate")
    assert [p.status for p in posts] == [201, 400]
    assert len(mde.actions) == 1


def test_a_pending_release_blocks_isolation_with_a_retryable_conflict(server, mde, http):
    IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    mde.complete()
    ReleaseMachine(http=http).run(context(server, step="release"), {"host": "ws-17"})
    with pytest.raises(ConnectorError) as caught:
        IsolateMachine(http=http).run(context(server, step="again"), {"host": "ws-17"})
    assert (caught.value.code, caught.value.retryable) == ("respond.conflict", True)
    assert caught.value.vendor_code == "ActiveRequestAlreadyExists"


def test_isolation_refused_for_lack_of_permission(server, mde, http):
    mde.denied = True
    with pytest.raises(ConnectorError) as caught:
        IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    assert (caught.value.code, caught.value.vendor_code, caught.value.retryable) == (
        "respond.forbidden",
        "Forbidden",
        False,
    )


def test_a_throttled_isolation_is_sent_again_after_retry_after(server, mde):
    waits: list[float] = []
    http = HttpOptions(sleep=waits.append, token_cache=TokenCache())
    body = mde_error_body("TooManyRequests", "Rate limit is exceeded. Try again in 5 seconds.")
    server.faults.fail_next(1, 429, json=body, headers={"Retry-After": "5"}, path_contains="/isolate")
    result = IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    assert result.changed
    assert waits == [5.0]
    assert len(mde.actions) == 1


# -- release and rollback -----------------------------------------------------------------------------


def test_rollback_releases_the_machine(server, mde, http):
    action = IsolateMachine(http=http)
    done = action.run(context(server), {"host": "ws-17"})
    mde.complete()
    assert machine(mde, "ws-17.clinic.local").isolated
    undone = action.rollback(context(server, step="undo"), {"host": "ws-17"}, done)
    assert (undone.status, undone.changed) == ("succeeded", True)
    release = mde.actions[-1]
    assert (release["type"], release["machineId"]) == ("Unisolate", done.output["machine_id"])
    assert "rollback of Watchfloor run run-9 step undo" in release["requestorComment"]
    mde.complete()
    assert not machine(mde, "ws-17.clinic.local").isolated


def test_rollback_of_an_isolation_that_changed_nothing_does_nothing(server, mde, http):
    IsolateMachine(http=http).run(context(server, step="someone-else"), {"host": "ws-17"})
    done = IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    writes = len(server.writes())
    undone = IsolateMachine(http=http).rollback(context(server), {"host": "ws-17"}, done)
    assert undone.status == "skipped"
    assert len(server.writes()) == writes


def test_release_of_a_released_machine_changes_nothing(server, mde, http):
    IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    mde.complete()
    ReleaseMachine(http=http).run(context(server, step="release"), {"host": "ws-17"})
    mde.complete()
    again = ReleaseMachine(http=http).run(context(server, step="release-again"), {"host": "ws-17"})
    assert (again.changed, again.summary) == (False, "machine ws-17.clinic.local is already released")


def test_release_dry_run_makes_no_write_call(server, mde, http):
    result = ReleaseMachine(http=http).run(context(server, dry_run=True), {"host": "ws-17"})
    assert result.status == "dry_run"
    assert server.writes() == []


# -- machine actions ----------------------------------------------------------------------------------


def test_get_machine_action_follows_the_request(server, mde, http):
    done = IsolateMachine(http=http).run(context(server), {"host": "ws-17"})
    follow = GetMachineAction(http=http)
    pending = follow.run(context(server), {"action_id": done.external_ref})
    assert (pending.output["status"], pending.output["done"]) == ("Pending", False)
    mde.complete("TimeOut")
    finished = follow.run(context(server), {"action_id": done.external_ref})
    assert (finished.output["status"], finished.output["done"]) == ("TimeOut", True)
    assert finished.output["type"] == "Isolate"


def test_get_machine_action_of_an_unknown_id(server, http):
    with pytest.raises(ConnectorError) as caught:
        GetMachineAction(http=http).run(
            context(server), {"action_id": "7f3c6b3e-0000-4000-8000-000000000000"}
        )
    assert (caught.value.code, caught.value.vendor_code) == ("respond.target_not_found", "ResourceNotFound")


def test_a_token_for_another_api_is_refused_once_refreshed_then_reported(server, mde, http):
    graph_scope = "https://graph.microsoft.com/.default"
    mde.entra.scopes = (MDE_SCOPE, graph_scope)
    credentials = ClientCredentials(
        token_url=f"{server.url}/{DIRECTORY_ID}/oauth2/v2.0/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scope=graph_scope,  # a Graph token: wrong audience for MDE
    )
    api = ConnectorHttp(
        connector="mde", tenant_id="clinic", base_url=server.url, credentials=credentials, options=http
    )
    with api, pytest.raises(ConnectorError) as caught:
        api.get_json("/api/machines")
    assert (caught.value.code, caught.value.vendor_code) == ("respond.unauthorized", "Unauthorized")
    assert [r.status for r in server.log("GET", "/api/machines")] == [401, 401]
    assert len(server.log("POST", "/token")) == 2


# -- the registry -------------------------------------------------------------------------------------


class _PluginAction(Action):
    manifest = ActionManifest(
        id="acme.ping",
        title="Ping",
        connector="acme",
        description="a third-party action",
        inputs=(),
        approval="never",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return ActionResult(status="succeeded", summary="pong")


class _Clash(_PluginAction):
    manifest = ActionManifest(
        id="mde.isolate_machine", title="x", connector="mde", description="x", inputs=()
    )


class _NoRollback(Action):
    manifest = ActionManifest(
        id="acme.block",
        title="x",
        connector="acme",
        description="x",
        inputs=(),
        risk="containment",
        reversible=True,
        reverse_action="acme.unblock",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return ActionResult(status="succeeded", summary="x")


def _entry_points(*values: str):
    def entry_points(*, group: str) -> list[EntryPoint]:
        assert group == "watchfloor.actions"
        return [EntryPoint(name=f"plugin{n}", value=value, group=group) for n, value in enumerate(values)]

    return entry_points


def test_registry_serves_the_builtin_actions():
    registry = ActionRegistry.default(plugins=False)
    assert isinstance(registry.get("msgraph.disable_user"), Action)
    ids = [manifest.id for manifest in registry.manifests()]
    assert ids == sorted(ids)
    assert {"msgraph.disable_user", "msgraph.remove_inbox_rules", "mde.isolate_machine"} <= set(ids)
    assert registry.problems == []


def test_unknown_action_ids_get_a_clear_error():
    registry = ActionRegistry.default(plugins=False)
    with pytest.raises(UnknownActionError) as caught:
        registry.get("mde.isolate_host")
    assert caught.value.code == "respond.unknown_action"
    assert "did you mean mde.isolate_machine" in str(caught.value)


def test_registry_discovers_plugins_and_leaves_broken_ones_out():
    here = __name__
    registry = ActionRegistry.default(
        entry_points=_entry_points(
            f"{here}:_PluginAction",
            f"{here}:_Clash",
            f"{here}:_NoRollback",
            "acme_missing.module:ACTIONS",
        )
    )
    assert registry.get("acme.ping").run(None, {}).summary == "pong"  # type: ignore[arg-type]
    assert registry.origin("mde.isolate_machine").startswith("watchfloor.respond.connectors.mde")
    assert "acme.block" not in registry
    problems = "\n".join(registry.problems)
    assert "already registered" in problems
    assert "does not implement rollback" in problems
    assert "cannot be loaded: ModuleNotFoundError" in problems


def test_a_registry_refuses_a_reverse_action_it_does_not_hold():
    with pytest.raises(ActionRegistryError, match=r"mde\.release_machine"):
        ActionRegistry([IsolateMachine])
