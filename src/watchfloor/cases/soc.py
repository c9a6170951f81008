"""The distributed SOC: analysts, outsourced partners, regions with shift calendars, duty managers.

A `SocRoster` is loaded from YAML (`load_roster`, example: `content/soc/roster.example.yml`) and validated;
every mistake raises `RosterError` (code `config.roster_invalid`) whose message starts with the key path
(`analysts[3].tier: ...`) and whose location is the file.

**Who works where.** An `Analyst` has a tier (T1-T3), an employer (`in-house` or a `Partner` id), a region,
skills and the tenants it may work. In-house analysts with no tenants work every tenant; a partner's
analysts work only their partner's tenants (a subset when the analyst lists its own) and are always T1: the
partner analyst role (`cases.permissions`) triages, acknowledges and escalates, nothing more.

**Shifts.** A `Region` has an IANA time zone and named `Shift`s, each a set of weekly windows of local wall
time; a window whose end is not after its start ends the next day (`22:00-06:00`), and `24:00` is the end of
the day. An analyst works all its region's shifts unless it names some. A window boundary at local time `t`
is the earliest instant at which the local clock reads `t` or later (a boundary in a spring-forward gap
falls on the jump; in the repeated fall-back hour it is the first occurrence), so an 08:00-16:00 shift is
8 hours on every day not crossing a change. Windows are half-open `[start, end)`: at the instant one shift
ends and the next begins, only the next region is on duty.

**Coverage.** `coverage_gaps` reports when some tier's queue has nobody to work it: a T1 incident can be
worked by any on-duty analyst of tier T1 or above (routing takes `tier >= queue_tier`), so a tier is covered
when an on-duty analyst of that tier *or above* may work the tenant. Partners count only for their tenants.

**Duty managers** are on duty with their region's shifts; when none is, the manager of the region on duty
most recently (within a week) stays on call (`duty_managers_at`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from watchfloor.cases.calendars import utc
from watchfloor.cases.models import Actor
from watchfloor.core.errors import ConfigError, Location
from watchfloor.core.types import ANALYST_TIERS, AnalystTier, TenantId
from watchfloor.core.types import tenant_id as valid_tenant_id

__all__ = [
    "IN_HOUSE",
    "SKILLS",
    "Analyst",
    "DutyManager",
    "Interval",
    "Partner",
    "Region",
    "RosterError",
    "Shift",
    "ShiftWindow",
    "SocRoster",
    "actor_for",
    "analyst_intervals",
    "coverage_gaps",
    "duty_managers_at",
    "load_roster",
    "merge_intervals",
    "on_duty",
    "roster_from_mapping",
]

IN_HOUSE: Final = "in-house"
SKILLS: Final[frozenset[str]] = frozenset(
    {"windows", "linux", "macos", "m365", "azure", "aws", "gcp", "network", "identity", "email"}
)
WEEKDAYS: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY: Final = 86_400
_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_TIME_RE: Final = re.compile(r"^(\d{1,2}):(\d{2})$")
_SPAN_RE: Final = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")
_LOOKBACK: Final = timedelta(days=7)
Interval = tuple[datetime, datetime]


class RosterError(ConfigError):
    """The SOC roster file is invalid (the message starts with the key path)."""

    code = "config.roster_invalid"


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-empty, non-overlapping; touching intervals are joined."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _local_to_utc(naive: datetime, tz: ZoneInfo) -> datetime:
    """The earliest instant at which the local clock in `tz` reads `naive` or later."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first  # exists; fold=0 is the first occurrence of a repeated time
    # In a spring-forward gap: find the jump between the two readings (whole seconds, a few steps).
    lo = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    hi = int(first.timestamp())
    while lo < hi:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid + 1
    return datetime.fromtimestamp(lo, UTC)


# -- model ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ShiftWindow:
    """One weekly window: local `weekday` (0 = Monday), seconds of day `start`..`end` (may pass 24 h)."""

    weekday: int
    start: int
    end: int  # > start; up to 2 days when the window runs past midnight

    def __post_init__(self) -> None:
        if not (0 <= self.weekday < 7 and 0 <= self.start < _DAY and self.start < self.end <= 2 * _DAY):
            raise ValueError(f"invalid shift window {self.weekday}/{self.start}-{self.end}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Shift:
    name: str
    windows: tuple[ShiftWindow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    """A follow-the-sun region: its time zone and its named shifts."""

    name: str
    timezone: str
    shifts: Mapping[str, Shift]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def intervals(
        self, start: datetime, end: datetime, shifts: frozenset[str] = frozenset()
    ) -> list[Interval]:
        """The UTC on-duty intervals of `shifts` (empty = all) within `[start, end)`, merged."""
        start, end = utc(start, "start"), utc(end, "end")
        if end <= start:
            return []
        tz = self.zone
        windows = [w for s in self.shifts.values() if not shifts or s.name in shifts for w in s.windows]
        found: list[Interval] = []
        day = start.astimezone(tz).date() - timedelta(days=2)
        last = end.astimezone(tz).date()
        while day <= last:
            midnight = datetime(day.year, day.month, day.day)  # noqa: DTZ001 - local wall time, zoned below
            for window in windows:
                if window.weekday != day.weekday():
                    continue
                opens = _local_to_utc(midnight + timedelta(seconds=window.start), tz)
                closes = _local_to_utc(midnight + timedelta(seconds=window.end), tz)
                lo, hi = max(opens, start), min(closes, end)
                if hi > lo:
                    found.append((lo, hi))
            day += timedelta(days=1)
        return merge_intervals(found)

    def is_on(self, at: datetime, shifts: frozenset[str] = frozenset()) -> bool:
        at = utc(at, "at")
        return bool(self.intervals(at, at + timedelta(microseconds=1), shifts))


@dataclass(frozen=True, slots=True, kw_only=True)
class Partner:
    """An outsourced T1 provider and the tenants it is contracted for."""

    id: str
    name: str
    tenants: frozenset[TenantId]


@dataclass(frozen=True, slots=True, kw_only=True)
class Analyst:
    """`tenants` empty = every tenant (in-house only); a partner analyst's are its partner's (or a subset)."""

    id: str
    name: str
    tier: AnalystTier
    employer: str = IN_HOUSE
    region: str
    shifts: frozenset[str] = frozenset()  # empty = every shift of the region
    skills: frozenset[str] = frozenset()
    tenants: frozenset[TenantId] = frozenset()
    max_concurrent: int = 5

    def __post_init__(self) -> None:
        if self.employer != IN_HOUSE and not self.tenants:
            raise ValueError(f"partner analyst {self.id!r} needs the tenants it may work")
        if self.max_concurrent < 1:
            raise ValueError(f"analyst {self.id!r}: max_concurrent must be >= 1")

    @property
    def is_partner(self) -> bool:
        return self.employer != IN_HOUSE

    def may_work(self, tenant: TenantId) -> bool:
        return not self.tenants or tenant in self.tenants

    def can_take(self, tier: AnalystTier) -> bool:
        """Whether this analyst may work a queue of `tier` (its own tier or a lower one)."""
        return ANALYST_TIERS.index(self.tier) >= ANALYST_TIERS.index(tier)


@dataclass(frozen=True, slots=True, kw_only=True)
class DutyManager:
    id: str
    name: str
    region: str
    shifts: frozenset[str] = frozenset()
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SocRoster:
    analysts: tuple[Analyst, ...]
    partners: Mapping[str, Partner]
    regions: Mapping[str, Region]
    duty_managers: tuple[DutyManager, ...] = ()
    path: str = "<memory>"

    def __post_init__(self) -> None:
        people: list[Analyst | DutyManager] = [*self.analysts, *self.duty_managers]
        for person in people:
            region = self.regions.get(person.region)
            if region is None or not person.shifts <= set(region.shifts):
                raise ValueError(
                    f"{person.id!r}: unknown region {person.region!r} or shift(s) {person.shifts}"
                )

    def analyst(self, analyst_id: str) -> Analyst | None:
        return next((a for a in self.analysts if a.id == analyst_id), None)

    def without_region(self, name: str) -> SocRoster:
        """The roster minus a region and the people in it (what-if coverage checks)."""
        regions = MappingProxyType({k: v for k, v in self.regions.items() if k != name})
        return SocRoster(
            analysts=tuple(a for a in self.analysts if a.region != name),
            partners=self.partners,
            regions=regions,
            duty_managers=tuple(m for m in self.duty_managers if m.region != name),
            path=self.path,
        )


# -- queries -------------------------------------------------------------------------------------------
def _duty_intervals(
    roster: SocRoster, region: str, shifts: frozenset[str], start: datetime, end: datetime
) -> list[Interval]:
    return roster.regions[region].intervals(start, end, shifts)


def on_duty(roster: SocRoster, at: datetime) -> tuple[Analyst, ...]:
    """The analysts whose shift covers `at`, in roster order."""
    return tuple(a for a in roster.analysts if roster.regions[a.region].is_on(at, a.shifts))


def analyst_intervals(roster: SocRoster, analyst: Analyst, start: datetime, end: datetime) -> list[Interval]:
    """When `analyst` is on duty within `[start, end)` (UTC, merged)."""
    return _duty_intervals(roster, analyst.region, analyst.shifts, start, end)


def duty_managers_at(roster: SocRoster, at: datetime) -> tuple[DutyManager, ...]:
    """Duty managers on shift at `at`; else those whose shift ended last (within a week); else all."""
    on = tuple(m for m in roster.duty_managers if roster.regions[m.region].is_on(at, m.shifts))
    if on or not roster.duty_managers:
        return on
    at = utc(at, "at")
    latest: dict[str, datetime] = {}
    for manager in roster.duty_managers:
        spans = _duty_intervals(roster, manager.region, manager.shifts, at - _LOOKBACK, at)
        if spans:
            latest[manager.id] = spans[-1][1]
    if not latest:
        return roster.duty_managers
    last = max(latest.values())
    return tuple(m for m in roster.duty_managers if latest.get(m.id) == last)


def coverage_gaps(
    roster: SocRoster,
    start: datetime,
    end: datetime,
    *,
    tiers: Sequence[AnalystTier] = ANALYST_TIERS,
    tenant: TenantId | None = None,
) -> list[Interval]:
    """Maximal intervals in `[start, end)` when some tier in `tiers` has nobody on duty to work it.

    A tier is covered by an on-duty analyst of that tier or above; with `tenant`, only by analysts who may
    work that tenant (partners count for their tenants only; without `tenant`, only in-house analysts
    with no tenant restriction count, since they are the ones every tenant can rely on).
    """
    start, end = utc(start, "start"), utc(end, "end")
    if end <= start:
        return []
    cache: dict[tuple[str, frozenset[str]], list[Interval]] = {}
    gaps: list[Interval] = []
    for tier in tiers:
        covered: list[Interval] = []
        for analyst in roster.analysts:
            if not analyst.can_take(tier):
                continue
            if (tenant is None and analyst.tenants) or (tenant is not None and not analyst.may_work(tenant)):
                continue
            key = (analyst.region, analyst.shifts)
            if key not in cache:
                cache[key] = _duty_intervals(roster, analyst.region, analyst.shifts, start, end)
            covered.extend(cache[key])
        cursor = start
        for lo, hi in merge_intervals(covered):
            if lo > cursor:
                gaps.append((cursor, lo))
            cursor = max(cursor, hi)
        if cursor < end:
            gaps.append((cursor, end))
    return merge_intervals(gaps)


def actor_for(analyst: Analyst) -> Actor:
    """The permission identity: partner analysts are `partner_analyst` scoped to their tenants."""
    if analyst.is_partner:
        return Actor(
            id=analyst.id,
            role="partner_analyst",
            tier="T1",
            employer=analyst.employer,
            tenants=analyst.tenants,
        )
    return Actor(id=analyst.id, role="analyst", tier=analyst.tier, employer=IN_HOUSE, tenants=analyst.tenants)


# -- loading -------------------------------------------------------------------------------------------
def load_roster(path: Path) -> SocRoster:
    """Read and validate a roster YAML file (see `content/soc/roster.example.yml`)."""
    location = Location(path=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RosterError(f"cannot read the SOC roster: {exc.strerror}", location=location) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RosterError(f"invalid YAML: {problem}", location=Location(path=str(path), line=line)) from None
    return roster_from_mapping(document, location=location)


def roster_from_mapping(document: object, *, location: Location | None = None) -> SocRoster:
    """Validate an already-parsed roster document."""
    return _Parser(location or Location(path="<memory>")).roster(document)


class _Parser:
    __slots__ = ("location",)

    def __init__(self, location: Location) -> None:
        self.location = location

    def fail(self, key: str, message: str) -> RosterError:
        return RosterError(f"{key}: {message}" if key else message, location=self.location)

    def mapping(self, value: object, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise self.fail(key, f"must be a mapping of names, got {type(value).__name__}")
        return value

    def sequence(self, value: object, key: str) -> Sequence[Any]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list, got {type(value).__name__}")
        return value

    def text(self, body: Mapping[str, Any], name: str, key: str, *, required: bool = True) -> str | None:
        value = body.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key}.{name}", "required text" if value is None else "must be non-empty text")
        return value.strip()

    def ident(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not _ID_RE.fullmatch(value):
            raise self.fail(key, f"{value!r} is not an id (lower-case letters, digits, '.', '-', '_')")
        return value

    def keys(self, body: Mapping[str, Any], allowed: frozenset[str], key: str) -> None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise self.fail(
                key, f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
            )

    def roster(self, document: object) -> SocRoster:
        if document is None:
            raise self.fail("", "the SOC roster is empty")
        top = self.mapping(document, "<file>")
        self.keys(top, frozenset({"version", "partners", "regions", "analysts", "duty_managers"}), "<file>")
        if top.get("version", 1) != 1:
            raise self.fail("version", f"unsupported roster version {top.get('version')!r} (this reads 1)")
        partners = {
            self.ident(pid, f"partners.{pid}"): self.partner(pid, raw)
            for pid, raw in self.mapping(top.get("partners") or {}, "partners").items()
        }
        regions = {
            self.ident(name, f"regions.{name}"): self.region(name, raw)
            for name, raw in self.mapping(top.get("regions") or {}, "regions").items()
        }
        if not regions:
            raise self.fail("regions", "required: at least one region")
        analysts: list[Analyst] = []
        seen: set[str] = set()
        for i, raw in enumerate(self.sequence(top.get("analysts"), "analysts")):
            analyst = self.analyst(raw, f"analysts[{i}]", partners, regions)
            if analyst.id in seen:
                raise self.fail(f"analysts[{i}].id", f"duplicate analyst id {analyst.id!r}")
            seen.add(analyst.id)
            analysts.append(analyst)
        if not analysts:
            raise self.fail("analysts", "required: at least one analyst")
        managers: list[DutyManager] = []
        for i, raw in enumerate(self.sequence(top.get("duty_managers"), "duty_managers")):
            manager = self.manager(raw, f"duty_managers[{i}]", regions)
            if manager.id in seen:
                raise self.fail(f"duty_managers[{i}].id", f"duplicate id {manager.id!r}")
            seen.add(manager.id)
            managers.append(manager)
        return SocRoster(
            analysts=tuple(analysts),
            partners=MappingProxyType(partners),
            regions=MappingProxyType(regions),
            duty_managers=tuple(managers),
            path=self.location.path or "<memory>",
        )

    def tenants(self, value: object, key: str) -> frozenset[TenantId]:
        result: set[TenantId] = set()
        for i, item in enumerate(self.sequence(value, key)):
            try:
                result.add(valid_tenant_id(str(item)))
            except ValueError as exc:
                raise self.fail(f"{key}[{i}]", str(exc)) from None
        return frozenset(result)

    def partner(self, pid: str, raw: object) -> Partner:
        key = f"partners.{pid}"
        body = self.mapping(raw, key)
        self.keys(body, frozenset({"name", "tenants"}), key)
        tenants = self.tenants(body.get("tenants"), f"{key}.tenants")
        if not tenants:
            raise self.fail(
                f"{key}.tenants", "a partner works only the tenants it is contracted for: list them"
            )
        return Partner(id=pid, name=self.text(body, "name", key) or pid, tenants=tenants)

    def region(self, name: str, raw: object) -> Region:
        key = f"regions.{name}"
        body = self.mapping(raw, key)
        self.keys(body, frozenset({"timezone", "shifts"}), key)
        tz = self.text(body, "timezone", key) or ""
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(f"{key}.timezone", f"unknown IANA time zone {tz!r}") from None
        shifts = {
            self.ident(sname, f"{key}.shifts.{sname}"): self.shift(sname, sraw, f"{key}.shifts.{sname}")
            for sname, sraw in self.mapping(body.get("shifts") or {}, f"{key}.shifts").items()
        }
        if not shifts:
            raise self.fail(f"{key}.shifts", "required: at least one shift")
        return Region(name=name, timezone=tz, shifts=MappingProxyType(shifts))

    def clock(self, value: str, key: str, *, end: bool) -> int:
        match = _TIME_RE.fullmatch(value.strip())
        hours, minutes = (int(match[1]), int(match[2])) if match else (99, 99)
        if end and (hours, minutes) == (24, 0):
            return _DAY
        if hours > 23 or minutes > 59:
            raise self.fail(key, f"{value!r} is not a local time HH:MM (quote it in YAML)")
        return hours * 3600 + minutes * 60

    def span(self, value: object, key: str) -> tuple[int, int]:
        match = _SPAN_RE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.fail(key, f"{value!r} is not a window HH:MM-HH:MM")
        start, end = self.clock(match[1], key, end=False), self.clock(match[2], key, end=True)
        return start, end if end > start else end + _DAY

    def weekday(self, value: object, key: str) -> int:
        text = str(value).strip().lower()[:3]
        if text not in WEEKDAYS:
            raise self.fail(key, f"{value!r} is not a weekday (mon..sun)")
        return WEEKDAYS.index(text)

    def shift(self, name: str, raw: object, key: str) -> Shift:
        body = self.mapping(raw, key)
        self.keys(body, frozenset({"days", "start", "end", "windows"}), key)
        windows: list[ShiftWindow] = []
        if "windows" in body:
            if {"days", "start", "end"} & set(body):
                raise self.fail(key, "give either windows or days/start/end, not both")
            for day, spans in self.mapping(body["windows"], f"{key}.windows").items():
                weekday = self.weekday(day, f"{key}.windows.{day}")
                for i, item in enumerate(self.sequence(spans, f"{key}.windows.{day}")):
                    start, end = self.span(item, f"{key}.windows.{day}[{i}]")
                    windows.append(ShiftWindow(weekday=weekday, start=start, end=end))
        else:
            days = [
                self.weekday(d, f"{key}.days[{i}]")
                for i, d in enumerate(self.sequence(body.get("days"), f"{key}.days"))
            ]
            if not days:
                raise self.fail(f"{key}.days", "required: at least one weekday")
            start_text = self.text(body, "start", key) or ""
            end_text = self.text(body, "end", key) or ""
            start = self.clock(start_text, f"{key}.start", end=False)
            end = self.clock(end_text, f"{key}.end", end=True)
            end = end if end > start else end + _DAY
            windows.extend(ShiftWindow(weekday=d, start=start, end=end) for d in sorted(set(days)))
        if not windows:
            raise self.fail(key, "a shift needs at least one window")
        return Shift(name=name, windows=tuple(windows))

    def shift_names(self, value: object, key: str, region: Region) -> frozenset[str]:
        names = frozenset(str(s) for s in self.sequence(value, key))
        unknown = sorted(names - set(region.shifts))
        if unknown:
            raise self.fail(key, f"region {region.name} has no shift(s) {', '.join(unknown)}")
        return names

    def region_of(self, body: Mapping[str, Any], key: str, regions: Mapping[str, Region]) -> Region:
        name = self.text(body, "region", key) or ""
        if name not in regions:
            raise self.fail(f"{key}.region", f"unknown region {name!r} (known: {', '.join(sorted(regions))})")
        return regions[name]

    def analyst(
        self, raw: object, key: str, partners: Mapping[str, Partner], regions: Mapping[str, Region]
    ) -> Analyst:
        body = self.mapping(raw, key)
        allowed = {
            "id",
            "name",
            "tier",
            "employer",
            "region",
            "shifts",
            "skills",
            "tenants",
            "max_concurrent",
        }
        self.keys(body, frozenset(allowed), key)
        aid = self.ident(body.get("id"), f"{key}.id")
        tier = body.get("tier")
        if tier not in ANALYST_TIERS:
            raise self.fail(f"{key}.tier", f"{tier!r} is not one of {', '.join(ANALYST_TIERS)}")
        employer = str(body.get("employer", IN_HOUSE))
        tenants = self.tenants(body.get("tenants"), f"{key}.tenants")
        if employer != IN_HOUSE:
            if employer not in partners:
                raise self.fail(f"{key}.employer", f"{employer!r} is neither in-house nor a partner id")
            if tier != "T1":
                raise self.fail(
                    f"{key}.tier", "partner analysts are T1 (the partner role triages and escalates)"
                )
            outside = sorted(tenants - partners[employer].tenants)
            if outside:
                raise self.fail(
                    f"{key}.tenants", f"outside partner {employer}'s tenants: {', '.join(outside)}"
                )
            tenants = tenants or partners[employer].tenants
        skills = frozenset(str(s).lower() for s in self.sequence(body.get("skills"), f"{key}.skills"))
        if skills - SKILLS:
            raise self.fail(f"{key}.skills", f"unknown skill(s) {', '.join(sorted(skills - SKILLS))}")
        limit = body.get("max_concurrent", 5)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise self.fail(f"{key}.max_concurrent", f"must be a whole number >= 1, got {limit!r}")
        region = self.region_of(body, key, regions)
        return Analyst(
            id=aid,
            name=self.text(body, "name", key) or aid,
            tier=ANALYST_TIERS[ANALYST_TIERS.index(tier)],
            employer=employer,
            region=region.name,
            shifts=self.shift_names(body.get("shifts"), f"{key}.shifts", region),
            skills=skills,
            tenants=tenants,
            max_concurrent=limit,
        )

    def manager(self, raw: object, key: str, regions: Mapping[str, Region]) -> DutyManager:
        body = self.mapping(raw, key)
        self.keys(body, frozenset({"id", "name", "region", "shifts", "email", "phone"}), key)
        mid = self.ident(body.get("id"), f"{key}.id")
        region = self.region_of(body, key, regions)
        email = self.text(body, "email", key, required=False)
        phone = self.text(body, "phone", key, required=False)
        if email is None and phone is None:
            raise self.fail(key, "a duty manager needs a phone or an e-mail address")
        if email is not None and "@" not in email:
            raise self.fail(f"{key}.email", f"{email!r} is not an e-mail address")
        return DutyManager(
            id=mid,
            name=self.text(body, "name", key) or mid,
            region=region.name,
            shifts=self.shift_names(body.get("shifts"), f"{key}.shifts", region),
            email=email,
            phone=phone,
        )
