"""The Okta actions against a loopback fake of the Okta Users API."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.respond.fakes.okta import API_TOKEN, FakeOkta, okta_error_body
from tests.respond.fakes.server import LoopbackServer
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import ActionContext, ConnectorError
from watchfloor.respond.connectors.okta import ClearSessions, SuspendUser, UnsuspendUser
from watchfloor.respond.http import HttpOptions, TokenCache

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
DANA = "dana@clinic.example"


@pytest.fixture
def okta() -> FakeOkta:
    fake = FakeOkta()
    fake.add_user(DANA)
    fake.add_user("gone@clinic.example", status="DEPROVISIONED")
    fake.add_user("new@clinic.example", status="STAGED")
    return fake


@pytest.fixture
def server(okta: FakeOkta) -> Iterator[LoopbackServer]:
    with LoopbackServer(okta.app()) as running:
        yield running


@pytest.fixture
def http() -> HttpOptions:
    return HttpOptions(sleep=lambda _: None, token_cache=TokenCache())


def context(server: LoopbackServer, *, dry_run: bool = False, token: str = API_TOKEN) -> ActionContext:
    return ActionContext(
        tenant_id=TenantId("clinic"),
        run_id="run-9",
        step_id="suspend",
        idempotency_key="run-9/suspend",
        config={"org_url": server.url, "api_token": token},
        dry_run=dry_run,
        clock=lambda: NOW,
    )


def user(okta: FakeOkta, login: str = DANA):
    return next(u for u in okta.users.values() if u.login == login)


def test_suspend_a_user(server, okta, http):
    result = SuspendUser(http=http).run(context(server), {"user": DANA})
    dana = user(okta)
    assert (result.status, result.changed, result.external_ref) == ("succeeded", True, dana.id)
    assert dana.status == "SUSPENDED"
    (post,) = server.writes()
    assert post.path == f"/api/v1/users/{dana.id}/lifecycle/suspend"
    assert server.log("GET")[0].headers["authorization"] == f"SSWS {API_TOKEN}"
    assert server.log("GET")[0].path == f"/api/v1/users/{DANA}"


def test_suspend_dry_run_makes_no_write_call(server, okta, http):
    result = SuspendUser(http=http).run(context(server, dry_run=True), {"user": DANA})
    assert result.status == "dry_run"
    assert server.writes() == []
    assert user(okta).status == "ACTIVE"


def test_suspending_again_changes_nothing(server, okta, http):
    SuspendUser(http=http).run(context(server), {"user": DANA})
    again = SuspendUser(http=http).run(context(server), {"user": DANA})
    assert (again.changed, again.summary) == (False, f"Okta user {DANA} is already suspended")
    assert len(server.writes()) == 1


def test_a_deprovisioned_user_is_not_suspended(server, http):
    result = SuspendUser(http=http).run(context(server), {"user": "gone@clinic.example"})
    assert (result.status, result.changed) == ("succeeded", False)
    assert server.writes() == []


def test_suspending_a_staged_user_passes_on_oktas_validation_error(server, http):
    with pytest.raises(ConnectorError) as caught:
        SuspendUser(http=http).run(context(server), {"user": "new@clinic.example"})
    error = caught.value
    assert (error.code, error.vendor_code, error.status) == ("respond.bad_request", "E0000001", 400)
    assert "Api validation failed: suspend (Cannot suspend a user that is not active)" in error.message


def test_rollback_unsuspends(server, okta, http):
    action = SuspendUser(http=http)
    done = action.run(context(server), {"user": DANA})
    undone = action.rollback(context(server), {"user": DANA}, done)
    assert (undone.status, undone.changed) == ("succeeded", True)
    assert user(okta).status == "ACTIVE"
    assert server.writes()[-1].path.endswith("/lifecycle/unsuspend")


def test_rollback_of_a_suspension_that_changed_nothing_does_nothing(server, okta, http):
    user(okta).status = "SUSPENDED"
    done = SuspendUser(http=http).run(context(server), {"user": DANA})
    assert SuspendUser(http=http).rollback(context(server), {"user": DANA}, done).status == "skipped"
    assert user(okta).status == "SUSPENDED"
    assert UnsuspendUser(http=http).run(context(server, dry_run=True), {"user": DANA}).status == "dry_run"
    assert server.writes() == []


def test_clear_sessions(server, okta, http):
    result = ClearSessions(http=http).run(context(server), {"user": DANA})
    assert (result.changed, user(okta).session_clears) == (True, 1)
    (delete,) = server.writes()
    assert (delete.method, delete.status, delete.query) == ("DELETE", 204, {"oauthTokens": ["true"]})


def test_clear_sessions_dry_run_makes_no_write_call(server, okta, http):
    assert ClearSessions(http=http).run(context(server, dry_run=True), {"user": DANA}).status == "dry_run"
    assert server.writes() == []
    assert user(okta).session_clears == 0


def test_clear_sessions_is_not_reversible(server, http):
    done = ClearSessions(http=http).run(context(server), {"user": DANA})
    with pytest.raises(ConnectorError) as caught:
        ClearSessions(http=http).rollback(context(server), {"user": DANA}, done)
    assert caught.value.code == "respond.not_reversible"


def test_rate_limit_waits_until_x_rate_limit_reset(server, okta):
    waits: list[float] = []
    http = HttpOptions(sleep=waits.append, token_cache=TokenCache())
    body = okta_error_body("E0000047", "API call exceeded rate limit due to too many requests.")
    headers = {
        "X-Rate-Limit-Limit": "600",
        "X-Rate-Limit-Remaining": "0",
        "X-Rate-Limit-Reset": str(int(NOW.timestamp()) + 9),
    }
    server.faults.fail_next(1, 429, json=body, headers=headers, path_contains="/lifecycle/")
    assert SuspendUser(http=http).run(context(server), {"user": DANA}).changed
    assert waits == [9.0]
    assert user(okta).status == "SUSPENDED"


def test_an_invalid_token_is_reported_without_it(server, http, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConnectorError) as caught:
        SuspendUser(http=http).run(context(server, token="00wrong-TOKEN-value"), {"user": DANA})
    assert (caught.value.code, caught.value.vendor_code) == ("respond.unauthorized", "E0000011")
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert "00wrong-TOKEN-value" not in text
        assert API_TOKEN not in text


def test_unknown_user_is_not_found(server, http):
    with pytest.raises(ConnectorError) as caught:
        ClearSessions(http=http).run(context(server), {"user": "nobody@clinic.example"})
    assert (caught.value.code, caught.value.vendor_code) == ("respond.target_not_found", "E0000007")
    assert server.writes() == []


def test_a_missing_token_is_a_config_error(server, http):
    ctx = context(server, token="")
    with pytest.raises(ConnectorError) as caught:
        SuspendUser(http=http).run(ctx, {"user": DANA})
    assert caught.value.code == "respond.connector_config"
    assert server.log() == []
