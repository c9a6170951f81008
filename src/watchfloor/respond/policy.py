"""Who may let a response action run, and how much it may touch: a tenant's authorization policy, the
blast-radius limits and the global kill switch. Pure: the run engine hands in the recent actions and the
kill switch state, `decide` says what to do.

Rules per action, most specific first: a rule for the action id, else one for its risk class, else the
safe default (read-only: automatic; containment: ask approval; destructive: ask MSSP and customer). A rule
may hold per-severity modes. An action whose manifest says `approval="always"` is never automatic.
A decision is `refuse` when the kill switch is on (anything but read-only) or when running the action
would touch more distinct targets of its kind (users, hosts, credentials, ...) within the last hour than
the tenant allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from watchfloor.core.types import SEVERITIES, Severity
from watchfloor.respond.actions import RISKS, ActionManifest, Risk, Target

Mode = Literal["notify_only", "ask_approval", "automatic"]
MODES: Final[tuple[Mode, ...]] = ("notify_only", "ask_approval", "automatic")
Verdict = Literal["notify_only", "ask_approval", "automatic", "refuse"]

BLAST_WINDOW: Final = timedelta(hours=1)
DEFAULT_DEADLINE_MINUTES: Final = 30
DEFAULT_LIMITS: Final[Mapping[str, int]] = {"user": 5, "host": 5, "credential": 5, "mailbox": 5}


class PolicyError(ValueError):
    """A policy document that cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Approvers:
    """Who may approve: MSSP roles (soc_manager, T3, analyst ...) and named customer contacts."""

    roles: tuple[str, ...] = ()
    customer_contacts: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.roles and not self.customer_contacts


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """The mode for one action id or risk class; `by_severity` overrides `mode` for those severities."""

    mode: Mode
    by_severity: Mapping[Severity, Mode] = field(default_factory=dict)
    approvers: Approvers = field(default_factory=Approvers)
    deadline_minutes: int = DEFAULT_DEADLINE_MINUTES

    def mode_for(self, severity: Severity) -> Mode:
        return self.by_severity.get(severity, self.mode)


MSSP_APPROVERS: Final = Approvers(roles=("soc_manager", "T3"))
DEFAULT_RULES: Final[Mapping[Risk, Rule]] = {
    "read_only": Rule(mode="automatic"),
    "containment": Rule(mode="ask_approval", approvers=MSSP_APPROVERS),
    "destructive": Rule(
        mode="ask_approval", approvers=Approvers(roles=("soc_manager", "T3"), customer_contacts=("primary",))
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponsePolicy:
    """A tenant's authorization policy. `ResponsePolicy()` is the safe default."""

    actions: Mapping[str, Rule] = field(default_factory=dict)  # action id -> rule
    risks: Mapping[Risk, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    limits_per_hour: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))  # target -> N

    def rule_for(self, manifest: ActionManifest) -> Rule:
        return self.actions.get(manifest.id) or self.risks.get(manifest.risk) or DEFAULT_RULES[manifest.risk]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecentAction:
    """One action that ran (or is running) for the tenant: what the blast-radius limits count."""

    action_id: str
    target_kind: Target
    target: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    mode: Verdict
    reason: str
    approvers: Approvers = field(default_factory=Approvers)
    deadline: datetime | None = None  # when an approval must be decided by (ask_approval only)

    @property
    def refused(self) -> bool:
        return self.mode == "refuse"


def decide(
    policy: ResponsePolicy,
    manifest: ActionManifest,
    severity: Severity,
    now: datetime,
    *,
    targets: Iterable[str] = (),
    recent_actions: Iterable[RecentAction] = (),
    kill_switch: bool = False,
) -> Decision:
    """What to do with `manifest`'s action against `targets` for an incident of `severity` at `now`."""
    if kill_switch and manifest.risk != "read_only":
        return Decision(mode="refuse", reason=f"the response kill switch is on: {manifest.id} not run")
    wanted = {t for t in targets if t}
    limit = policy.limits_per_hour.get(manifest.target)
    if limit is not None and wanted:
        since = now - BLAST_WINDOW
        touched = {
            r.target for r in recent_actions if r.target_kind == manifest.target and since < r.at <= now
        }
        after = touched | wanted
        if len(after) > limit:
            return Decision(
                mode="refuse",
                reason=(
                    f"blast-radius limit: {manifest.id} would touch {len(after)} distinct {manifest.target}s "
                    f"within an hour, the tenant allows {limit}"
                ),
            )
    rule = policy.rule_for(manifest)
    mode: Mode = rule.mode_for(severity)
    why = f"policy for {manifest.id} ({manifest.risk}) at severity {severity}: {mode}"
    if mode == "automatic" and manifest.approval == "always":
        mode = "ask_approval"
        why = f"{manifest.id} always needs an approval (its manifest says so)"
    if mode != "ask_approval":
        return Decision(mode=mode, reason=why)
    approvers = rule.approvers if not rule.approvers.empty else MSSP_APPROVERS
    return Decision(
        mode="ask_approval",
        reason=why,
        approvers=approvers,
        deadline=now + timedelta(minutes=rule.deadline_minutes),
    )


# -- the stored form (JSON) ----------------------------------------------------------------------------
def _rule(data: Any, where: str) -> Rule:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{where}: a rule is a mapping with 'mode'")
    mode = data.get("mode")
    if mode not in MODES:
        raise PolicyError(f"{where}.mode: {mode!r} is not one of {', '.join(MODES)}")
    by_severity: dict[Severity, Mode] = {}
    for severity, value in dict(data.get("by_severity") or {}).items():
        if severity not in SEVERITIES or value not in MODES:
            raise PolicyError(f"{where}.by_severity.{severity}: {value!r} is not a mode for a severity")
        by_severity[severity] = value
    approvers = data.get("approvers") or {}
    deadline = data.get("deadline_minutes", DEFAULT_DEADLINE_MINUTES)
    if not isinstance(deadline, int) or isinstance(deadline, bool) or not 1 <= deadline <= 7 * 24 * 60:
        raise PolicyError(f"{where}.deadline_minutes: {deadline!r} is not 1..10080 minutes")
    return Rule(
        mode=mode,
        by_severity=by_severity,
        approvers=Approvers(
            roles=tuple(str(r) for r in approvers.get("roles", ())),
            customer_contacts=tuple(str(c) for c in approvers.get("customer_contacts", ())),
        ),
        deadline_minutes=deadline,
    )


def policy_from_json(data: Mapping[str, Any]) -> ResponsePolicy:
    """A policy from its stored JSON; risk classes not given keep the safe default.

    PolicyError names the offending key."""
    unknown = set(data) - {"actions", "risks", "limits_per_hour"}
    if unknown:
        raise PolicyError(f"policy: unknown keys {sorted(unknown)}")
    risks: dict[Risk, Rule] = dict(DEFAULT_RULES)
    for risk, rule in dict(data.get("risks") or {}).items():
        if risk not in RISKS:
            raise PolicyError(f"risks.{risk}: not one of {', '.join(RISKS)}")
        risks[risk] = _rule(rule, f"risks.{risk}")
    actions = {str(k): _rule(v, f"actions.{k}") for k, v in dict(data.get("actions") or {}).items()}
    limits = dict(DEFAULT_LIMITS)
    for target, n in dict(data.get("limits_per_hour") or {}).items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise PolicyError(f"limits_per_hour.{target}: {n!r} is not a count >= 0")
        limits[str(target)] = n
    return ResponsePolicy(actions=actions, risks=risks, limits_per_hour=limits)


def _rule_json(rule: Rule) -> dict[str, Any]:
    return {
        "mode": rule.mode,
        "by_severity": dict(rule.by_severity),
        "approvers": {
            "roles": list(rule.approvers.roles),
            "customer_contacts": list(rule.approvers.customer_contacts),
        },
        "deadline_minutes": rule.deadline_minutes,
    }


def policy_to_json(policy: ResponsePolicy) -> dict[str, Any]:
    return {
        "actions": {k: _rule_json(v) for k, v in policy.actions.items()},
        "risks": {k: _rule_json(v) for k, v in policy.risks.items()},
        "limits_per_hour": dict(policy.limits_per_hour),
    }
