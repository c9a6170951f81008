"""The distributed SOC: roster loading, follow-the-sun duty across DST, coverage gaps, partner actors."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.cases.permissions import PermissionDeniedError, allowed, authorize
from watchfloor.cases.soc import (
    IN_HOUSE,
    RosterError,
    SocRoster,
    actor_for,
    analyst_intervals,
    coverage_gaps,
    duty_managers_at,
    load_roster,
    on_duty,
    roster_from_mapping,
)
from watchfloor.core.types import TenantId

EXAMPLE = Path(__file__).resolve().parents[2] / "content" / "soc" / "roster.example.yml"
CLINIC = TenantId("clinic")
BAKERY = TenantId("bakery")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def roster() -> SocRoster:
    return load_roster(EXAMPLE)


def ids(analysts: Any) -> set[str]:
    return {a.id for a in analysts}


def base_doc() -> dict[str, Any]:
    return {
        "version": 1,
        "partners": {"nightwatch": {"name": "Nightwatch", "tenants": ["clinic"]}},
        "regions": {
            "emea": {
                "timezone": "Europe/Berlin",
                "shifts": {"day": {"days": ["mon"], "start": "08:00", "end": "16:00"}},
            }
        },
        "analysts": [
            {"id": "dora", "name": "Dora", "tier": "T1", "region": "emea", "skills": ["windows"]},
            {"id": "pia", "name": "Pia", "tier": "T1", "employer": "nightwatch", "region": "emea"},
        ],
        "duty_managers": [{"id": "dm", "name": "Lars", "region": "emea", "phone": "+49 30 1"}],
    }


# -- loading -----------------------------------------------------------------------------------------
def test_example_roster_loads_follow_the_sun_team_and_partner(roster: SocRoster) -> None:
    assert set(roster.regions) == {"apac", "emea", "amer", "manila"}
    assert roster.regions["apac"].timezone == "Australia/Sydney"
    partner_analysts = [a for a in roster.analysts if a.is_partner]
    assert {a.id for a in partner_analysts} == {"pia", "paco"}
    assert all(
        a.tier == "T1" and a.tenants == roster.partners["nightwatch"].tenants for a in partner_analysts
    )
    gus = roster.analyst("gus")
    assert gus is not None
    assert gus.tenants == {"lawfirm-kb", "lawfirm-ms"}
    assert gus.employer == IN_HOUSE
    assert roster.analyst("nobody") is None
    assert [m.id for m in roster.duty_managers] == ["dm-apac", "dm-emea", "dm-amer"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["analysts"][0].update(tier="T4"), "analysts[0].tier: 'T4' is not one of T1, T2, T3"),
        (lambda d: d["analysts"][1].update(tier="T2"), "analysts[1].tier: partner analysts are T1"),
        (
            lambda d: d["analysts"][1].update(tenants=["bakery"]),
            "analysts[1].tenants: outside partner nightwatch",
        ),
        (lambda d: d["analysts"][1].update(employer="acme"), "analysts[1].employer: 'acme' is neither"),
        (lambda d: d["analysts"][0].update(region="mars"), "analysts[0].region: unknown region 'mars'"),
        (lambda d: d["analysts"][0].update(shifts=["night"]), "analysts[0].shifts: region emea has no shift"),
        (lambda d: d["analysts"][0].update(skills=["cobol"]), "analysts[0].skills: unknown skill(s) cobol"),
        (lambda d: d["analysts"][0].update(max_concurrent=0), "analysts[0].max_concurrent: must be a whole"),
        (lambda d: d["analysts"][0].update(colour="red"), "analysts[0]: unknown key(s) colour"),
        (
            lambda d: d["analysts"].append(dict(d["analysts"][0])),
            "analysts[2].id: duplicate analyst id 'dora'",
        ),
        (lambda d: d["regions"]["emea"].update(timezone="Mars/Base"), "regions.emea.timezone: unknown IANA"),
        (
            lambda d: d["regions"]["emea"]["shifts"]["day"].update(start="25:00"),
            "regions.emea.shifts.day.start: '25:00' is not a local time",
        ),
        (lambda d: d["regions"]["emea"]["shifts"]["day"].update(end="8am"), "shifts.day.end: '8am' is not"),
        (lambda d: d["regions"]["emea"]["shifts"]["day"].update(days=["moonday"]), "is not a weekday"),
        (lambda d: d["partners"]["nightwatch"].update(tenants=[]), "partners.nightwatch.tenants: a partner"),
        (lambda d: d["duty_managers"][0].pop("phone"), "duty_managers[0]: a duty manager needs a phone"),
        (lambda d: d.update(regions={}), "regions: required: at least one region"),
    ],
)
def test_invalid_rosters_name_the_key(change: Any, message: str) -> None:
    doc = copy.deepcopy(base_doc())
    change(doc)
    with pytest.raises(RosterError) as info:
        roster_from_mapping(doc)
    assert message in info.value.message
    assert info.value.code == "config.roster_invalid"


def test_load_roster_reports_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "roster.yml"
    bad.write_text("version: 1\nregions: [\n", encoding="utf-8")
    with pytest.raises(RosterError) as info:
        load_roster(bad)
    assert info.value.location is not None
    assert info.value.location.path == str(bad)
    assert info.value.location.line is not None
    with pytest.raises(RosterError, match="cannot read"):
        load_roster(tmp_path / "missing.yml")


# -- follow the sun --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # Monday 23 March: Berlin still on CET (04:30 UTC = 05:30, before the 06:00 start): APAC only.
        ("2026-03-23T04:30", {"ana", "ben", "chloe"}),
        # Monday 30 March, the day after Berlin's spring-forward (04:30 UTC = 06:30 CEST): EMEA is on too.
        ("2026-03-30T04:30", {"ana", "ben", "chloe", "dora", "emil", "frieda"}),
        # Same UTC instant a week later: Sydney left DST on 5 April (AEST): its shift runs to 06:00 UTC.
        ("2026-04-06T05:30", {"ana", "ben", "chloe", "dora", "emil", "frieda"}),
        # Wednesday 12:30 UTC in July: EMEA (14:30 CEST) and AMER (08:30 EDT) overlap.
        ("2026-07-15T12:30", {"dora", "emil", "frieda", "gus", "hana", "ivan", "jade"}),
        # Saturday: the EMEA weekend pair and the partner (Manila 20:00).
        ("2026-07-18T12:00", {"wolf", "wanda", "pia", "paco"}),
        # The instant EMEA's day shift ends (15:00 CET = 14:00 UTC) only AMER remains: windows are half-open.
        ("2026-01-07T14:00", {"gus", "hana", "ivan", "jade"}),
    ],
)
def test_on_duty_follows_the_sun_across_dst(roster: SocRoster, instant: str, expected: set[str]) -> None:
    assert ids(on_duty(roster, at(instant))) == expected


def test_example_roster_covers_every_tier_all_year(roster: SocRoster) -> None:
    start, end = at("2026-01-01T00:00"), at("2027-01-01T00:00")
    assert coverage_gaps(roster, start, end) == []
    assert coverage_gaps(roster, start, end, tenant=CLINIC) == []


def test_removing_a_region_opens_gaps(roster: SocRoster) -> None:
    without = roster.without_region("emea")
    start, end = at("2026-01-05T00:00"), at("2026-01-12T00:00")  # Monday to Monday, CET/EST/AEDT
    gaps = coverage_gaps(without, start, end)
    # Weekdays: APAC ends 05:00 UTC, AMER starts 13:00 UTC. Weekend: nobody of T2+ from Friday 22:00 UTC.
    assert gaps[0] == (at("2026-01-05T05:00"), at("2026-01-05T13:00"))
    assert (at("2026-01-09T22:00"), at("2026-01-11T20:00")) in gaps
    assert len(gaps) == 6
    # T1 for a partner tenant is still covered at the weekend by the partner...
    t1_clinic = coverage_gaps(without, start, end, tiers=("T1",), tenant=CLINIC)
    assert (at("2026-01-09T22:00"), at("2026-01-11T20:00")) not in t1_clinic
    assert len(t1_clinic) == 5
    # ...but not for a tenant the partner does not serve.
    assert (at("2026-01-09T22:00"), at("2026-01-11T20:00")) in coverage_gaps(
        without, start, end, tiers=("T1",), tenant=TenantId("florist")
    )


def test_a_t2_covers_the_t1_queue_but_not_the_t3_queue() -> None:
    doc = base_doc()
    doc["analysts"] = [{"id": "tom", "name": "Tom", "tier": "T2", "region": "emea"}]
    roster = roster_from_mapping(doc)
    monday = at("2026-01-05T00:00")
    day = (at("2026-01-05T07:00"), at("2026-01-05T15:00"))  # 08:00-16:00 CET
    assert coverage_gaps(roster, monday, monday + timedelta(days=1), tiers=("T1", "T2")) == [
        (monday, day[0]),
        (day[1], monday + timedelta(days=1)),
    ]
    assert coverage_gaps(roster, monday, monday + timedelta(days=1), tiers=("T3",)) == [
        (monday, monday + timedelta(days=1))
    ]


def test_shift_boundaries_in_dst_gap_and_repeated_hour() -> None:
    doc = base_doc()
    doc["regions"]["emea"]["shifts"] = {
        "spring": {"windows": {"sun": ["02:30-05:00"]}},
        "night": {"windows": {"sat": ["22:00-06:00"]}},
    }
    region = roster_from_mapping(doc).regions["emea"]
    spring = region.intervals(at("2026-03-29T00:00"), at("2026-03-30T00:00"), frozenset({"spring"}))
    # 02:30 does not exist on 29 March in Berlin: the shift starts when the clock jumps to 03:00 CEST.
    assert spring == [(at("2026-03-29T01:00"), at("2026-03-29T03:00"))]
    night = region.intervals(at("2026-10-24T00:00"), at("2026-10-26T00:00"), frozenset({"night"}))
    # Saturday 22:00 CEST to Sunday 06:00 CET spans the repeated hour: 9 real hours.
    assert night == [(at("2026-10-24T20:00"), at("2026-10-25T05:00"))]


@settings(max_examples=40, deadline=None)
@given(day=st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)))
def test_day_shifts_keep_their_length_and_local_start(roster: SocRoster, day: date) -> None:
    for name in ("apac", "emea", "amer"):
        region = roster.regions[name]
        tz = ZoneInfo(region.timezone)
        local_midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        spans = region.intervals(local_midnight, local_midnight + timedelta(hours=20), frozenset({"day"}))
        if day.weekday() >= 5:
            assert spans == []
            continue
        assert len(spans) == 1
        start, end = spans[0]
        assert end - start == timedelta(hours=9)
        assert start.astimezone(tz).hour in (6, 7, 8)  # the configured local start


@settings(max_examples=60, deadline=None)
@given(minutes=st.integers(min_value=0, max_value=366 * 24 * 60))
def test_on_duty_agrees_with_intervals(roster: SocRoster, minutes: int) -> None:
    instant = at("2026-01-01T00:00") + timedelta(minutes=minutes)
    for analyst in roster.analysts:
        spans = analyst_intervals(roster, analyst, instant - timedelta(days=1), instant + timedelta(days=1))
        inside = any(lo <= instant < hi for lo, hi in spans)
        assert (analyst in on_duty(roster, instant)) == inside


def test_naive_times_are_refused(roster: SocRoster) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        on_duty(roster, datetime(2026, 1, 5, 9, 0))  # noqa: DTZ001 - the point of the test


# -- duty managers -------------------------------------------------------------------------------------
def test_duty_manager_on_shift_or_last_on_shift(roster: SocRoster) -> None:
    assert [m.id for m in duty_managers_at(roster, at("2026-01-07T09:00"))] == ["dm-emea"]
    assert [m.id for m in duty_managers_at(roster, at("2026-01-10T12:00"))] == ["dm-emea"]  # weekend shift
    without = roster.without_region("emea")
    # Saturday noon: nobody on shift; AMER's Friday shift ended last (22:00 UTC), so its manager is on call.
    assert [m.id for m in duty_managers_at(without, at("2026-01-10T12:00"))] == ["dm-amer"]


# -- actors --------------------------------------------------------------------------------------------
def test_partner_analysts_act_only_for_their_partners_tenants(roster: SocRoster) -> None:
    pia = roster.analyst("pia")
    assert pia is not None
    actor = actor_for(pia)
    assert actor.role == "partner_analyst"
    assert actor.employer == "nightwatch"
    assert actor.tier == "T1"
    assert actor.tenants == roster.partners["nightwatch"].tenants
    authorize(actor, "acknowledge", CLINIC)
    assert not allowed(actor, "contain", CLINIC)
    with pytest.raises(PermissionDeniedError):
        authorize(actor, "view", TenantId("florist"))


def test_in_house_actors_carry_tier_and_tenant_scope(roster: SocRoster) -> None:
    ben, gus = roster.analyst("ben"), roster.analyst("gus")
    assert ben is not None
    assert gus is not None
    ben_actor = actor_for(ben)
    assert (ben_actor.role, ben_actor.tier, ben_actor.employer) == ("analyst", "T2", IN_HOUSE)
    assert ben_actor.all_tenants
    assert allowed(ben_actor, "contain", BAKERY)
    gus_actor = actor_for(gus)
    assert allowed(gus_actor, "view", TenantId("lawfirm-kb"))
    assert not allowed(gus_actor, "view", CLINIC)


@settings(max_examples=60, deadline=None)
@given(minutes=st.integers(min_value=0, max_value=7 * 24 * 60 - 1))
def test_an_instant_is_in_a_gap_iff_some_tier_has_nobody_on_duty(roster: SocRoster, minutes: int) -> None:
    without = roster.without_region("emea")
    start = at("2026-03-23T00:00")  # Monday to Monday
    gaps = coverage_gaps(without, start, start + timedelta(days=7))
    instant = start + timedelta(minutes=minutes)
    in_gap = any(lo <= instant < hi for lo, hi in gaps)
    present = [a for a in on_duty(without, instant) if not a.tenants]
    uncovered = any(not any(a.can_take(tier) for a in present) for tier in ("T1", "T2", "T3"))
    assert in_gap == uncovered


def test_a_roster_built_in_code_checks_regions_and_shifts(roster: SocRoster) -> None:
    ana = roster.analyst("ana")
    assert ana is not None
    with pytest.raises(ValueError, match="unknown region 'apac'"):
        SocRoster(analysts=(ana,), partners={}, regions={})
