"""Working-time calendars: concrete DST, holiday and midnight cases, config errors, and properties.

Expected values are worked out by hand from the local wall clock (comments show the arithmetic); the
property tests compare against a brute-force minute-by-minute oracle that knows nothing of the
implementation's day walking.
"""

from __future__ import annotations

import time as perf
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from watchfloor.cases.calendars import Calendar
from watchfloor.core.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = 3600


def local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold)


def every_day(tz: str, start: time, end: time) -> Calendar:
    return Calendar.weekly(tz, {day: [(start, end)] for day in range(7)})


# -- 24x7 ---------------------------------------------------------------------------------------------------
def test_always_counts_real_seconds_across_the_fall_back_night() -> None:
    cal = Calendar.always()
    # Berlin's local day 2026-10-25 has 25 real hours (03:00 CEST -> 02:00 CET).
    assert cal.working_seconds(local(BERLIN, 2026, 10, 25), local(BERLIN, 2026, 10, 26)) == 25 * H
    # New York's local day 2026-03-08 has 23 (02:00 EST -> 03:00 EDT).
    assert cal.working_seconds(local(NEW_YORK, 2026, 3, 8), local(NEW_YORK, 2026, 3, 9)) == 23 * H
    assert cal.is_working(local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1))
    assert cal.add_working_seconds(local(BERLIN, 2026, 10, 25), 25 * H) == local(BERLIN, 2026, 10, 26)


def test_whole_day_windows_in_a_dst_zone_equal_24x7() -> None:
    cal = every_day("Europe/Berlin", time(0), time(0))  # "00:00-24:00"
    assert cal.working_seconds(local(BERLIN, 2026, 10, 25), local(BERLIN, 2026, 10, 26)) == 25 * H
    assert cal.working_seconds(local(BERLIN, 2026, 3, 29), local(BERLIN, 2026, 3, 30)) == 23 * H


def test_24x7_takes_no_holidays_and_business_hours_need_a_window() -> None:
    with pytest.raises(ValueError, match="24x7"):
        Calendar(holidays=frozenset({date(2026, 12, 25)}))
    with pytest.raises(ValueError, match="at least one working window"):
        Calendar.weekly("UTC", {})
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        Calendar.business_hours("Europe/Atlantis")


def test_naive_datetimes_are_refused() -> None:
    cal = Calendar.business_hours("Europe/Berlin")
    naive = datetime(2026, 3, 2, 9)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.working_seconds(naive, naive + timedelta(hours=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        Calendar.always().add_working_seconds(naive, 1)


# -- business hours across DST ------------------------------------------------------------------------------
def test_berlin_business_hours_across_the_spring_dst_weekend() -> None:
    cal = Calendar.business_hours("Europe/Berlin")  # Mon-Fri 09:00-17:00
    # Friday 2026-03-27 08:00 CET to Monday 2026-03-30 12:00 CEST: Friday 8 h + Monday 3 h.
    start, end = local(BERLIN, 2026, 3, 27, 8), local(BERLIN, 2026, 3, 30, 12)
    assert cal.working_seconds(start, end) == 11 * H
    # The windows are local: 08:00-16:00 UTC before the change, 07:00-15:00 UTC after.
    assert cal.working_intervals(start, end) == [
        (datetime(2026, 3, 27, 8, tzinfo=UTC), datetime(2026, 3, 27, 16, tzinfo=UTC)),
        (datetime(2026, 3, 30, 7, tzinfo=UTC), datetime(2026, 3, 30, 10, tzinfo=UTC)),
    ]
    # 10 working hours after Friday 15:00: Friday 2 h, Monday 8 h -> Monday 17:00 CEST (window end).
    due = cal.add_working_seconds(local(BERLIN, 2026, 3, 27, 15), 10 * H)
    assert due == datetime(2026, 3, 30, 15, tzinfo=UTC)
    assert cal.next_working_instant(local(BERLIN, 2026, 3, 28, 12)) == datetime(2026, 3, 30, 7, tzinfo=UTC)


def test_berlin_business_hours_across_the_autumn_dst_weekend() -> None:
    cal = Calendar.business_hours("Europe/Berlin")
    # Friday 2026-10-23 16:00 CEST to Monday 2026-10-26 10:00 CET: 1 h + 1 h.
    assert cal.working_seconds(local(BERLIN, 2026, 10, 23, 16), local(BERLIN, 2026, 10, 26, 10)) == 2 * H
    assert cal.add_working_seconds(local(BERLIN, 2026, 10, 23, 16), 90 * 60) == datetime(
        2026, 10, 26, 8, 30, tzinfo=UTC
    )


def test_new_york_business_hours_are_8_hours_on_dst_days() -> None:
    sundays = Calendar.weekly("America/New_York", {"sun": [(time(9), time(17))]})
    for day in (date(2026, 3, 8), date(2026, 11, 1)):
        start = datetime.combine(day, time(0), NEW_YORK)
        assert sundays.working_seconds(start, start + timedelta(days=2)) == 8 * H


def test_spring_forward_gap_boundaries_fall_on_the_jump() -> None:
    # New York 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:xx does not exist.
    jump = datetime(2026, 3, 8, 7, tzinfo=UTC)
    day = (local(NEW_YORK, 2026, 3, 8), local(NEW_YORK, 2026, 3, 9))
    starts_in_gap = every_day("America/New_York", time(2, 30), time(5))
    assert starts_in_gap.working_intervals(*day) == [(jump, jump + timedelta(hours=2))]
    spanning = every_day("America/New_York", time(1), time(4))  # 01:00 EST..04:00 EDT = 2 real hours
    assert spanning.working_seconds(*day) == 2 * H
    inside = Calendar.weekly(
        "America/New_York", {"sun": [(time(2, 10), time(2, 50))], "mon": [(time(9), time(10))]}
    )
    assert inside.working_seconds(*day) == 0
    assert not inside.is_working(jump)
    assert inside.next_working_instant(jump) == local(NEW_YORK, 2026, 3, 9, 9)
    night = every_day("Europe/Berlin", time(0), time(6))  # 00:00 CET..06:00 CEST = 5 real hours
    assert night.working_seconds(local(BERLIN, 2026, 3, 29), local(BERLIN, 2026, 3, 30)) == 5 * H


def test_fall_back_repeated_hour_boundaries_take_the_first_occurrence() -> None:
    # New York 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:xx happens twice.
    day = (local(NEW_YORK, 2026, 11, 1), local(NEW_YORK, 2026, 11, 2))
    cal = every_day("America/New_York", time(1, 30), time(3))  # first 01:30 EDT (05:30Z)..03:00 EST (08:00Z)
    assert cal.working_intervals(*day) == [
        (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), datetime(2026, 11, 1, 8, tzinfo=UTC))
    ]
    ends_inside = every_day("America/New_York", time(0, 30), time(1, 30))  # ends at the first 01:30
    assert ends_inside.working_seconds(*day) == 1 * H
    assert ends_inside.is_working(local(NEW_YORK, 2026, 11, 1, 1, 15, fold=0))
    assert not ends_inside.is_working(local(NEW_YORK, 2026, 11, 1, 1, 15, fold=1))
    night = every_day("Europe/Berlin", time(0), time(6))  # 00:00 CEST..06:00 CET = 7 real hours
    assert night.working_seconds(local(BERLIN, 2026, 10, 25), local(BERLIN, 2026, 10, 26)) == 7 * H


# -- holidays, midnight, window ends -----------------------------------------------------------------------
def test_holidays_have_no_working_time() -> None:
    cal = Calendar.business_hours("Europe/Berlin", holidays=[date(2026, 12, 25)])  # a Friday
    # Thursday 24th 09:00 to Monday 28th 09:00: only Thursday counts.
    assert cal.working_seconds(local(BERLIN, 2026, 12, 24, 9), local(BERLIN, 2026, 12, 28, 9)) == 8 * H
    assert not cal.is_working(local(BERLIN, 2026, 12, 25, 10))
    # 2 h after Thursday 16:00: 1 h Thursday, then Monday 09:00 + 1 h.
    assert cal.add_working_seconds(local(BERLIN, 2026, 12, 24, 16), 2 * H) == local(BERLIN, 2026, 12, 28, 10)


def test_windows_crossing_midnight_and_holidays_on_their_tail() -> None:
    nights = Calendar.business_hours(
        "UTC", days=["mon", "tue", "wed", "thu", "fri"], start=time(22), end=time(6)
    )
    fri_night = datetime(2026, 3, 6, 22, tzinfo=UTC)  # Friday
    assert nights.is_working(datetime(2026, 3, 7, 5, 59, tzinfo=UTC))  # Saturday morning: Friday's shift
    assert not nights.is_working(datetime(2026, 3, 9, 3, tzinfo=UTC))  # Monday 03:00: Sunday has no shift
    assert nights.working_seconds(fri_night, fri_night + timedelta(days=3)) == 8 * H
    # A holiday on Saturday removes the after-midnight tail of Friday's shift.
    holiday = Calendar.business_hours(
        "UTC", days=range(5), start=time(22), end=time(6), holidays=[date(2026, 3, 7)]
    )
    assert holiday.working_seconds(fri_night, fri_night + timedelta(days=3)) == 2 * H


def test_add_lands_on_a_window_end_not_the_next_start() -> None:
    cal = Calendar.business_hours("Europe/Berlin")
    monday = local(BERLIN, 2026, 3, 2, 9)
    assert cal.add_working_seconds(monday, 8 * H) == local(BERLIN, 2026, 3, 2, 17)
    assert not cal.is_working(local(BERLIN, 2026, 3, 2, 17))  # windows are half-open
    assert cal.add_working_seconds(monday, 0) == monday
    assert cal.add_working_seconds(local(BERLIN, 2026, 3, 2, 20), 0) == local(BERLIN, 2026, 3, 2, 20)
    with pytest.raises(ValueError, match="negative"):
        cal.add_working_seconds(monday, -1)


def test_overlapping_windows_count_once() -> None:
    cal = Calendar.weekly("UTC", {"mon": [(time(9), time(12)), (time(11), time(14))]})
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    assert cal.working_seconds(monday, monday + timedelta(days=1)) == 5 * H


def test_a_year_of_business_hours_is_fast_and_counts_weekdays() -> None:
    holidays = [date(2026, 1, 1), date(2026, 12, 25), date(2026, 5, 1)]
    cal = Calendar.business_hours("Europe/Berlin", holidays=holidays)
    start, end = local(BERLIN, 2026, 1, 1), local(BERLIN, 2027, 1, 1)
    began = perf.perf_counter()
    total = cal.working_seconds(start, end)
    due = cal.add_working_seconds(start, total)
    assert perf.perf_counter() - began < 1.0
    weekdays = sum(1 for n in range(365) if (date(2026, 1, 1) + timedelta(n)).weekday() < 5)
    assert total == (weekdays - len(holidays)) * 8 * H  # all three holidays fall on weekdays in 2026
    assert due == local(BERLIN, 2026, 12, 31, 17)


# -- config -------------------------------------------------------------------------------------------------
def test_from_config_business_hours_and_24x7() -> None:
    cal = Calendar.from_config(
        {
            "type": "business_hours",
            "timezone": "Europe/Berlin",
            "days": "mon-fri",
            "start": "09:00",
            "end": "17:00",
            "holidays": [date(2026, 12, 25), "2026-12-26"],
        }
    )
    assert cal == Calendar.business_hours("Europe/Berlin", holidays=[date(2026, 12, 25), date(2026, 12, 26)])
    assert Calendar.from_config({"type": "24x7"}) == Calendar.always()
    weekend = Calendar.from_config(
        {
            "type": "business_hours",
            "timezone": "UTC",
            "windows": {"sat": ["22:00-24:00"], "sun": "00:00-02:00"},
        }
    )
    saturday = datetime(2026, 3, 7, tzinfo=UTC)
    assert weekend.working_seconds(saturday, saturday + timedelta(days=2)) == 4 * H
    wraps = Calendar.from_config(
        {"type": "business_hours", "timezone": "UTC", "days": "fri-mon", "start": "10:00", "end": "11:00"}
    )
    assert wraps.working_seconds(saturday, saturday + timedelta(days=7)) == 4 * H  # sat, sun, mon, fri
    tenant = Calendar.from_config(
        {"type": "business_hours", "timezone": "tenant", "days": ["mon"], "start": "09:00", "end": "10:00"},
        tenant_timezone="America/New_York",
    )
    assert tenant.timezone == "America/New_York"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "weekly"}, "cal.type: must be '24x7' or 'business_hours'"),
        ({"type": "24x7", "timezone": "UTC"}, "cal.timezone: a 24x7 calendar takes no other field"),
        ({"type": "business_hours", "timezon": "UTC"}, "cal.timezon: unknown field"),
        (
            {"type": "business_hours", "days": ["mon"], "start": "09:00", "end": "17:00"},
            "cal.timezone: required",
        ),
        (
            {"type": "business_hours", "timezone": "Mars/Base"},
            "cal.timezone: unknown IANA time zone 'Mars/Base'",
        ),
        ({"type": "business_hours", "timezone": "tenant"}, "cal.timezone: 'tenant' needs"),
        (
            {"type": "business_hours", "timezone": "UTC", "start": "09:00", "end": "17:00"},
            "cal.days: required",
        ),
        (
            {
                "type": "business_hours",
                "timezone": "UTC",
                "days": ["mon", "funday"],
                "start": "09:00",
                "end": "17:00",
            },
            "cal.days[1]: not a weekday: 'funday'",
        ),
        (
            {"type": "business_hours", "timezone": "UTC", "days": ["mon"], "start": "09:00", "end": 1020},
            'cal.end: write times in quotes, e.g. "17:00"',
        ),
        (
            {"type": "business_hours", "timezone": "UTC", "days": ["mon"], "start": "24:00", "end": "17:00"},
            "cal.start: not a time of day: '24:00' ('24:00' only as an end)",
        ),
        (
            {"type": "business_hours", "timezone": "UTC", "days": ["mon"], "start": "9am", "end": "17:00"},
            "cal.start: must be a local time 'HH:MM'",
        ),
        (
            {
                "type": "business_hours",
                "timezone": "UTC",
                "windows": {"mon": ["09:00-17:00"]},
                "days": ["mon"],
            },
            "cal.days: give either `windows` or `days`/`start`/`end`",
        ),
        (
            {"type": "business_hours", "timezone": "UTC", "windows": {"mon": ["09:00"]}},
            "cal.windows.mon[0]: must be 'HH:MM-HH:MM'",
        ),
        (
            {
                "type": "business_hours",
                "timezone": "UTC",
                "windows": {"mon": ["09:00-17:00"]},
                "holidays": ["xmas"],
            },
            "cal.holidays[0]: must be a date YYYY-MM-DD",
        ),
        ({"type": "business_hours", "timezone": "UTC", "windows": {}}, "cal.windows: must map weekdays"),
        ("24x7", "cal: must be a mapping"),
    ],
)
def test_from_config_errors_name_the_field(config: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Calendar.from_config(config, key="cal")  # type: ignore[arg-type]
    assert caught.value.message.startswith(message), caught.value.message


# -- properties ---------------------------------------------------------------------------------------------
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
]
# Instants near the 2026 DST changes of these zones, and anywhere in 2026.
CHANGES = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 3, 8, 7, tzinfo=UTC),
    datetime(2026, 11, 1, 6, tzinfo=UTC),
    datetime(2026, 4, 4, 16, tzinfo=UTC),  # Sydney and Lord Howe, April
    datetime(2026, 10, 3, 16, tzinfo=UTC),  # Sydney and Lord Howe, October
]
QUARTERS = st.integers(0, 95).map(lambda q: time(q // 4, q % 4 * 15))


@st.composite
def calendars(draw: st.DrawFn, *, avoid_dst_hours: bool = False) -> Calendar:
    tz = draw(st.sampled_from(ZONES))
    if draw(st.integers(0, 9)) == 0 and not avoid_dst_hours:
        return Calendar.always()
    times = QUARTERS.filter(lambda t: not 1 <= t.hour < 4) if avoid_dst_hours else QUARTERS
    windows = draw(
        st.dictionaries(
            st.integers(0, 6), st.lists(st.tuples(times, times), min_size=1, max_size=3), min_size=1
        )
    )
    holidays = draw(st.lists(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=6))
    return Calendar.weekly(tz, windows, holidays)


instants = st.one_of(
    st.integers(0, 365 * 86_400).map(lambda s: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s)),
    st.tuples(st.sampled_from(CHANGES), st.integers(-3 * 86_400, 3 * 86_400)).map(
        lambda p: p[0] + timedelta(seconds=p[1])
    ),
)
spans = st.integers(0, 40 * 86_400).map(lambda s: timedelta(seconds=s))
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(calendars(), instants, spans, spans)
def test_working_time_is_additive(cal: Calendar, a: datetime, ab: timedelta, bc: timedelta) -> None:
    b, c = a + ab, a + ab + bc
    assert cal.working_time(a, c) == cal.working_time(a, b) + cal.working_time(b, c)
    assert cal.working_time(a, c) <= c - a
    assert cal.working_seconds(c, a) == 0 or a == c


@PROPS
@given(calendars(), instants, st.floats(0, 30 * 86_400, allow_nan=False))
def test_add_is_the_inverse_and_lands_on_working_time_or_a_window_end(
    cal: Calendar, start: datetime, seconds: float
) -> None:
    end = cal.add_working_seconds(start, seconds)
    assert abs(cal.working_seconds(start, end) - seconds) <= 1e-6
    assert end >= start
    if seconds >= 1e-6:
        assert cal.is_working(end - timedelta(microseconds=1))  # inside or at the end of a window


@PROPS
@given(calendars(), instants, spans)
def test_add_of_working_seconds_returns_a_working_end(
    cal: Calendar, start: datetime, span: timedelta
) -> None:
    end = start + span
    worked = cal.working_seconds(start, end)
    back = cal.add_working_seconds(start, worked)
    assert back <= end
    if worked > 0 and cal.is_working(end - timedelta(microseconds=1)):
        assert back == end


@PROPS
@given(calendars(), instants, spans, spans, st.floats(0, 9 * 86_400), st.floats(0, 9 * 86_400))
def test_monotonic(cal: Calendar, start: datetime, d1: timedelta, d2: timedelta, x: float, y: float) -> None:
    near, far = sorted([start + d1, start + d2])
    assert cal.working_seconds(start, near) <= cal.working_seconds(start, far)
    lo, hi = sorted([x, y])
    assert cal.add_working_seconds(start, lo) <= cal.add_working_seconds(start, hi)


@PROPS
@given(calendars(), instants)
def test_next_working_instant_is_working_and_skips_no_work(cal: Calendar, at: datetime) -> None:
    nxt = cal.next_working_instant(at)
    assert nxt >= at
    assert cal.is_working(nxt)
    assert cal.working_seconds(at, nxt) == 0
    assert (nxt == at) == cal.is_working(at)


@PROPS
@given(st.sampled_from(ZONES), instants, spans)
def test_24x7_and_whole_day_windows_equal_wall_clock_seconds(
    tz: str, start: datetime, span: timedelta
) -> None:
    end = start + span
    assert Calendar.always().working_seconds(start, end) == span.total_seconds()
    assert every_day(tz, time(0), time(0)).working_seconds(start, end) == span.total_seconds()
    assert Calendar.always().add_working_seconds(start, span.total_seconds()) == end


def _oracle_minutes(cal: Calendar, start: datetime, minutes: int) -> int:
    """Count working minutes by reading the local wall clock each minute (windows as written)."""
    assert cal.windows is not None
    tz = ZoneInfo(cal.timezone)
    count = 0
    for n in range(minutes):
        wall = (start + timedelta(minutes=n)).astimezone(tz)
        day, tod = wall.date(), wall.time().replace(tzinfo=None)
        if day in cal.holidays:
            continue
        today = cal.windows[day.weekday()]
        yesterday = cal.windows[(day.weekday() - 1) % 7]
        if (
            any(s <= tod < e for s, e in today if s < e)
            or any(tod >= s for s, e in today if e <= s)
            or any(tod < e for s, e in yesterday if e <= s)
        ):
            count += 1
    return count


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars(avoid_dst_hours=True), instants, st.integers(0, 3 * 24 * 60))
def test_matches_a_minute_by_minute_wall_clock_oracle(cal: Calendar, at: datetime, minutes: int) -> None:
    # Window boundaries outside 01:00-04:00 never sit in a DST gap or repeat, so the wall-clock reading
    # and the calendar must agree exactly, DST nights included.
    assume(cal.windows is not None)
    start = at.replace(second=0, microsecond=0)
    expected = _oracle_minutes(cal, start, minutes) * 60
    assert cal.working_seconds(start, start + timedelta(minutes=minutes)) == expected
