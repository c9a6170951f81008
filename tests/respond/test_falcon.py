"""The CrowdStrike Falcon containment actions against a loopback fake of the Falcon API."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.respond.fakes.falcon import CLIENT_ID, CLIENT_SECRET, FakeFalcon, falcon_body
from tests.respond.fakes.server import LoopbackServer
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import ActionContext, ConnectorError
from watchfloor.respond.connectors.falcon import ContainHost, LiftContainment
from watchfloor.respond.http import HttpOptions, TokenCache

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def falcon() -> FakeFalcon:
    fake = FakeFalcon()
    fake.add_device("ws-17", last_seen="2026-12-04T08:00:00Z")
    fake.add_device("WS-17", last_seen="2025-01-01T08:00:00Z")  # a stale record of a reinstalled sensor
    fake.add_device("reception-pc", status="contained")
    return fake


@pytest.fixture
def server(falcon: FakeFalcon) -> Iterator[LoopbackServer]:
    with LoopbackServer(falcon.app()) as running:
        yield running


@pytest.fixture
def http() -> HttpOptions:
    return HttpOptions(sleep=lambda _: None, token_cache=TokenCache())


def context(server: LoopbackServer, *, dry_run: bool = False, secret: str = CLIENT_SECRET) -> ActionContext:
    return ActionContext(
        tenant_id=TenantId("clinic"),
        run_id="run-9",
        step_id="contain",
        idempotency_key="run-9/contain",
        config={"base_url": server.url, "client_id": CLIENT_ID, "client_secret": secret},
        dry_run=dry_run,
        clock=lambda: NOW,
    )


def current(falcon: FakeFalcon, name: str = "ws-17") -> str:
    return max(
        (d for d in falcon.devices.values() if d.hostname == name), key=lambda d: d.last_seen
    ).device_id


def test_contain_a_host_by_fqdn(server, falcon, http):
    result = ContainHost(http=http).run(context(server), {"host": "ws-17.clinic.local"})
    aid = current(falcon)
    assert (result.status, result.changed, result.external_ref) == ("succeeded", True, aid)
    assert falcon.devices[aid].status == "containment_pending"
    assert len(result.output["same_name_device_ids"]) == 1
    (post,) = server.writes()
    assert post.path == "/devices/entities/devices-actions/v2"
    assert post.query == {"action_name": ["contain"]}
    assert post.json() == {"ids": [aid]}
    assert post.status == 202
    token = server.log("POST", "/oauth2/token")[0].form()
    assert token["client_id"] == CLIENT_ID
    queries = server.log("GET", "/devices/queries")
    assert [q.query["filter"][0] for q in queries] == ["hostname:'ws-17.clinic.local'", "hostname:'ws-17'"]


def test_contain_by_device_id(server, falcon, http):
    aid = current(falcon)
    result = ContainHost(http=http).run(context(server), {"host": aid})
    assert result.output["hostname"] == "ws-17"
    assert server.log("GET", "/devices/queries") == []


def test_dry_run_makes_no_write_call(server, falcon, http):
    result = ContainHost(http=http).run(context(server, dry_run=True), {"host": "ws-17"})
    assert (result.status, result.summary) == ("dry_run", "would contain host ws-17 in Falcon")
    assert server.writes() == []
    assert falcon.devices[current(falcon)].status == "normal"


def test_containing_again_changes_nothing(server, falcon, http):
    ContainHost(http=http).run(context(server), {"host": "ws-17"})
    pending = ContainHost(http=http).run(context(server), {"host": "ws-17"})
    assert (pending.changed, "already pending" in pending.summary) == (False, True)
    falcon.complete()
    done = ContainHost(http=http).run(context(server), {"host": "ws-17"})
    assert (done.changed, "already contained" in done.summary) == (False, True)
    assert len(server.writes()) == 1


def test_a_pending_lift_blocks_containment_with_a_retryable_conflict(server, falcon, http):
    LiftContainment(http=http).run(context(server), {"host": "reception-pc"})
    with pytest.raises(ConnectorError) as caught:
        ContainHost(http=http).run(context(server), {"host": "reception-pc"})
    assert (caught.value.code, caught.value.retryable) == ("respond.conflict", True)


def test_rollback_lifts_the_containment(server, falcon, http):
    action = ContainHost(http=http)
    done = action.run(context(server), {"host": "ws-17"})
    falcon.complete()
    undone = action.rollback(context(server), {"host": "ws-17"}, done)
    assert (undone.status, undone.changed) == ("succeeded", True)
    assert server.writes()[-1].query == {"action_name": ["lift_containment"]}
    falcon.complete()
    assert falcon.devices[current(falcon)].status == "normal"


def test_rollback_of_a_containment_that_changed_nothing_does_nothing(server, falcon, http):
    done = ContainHost(http=http).run(context(server), {"host": "reception-pc"})
    assert not done.changed
    undone = ContainHost(http=http).rollback(context(server), {"host": "reception-pc"}, done)
    assert undone.status == "skipped"
    assert server.writes() == []


def test_lift_of_an_uncontained_host_changes_nothing(server, http):
    result = LiftContainment(http=http).run(context(server), {"host": "ws-17"})
    assert (result.changed, result.output["status"]) == (False, "normal")


def test_a_throttled_request_waits_for_retry_after(server, falcon):
    waits: list[float] = []
    http = HttpOptions(sleep=waits.append, token_cache=TokenCache())
    body = falcon_body([], [{"code": 429, "message": "API rate limit exceeded."}])
    headers = {"Retry-After": "7", "X-RateLimit-RetryAfter": str(int(NOW.timestamp()) + 7)}
    server.faults.fail_next(1, 429, json=body, headers=headers, path_contains="devices-actions")
    assert ContainHost(http=http).run(context(server), {"host": "ws-17"}).changed
    assert waits == [7.0]


def test_x_ratelimit_retryafter_alone_is_honoured(server, falcon):
    waits: list[float] = []
    http = HttpOptions(sleep=waits.append, token_cache=TokenCache())
    body = falcon_body([], [{"code": 429, "message": "API rate limit exceeded."}])
    headers = {"X-RateLimit-RetryAfter": str(int(NOW.timestamp()) + 12)}
    server.faults.fail_next(1, 429, json=body, headers=headers, path_contains="devices/queries")
    ContainHost(http=http).run(context(server), {"host": "ws-17"})
    assert waits == [12.0]


def test_auth_failure_names_no_secret(server, http, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConnectorError) as caught:
        ContainHost(http=http).run(context(server, secret="wrong-SECRET-123"), {"host": "ws-17"})
    assert (caught.value.code, caught.value.status) == ("respond.auth_failed", 403)
    assert "authorization failed" in caught.value.message
    assert server.writes() == []
    for text in (str(caught.value), caplog.text):
        assert "wrong-SECRET-123" not in text
        assert CLIENT_SECRET not in text


def test_forbidden_without_the_hosts_write_scope(server, falcon, http):
    falcon.denied = True
    with pytest.raises(ConnectorError) as caught:
        ContainHost(http=http).run(context(server), {"host": "ws-17"})
    assert (caught.value.code, caught.value.vendor_code) == ("respond.forbidden", "403")


def test_host_not_found(server, http):
    with pytest.raises(ConnectorError) as caught:
        ContainHost(http=http).run(context(server), {"host": "ws-99.clinic.local"})
    assert caught.value.code == "respond.target_not_found"
    assert server.writes() == []


def test_unknown_device_id_is_not_found(server, http):
    with pytest.raises(ConnectorError) as caught:
        ContainHost(http=http).run(context(server), {"host": "0" * 32})
    assert (caught.value.code, caught.value.status) == ("respond.target_not_found", 404)


def test_a_hostname_that_would_inject_fql_is_refused(server, http):
    with pytest.raises(ConnectorError) as caught:
        ContainHost(http=http).run(context(server), {"host": "ws-17',platform_name:'Windows"})
    assert caught.value.code == "respond.invalid_input"
    assert server.log() == []


def test_an_expired_token_is_refreshed_once(server, falcon, http):
    LiftContainment(http=http).run(context(server), {"host": "ws-17"})
    falcon.tokens.clear()  # every token issued so far is now refused
    result = ContainHost(http=http).run(context(server), {"host": "ws-17"})
    assert result.changed
    assert len(server.log("POST", "/oauth2/token")) == 2
