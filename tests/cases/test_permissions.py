"""The permission table: tenant scope first, then one row per role (analysts by tier)."""

from __future__ import annotations

import re
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cases.conftest import BAKERY, CLINIC
from watchfloor.cases import permissions
from watchfloor.cases.models import SYSTEM, Actor, Role
from watchfloor.cases.permissions import (
    ACTIONS,
    PERMISSIONS,
    Action,
    CaseError,
    PermissionDeniedError,
    actions_for,
    allowed,
    authorize,
    grantee_of,
)
from watchfloor.core.errors import WatchfloorError
from watchfloor.core.types import ANALYST_TIERS, TenantId

PARTNER_ACTIONS = {"view", "triage", "annotate", "acknowledge", "escalate"}


def test_actions_literal_and_tuple_agree() -> None:
    assert set(typing.get_args(Action)) == set(ACTIONS)
    assert len(ACTIONS) == len(set(ACTIONS)) == 19


def test_every_role_and_tier_has_a_row() -> None:
    roles: tuple[Role, ...] = typing.get_args(Role)
    for role in roles:
        for tier in (None, *ANALYST_TIERS):
            assert grantee_of(Actor(id="x", role=role, tier=tier)) in PERMISSIONS


def test_documented_matrix_matches_the_table() -> None:
    """The module docstring's matrix is the table, cell for cell (docs cannot drift from data)."""
    doc = permissions.__doc__ or ""
    header = next(line for line in doc.splitlines() if line.startswith("| action"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    grantees = dict(
        zip(
            columns,
            [
                "mssp_admin",
                "soc_manager",
                "analyst_t1",
                "analyst_t2",
                "analyst_t3",
                "partner_analyst",
                "customer_admin",
                "customer_viewer",
                "system",
            ],
            strict=True,
        )
    )
    seen = set()
    for line in doc.splitlines():
        match = re.match(r"^\| (\w+)\s+\|(.*)\|$", line)
        if not match or match.group(1) not in ACTIONS:
            continue
        action = match.group(1)
        cells = [c.strip() for c in match.group(2).split("|")]
        for column, cell in zip(columns, cells, strict=True):
            assert (cell == "x") == (action in PERMISSIONS[grantees[column]]), (action, column)  # type: ignore[index]
        seen.add(action)
    assert seen == set(ACTIONS)


def test_partner_analyst_triages_annotates_escalates_for_its_tenants_only(t1_partner: Actor) -> None:
    assert actions_for(t1_partner, CLINIC) == PARTNER_ACTIONS
    assert actions_for(t1_partner, BAKERY) == frozenset()
    for action in ("contain", "close", "resolve", "reopen", "investigate", "request_customer", "assign"):
        assert not allowed(t1_partner, action, CLINIC)


def test_partner_without_tenants_sees_nothing() -> None:
    orphan = Actor(id="p0", role="partner_analyst", tier="T1", employer="nightwatch")
    assert actions_for(orphan, CLINIC) == frozenset()
    with pytest.raises(PermissionDeniedError, match="none are"):
        authorize(orphan, "view", CLINIC)


def test_customers_view_their_tenant_only(
    customer_viewer_clinic: Actor, customer_admin_clinic: Actor
) -> None:
    assert actions_for(customer_viewer_clinic, CLINIC) == {"view"}
    assert actions_for(customer_viewer_clinic, BAKERY) == frozenset()
    assert actions_for(customer_admin_clinic, CLINIC) == {"view", "annotate", "approve_response"}
    assert actions_for(customer_admin_clinic, BAKERY) == frozenset()


def test_tiers_escalate_in_power(t1_analyst: Actor, t2_analyst: Actor, t3_analyst: Actor) -> None:
    t1, t2, t3 = (actions_for(a, CLINIC) for a in (t1_analyst, t2_analyst, t3_analyst))
    assert t1 < t2 < t3
    assert "contain" not in t1
    assert "contain" in t2
    assert "approve_response" not in t2
    assert "approve_response" in t3
    assert {"manage_tenant", "manage_soc"}.isdisjoint(t3)


def test_analyst_without_tier_counts_as_t1(t1_analyst: Actor) -> None:
    untiered = Actor(id="u", role="analyst")
    assert actions_for(untiered, CLINIC) == actions_for(t1_analyst, CLINIC)


def test_scoped_in_house_analyst_is_held_to_its_tenants(t2_bakery_only: Actor) -> None:
    assert allowed(t2_bakery_only, "contain", BAKERY)
    assert not allowed(t2_bakery_only, "view", CLINIC)


def test_managers_admins_and_system(soc_manager: Actor, mssp_admin: Actor) -> None:
    assert actions_for(mssp_admin, CLINIC) == set(ACTIONS)
    assert actions_for(soc_manager, CLINIC) == set(ACTIONS) - {"manage_tenant"}
    system = actions_for(SYSTEM, BAKERY)
    assert {"reopen", "merge", "escalate", "contain"} <= system
    assert {"acknowledge", "resolve", "close", "manage_soc"}.isdisjoint(system)


def test_denial_says_who_what_which_tenant_and_why(t1_partner: Actor) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        authorize(t1_partner, "contain", CLINIC, incident_id="inc-9")
    err = caught.value
    assert isinstance(err, CaseError)
    assert isinstance(err, WatchfloorError)
    assert err.code == "cases.permission_denied"
    assert "pat (partner analyst of nightwatch)" in err.message
    assert "contain on incident inc-9" in err.message
    assert "tenant clinic" in err.message
    assert "does not allow 'contain' for partner_analyst" in err.message
    assert str(err).startswith("tenant=clinic incident/inc-9: [cases.permission_denied]")


def test_tenant_denial_names_the_actors_tenants(t1_partner: Actor) -> None:
    with pytest.raises(PermissionDeniedError, match=r"tenant bakery is outside its tenants \(clinic\)"):
        authorize(t1_partner, "view", BAKERY)


ROLES: tuple[Role, ...] = typing.get_args(Role)
TENANTS = (CLINIC, BAKERY, TenantId("lawfirm"))

actors = st.builds(
    Actor,
    id=st.sampled_from(["a", "b"]),
    role=st.sampled_from(ROLES),
    tier=st.sampled_from((None, *ANALYST_TIERS)),
    tenants=st.frozensets(st.sampled_from(TENANTS), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(actor=actors, action=st.sampled_from(ACTIONS), tenant=st.sampled_from(TENANTS))
def test_allowed_is_authorize_and_scope_comes_first(actor: Actor, action: Action, tenant: TenantId) -> None:
    try:
        authorize(actor, action, tenant)
        raised = False
    except PermissionDeniedError:
        raised = True
    assert allowed(actor, action, tenant) is not raised
    if actor.tenants and tenant not in actor.tenants:
        assert not allowed(actor, action, tenant)
    if allowed(actor, action, tenant):
        assert action in PERMISSIONS[grantee_of(actor)]
    if actor.role == "partner_analyst":
        assert action in PARTNER_ACTIONS or not allowed(actor, action, tenant)
    if actor.role in ("customer_admin", "customer_viewer") and not actor.tenants:
        assert not allowed(actor, action, tenant)
