"""Who may do what to which tenant's incidents: one table, checked tenant scope first.

`authorize(actor, action, tenant_id)` raises `PermissionDeniedError` (code `cases.permission_denied`) with a
sentence naming who, what, which tenant and why; `allowed(...)` is the same check as a bool. The lifecycle
policy (`cases.lifecycle`) calls it for every transition and operation; nothing else decides permissions.

**1. Tenant scope** (before any role check). An actor with a non-empty `tenants` set sees only those tenants,
whatever its role. An empty set means "all tenants" only for `mssp_admin`, `soc_manager`, `system` and
in-house `analyst`s (`Actor.all_tenants`); a partner analyst or a customer with no tenant sees nothing.

**2. The role table** (`PERMISSIONS`, one row per grantee; an in-house analyst's row is picked by tier, an
analyst without a tier gets the T1 row). `x` = allowed.

| action           | admin | manager | T1 | T2 | T3 | partner | cust_admin | cust_viewer | system |
|------------------|:-----:|:-------:|:--:|:--:|:--:|:-------:|:----------:|:-----------:|:------:|
| view             |   x   |    x    | x  | x  | x  |    x    |     x      |      x      |   x    |
| triage           |   x   |    x    | x  | x  | x  |    x    |            |             |   x    |
| annotate         |   x   |    x    | x  | x  | x  |    x    |     x      |             |   x    |
| acknowledge      |   x   |    x    | x  | x  | x  |    x    |            |             |        |
| investigate      |   x   |    x    | x  | x  | x  |         |            |             |        |
| escalate         |   x   |    x    | x  | x  | x  |    x    |            |             |   x    |
| request_customer |   x   |    x    | x  | x  | x  |         |            |             |   x    |
| contain          |   x   |    x    |    | x  | x  |         |            |             |   x    |
| resolve          |   x   |    x    |    | x  | x  |         |            |             |        |
| close            |   x   |    x    | x  | x  | x  |         |            |             |        |
| reopen           |   x   |    x    |    | x  | x  |         |            |             |   x    |
| merge            |   x   |    x    |    | x  | x  |         |            |             |   x    |
| split            |   x   |    x    |    | x  | x  |         |            |             |        |
| link             |   x   |    x    | x  | x  | x  |         |            |             |   x    |
| assign           |   x   |    x    |    | x  | x  |         |            |             |   x    |
| suppress         |   x   |    x    |    | x  | x  |         |            |             |        |
| approve_response |   x   |    x    |    |    | x  |         |     x      |             |        |
| manage_tenant    |   x   |         |    |    |    |         |            |             |        |
| manage_soc       |   x   |    x    |    |    |    |         |            |             |        |

Why these choices:
- **Partner analyst (outsourced T1)**: view, triage, annotate, acknowledge, escalate, for its partner's
  tenants only. It acknowledges (that is the 24/7 first-response SLA it is paid for) but never investigates,
  contacts the customer, contains, closes (not even a false positive: closure is a customer-visible
  conclusion), reopens, merges or assigns. Everything beyond triage is escalated to the in-house SOC.
- **T1** triages, acknowledges, investigates, asks the customer, links and closes; `cases.lifecycle` further
  rejects a T1 closing a *critical* incident as false positive (needs T2+ review). T1 takes work from the
  queue by assigning itself (needs `triage`, see `lifecycle.assign`), but `assign` to others is T2+.
- **T2** adds containment, resolution, reopen, merge/split, assignment and suppressions; **T3** adds
  approving response actions (the second pair of eyes for destructive playbooks).
- **system** (pipeline, SLA engine, playbooks): triage, annotate the timeline, escalate on SLA breach, notify
  or ask the customer (automated notifications, user-confirmation playbooks), contain (playbooks; `respond/`
  gates them with approvals), reopen and merge/link (alert grouping), assign (queue routing). It never
  acknowledges (the SLA measures people), resolves or closes.
- **Customers**: a viewer views; an admin also annotates (notes are always customer-visible) and approves
  response actions for its own tenant.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from watchfloor.cases.models import Actor
from watchfloor.core.errors import Location, WatchfloorError
from watchfloor.core.types import TenantId

Action = Literal[
    "view",
    "triage",
    "annotate",
    "acknowledge",
    "investigate",
    "escalate",
    "request_customer",
    "contain",
    "resolve",
    "close",
    "reopen",
    "merge",
    "split",
    "link",
    "assign",
    "suppress",
    "approve_response",
    "manage_tenant",
    "manage_soc",
]
ACTIONS: tuple[Action, ...] = (
    "view",
    "triage",
    "annotate",
    "acknowledge",
    "investigate",
    "escalate",
    "request_customer",
    "contain",
    "resolve",
    "close",
    "reopen",
    "merge",
    "split",
    "link",
    "assign",
    "suppress",
    "approve_response",
    "manage_tenant",
    "manage_soc",
)

# A row of the table: a role, or for in-house analysts the role and tier.
Grantee = Literal[
    "mssp_admin",
    "soc_manager",
    "analyst_t1",
    "analyst_t2",
    "analyst_t3",
    "partner_analyst",
    "customer_admin",
    "customer_viewer",
    "system",
]


def _row(text: str) -> frozenset[Action]:
    """One row of the table, written as space-separated action names (checked against `ACTIONS`)."""
    actions = frozenset(text.split())
    unknown = actions - frozenset(ACTIONS)
    if unknown:  # a typo in the table below; caught by the first test that imports this module
        msg = f"cases/permissions.py: unknown action(s) in PERMISSIONS: {sorted(unknown)}"
        raise ValueError(msg)
    return frozenset(a for a in ACTIONS if a in actions)


# THE permission table (documented in the module docstring; keep both in step).
PERMISSIONS: Mapping[Grantee, frozenset[Action]] = MappingProxyType(
    {
        "mssp_admin": frozenset(ACTIONS),
        "soc_manager": frozenset(a for a in ACTIONS if a != "manage_tenant"),
        "analyst_t1": _row(
            "view triage annotate acknowledge investigate escalate request_customer close link"
        ),
        "analyst_t2": _row(
            "view triage annotate acknowledge investigate escalate request_customer close link"
            " contain resolve reopen merge split assign suppress"
        ),
        "analyst_t3": _row(
            "view triage annotate acknowledge investigate escalate request_customer close link"
            " contain resolve reopen merge split assign suppress approve_response"
        ),
        "partner_analyst": _row("view triage annotate acknowledge escalate"),
        "customer_admin": _row("view annotate approve_response"),
        "customer_viewer": _row("view"),
        "system": _row("view triage annotate escalate request_customer contain reopen merge link assign"),
    }
)


class CaseError(WatchfloorError):
    """A case operation that cannot be done (wrong tenant, merged incident, bad arguments)."""

    code = "cases.error"


class PermissionDeniedError(CaseError):
    """An actor tried something the tenant scope or the permission table does not allow."""

    code = "cases.permission_denied"


def grantee_of(actor: Actor) -> Grantee:
    """The table row that applies to `actor` (analysts by tier; no tier counts as T1)."""
    if actor.role == "analyst":
        tier = actor.tier or "T1"
        return "analyst_t1" if tier == "T1" else "analyst_t2" if tier == "T2" else "analyst_t3"
    return actor.role


def _actor_label(actor: Actor) -> str:
    if actor.role == "analyst":
        return f"{actor.id} (analyst {actor.tier or 'T1'})"
    if actor.role == "partner_analyst":
        return f"{actor.id} (partner analyst of {actor.employer})"
    return f"{actor.id} ({actor.role})"


def denial_reason(actor: Actor, action: Action, tenant_id: TenantId) -> str | None:
    """Why `actor` may not `action` on `tenant_id`, as a sentence; None when it may."""
    if actor.tenants:
        if tenant_id not in actor.tenants:
            scope = ", ".join(sorted(actor.tenants))
            return f"tenant {tenant_id} is outside its tenants ({scope})"
    elif not actor.all_tenants:
        return f"a {actor.role} sees only the tenants assigned to it, and none are"
    grantee = grantee_of(actor)
    if action not in PERMISSIONS.get(grantee, frozenset()):
        return f"the permission table does not allow {action!r} for {grantee}"
    return None


def authorize(actor: Actor, action: Action, tenant_id: TenantId, *, incident_id: str | None = None) -> None:
    """Raise `PermissionDeniedError` unless `actor` may `action` on `tenant_id` (tenant scope first)."""
    reason = denial_reason(actor, action, tenant_id)
    if reason is not None:
        what = f"{action} on incident {incident_id}" if incident_id else action
        raise PermissionDeniedError(
            f"{_actor_label(actor)} may not {what} in tenant {tenant_id}: {reason}",
            location=Location(tenant=tenant_id, path=f"incident/{incident_id}" if incident_id else None),
        )


def allowed(actor: Actor, action: Action, tenant_id: TenantId) -> bool:
    """True when `authorize` would not raise."""
    return denial_reason(actor, action, tenant_id) is None


def actions_for(actor: Actor, tenant_id: TenantId) -> frozenset[Action]:
    """Everything `actor` may do in `tenant_id` (for the console to show only the buttons that work)."""
    return frozenset(a for a in ACTIONS if allowed(actor, a, tenant_id))
