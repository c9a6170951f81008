"""Per-tenant escalation trees and the SLA-breach escalation chain. Pure functions, no clock.

**Escalation tree.** For each severity and time-of-day band of the tenant's time zone (`business_hours`:
the tenant's business days between `start` and `end` local time, half-open; `after_hours`: the rest),
an ordered list of `EscalationStep`s: whom to reach (a tenant contact), by which channel (`phone`,
`email`, `sms`) and how many minutes to wait for an answer before the next step. `who_to_call(tree,
severity, at)` returns the steps for the band `at` falls in.

- `default_tree(tenant, contacts)`: every contact in `escalation_order` for every severity and band;
  critical and high by phone (e-mail for contacts without a phone), medium and low by e-mail; waits from
  `DEFAULT_WAIT_MINUTES` (critical 15, high 30, medium 120, low 480).
- `tree_from_config(tenant, config, contacts)`: the tenant's own tree (format below); severities it does
  not list keep the default steps. Every mistake raises `EscalationConfigError` naming the key path.

```yaml
timezone: Europe/Berlin                      # IANA; default UTC
business_hours: {days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00"}
severities:
  critical:
    any:                                     # both bands; or business_hours: [...] and after_hours: [...]
      - {contact: Dana Ops, channel: phone, wait_minutes: 15}   # a contact's name or e-mail address
      - {contact: ceo@clinic.example, channel: sms, wait_minutes: 30}
```

**Breach chain** (`breach_escalation`): when an SLA is breached the next step, counted by
`already_escalated_steps` (the caller stores `action.next_step` for the next breach or reminder), is taken
from the fixed chain: raise the queue to T2, to T3, page the on-duty duty manager, then the customer's
escalation contacts in the tree's order for the incident's severity at `at`. A tier step the incident
has already reached (someone escalated by hand) is skipped and named in `skipped`; past the end the action
is `exhausted`. Internal steps wait `internal_wait_minutes` (default 15) before the next one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watchfloor.cases.calendars import utc
from watchfloor.cases.models import Incident
from watchfloor.cases.soc import DutyManager, SocRoster, duty_managers_at, on_duty
from watchfloor.core.errors import ConfigError, Location, WatchfloorError
from watchfloor.core.types import ANALYST_TIERS, CLOSED_STATES, SEVERITIES, AnalystTier, Severity, TenantId

__all__ = [
    "BANDS",
    "CHANNELS",
    "DEFAULT_WAIT_MINUTES",
    "Band",
    "BusinessHours",
    "Channel",
    "ContactLike",
    "EscalationAction",
    "EscalationConfigError",
    "EscalationError",
    "EscalationStep",
    "EscalationTree",
    "breach_escalation",
    "chain_length",
    "default_tree",
    "tree_from_config",
    "who_to_call",
]

Channel = Literal["phone", "email", "sms"]
CHANNELS: Final[tuple[Channel, ...]] = ("phone", "email", "sms")
Band = Literal["business_hours", "after_hours"]
BANDS: Final[tuple[Band, ...]] = ("business_hours", "after_hours")
DEFAULT_WAIT_MINUTES: Final[Mapping[Severity, int]] = MappingProxyType(
    {"critical": 15, "high": 30, "medium": 120, "low": 480}
)
_WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME_RE: Final = re.compile(r"^(\d{1,2}):(\d{2})$")
_Fail = Callable[[str, str], "EscalationConfigError"]
ActionKind = Literal["analyst_tier", "duty_manager", "customer_contact", "exhausted"]


class EscalationError(WatchfloorError):
    """A breach escalation that cannot be computed (closed or merged incident, wrong tenant)."""

    code = "cases.escalation_invalid"


class EscalationConfigError(ConfigError):
    """A tenant's escalation tree configuration is invalid (the message starts with the key path)."""

    code = "config.escalation_invalid"


class ContactLike(Protocol):
    """What a tree reads from a tenant contact (`storage.tenants.Contact` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def escalation_order(self) -> int: ...
    @property
    def phone(self) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationStep:
    name: str
    email: str
    phone: str | None
    role: str
    channel: Channel
    wait_minutes: int  # before moving on to the next step

    @property
    def address(self) -> str:
        """The phone number for phone/sms, the e-mail address for email."""
        return self.email if self.channel == "email" or self.phone is None else self.phone


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessHours:
    """Local business days (0 = Monday) and the local window `[start, end)` in seconds of the day."""

    days: frozenset[int] = frozenset(range(5))
    start: int = 8 * 3600
    end: int = 18 * 3600

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= 86_400:
            raise ValueError("business hours must start before they end, within one day")


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationTree:
    tenant_id: TenantId
    timezone: str
    business_hours: BusinessHours
    steps: Mapping[tuple[Severity, Band], tuple[EscalationStep, ...]]

    def band_at(self, at: datetime) -> Band:
        local = utc(at, "at").astimezone(ZoneInfo(self.timezone))
        second = local.hour * 3600 + local.minute * 60 + local.second
        hours = self.business_hours
        inside = local.weekday() in hours.days and hours.start <= second < hours.end
        return "business_hours" if inside else "after_hours"


def who_to_call(tree: EscalationTree, severity: Severity, at: datetime) -> tuple[EscalationStep, ...]:
    """The tenant's contacts to reach, in order, for `severity` at `at` (by the tenant's local time)."""
    return tree.steps.get((severity, tree.band_at(at)), ())


def _step(contact: ContactLike, channel: Channel, wait: int) -> EscalationStep:
    return EscalationStep(
        name=contact.name,
        email=contact.email,
        phone=contact.phone,
        role=contact.role,
        channel=channel,
        wait_minutes=wait,
    )


def _default_steps(contacts: Sequence[ContactLike], severity: Severity) -> tuple[EscalationStep, ...]:
    ordered = sorted(contacts, key=lambda c: (c.escalation_order, c.name))
    urgent = severity in ("critical", "high")
    wait = DEFAULT_WAIT_MINUTES[severity]
    return tuple(_step(c, "phone" if urgent and c.phone else "email", wait) for c in ordered)


def default_tree(
    tenant_id: TenantId,
    contacts: Iterable[ContactLike],
    *,
    timezone: str = "UTC",
    business_hours: BusinessHours | None = None,
) -> EscalationTree:
    """Every contact by `escalation_order`, phone for critical/high, e-mail for medium/low, both bands."""
    listed = list(contacts)
    ZoneInfo(timezone)  # raises for an unknown zone
    steps = {(sev, band): _default_steps(listed, sev) for sev in SEVERITIES for band in BANDS}
    return EscalationTree(
        tenant_id=tenant_id,
        timezone=timezone,
        business_hours=business_hours or BusinessHours(),
        steps=MappingProxyType(steps),
    )


def tree_from_config(
    tenant_id: TenantId,
    config: Mapping[str, Any] | None,
    contacts: Iterable[ContactLike],
    *,
    location: Location | None = None,
) -> EscalationTree:
    """The tenant's configured tree (module docstring), validated against its contacts."""
    where = location or Location(tenant=tenant_id, path="<tenant config>")
    listed = list(contacts)

    def fail(key: str, message: str) -> EscalationConfigError:
        return EscalationConfigError(f"escalation.{key}: {message}", location=where)

    body = dict(config or {})
    unknown = sorted(set(body) - {"timezone", "business_hours", "severities"})
    if unknown:
        raise fail(unknown[0], "unknown key (allowed: timezone, business_hours, severities)")
    timezone = body.get("timezone", "UTC")
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise fail("timezone", f"unknown IANA time zone {timezone!r}") from None
    hours = _business_hours(body.get("business_hours"), fail)
    base = default_tree(tenant_id, listed, timezone=str(timezone), business_hours=hours)
    steps = dict(base.steps)
    severities = body.get("severities") or {}
    if not isinstance(severities, Mapping):
        raise fail("severities", "must be a mapping severity -> bands")
    by_key = {c.name.casefold(): c for c in listed} | {c.email.casefold(): c for c in listed}
    for severity, raw in severities.items():
        if severity not in SEVERITIES:
            raise fail(f"severities.{severity}", f"not a severity ({', '.join(SEVERITIES)})")
        sev: Severity = SEVERITIES[SEVERITIES.index(severity)]
        if not isinstance(raw, Mapping) or not raw:
            raise fail(f"severities.{sev}", "must map any / business_hours / after_hours to steps")
        for band, items in raw.items():
            key = f"severities.{sev}.{band}"
            if band not in ("any", *BANDS):
                raise fail(key, "bands are any, business_hours, after_hours")
            parsed = _steps(items, key, by_key, fail)
            for target in BANDS if band == "any" else (band,):
                steps[(sev, target)] = parsed
    return EscalationTree(
        tenant_id=tenant_id, timezone=str(timezone), business_hours=hours, steps=MappingProxyType(steps)
    )


def _clock(value: object, key: str, fail: _Fail, *, end: bool) -> int:
    match = _TIME_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    hours, minutes = (int(match[1]), int(match[2])) if match else (99, 99)
    if end and (hours, minutes) == (24, 0):
        return 86_400
    if hours > 23 or minutes > 59:
        raise fail(key, f"{value!r} is not a local time HH:MM (quote it in YAML)")
    return hours * 3600 + minutes * 60


def _business_hours(raw: object, fail: _Fail) -> BusinessHours:
    if raw is None:
        return BusinessHours()
    if not isinstance(raw, Mapping):
        raise fail("business_hours", "must be a mapping with days, start, end")
    days: set[int] = set()
    for day in raw.get("days", list(_WEEKDAYS[:5])):
        text = str(day).strip().lower()[:3]
        if text not in _WEEKDAYS:
            raise fail("business_hours.days", f"{day!r} is not a weekday (mon..sun)")
        days.add(_WEEKDAYS.index(text))
    start = _clock(raw.get("start", "08:00"), "business_hours.start", fail, end=False)
    end = _clock(raw.get("end", "18:00"), "business_hours.end", fail, end=True)
    if end <= start:
        raise fail("business_hours", "end must be after start (one local day)")
    return BusinessHours(days=frozenset(days), start=start, end=end)


def _steps(
    items: object, key: str, contacts: Mapping[str, ContactLike], fail: _Fail
) -> tuple[EscalationStep, ...]:
    if not isinstance(items, list) or not items:
        raise fail(key, "must be a non-empty list of steps")
    steps: list[EscalationStep] = []
    for i, item in enumerate(items):
        at = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            raise fail(at, "a step is a mapping with contact, channel, wait_minutes")
        extra = sorted(set(item) - {"contact", "channel", "wait_minutes"})
        if extra:
            raise fail(f"{at}.{extra[0]}", "unknown key (allowed: contact, channel, wait_minutes)")
        ref = str(item.get("contact", "")).strip().casefold()
        contact = contacts.get(ref)
        if contact is None:
            known = ", ".join(sorted({c.name for c in contacts.values()})) or "none"
            raise fail(
                f"{at}.contact", f"{item.get('contact')!r} is not a contact of the tenant (known: {known})"
            )
        channel = item.get("channel", "email")
        if channel not in CHANNELS:
            raise fail(f"{at}.channel", f"{channel!r} is not one of {', '.join(CHANNELS)}")
        if channel in ("phone", "sms") and not contact.phone:
            raise fail(f"{at}.channel", f"contact {contact.name!r} has no phone number for {channel}")
        wait = item.get("wait_minutes", 15)
        if not isinstance(wait, int) or isinstance(wait, bool) or wait < 0:
            raise fail(f"{at}.wait_minutes", f"must be a whole number of minutes >= 0, got {wait!r}")
        steps.append(_step(contact, CHANNELS[CHANNELS.index(channel)], wait))
    return tuple(steps)


# -- breach chain -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationAction:
    """The next breach-escalation step; store `next_step` as the next `already_escalated_steps`."""

    step: int  # index in the chain of this action
    kind: ActionKind
    reason: str
    to_tier: AnalystTier | None = None
    candidates: tuple[str, ...] = ()  # on-duty analysts of `to_tier` (or above) allowed for the tenant
    duty_managers: tuple[DutyManager, ...] = ()
    contact: EscalationStep | None = None
    channel: Channel | None = None
    wait_minutes: int | None = None  # before the next step; None when exhausted
    skipped: tuple[str, ...] = ()

    @property
    def next_step(self) -> int:
        return self.step + 1


def breach_escalation(
    incident: Incident,
    roster: SocRoster,
    tree: EscalationTree,
    at: datetime,
    already_escalated_steps: int,
    *,
    internal_wait_minutes: int = 15,
) -> EscalationAction:
    """The next step of the breach chain: T2, T3, duty manager, then the customer's contacts in order."""
    where = Location(tenant=incident.tenant_id, path=f"incident/{incident.id}")
    at = utc(at, "at")
    if incident.merged_into is not None or incident.state in CLOSED_STATES:
        state = f"merged into {incident.merged_into}" if incident.merged_into else incident.state
        raise EscalationError(f"incident {incident.id} is {state}: nothing to escalate", location=where)
    if incident.tenant_id != tree.tenant_id:
        raise EscalationError(f"the escalation tree is tenant {tree.tenant_id}'s", location=where)
    if already_escalated_steps < 0:
        raise EscalationError("already_escalated_steps cannot be negative", location=where)
    label = f"SLA breach on {incident.id} ({incident.tenant_id}, {incident.severity})"
    tiers = [t for t in ANALYST_TIERS if t != "T1"]
    customer = who_to_call(tree, incident.severity, at)
    skipped: list[str] = []
    index = already_escalated_steps
    while index < len(tiers):
        tier = tiers[index]
        if ANALYST_TIERS.index(tier) <= ANALYST_TIERS.index(incident.queue_tier):
            skipped.append(f"step {index}: queue is already at {incident.queue_tier}")
            index += 1
            continue
        names = tuple(
            a.id for a in on_duty(roster, at) if a.can_take(tier) and a.may_work(incident.tenant_id)
        )
        staffed = f"on duty: {', '.join(names)}" if names else f"nobody of {tier}+ is on duty for the tenant"
        return EscalationAction(
            step=index,
            kind="analyst_tier",
            to_tier=tier,
            candidates=names,
            wait_minutes=internal_wait_minutes,
            skipped=tuple(skipped),
            reason=f"{label}: escalate the queue {incident.queue_tier} -> {tier} ({staffed})",
        )
    if index == len(tiers):
        managers = duty_managers_at(roster, at)
        who = ", ".join(f"{m.name} ({m.region}) {m.phone or m.email}" for m in managers) or "none listed"
        channel: Channel = "phone" if any(m.phone for m in managers) else "email"
        return EscalationAction(
            step=index,
            kind="duty_manager",
            duty_managers=managers,
            channel=channel,
            wait_minutes=internal_wait_minutes,
            skipped=tuple(skipped),
            reason=f"{label}: page the duty manager by {channel}: {who}",
        )
    position = index - len(tiers) - 1
    if position < len(customer):
        step = customer[position]
        band = tree.band_at(at).replace("_", " ")
        return EscalationAction(
            step=index,
            kind="customer_contact",
            contact=step,
            channel=step.channel,
            wait_minutes=step.wait_minutes,
            skipped=tuple(skipped),
            reason=(
                f"{label}: reach customer contact {position + 1} of {len(customer)} ({band}), "
                f"{step.name} ({step.role}) by {step.channel} at {step.address}; "
                f"wait {step.wait_minutes} min before the next step"
            ),
        )
    return EscalationAction(
        step=index,
        kind="exhausted",
        skipped=tuple(skipped),
        reason=f"{label}: every step of the breach chain is taken ({len(customer)} customer contact(s))",
    )


def chain_length(tree: EscalationTree, severity: Severity, at: datetime) -> int:
    """Steps in the breach chain for `severity` at `at`: two tiers, the duty manager, the contacts."""
    return len(ANALYST_TIERS) - 1 + 1 + len(who_to_call(tree, severity, at))
