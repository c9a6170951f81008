"""Working-time calendars for SLA clocks: 24x7, or business hours in an IANA time zone.

A `Calendar` answers four questions about UTC instants: how much working time lies between two of them
(`working_seconds`), when a given amount of working time has elapsed (`add_working_seconds`, the inverse),
whether an instant is working time (`is_working`) and when working time next starts
(`next_working_instant`). Every datetime in or out is timezone-aware; results are UTC. Time zones only
decide *where* the working windows lie; the working time inside them is always real elapsed time.

**24x7** (`Calendar.always()`): every instant works; working seconds are wall-clock (real) seconds, so the
local day of a fall-back night has 25 hours and a spring-forward day 23. It has no holidays.

**Business hours** (`Calendar.business_hours(...)`, `Calendar.weekly(...)`): per weekday, windows of local
wall time `(start, end)`. `end <= start` means the window ends on the next day (`22:00-06:00` is a night
shift; `00:00-00:00`, written `00:00-24:00` in config, is the whole day), and such a window is split at
midnight, its tail belonging to the next local date. Holidays are local dates with no working time at all,
including the after-midnight tail of the previous evening's window. Overlapping windows are merged.

**DST and local times.** A window boundary at local wall time `t` on date `d` is the *earliest instant at
which the local clock reads `t` or later*. So:

- a window that does not contain a clock change keeps its length (`09:00-17:00` is 8 hours on DST days);
- a boundary in the spring-forward gap (02:30 in Berlin on 2026-03-29 does not exist) falls on the instant
  the clock jumps (03:00 CEST); a window lying entirely in the gap is empty, and a window spanning the gap
  is an hour shorter (`00:00-06:00` is 5 real hours that night);
- a boundary in the repeated fall-back hour takes its *first* occurrence (02:30 on 2026-10-25 in Berlin is
  02:30 CEST); a window spanning the repeated hour is an hour longer (`00:00-06:00` is 7 real hours), and
  a window is one contiguous span, so `01:00-02:30` that night ends at the first 02:30 and the repeated
  02:00-02:30 is not working time.

Working windows are half-open `[start, end)`: `is_working(end)` is False unless another window starts
there. The arithmetic runs on exact `timedelta`s (microsecond resolution) and walks the calendar a local
day at a time, so spans of months cost a few hundred small steps, never minute-by-minute iteration.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watchfloor.core.errors import ConfigError, Location

__all__ = ["WEEKDAYS", "Calendar", "Window", "parse_weekday", "utc", "zone"]

Window = tuple[time, time]  # local wall times; end <= start means the window ends the next day

WEEKDAYS: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG_NAMES: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_NAMES: Final[dict[str, int]] = {
    **{name: i for i, name in enumerate(WEEKDAYS)},
    **{name: i for i, name in enumerate(_LONG_NAMES)},
}
_DAY: Final = 86_400
_ONE_DAY: Final = timedelta(days=1)
_MAX_EMPTY_DAYS: Final = 3_700  # a calendar with no working time for ten years is broken, not slow
_TIME_RE: Final = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_CONFIG_KEYS: Final = frozenset({"type", "timezone", "days", "start", "end", "windows", "holidays"})
_Fail = Callable[[str, str], ConfigError]
TENANT_TIMEZONE: Final = "tenant"  # config value meaning "the tenant's time zone" (see from_config)


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError naming it when unknown."""
    if not name or name != name.strip():
        raise ValueError(f"unknown IANA time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc


def parse_weekday(value: int | str) -> int:
    """0 (Monday) .. 6 (Sunday) from an int or a day name (`mon`, `Monday`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 6:
            return value
        raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {value}")
    day = _WEEKDAY_NAMES.get(str(value).strip().lower())
    if day is None:
        raise ValueError(f"not a weekday: {value!r} (use {', '.join(WEEKDAYS)})")
    return day


@dataclass(frozen=True, slots=True, kw_only=True)
class Calendar:
    """24x7 (`windows is None`) or weekly business hours in `timezone` (see the module docstring).

    `windows[i]` holds weekday i's windows (0 = Monday) in local wall time; `holidays` are local dates.
    """

    timezone: str = "UTC"
    windows: tuple[tuple[Window, ...], ...] | None = None
    holidays: frozenset[date] = frozenset()
    # Derived: per weekday, merged [start, end) seconds of the local day (end may be 86400).
    _segments: tuple[tuple[tuple[int, int], ...], ...] = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", zone(self.timezone))
        if self.windows is None:
            if self.holidays:
                raise ValueError("a 24x7 calendar has no holidays")
            object.__setattr__(self, "_segments", ())
            return
        if len(self.windows) != 7:
            raise ValueError(
                f"business hours need 7 weekdays of windows (Monday first), got {len(self.windows)}"
            )
        per_day: list[list[tuple[int, int]]] = [[] for _ in range(7)]
        for weekday, day_windows in enumerate(self.windows):
            for start, end in day_windows:
                if start.tzinfo is not None or end.tzinfo is not None:
                    raise ValueError("window times are local wall times and take no tzinfo")
                lo, hi = _seconds_of_day(start), _seconds_of_day(end)
                if hi > lo:
                    per_day[weekday].append((lo, hi))
                else:  # crosses midnight: the tail belongs to the next local date
                    per_day[weekday].append((lo, _DAY))
                    if hi > 0:
                        per_day[(weekday + 1) % 7].append((0, hi))
        segments = tuple(_merge(day) for day in per_day)
        if not any(segments):
            raise ValueError("business hours need at least one working window")
        object.__setattr__(self, "_segments", segments)

    # -- constructors -------------------------------------------------------------------------------
    @classmethod
    def always(cls) -> Calendar:
        """24x7 in UTC: every instant is working time."""
        return cls()

    @classmethod
    def business_hours(
        cls,
        tz: str,
        days: Iterable[int | str] = (0, 1, 2, 3, 4),
        start: time = time(9),
        end: time = time(17),
        holidays: Iterable[date] = (),
    ) -> Calendar:
        """One window `start`-`end` local time on each of `days` (default Monday to Friday, 09:00-17:00)."""
        wanted = {parse_weekday(day) for day in days}
        return cls.weekly(tz, {day: [(start, end)] for day in wanted}, holidays)

    @classmethod
    def weekly(
        cls,
        tz: str,
        windows: Mapping[int, Iterable[Window]] | Mapping[str, Iterable[Window]],
        holidays: Iterable[date] = (),
    ) -> Calendar:
        """Any weekly pattern: weekday (0-6 or name) -> windows in local wall time."""
        week: list[list[Window]] = [[] for _ in range(7)]
        for day, day_windows in windows.items():
            week[parse_weekday(day)].extend(day_windows)
        return cls(
            timezone=tz,
            windows=tuple(tuple(sorted(day)) for day in week),
            holidays=frozenset(holidays),
        )

    @classmethod
    def from_config(
        cls,
        mapping: Mapping[str, Any],
        *,
        key: str = "calendar",
        location: Location | None = None,
        tenant_timezone: str | None = None,
    ) -> Calendar:
        """A calendar from config; ConfigError naming `key.<field>` and `location` on any problem.

        type: 24x7                      # nothing else allowed
        type: business_hours
        timezone: Europe/Berlin         # or `tenant`: the tenant_timezone argument
        days: [mon, tue, wed, thu, fri] # or "mon-fri"; with start and end ...
        start: "09:00"                  # quote times: YAML reads 17:00 as the number 1020
        end: "17:00"                    # "24:00" = midnight; end <= start = ends the next day
        windows:                        # ... or per weekday windows instead of days/start/end
          sat: ["09:00-12:00"]
        holidays: [2026-12-25]          # local dates
        """
        return _from_config(cls, mapping, key, location, tenant_timezone)

    def with_timezone(self, tz: str) -> Calendar:
        """The same windows and holidays in another time zone (a 24x7 calendar keeps counting real time)."""
        return replace(self, timezone=tz)

    # -- queries ------------------------------------------------------------------------------------
    @property
    def is_24x7(self) -> bool:
        return self.windows is None

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working time between two instants, in seconds; 0 if `end <= start`."""
        return self.working_time(start, end).total_seconds()

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """`working_seconds` as an exact timedelta."""
        start, end = utc(start, "start"), utc(end, "end")
        if end <= start:
            return timedelta(0)
        if self.windows is None:
            return end - start
        total = timedelta(0)
        for lo, hi in self._intervals_from(start):
            if lo >= end:
                break
            total += min(hi, end) - max(lo, start)
        return total

    def add_working_seconds(self, start: datetime, seconds: float) -> datetime:
        """The UTC instant at which `seconds` of working time have elapsed after `start`.

        The inverse of `working_seconds`: `working_seconds(s, add_working_seconds(s, x)) == x` (to the
        microsecond). For `x > 0` the result is the earliest such instant, a working instant or the end of a
        window (never the start of the next one); `x == 0` returns `start` itself.
        """
        if seconds < 0:
            raise ValueError(f"cannot add a negative working time ({seconds} s)")
        return self.add_working_time(start, timedelta(seconds=seconds))

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """`add_working_seconds` with an exact timedelta."""
        start = utc(start, "start")
        if amount < timedelta(0):
            raise ValueError(f"cannot add a negative working time ({amount})")
        if amount == timedelta(0) or self.windows is None:
            return start + amount
        need = amount
        for lo, hi in self._intervals_from(start):
            lo = max(lo, start)
            available = hi - lo
            if available >= need:
                return lo + need
            need -= available
        raise AssertionError("unreachable: _intervals_from is endless")  # pragma: no cover

    def is_working(self, at: datetime) -> bool:
        """Whether `at` lies in a working window (windows are half-open: their end is not working)."""
        at = utc(at, "at")
        return self.next_working_instant(at) == at

    def next_working_instant(self, at: datetime) -> datetime:
        """`at` itself if it is working time, else the start of the next working window (UTC)."""
        at = utc(at, "at")
        if self.windows is None:
            return at
        lo, _hi = next(self._intervals_from(at))
        return max(lo, at)

    def working_intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The working windows overlapping `[start, end)`, clipped to it, as UTC `(from, to)` pairs."""
        start, end = utc(start, "start"), utc(end, "end")
        if end <= start:
            return []
        if self.windows is None:
            return [(start, end)]
        out: list[tuple[datetime, datetime]] = []
        for lo, hi in self._intervals_from(start):
            if lo >= end:
                break
            out.append((max(lo, start), min(hi, end)))
        return out

    # -- internals ----------------------------------------------------------------------------------
    def _intervals_from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Endless, ordered, non-empty UTC windows that end after `start` (business hours only)."""
        day = start.astimezone(self._zone).date() - _ONE_DAY  # the previous day: fall-back at midnight
        empty = 0
        while True:
            found = False
            if day not in self.holidays:
                for lo_s, hi_s in self._segments[day.weekday()]:
                    hi = self._instant(day, hi_s)
                    if hi <= start:
                        continue
                    lo = self._instant(day, lo_s)
                    if hi > lo:
                        found = True
                        yield lo, hi
            empty = 0 if found else empty + 1
            if empty > _MAX_EMPTY_DAYS:
                raise ValueError(f"calendar has no working time for {_MAX_EMPTY_DAYS} days after {day}")
            day += _ONE_DAY

    def _instant(self, day: date, second: int) -> datetime:
        """The earliest UTC instant at which the local clock reads `second` of `day` or later."""
        if second >= _DAY:
            day, second = day + _ONE_DAY, second - _DAY
        hours, rest = divmod(second, 3600)
        wall = datetime.combine(day, time(hours, rest // 60, rest % 60))
        first = wall.replace(tzinfo=self._zone).astimezone(UTC)  # fold=0: first occurrence when repeated
        if first.astimezone(self._zone).replace(tzinfo=None) == wall:
            return first
        # In a spring-forward gap: fold=0 used the offset before the jump (an instant past the jump) and
        # fold=1 the offset after it (an instant before the jump). The jump itself is the answer.
        low = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        lo_s, hi_s = 0, int((first - low).total_seconds())
        while hi_s - lo_s > 1:
            mid = (lo_s + hi_s) // 2
            probe = low + timedelta(seconds=mid)
            if probe.astimezone(self._zone).replace(tzinfo=None) >= wall:
                hi_s = mid
            else:
                lo_s = mid
        return low + timedelta(seconds=hi_s)


def utc(value: datetime, name: str = "time") -> datetime:
    """`value` in UTC; ValueError for a naive datetime (every boundary in cases/ is timezone-aware)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _seconds_of_day(value: time) -> int:
    if value.microsecond:
        raise ValueError(f"window times have whole seconds, got {value.isoformat()}")
    return value.hour * 3600 + value.minute * 60 + value.second


def _merge(segments: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(segments):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


# -- config -----------------------------------------------------------------------------------------------
def _from_config(
    cls: type[Calendar],
    mapping: Mapping[str, Any],
    key: str,
    location: Location | None,
    tenant_timezone: str | None,
) -> Calendar:
    def fail(where: str, message: str) -> ConfigError:
        return ConfigError(f"{key}.{where}: {message}" if where else f"{key}: {message}", location=location)

    if not isinstance(mapping, Mapping):
        raise fail("", f"must be a mapping, got {type(mapping).__name__}")
    unknown = sorted(str(k) for k in mapping if k not in _CONFIG_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown field (known: {', '.join(sorted(_CONFIG_KEYS))})")
    kind = mapping.get("type")
    if kind == "24x7":
        extra = sorted(k for k in mapping if k != "type")
        if extra:
            raise fail(extra[0], "a 24x7 calendar takes no other field")
        return cls.always()
    if kind != "business_hours":
        raise fail("type", f"must be '24x7' or 'business_hours', got {kind!r}")

    tz = mapping.get("timezone")
    if not isinstance(tz, str) or not tz:
        raise fail("timezone", "required: an IANA time zone such as Europe/Berlin, or 'tenant'")
    if tz == TENANT_TIMEZONE:
        if tenant_timezone is None:
            raise fail("timezone", "'tenant' needs the tenant's time zone, and none was given here")
        tz = tenant_timezone
    try:
        zone(tz)
    except ValueError as exc:
        raise fail("timezone", str(exc)) from None

    week: dict[int, list[Window]] = {}
    if "windows" in mapping:
        for name in ("days", "start", "end"):
            if name in mapping:
                raise fail(name, "give either `windows` or `days`/`start`/`end`, not both")
        raw = mapping["windows"]
        if not isinstance(raw, Mapping) or not raw:
            raise fail("windows", "must map weekdays (mon..sun) to lists of 'HH:MM-HH:MM'")
        for day_name, spans in raw.items():
            where = f"windows.{day_name}"
            try:
                day = parse_weekday(day_name)
            except ValueError as exc:
                raise fail(where, str(exc)) from None
            if isinstance(spans, str):
                spans = [spans]
            if not isinstance(spans, list):
                raise fail(where, "must be a list of 'HH:MM-HH:MM'")
            for i, span in enumerate(spans):
                week.setdefault(day, []).append(_parse_span(span, fail, f"{where}[{i}]"))
    else:
        for name in ("days", "start", "end"):
            if name not in mapping:
                raise fail(name, "required for business hours (or give `windows`)")
        days = _parse_days(mapping["days"], fail)
        start = _parse_time(mapping["start"], fail, "start", allow_24=False)
        end = _parse_time(mapping["end"], fail, "end", allow_24=True)
        week = {day: [(start, end)] for day in days}
    holidays = _parse_holidays(mapping.get("holidays", []), fail)
    try:
        return cls.weekly(tz, week, holidays)
    except ValueError as exc:
        raise fail("windows" if "windows" in mapping else "days", str(exc)) from None


def _parse_days(raw: object, fail: _Fail) -> list[int]:
    if isinstance(raw, str) and "-" in raw:
        first, _, last = raw.partition("-")
        try:
            lo, hi = parse_weekday(first), parse_weekday(last)
        except ValueError as exc:
            raise fail("days", str(exc)) from None
        return [(lo + i) % 7 for i in range((hi - lo) % 7 + 1)]
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise fail("days", "must be a list of weekdays (mon..sun) or a range such as 'mon-fri'")
    out: list[int] = []
    for i, item in enumerate(raw):
        try:
            out.append(parse_weekday(item))
        except ValueError as exc:
            raise fail(f"days[{i}]", str(exc)) from None
    return out


def _parse_time(raw: object, fail: _Fail, where: str, *, allow_24: bool) -> time:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raise fail(where, f'write times in quotes, e.g. "17:00" (YAML read an unquoted time as {raw})')
    if isinstance(raw, time):
        return raw
    match = _TIME_RE.fullmatch(str(raw).strip()) if isinstance(raw, str) else None
    if match is None:
        raise fail(where, f"must be a local time 'HH:MM', got {raw!r}")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    if allow_24 and (hours, minutes, seconds) == (24, 0, 0):
        return time(0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise fail(
            where, f"not a time of day: {raw!r}" + (" ('24:00' only as an end)" if hours == 24 else "")
        )
    return time(hours, minutes, seconds)


def _parse_span(raw: object, fail: _Fail, where: str) -> Window:
    if not isinstance(raw, str) or raw.count("-") != 1:
        raise fail(where, f"must be 'HH:MM-HH:MM', got {raw!r}")
    start, _, end = raw.partition("-")
    return _parse_time(start, fail, where, allow_24=False), _parse_time(end, fail, where, allow_24=True)


def _parse_holidays(raw: object, fail: _Fail) -> list[date]:
    if not isinstance(raw, list):
        raise fail("holidays", "must be a list of dates (YYYY-MM-DD)")
    out: list[date] = []
    for i, item in enumerate(raw):
        if isinstance(item, datetime):
            raise fail(f"holidays[{i}]", f"must be a date, not a date and time: {item!r}")
        if isinstance(item, date):
            out.append(item)
            continue
        try:
            out.append(date.fromisoformat(str(item)))
        except ValueError:
            raise fail(f"holidays[{i}]", f"must be a date YYYY-MM-DD, got {item!r}") from None
    return out
