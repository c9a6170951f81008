"""The service catalog: the shipped tiers, validation errors naming file and key, durations."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.cases.calendars import Calendar
from watchfloor.cases.tiers import (
    ServiceTier,
    TierCatalog,
    UnknownTierError,
    catalog_from_mapping,
    format_duration,
    load_tiers,
    parse_duration,
)
from watchfloor.core.errors import ConfigError
from watchfloor.core.types import SEVERITIES, SLA_METRICS

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "content" / "tiers" / "tiers.yml"


@pytest.fixture(scope="module")
def shipped_doc() -> dict[str, Any]:
    doc = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def catalog() -> TierCatalog:
    return load_tiers(SHIPPED)


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "tiers.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


# -- the shipped catalog ------------------------------------------------------------------------------------
def test_shipped_catalog_has_the_tier_names_tenants_use(catalog: TierCatalog) -> None:
    assert set(catalog.names) == {"basic", "standard", "premium"}
    assert catalog.get("premium").target("acknowledge", "critical") == 15 * 60
    assert catalog.get("premium").target("notify", "critical") == 30 * 60
    assert catalog.get("premium").target("contain", "critical") == 60 * 60
    assert catalog.get("basic").target("acknowledge", "low") == 8 * 3600


def test_default_path_is_the_content_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "tiers").mkdir()
    doc = {"tiers": {"solo": _tier()}}
    (tmp_path / "tiers" / "tiers.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    monkeypatch.setenv("WATCHFLOOR_CONTENT_DIR", str(tmp_path))
    assert load_tiers().names == ("solo",)


def test_shipped_targets_are_ordered_by_severity_and_tier(catalog: TierCatalog) -> None:
    for tier in catalog:
        for metric in SLA_METRICS:
            known = [t for s in SEVERITIES if (t := tier.target(metric, s)) is not None]
            assert known == sorted(known, reverse=True), (tier.name, metric)  # critical is tightest
            assert 0 < tier.warning_fraction < 1
    cheaper_to_dearer = [catalog.get(n) for n in ("basic", "standard", "premium")]
    for metric in SLA_METRICS:
        for severity in SEVERITIES:
            targets = [t.target(metric, severity) for t in cheaper_to_dearer]
            present = [t for t in targets if t is not None]
            assert present == sorted(present, reverse=True), (metric, severity)


def test_shipped_calendars_resolve_the_tenant_time_zone(catalog: TierCatalog) -> None:
    basic = catalog.get("basic")
    low = basic.calendar_for("low", "Europe/Berlin")
    assert not low.is_24x7
    assert low.timezone == "Europe/Berlin"
    assert basic.calendar_for("low").timezone == "UTC"
    assert basic.calendar_for("critical", "Europe/Berlin").is_24x7
    assert all(catalog.get("premium").calendar_for(s, "Asia/Tokyo").is_24x7 for s in SEVERITIES)
    # Saturday noon is not working time for a basic low incident, Monday noon is (in the tenant's zone).
    assert not low.is_working(datetime(2026, 3, 7, 11, tzinfo=UTC))
    assert low.is_working(datetime(2026, 3, 9, 11, tzinfo=UTC))
    with pytest.raises(ConfigError, match="unknown IANA time zone 'Nowhere/City'"):
        basic.calendar_for("low", "Nowhere/City")


def test_shipped_credits(catalog: TierCatalog) -> None:
    premium, basic = catalog.get("premium").credits, catalog.get("basic").credits
    assert premium.bp_for("critical") == 500
    assert premium.bp_for("low") == 50  # 0.5 %
    assert premium.monthly_cap_bp == 2500
    assert basic.metrics == frozenset({"acknowledge", "notify"})


def test_unknown_tier_names_it_and_the_known_ones(catalog: TierCatalog) -> None:
    with pytest.raises(UnknownTierError) as caught:
        catalog.get("gold")
    text = str(caught.value)
    assert "'gold'" in text
    assert "basic, premium, standard" in text
    assert caught.value.code == "config.unknown_tier"
    assert "gold" not in catalog
    assert "basic" in catalog


# -- format and validation ----------------------------------------------------------------------------------
def _tier(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "description": "test",
        "warning_fraction": 0.75,
        "targets": {"acknowledge": {"critical": "15m", "low": 3600}},
        "calendars": {"default": "24x7"},
        "credits": {"percent_per_breach": {"critical": 5}, "monthly_cap_percent": 20},
    }
    body.update(overrides)
    return body


def test_other_fields_are_carried_in_extra(tmp_path: Path) -> None:
    doc = {"currency": "EUR", "tiers": {"gold": _tier(price_minor=99_00, retention_days=90)}}
    catalog = load_tiers(write(tmp_path, doc))
    gold = catalog.get("gold")
    assert dict(gold.extra) == {"price_minor": 9900, "retention_days": 90}
    assert dict(catalog.extra) == {"currency": "EUR"}
    assert gold.target("acknowledge", "high") is None
    assert gold.target("acknowledge", "critical") == 900


def test_inline_and_named_calendars(tmp_path: Path) -> None:
    doc = {
        "calendars": {
            "office": {
                "type": "business_hours",
                "timezone": "Europe/Berlin",
                "days": "mon-fri",
                "start": "09:00",
                "end": "17:00",
            },
        },
        "tiers": {
            "gold": _tier(
                calendars={
                    "critical": "24x7",
                    "high": "office",
                    "default": {
                        "type": "business_hours",
                        "timezone": "tenant",
                        "days": ["sat"],
                        "start": "10:00",
                        "end": "12:00",
                    },
                }
            )
        },
    }
    gold = load_tiers(write(tmp_path, doc)).get("gold")
    assert gold.calendar_for("critical").is_24x7
    assert gold.calendar_for("high", "Asia/Tokyo") == Calendar.business_hours("Europe/Berlin")
    assert gold.calendar_for("low", "Asia/Tokyo") == Calendar.business_hours(
        "Asia/Tokyo", days=["sat"], start=time(10), end=time(12)
    )


def _set(doc: dict[str, Any], path: str, value: object) -> None:
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "tiers.premium.targets.acknowledge.critical",
            "0m",
            "tiers.premium.targets.acknowledge.critical: must be a positive duration",
        ),
        (
            "tiers.premium.targets.acknowledge.critical",
            "15 minutes",
            "tiers.premium.targets.acknowledge.critical: must be a positive duration",
        ),
        (
            "tiers.premium.targets.acknowledge.critical",
            -5,
            "tiers.premium.targets.acknowledge.critical: must be a positive duration",
        ),
        (
            "tiers.premium.targets.acknowledge.urgent",
            "1h",
            "tiers.premium.targets.acknowledge.urgent: unknown severity 'urgent'",
        ),
        (
            "tiers.premium.targets.respond",
            {"critical": "1h"},
            "tiers.premium.targets.respond: unknown SLA metric 'respond'",
        ),
        (
            "tiers.premium.warning_fraction",
            1.0,
            "tiers.premium.warning_fraction: must be a number between 0 and 1",
        ),
        (
            "tiers.premium.warning_fraction",
            True,
            "tiers.premium.warning_fraction: must be a number between 0 and 1",
        ),
        ("tiers.premium.credits", _DELETE, "tiers.premium.credits: required"),
        (
            "tiers.premium.credits.monthly_cap_percent",
            150,
            "tiers.premium.credits.monthly_cap_percent: must be a percent",
        ),
        (
            "tiers.premium.credits.percent_per_breach.low",
            0.125,
            "tiers.premium.credits.percent_per_breach.low: at most two decimals",
        ),
        ("tiers.premium.credits.per_breach", 1, "tiers.premium.credits.per_breach: unknown field"),
        (
            "tiers.premium.credits.metrics",
            ["ack"],
            "tiers.premium.credits.metrics[0]: unknown SLA metric 'ack'",
        ),
        (
            "tiers.premium.calendars",
            {"low": "24x7"},
            "tiers.premium.calendars: no calendar for medium, high, critical",
        ),
        (
            "tiers.premium.calendars.default",
            "office",
            "tiers.premium.calendars.default: unknown calendar 'office'",
        ),
        (
            "tiers.premium.calendars.urgent",
            "24x7",
            "tiers.premium.calendars.urgent: unknown severity 'urgent' (known: low, medium, high, critical, ",
        ),
        (
            "tiers.premium.calendars.low",
            {"type": "business_hours", "timezone": "Mars/Base"},
            "tiers.premium.calendars.low.timezone: unknown IANA time zone",
        ),
        ("calendars.business_hours.end", 1080, "calendars.business_hours.end: write times in quotes"),
        ("tiers.Premium", {}, "tiers.Premium: tier names are lower-case"),
        ("tiers.premium.description", ["x"], "tiers.premium.description: must be text"),
        ("tiers", {}, "tiers: required: at least one service tier"),
        ("version", 2, "version: unsupported catalog version 2"),
    ],
)
def test_errors_name_the_file_and_key_path(
    tmp_path: Path, shipped_doc: dict[str, Any], path: str, value: object, message: str
) -> None:
    doc = copy.deepcopy(shipped_doc)
    _set(doc, path, value)
    target = write(tmp_path, doc)
    with pytest.raises(ConfigError) as caught:
        load_tiers(target)
    assert caught.value.message.startswith(message), caught.value.message
    assert str(caught.value).startswith(f"{target}: ")
    assert caught.value.location is not None
    assert caught.value.location.path == str(target)


def test_unreadable_empty_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the service catalog"):
        load_tiers(tmp_path / "missing.yml")
    empty = tmp_path / "empty.yml"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="empty"):
        load_tiers(empty)
    broken = tmp_path / "broken.yml"
    broken.write_text("tiers:\n  basic: {description: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML") as caught:
        load_tiers(broken)
    assert caught.value.location is not None
    assert caught.value.location.line is not None
    with pytest.raises(ConfigError, match="<file>: must be a mapping"):
        catalog_from_mapping(["tiers"])


def test_service_tier_checks_its_warning_fraction() -> None:
    with pytest.raises(ValueError, match="warning_fraction"):
        ServiceTier(name="x", warning_fraction=0)


# -- durations ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15m", 900),
        ("1h", 3600),
        ("4h", 14_400),
        ("2d", 172_800),
        ("90s", 90),
        ("1h30m", 5400),
        ("1d 12h", 129_600),
        ("1w", 604_800),
        ("900", 900),
        (900, 900),
        (" 8H ", 28_800),
        ("0s", 0),
    ],
)
def test_parse_duration(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["", "h", "1.5h", "30m1h", "1h1h", "-5m", "15 min", "1y", "٣h", None, True, 1.5, -1, [15]]
)
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_duration() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(0) == "0s"
    assert format_duration(14 * 86_400 + 5) == "14d5s"
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9))
def test_duration_round_trips(seconds: int) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert format_duration(parse_duration(text)) == text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("wdhms"), st.integers(0, 10_000)),
        min_size=1,
        max_size=5,
        unique_by=lambda p: p[0],
    ),
    st.booleans(),
)
def test_duration_components_add_up(parts: list[tuple[str, int]], spaced: bool) -> None:
    size = {"w": 604_800, "d": 86_400, "h": 3600, "m": 60, "s": 1}
    ordered = sorted(parts, key=lambda p: -size[p[0]])
    text = (" " if spaced else "").join(f"{n}{unit}" for unit, n in ordered)
    assert parse_duration(text) == sum(n * size[unit] for unit, n in ordered)
    if len(ordered) > 1 and all(n > 0 for _, n in ordered):
        shuffled = "".join(f"{n}{unit}" for unit, n in reversed(ordered))
        with pytest.raises(ValueError, match="duration"):
            parse_duration(shuffled)
