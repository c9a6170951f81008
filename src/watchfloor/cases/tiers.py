"""The service catalog: each tier's SLA targets, warning threshold, calendars and credit policy.

Loaded from `content/tiers/tiers.yml` (see the comments there for the format) by `load_tiers`; tenants
name their tier and `TierCatalog.get(name)` returns it (`UnknownTierError` names the tier and the known
ones). Every field this module interprets is validated; a problem raises `ConfigError` whose location is
the file and whose message starts with the key path, e.g.
`tiers.premium.targets.acknowledge.critical: must be a positive duration`.

- **Durations** (`parse_duration`): integer seconds, or a string of whole-number components in descending
  unit order, each unit at most once: `w` weeks, `d` days, `h` hours, `m` minutes, `s` seconds (`15m`,
  `4h`, `1h30m`, `2d`, `90`). `m` is minutes; there are no months. Durations are *working* time: on a
  business-hours calendar `16h` is two 8-hour business days.
- **Targets**: metric -> severity -> duration; any may be absent (no target: the SLA clock reports
  `no_target`). Targets may be `null` to say "none" explicitly.
- **Calendars**: per severity (`default` covers the severities not listed); a value names an entry of the
  file's top-level `calendars:` (`24x7` is built in) or is an inline calendar mapping
  (`Calendar.from_config`). `timezone: tenant` is resolved per tenant by `ServiceTier.calendar_for`.
- **Credits**: percent of the monthly fee per breach by severity (at most two decimals, kept as integer
  basis points), a monthly cap percent, and the metrics that earn credits (default all).
- **Other tier fields** (prices, retention, ... added by other parts of Watchfloor) are carried unread in
  `ServiceTier.extra`, as are unknown top-level keys in `TierCatalog.extra`. Because of that, the fields
  read here are all required, so a misspelt one is reported missing rather than passed on as extra.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml

from watchfloor.cases.calendars import TENANT_TIMEZONE, Calendar, zone
from watchfloor.core.content import content_dir
from watchfloor.core.errors import ConfigError, Location
from watchfloor.core.types import SEVERITIES, SLA_METRICS, Severity, SlaMetric

__all__ = [
    "BASIS_POINTS",
    "CreditPolicy",
    "ServiceTier",
    "TierCalendar",
    "TierCatalog",
    "UnknownTierError",
    "catalog_from_mapping",
    "format_duration",
    "load_tiers",
    "parse_duration",
]

_UNITS: Final = (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
_DURATION_RE: Final = re.compile(
    r"^(?:(?P<w>[0-9]+)w)?\s*(?:(?P<d>[0-9]+)d)?\s*(?:(?P<h>[0-9]+)h)?\s*(?:(?P<m>[0-9]+)m)?\s*(?:(?P<s>[0-9]+)s)?$"
)
_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_TIER_KEYS: Final = ("description", "warning_fraction", "targets", "calendars", "credits")
_CREDIT_KEYS: Final = frozenset({"percent_per_breach", "monthly_cap_percent", "metrics"})
BASIS_POINTS: Final = 10_000  # 100 % in basis points (CreditPolicy amounts)


# -- durations ---------------------------------------------------------------------------------------------
def parse_duration(value: object) -> int:
    """Seconds from `15m`, `1h30m`, `2d`, `90s`, `"900"` or an int (>= 0); ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value}")
        return value
    text = value.strip().lower() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit():
        return int(text)
    match = _DURATION_RE.fullmatch(text) if text else None  # "" also stands for "not a string"
    if match is None or not any(match.groupdict().values()):
        raise ValueError(
            f"not a duration: {value!r} (whole numbers with units w, d, h, m, s in that order, e.g. 1h30m)"
        )
    return sum(int(match[unit]) * size for unit, size in _UNITS if match[unit] is not None)


def format_duration(seconds: int) -> str:
    """The canonical text of a duration (`5400` -> `1h30m`, `0` -> `0s`); `parse_duration` reverses it."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {seconds}")
    parts: list[str] = []
    rest = seconds
    for unit, size in _UNITS[1:]:  # days, not weeks: "14d" reads better in an SLA than "2w"
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


# -- the catalog -----------------------------------------------------------------------------------------
class UnknownTierError(ConfigError):
    """A tenant names a service tier the catalog does not have."""

    code = "config.unknown_tier"


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditPolicy:
    """Contract credits: basis points (1/100 %) of the monthly fee per breach, capped per month."""

    per_breach_bp: Mapping[Severity, int] = field(default_factory=lambda: MappingProxyType({}))
    monthly_cap_bp: int = 0
    metrics: frozenset[SlaMetric] = frozenset(SLA_METRICS)

    def bp_for(self, severity: Severity) -> int:
        return self.per_breach_bp.get(severity, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class TierCalendar:
    """A tier's calendar for some severity; `tenant_timezone` = use the tenant's zone, not `calendar`'s."""

    calendar: Calendar
    tenant_timezone: bool = False


_ALWAYS: Final = TierCalendar(calendar=Calendar.always())


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceTier:
    """One service tier of the catalog (targets in seconds of working time, keyed (metric, severity))."""

    name: str
    description: str = ""
    targets: Mapping[tuple[SlaMetric, Severity], int] = field(default_factory=lambda: MappingProxyType({}))
    warning_fraction: float = 0.75
    calendars: Mapping[Severity, TierCalendar] = field(default_factory=lambda: MappingProxyType({}))
    credits: CreditPolicy = field(default_factory=CreditPolicy)
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.warning_fraction < 1:
            raise ValueError(
                f"warning_fraction must be between 0 and 1 (exclusive), got {self.warning_fraction}"
            )

    def target(self, metric: SlaMetric, severity: Severity) -> int | None:
        """Seconds of working time allowed for `metric` at `severity`, or None when the tier sets none."""
        return self.targets.get((metric, severity))

    def calendar_for(self, severity: Severity, tenant_timezone: str = "UTC") -> Calendar:
        """The calendar the SLA clocks of `severity` run on (24x7 when the tier names none).

        A calendar configured with `timezone: tenant` is moved to `tenant_timezone`; ConfigError when that
        zone is unknown.
        """
        chosen = self.calendars.get(severity, _ALWAYS)
        if not chosen.tenant_timezone:
            return chosen.calendar
        try:
            zone(tenant_timezone)
        except ValueError as exc:
            raise ConfigError(f"tenant time zone for tier {self.name}: {exc}") from None
        return chosen.calendar.with_timezone(tenant_timezone)


@dataclass(frozen=True, slots=True)
class TierCatalog:
    """The loaded tiers by name; `path` is where they came from (for messages)."""

    tiers: Mapping[str, ServiceTier]
    path: str = "<memory>"
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False)

    def get(self, name: str) -> ServiceTier:
        """The tier `name`; UnknownTierError naming it and the known tiers otherwise."""
        tier = self.tiers.get(name)
        if tier is None:
            known = ", ".join(sorted(self.tiers)) or "none"
            raise UnknownTierError(
                f"unknown service tier {name!r} (known tiers: {known})", location=Location(path=self.path)
            )
        return tier

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.tiers)

    def __contains__(self, name: object) -> bool:
        return name in self.tiers

    def __iter__(self) -> Iterator[ServiceTier]:
        return iter(self.tiers.values())

    def __len__(self) -> int:
        return len(self.tiers)


def load_tiers(path: Path | None = None) -> TierCatalog:
    """Load and validate the service catalog (default `content_dir() / "tiers" / "tiers.yml"`)."""
    path = content_dir() / "tiers" / "tiers.yml" if path is None else path
    location = Location(path=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the service catalog: {exc.strerror}", location=location) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", location=Location(path=str(path), line=line)) from None
    return catalog_from_mapping(document, location=location)


def catalog_from_mapping(document: object, *, location: Location | None = None) -> TierCatalog:
    """Validate an already-parsed catalog document (what `load_tiers` does after reading YAML)."""
    where = location or Location(path="<memory>")
    parser = _Parser(where)
    return parser.catalog(document)


class _Parser:
    __slots__ = ("location",)

    def __init__(self, location: Location) -> None:
        self.location = location

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{key}: {message}" if key else message, location=self.location)

    def mapping(self, value: object, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        for item in value:
            if not isinstance(item, str):
                raise self.fail(key, f"keys must be names, got {item!r}")
        return value

    def catalog(self, document: object) -> TierCatalog:
        if document is None:
            raise self.fail("", "the service catalog is empty")
        top = self.mapping(document, "<file>")
        version = top.get("version", 1)
        if version != 1:
            raise self.fail("version", f"unsupported catalog version {version!r} (this Watchfloor reads 1)")
        calendars: dict[str, TierCalendar] = {"24x7": _ALWAYS}
        for name, raw in self.mapping(top.get("calendars", {}), "calendars").items():
            if not _NAME_RE.fullmatch(name) and name != "24x7":
                raise self.fail(f"calendars.{name}", "calendar names are lower-case letters, digits, - and _")
            calendars[name] = self.calendar(raw, f"calendars.{name}")
        raw_tiers = self.mapping(top.get("tiers"), "tiers") if "tiers" in top else None
        if not raw_tiers:
            raise self.fail("tiers", "required: at least one service tier")
        tiers: dict[str, ServiceTier] = {}
        for name, raw in raw_tiers.items():
            if not _NAME_RE.fullmatch(name):
                raise self.fail(f"tiers.{name}", "tier names are lower-case letters, digits, - and _")
            tiers[name] = self.tier(name, raw, calendars)
        extra = {k: v for k, v in top.items() if k not in ("version", "calendars", "tiers")}
        return TierCatalog(
            MappingProxyType(tiers), path=self.location.path or "<memory>", extra=MappingProxyType(extra)
        )

    def calendar(self, raw: object, key: str) -> TierCalendar:
        body = self.mapping(raw, key)
        tenant = body.get("timezone") == TENANT_TIMEZONE
        calendar = Calendar.from_config(body, key=key, location=self.location, tenant_timezone="UTC")
        return TierCalendar(calendar=calendar, tenant_timezone=tenant)

    def tier(self, name: str, raw: object, calendars: Mapping[str, TierCalendar]) -> ServiceTier:
        key = f"tiers.{name}"
        body = self.mapping(raw, key)
        for required in _TIER_KEYS:
            if required not in body:
                raise self.fail(f"{key}.{required}", "required")
        description = body["description"]
        if not isinstance(description, str):
            raise self.fail(f"{key}.description", "must be text")
        fraction = body["warning_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
            raise self.fail(f"{key}.warning_fraction", f"must be a number between 0 and 1, got {fraction!r}")
        extra = {k: v for k, v in body.items() if k not in _TIER_KEYS}
        return ServiceTier(
            name=name,
            description=description.strip(),
            targets=self.targets(body["targets"], f"{key}.targets"),
            warning_fraction=float(fraction),
            calendars=self.tier_calendars(body["calendars"], f"{key}.calendars", calendars),
            credits=self.credits(body["credits"], f"{key}.credits"),
            extra=MappingProxyType(extra),
        )

    def targets(self, raw: object, key: str) -> Mapping[tuple[SlaMetric, Severity], int]:
        out: dict[tuple[SlaMetric, Severity], int] = {}
        for metric_name, per_severity in self.mapping(raw, key).items():
            metric = self.metric(metric_name, f"{key}.{metric_name}")
            if per_severity is None:
                continue
            for severity_name, value in self.mapping(per_severity, f"{key}.{metric_name}").items():
                where = f"{key}.{metric_name}.{severity_name}"
                severity = self.severity(severity_name, where)
                if value is None:
                    continue
                try:
                    seconds = parse_duration(value)
                except ValueError as exc:
                    raise self.fail(where, f"must be a positive duration: {exc}") from None
                if seconds <= 0:
                    raise self.fail(where, f"must be a positive duration, got {value!r}")
                out[metric, severity] = seconds
        return MappingProxyType(out)

    def tier_calendars(
        self, raw: object, key: str, named: Mapping[str, TierCalendar]
    ) -> Mapping[Severity, TierCalendar]:
        body = self.mapping(raw, key)
        chosen: dict[str, TierCalendar] = {}
        for which, value in body.items():
            where = f"{key}.{which}"
            if which != "default":
                self.severity(which, where, extra="default")
            if isinstance(value, str):
                if value not in named:
                    known = ", ".join(sorted(named))
                    raise self.fail(where, f"unknown calendar {value!r} (known: {known}; or give a mapping)")
                chosen[which] = named[value]
            else:
                chosen[which] = self.calendar(value, where)
        default = chosen.get("default")
        missing = [s for s in SEVERITIES if s not in chosen]
        if missing and default is None:
            raise self.fail(key, f"no calendar for {', '.join(missing)}: add them or a `default`")
        return MappingProxyType({s: chosen.get(s) or default or _ALWAYS for s in SEVERITIES})

    def credits(self, raw: object, key: str) -> CreditPolicy:
        body = self.mapping(raw, key)
        unknown = sorted(k for k in body if k not in _CREDIT_KEYS)
        if unknown:
            raise self.fail(
                f"{key}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(_CREDIT_KEYS))})"
            )
        for required in ("percent_per_breach", "monthly_cap_percent"):
            if required not in body:
                raise self.fail(f"{key}.{required}", "required (0 for no credits)")
        per_breach: dict[Severity, int] = {}
        for severity_name, value in self.mapping(
            body["percent_per_breach"], f"{key}.percent_per_breach"
        ).items():
            where = f"{key}.percent_per_breach.{severity_name}"
            per_breach[self.severity(severity_name, where)] = self.percent(value, where)
        cap = self.percent(body["monthly_cap_percent"], f"{key}.monthly_cap_percent")
        metrics = body.get("metrics", list(SLA_METRICS))
        if not isinstance(metrics, list):
            raise self.fail(f"{key}.metrics", f"must be a list of {', '.join(SLA_METRICS)}")
        chosen = frozenset(self.metric(m, f"{key}.metrics[{i}]") for i, m in enumerate(metrics))
        return CreditPolicy(per_breach_bp=MappingProxyType(per_breach), monthly_cap_bp=cap, metrics=chosen)

    def percent(self, value: object, key: str) -> int:
        """Basis points from a percent 0..100 with at most two decimals."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(key, f"must be a percent between 0 and 100, got {value!r}")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.fail(key, f"must be a percent between 0 and 100, got {value!r}") from None
        if not number.is_finite() or not 0 <= number <= 100:
            raise self.fail(key, f"must be a percent between 0 and 100, got {value!r}")
        points = number * 100
        if points != points.to_integral_value():
            raise self.fail(key, f"at most two decimals (basis points), got {value!r}")
        return int(points)

    def metric(self, value: object, key: str) -> SlaMetric:
        for metric in SLA_METRICS:
            if value == metric:
                return metric
        raise self.fail(key, f"unknown SLA metric {value!r} (known: {', '.join(SLA_METRICS)})")

    def severity(self, value: object, key: str, *, extra: str = "") -> Severity:
        for severity in SEVERITIES:
            if value == severity:
                return severity
        known = ", ".join((*SEVERITIES, extra) if extra else SEVERITIES)
        raise self.fail(key, f"unknown severity {value!r} (known: {known})")
