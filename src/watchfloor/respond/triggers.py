"""When a playbook applies to an incident: its `Trigger`, and `matching_playbooks` to pick them in order.

Every condition a trigger gives must hold; within a list, any item is enough (except `all_techniques`).

- `severity_at_least`: the incident's severity ranks at or above it (low < medium < high < critical).
- `techniques` (any of) / `all_techniques` (every one): ATT&CK ids with prefix semantics: `T1059` matches
  `T1059` and its sub-techniques `T1059.001`, ...; `T1059.001` matches only itself. Compared upper-case.
- `tactics` (any of): ATT&CK tactic short names (`credential-access`).
- `rule_ids` (any of): some alert of the incident comes from one of these rules.
- `tenants_include` (empty: every tenant) minus `tenants_exclude` (exclusion wins).
- `tiers` (empty: every tier): the tenant's service tier; a trigger naming tiers never matches without one.
- `states` (empty: every state but the closed ones).

The incident's techniques and tactics are its own plus those of its alerts. Alerts count when they belong
to the incident (`alert.id in incident.alert_ids` or `alert.incident_id == incident.id`) and to its tenant;
others passed in are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from watchfloor.core.types import CLOSED_STATES, IncidentState, Severity, severity_rank

if TYPE_CHECKING:
    from watchfloor.cases.models import Incident
    from watchfloor.respond.playbooks import Playbook
    from watchfloor.triage.models import Alert

__all__ = ["Trigger", "matching_playbooks", "technique_matches"]

_TECHNIQUE_RE: Final = re.compile(r"^T[0-9]{4}(?:\.[0-9]{3})?$")


def technique_matches(wanted: str, present: str) -> bool:
    """`wanted` is `present` or its parent technique (`T1059` matches `T1059.001`, not the reverse)."""
    wanted, present = wanted.upper(), present.upper()
    return present == wanted or present.startswith(f"{wanted}.")


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    severity_at_least: Severity | None = None
    techniques: tuple[str, ...] = ()
    all_techniques: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    tenants_include: frozenset[str] = frozenset()
    tenants_exclude: frozenset[str] = frozenset()
    tiers: frozenset[str] = frozenset()
    states: frozenset[IncidentState] = frozenset()
    priority: int = 0  # higher first among the playbooks that match

    def __post_init__(self) -> None:
        for technique in (*self.techniques, *self.all_techniques):
            if not _TECHNIQUE_RE.fullmatch(technique.upper()):
                raise ValueError(f"not an ATT&CK technique id: {technique!r} (T1059 or T1059.001)")
        overlap = self.tenants_include & self.tenants_exclude
        if overlap:
            raise ValueError(f"tenants both included and excluded: {', '.join(sorted(overlap))}")

    @property
    def conditions(self) -> int:
        """How many conditions on the incident's content it sets (severity, techniques, tactics, rules)."""
        return sum(
            bool(c)
            for c in (
                self.severity_at_least,
                self.techniques,
                self.all_techniques,
                self.tactics,
                self.rule_ids,
            )
        )

    def mismatches(
        self, incident: Incident, *, tier: str | None = None, alerts: Iterable[Alert] = ()
    ) -> tuple[str, ...]:
        """Why the trigger does not match, one sentence per failed condition (empty: it matches)."""
        own = [a for a in alerts if _belongs(a, incident)]
        techniques = {t.upper() for t in incident.techniques} | {t.upper() for a in own for t in a.techniques}
        tactics = set(incident.tactics) | {t for a in own for t in a.tactics}
        out: list[str] = []
        if self.severity_at_least is not None and severity_rank(incident.severity) < severity_rank(
            self.severity_at_least
        ):
            out.append(f"severity {incident.severity} is below {self.severity_at_least}")
        have = ", ".join(sorted(techniques)) or "none"
        if self.techniques and not any(technique_matches(w, t) for w in self.techniques for t in techniques):
            out.append(f"none of the techniques {', '.join(self.techniques)} (incident has {have})")
        missing = [w for w in self.all_techniques if not any(technique_matches(w, t) for t in techniques)]
        if missing:
            out.append(f"lacks the techniques {', '.join(missing)} (incident has {have})")
        if self.tactics and not tactics.intersection(self.tactics):
            out.append(f"none of the tactics {', '.join(self.tactics)}")
        if self.rule_ids and not {a.rule_id for a in own}.intersection(self.rule_ids):
            out.append(f"no alert from the rules {', '.join(self.rule_ids)}")
        tenant = incident.tenant_id
        if tenant in self.tenants_exclude:
            out.append(f"tenant {tenant} is excluded")
        elif self.tenants_include and tenant not in self.tenants_include:
            out.append(f"tenant {tenant} is not among {', '.join(sorted(self.tenants_include))}")
        if self.tiers and tier not in self.tiers:
            out.append(f"service tier {tier or 'unknown'} is not among {', '.join(sorted(self.tiers))}")
        if self.states and incident.state not in self.states:
            out.append(f"state {incident.state} is not among {', '.join(sorted(self.states))}")
        elif not self.states and incident.state in CLOSED_STATES:
            out.append(f"the incident is closed ({incident.state})")
        return tuple(out)

    def matches(self, incident: Incident, *, tier: str | None = None, alerts: Iterable[Alert] = ()) -> bool:
        return not self.mismatches(incident, tier=tier, alerts=alerts)


def _belongs(alert: Alert, incident: Incident) -> bool:
    return alert.tenant_id == incident.tenant_id and (
        alert.incident_id == incident.id or alert.id in incident.alert_ids
    )


def matching_playbooks(
    playbooks: Iterable[Playbook],
    incident: Incident,
    tier: str | None = None,
    alerts: Iterable[Alert] = (),
) -> list[Playbook]:
    """The enabled playbooks whose trigger matches, highest `trigger.priority` first, then by id."""
    own = tuple(alerts)
    found = [p for p in playbooks if p.enabled and p.trigger.matches(incident, tier=tier, alerts=own)]
    return sorted(found, key=lambda p: (-p.trigger.priority, p.id))
