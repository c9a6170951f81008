"""Response over the admin API on real components (see `tests/server/test_response_stage.py`): runs started
by the stage or by hand, approvals by roster analysts, the response policy and the kill switch.

Who is who (`content/soc/roster.example.yml`): `frieda` an in-house T3 (EMEA), `dora` an in-house T1, `pia`
an outsourced partner T1 (nightwatch: clinic, ...), `gus` a T1 cleared only for the law firms, `dm-emea` a
duty manager. The routes are mounted the way `build_api_router` will mount them, with the engine on the
context's `response` field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import AdminToken, problem
from tests.server.test_response_stage import CLINIC, ResponseWorld, response_world, store_incident
from watchfloor.api import response
from watchfloor.api.auth import AdminGuard
from watchfloor.api.context import ApiContext
from watchfloor.api.problems import problem_route_class
from watchfloor.respond.engine import RunEngine
from watchfloor.storage.respond import PLATFORM_TENANT

V1 = "/api/v1"
T3 = {"X-Watchfloor-Actor": "frieda"}
T1 = {"X-Watchfloor-Actor": "dora"}
PARTNER = {"X-Watchfloor-Actor": "pia"}
LAW_ONLY = {"X-Watchfloor-Actor": "gus"}
MANAGER = {"X-Watchfloor-Actor": "dm-emea"}
CLIENT_SECRET_MARKER = "DoNotLog"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseContext(ApiContext):
    """ApiContext with the field the lead adds (`response: RunEngine | None = None`)."""

    response: RunEngine | None = None


def make_client(
    world: ResponseWorld, token: AdminToken, tmp_path: Path, *, engine: bool = True
) -> TestClient:
    router = APIRouter(prefix=V1, route_class=problem_route_class(AdminGuard(token.sha256)))
    ctx = ResponseContext(
        db=world.db,
        archive_root=tmp_path / "archive",
        cases=world.cases,
        response=world.engine if engine else None,
    )
    response.routes(router, ctx)
    app = FastAPI()
    app.include_router(router)
    return TestClient(app, headers=token.headers)


@dataclass
class Api:
    world: ResponseWorld
    client: TestClient

    def run(self, run_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get(f"{V1}/tenants/clinic/runs/{run_id}").json()
        return body

    def steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        return {s["step_id"]: s for s in self.run(run_id)["steps"]}


@pytest.fixture
def api(tmp_path: Path, admin_token: AdminToken) -> Iterator[Api]:
    with response_world(tmp_path) as world:
        yield Api(world=world, client=make_client(world, admin_token, tmp_path))


@pytest.fixture
def waiting(api: Api) -> str:
    """The stage started isolate-host for inc-1; it waits for the approval of step `approve`."""
    store_incident(api.world.db)
    (run,) = api.world.stage.tick().started
    return run.id


def approve_url(run_id: str, step_id: str = "approve") -> str:
    return f"{V1}/tenants/clinic/runs/{run_id}/approvals/{step_id}"


# -- reading -----------------------------------------------------------------------------------------------


def test_runs_list_and_detail_show_steps_but_never_connector_config(api: Api, waiting: str) -> None:
    listed = api.client.get(f"{V1}/tenants/clinic/runs", params={"incident_id": "inc-1"})
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()] == [waiting]
    assert api.client.get(f"{V1}/tenants/clinic/runs", params={"state": "succeeded"}).json() == []
    problem(api.client.get(f"{V1}/tenants/clinic/runs", params={"state": "nope"}), 400)

    detail = api.client.get(f"{V1}/tenants/clinic/runs/{waiting}")
    assert detail.status_code == 200
    body = detail.json()
    assert body["run"]["playbook_id"] == "isolate-host"
    assert [s["step_id"] for s in body["steps"]] == ["approve", "isolate"]
    (approval,) = body["approvals"]
    assert approval["actions"] == [{"step_id": "isolate", "action": "mde.isolate_machine", "kind": "contain"}]
    assert CLIENT_SECRET_MARKER not in detail.text
    problem(api.client.get(f"{V1}/tenants/clinic/runs/run_nope"), 404)
    api.world.db.tenants.create("lawfirm-ms", name="Law", vertical="legal", tier="premium", actor="tests")
    problem(api.client.get(f"{V1}/tenants/lawfirm-ms/runs/{waiting}"), 404)  # another tenant's run
    problem(api.client.get(f"{V1}/tenants/lawfirm-ms/runs/{waiting}", headers=PARTNER), 403)  # out of scope
    problem(api.client.get(f"{V1}/tenants/nope/runs"), 404)


def test_open_approvals_in_the_actors_scope(api: Api, waiting: str) -> None:
    mine = api.client.get(f"{V1}/approvals", headers=T3)
    assert mine.status_code == 200
    (approval,) = mine.json()
    assert approval["run_id"] == waiting
    assert approval["incident_id"] == "inc-1"
    assert approval["expired"] is False
    assert approval["deadline"].startswith("2026-12-02T09:20:00")
    assert approval["actions"][0]["action"] == "mde.isolate_machine"
    assert api.client.get(f"{V1}/approvals", headers=LAW_ONLY).json() == []  # clinic is outside gus' scope
    problem(api.client.get(f"{V1}/approvals", params={"tenant": "clinic"}, headers=LAW_ONLY), 403)


# -- approvals ---------------------------------------------------------------------------------------------


def test_a_t3_approves_and_the_host_is_isolated(api: Api, waiting: str) -> None:
    answer = api.client.post(
        approve_url(waiting), json={"decision": "approve", "reason": "confirmed"}, headers=T3
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["run"]["state"] == "succeeded"
    steps = {s["step_id"]: s for s in body["steps"]}
    assert steps["approve"]["approved_by"] == "frieda"
    assert steps["isolate"]["approved_by"] == "frieda"
    assert steps["isolate"]["state"] == "succeeded"
    assert steps["isolate"]["inputs"] == {"host": "ws-17", "comment": "incident inc-1"}
    (action,) = api.world.mde.actions
    assert action["type"] == "Isolate"
    assert steps["isolate"]["external_ref"] == action["id"]
    decided = api.world.db.audit.list(CLINIC, action="response.approval_approved")
    assert [e.actor for e in decided] == ["frieda"]

    again = api.client.post(approve_url(waiting), json={"decision": "approve", "reason": "twice"}, headers=T3)
    problem(again, 409, "response.approval_decided")
    assert len(api.world.mde.actions) == 1


@pytest.mark.parametrize("who", [PARTNER, T1, {"X-Watchfloor-Actor": "ben"}])
def test_analysts_without_approve_response_get_403_and_nothing_happens(
    api: Api, waiting: str, who: dict[str, str]
) -> None:
    answer = api.client.post(approve_url(waiting), json={"decision": "approve", "reason": "go"}, headers=who)
    problem(answer, 403, "cases.permission_denied")
    assert api.world.db.response.get_approval(CLINIC, waiting, "approve").decision is None
    assert api.steps(waiting)["isolate"]["state"] == "pending"
    assert api.world.mde.actions == []
    assert api.world.server.writes() == []


def test_an_unknown_actor_is_403(api: Api, waiting: str) -> None:
    answer = api.client.post(
        approve_url(waiting),
        json={"decision": "approve", "reason": "go"},
        headers={"X-Watchfloor-Actor": "eve"},
    )
    problem(answer, 403, "cases.unknown_actor")


def test_a_rejection_fails_closed(api: Api, waiting: str) -> None:
    answer = api.client.post(
        approve_url(waiting), json={"decision": "reject", "reason": "server"}, headers=MANAGER
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["run"]["state"] == "failed_closed"
    assert api.world.mde.actions == []


def test_an_approval_past_its_deadline_is_409_and_fails_closed(api: Api, waiting: str) -> None:
    api.world.clock.advance(timedelta(minutes=21))
    late = api.client.post(approve_url(waiting), json={"decision": "approve", "reason": "late"}, headers=T3)
    problem(late, 409, "response.approval_decided")
    assert api.run(waiting)["run"]["state"] == "failed_closed"
    assert api.world.mde.actions == []


def test_bad_decisions_are_422(api: Api, waiting: str) -> None:
    problem(api.client.post(approve_url(waiting), json={"decision": "maybe", "reason": "x"}, headers=T3), 422)
    problem(
        api.client.post(approve_url(waiting), json={"decision": "approve", "reason": ""}, headers=T3), 422
    )
    problem(api.client.post(approve_url(waiting, "nope"), json={"decision": "approve", "reason": "x"}), 404)


# -- starting and cancelling by hand -------------------------------------------------------------------------


def test_a_dry_run_by_hand_makes_no_write_call(api: Api) -> None:
    store_incident(api.world.db, severity="medium")  # matches nothing: by hand any playbook may run
    answer = api.client.post(
        f"{V1}/tenants/clinic/incidents/inc-1/runs",
        json={"playbook_id": "isolate-host", "dry_run": True},
        headers=T1,
    )  # a T1 may not contain, but may dry-run
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["run"]["dry_run"] is True
    assert body["run"]["state"] == "succeeded"
    assert body["run"]["created_by"] == "dora"
    isolate = {s["step_id"]: s for s in body["steps"]}["isolate"]
    assert isolate["output"]["record"]["status"] == "dry_run"
    assert api.world.server.writes() == []
    assert api.world.mde.actions == []


def test_a_real_run_by_hand_needs_contain(api: Api) -> None:
    store_incident(api.world.db, severity="medium")
    url = f"{V1}/tenants/clinic/incidents/inc-1/runs"
    problem(
        api.client.post(url, json={"playbook_id": "isolate-host"}, headers=T1), 403, "cases.permission_denied"
    )
    problem(api.client.post(url, json={"playbook_id": "nope"}, headers=T3), 404, "response.no_playbook")
    problem(
        api.client.post(f"{V1}/tenants/clinic/incidents/inc-9/runs", json={"playbook_id": "isolate-host"}),
        404,
    )
    started = api.client.post(url, json={"playbook_id": "isolate-host"}, headers=T3)
    assert started.status_code == 201, started.text
    run_id = started.json()["run"]["id"]
    assert started.json()["run"]["state"] == "waiting_approval"

    problem(
        api.client.post(f"{V1}/tenants/clinic/runs/{run_id}/cancel", json={"reason": "x"}, headers=T1), 403
    )
    cancelled = api.client.post(
        f"{V1}/tenants/clinic/runs/{run_id}/cancel", json={"reason": "by phone"}, headers=T3
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["run"]["state"] == "cancelled"
    again = api.client.post(f"{V1}/tenants/clinic/runs/{run_id}/cancel", json={"reason": "again"}, headers=T3)
    problem(again, 409, "respond.run")
    assert api.world.mde.actions == []


# -- kill switch ---------------------------------------------------------------------------------------------


def test_the_kill_switch_refuses_new_containment(api: Api) -> None:
    store_incident(api.world.db)
    url = f"{V1}/response/kill-switch"
    assert api.client.get(url).json() == {"engaged": False}
    problem(api.client.put(url, json={"engaged": True, "reason": "vendor outage"}, headers=T3), 403)
    problem(api.client.put(url, json={"engaged": True, "reason": "vendor outage"}, headers=PARTNER), 403)
    problem(api.client.put(url, json={"engaged": True, "reason": ""}, headers=MANAGER), 422)
    engaged = api.client.put(url, json={"engaged": True, "reason": "vendor outage"}, headers=MANAGER)
    assert engaged.status_code == 200, engaged.text
    assert engaged.json() == {"engaged": True}
    assert api.client.get(url, headers=PARTNER).json() == {"engaged": True}
    (entry,) = api.world.db.audit.list(PLATFORM_TENANT, action="response.switch_on")  # type: ignore[arg-type]
    assert entry.actor == "dm-emea"
    assert entry.details["reason"] == "vendor outage"

    start = f"{V1}/tenants/clinic/incidents/inc-1/runs"
    problem(
        api.client.post(start, json={"playbook_id": "isolate-host"}, headers=T3), 409, "response.kill_switch"
    )
    dry = api.client.post(start, json={"playbook_id": "isolate-host", "dry_run": True}, headers=T3)
    assert dry.status_code == 201
    (run,) = api.world.stage.tick().started  # the stage starts it; the engine refuses the containment
    approved = api.client.post(approve_url(run.id), json={"decision": "approve", "reason": "go"}, headers=T3)
    assert approved.status_code == 200
    assert approved.json()["run"]["state"] == "failed_closed"
    assert {s["step_id"]: s["state"] for s in approved.json()["steps"]}["isolate"] == "refused"
    assert api.world.mde.actions == []

    released = api.client.put(url, json={"engaged": False, "reason": "vendor fixed"})
    assert released.json() == {"engaged": False}


# -- policy --------------------------------------------------------------------------------------------------


def test_policy_put_is_validated_and_needs_manage_tenant(api: Api) -> None:
    url = f"{V1}/tenants/clinic/response-policy"
    shown = api.client.get(url, headers=T1)
    assert shown.status_code == 200
    assert shown.json()["stored"] is None
    assert shown.json()["effective"]["risks"]["containment"]["mode"] == "ask_approval"

    bad = api.client.put(url, json={"risks": {"containment": {"mode": "yolo"}}})
    assert "risks.containment.mode" in problem(bad, 400, "response.policy_invalid")["detail"]
    unknown = api.client.put(url, json={"riskz": {}})
    assert "riskz" in problem(unknown, 400, "response.policy_invalid")["detail"]
    limits = api.client.put(url, json={"limits_per_hour": {"host": -1}})
    assert "limits_per_hour.host" in problem(limits, 400)["detail"]
    good = {"risks": {"containment": {"mode": "automatic"}}, "limits_per_hour": {"host": 2}}
    problem(api.client.put(url, json=good, headers=MANAGER), 403, "cases.permission_denied")
    assert api.world.db.response.get_policy(CLINIC) is None

    stored = api.client.put(url, json=good)
    assert stored.status_code == 200, stored.text
    assert stored.json()["stored"] == good
    assert stored.json()["effective"]["limits_per_hour"]["host"] == 2
    assert api.world.db.response.get_policy(CLINIC) == good
    assert len(api.world.db.audit.list(CLINIC, action="response.policy_put")) == 1

    store_incident(api.world.db)  # the policy makes containment automatic; the playbook's own
    (run,) = api.world.stage.tick().started  # approval step still asks a person
    assert api.world.db.response.get_run(CLINIC, run.id).state == "waiting_approval"


# -- wiring --------------------------------------------------------------------------------------------------


def test_without_the_engine_every_route_is_503(api: Api, admin_token: AdminToken, tmp_path: Path) -> None:
    client = make_client(api.world, admin_token, tmp_path, engine=False)
    problem(client.get(f"{V1}/tenants/clinic/runs"), 503, "api.response_disabled")
    problem(client.get(f"{V1}/approvals"), 503, "api.response_disabled")
    problem(client.get(f"{V1}/response/kill-switch"), 503, "api.response_disabled")
