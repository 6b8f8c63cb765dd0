"""Weekly timetables: curfew hours and zone schedules, their rules and their concrete times.

A period `{"day": "monday", "start": "19:00", "end": "07:00"}` starts on `day` at `start`
(Europe/London wall-clock time) and ends at `end`, running past midnight into the next day
when `end` is not after `start`; its hours count to `day`. The week is a circle: a Sunday
night period runs into Monday morning.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
DAYS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
MIN_DAILY_MINUTES = 2 * 60
MAX_DAILY_MINUTES = 20 * 60
MAX_WEEKLY_MINUTES = 112 * 60

_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class Period:
    day: int  # 0 = Monday
    start: int  # minutes after local midnight
    end: int

    @property
    def minutes(self) -> int:
        """Length in minutes; an end not after the start runs into the next day."""
        return (
            self.end - self.start
            if self.end > self.start
            else self.end + MINUTES_PER_DAY - self.start
        )

    @property
    def week_start(self) -> int:
        return self.day * MINUTES_PER_DAY + self.start

    def label(self) -> str:
        return f"{DAYS[self.day]} {clock(self.start)}-{clock(self.end)}"


@dataclass(frozen=True)
class Problem:
    """A rule a timetable breaks: `index` is the offending period (None: the whole timetable)."""

    index: int | None
    field: str | None
    reason: str


def parse_clock(value: object) -> int:
    if not isinstance(value, str) or not _CLOCK.fullmatch(value):
        raise ValueError("must be a time HH:MM (00:00 to 23:59)")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_period(raw: Mapping[str, object]) -> Period:
    day = raw.get("day")
    if day not in DAYS:
        raise ValueError(f"day: must be one of {', '.join(DAYS)}")
    return Period(DAYS.index(str(day)), parse_clock(raw.get("start")), parse_clock(raw.get("end")))


def parse_periods(raw: Sequence[Mapping[str, object]]) -> tuple[list[Period], list[Problem]]:
    """The periods that parse, and a problem for each field that does not."""
    periods: list[Period] = []
    problems: list[Problem] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            problems.append(Problem(index, None, "must be an object with day, start and end"))
            continue
        bad = False
        if item.get("day") not in DAYS:
            problems.append(Problem(index, "day", f"must be one of {', '.join(DAYS)}"))
            bad = True
        for key in ("start", "end"):
            try:
                parse_clock(item.get(key))
            except ValueError as exc:
                problems.append(Problem(index, key, str(exc)))
                bad = True
        if not bad:
            periods.append(parse_period(item))
    return periods, problems


def overlaps(periods: Sequence[Period]) -> list[tuple[int, int]]:
    """Pairs (i, j) of periods that share a minute, on the circular week; each pair once."""
    spans = sorted((p.week_start, p.week_start + p.minutes, i) for i, p in enumerate(periods))
    found: set[tuple[int, int]] = set()
    # A period can only reach periods starting before its end, possibly past the week's end.
    for a, (start_a, end_a, i) in enumerate(spans):
        for start_b, _end_b, j in spans[a + 1 :] + [
            (s + MINUTES_PER_WEEK, e, k) for s, e, k in spans
        ]:
            if start_b >= end_a:
                break
            if j != i and start_b >= start_a:
                found.add((min(i, j), max(i, j)))
    return sorted(found)


def daily_minutes(periods: Iterable[Period]) -> list[int]:
    totals = [0] * 7
    for p in periods:
        totals[p.day] += p.minutes
    return totals


def curfew_problems(periods: Sequence[Period]) -> list[Problem]:
    """The curfew rules: each day with curfew totals 2 to 20 hours, the week at most 112 hours,
    and no two periods overlap (across midnight and from Sunday into Monday too)."""
    problems: list[Problem] = []
    if not periods:
        return [Problem(None, None, "a curfew needs at least one period")]
    totals = daily_minutes(periods)
    for day, total in enumerate(totals):
        if total and not MIN_DAILY_MINUTES <= total <= MAX_DAILY_MINUTES:
            first = next(i for i, p in enumerate(periods) if p.day == day)
            problems.append(
                Problem(
                    first,
                    None,
                    f"{DAYS[day]} totals {_hours(total)} hours; each day must total 2 to 20 hours",
                )
            )
    if sum(totals) > MAX_WEEKLY_MINUTES:
        problems.append(
            Problem(
                None,
                None,
                f"the week totals {_hours(sum(totals))} hours; at most 112 hours are allowed",
            )
        )
    problems.extend(overlap_problems(periods))
    return problems


def overlap_problems(periods: Sequence[Period]) -> list[Problem]:
    return [
        Problem(
            j,
            "end" if periods[j].day == periods[i].day else "start",
            f"period overlaps {periods[i].label()}",
        )
        for i, j in overlaps(periods)
    ]


def _hours(minutes: int) -> str:
    return f"{minutes / 60:g}"


def _local(day: dt.date, minute: int) -> dt.datetime:
    # fold=0: an ambiguous autumn time is the first (summer time) one; a time skipped in
    # spring lands an hour later in UTC terms, which is what the wall clock shows.
    naive = dt.datetime.combine(day, dt.time(minute // 60, minute % 60))
    return naive.replace(tzinfo=LONDON).astimezone(dt.UTC)


def _span(day: dt.date, start: int, end: int) -> tuple[dt.datetime, dt.datetime]:
    end_day = day if end > start else day + dt.timedelta(days=1)
    return _local(day, start), _local(end_day, end)


def expand(
    periods: Sequence[Mapping[str, str]] | None,
    release_day: Mapping[str, str] | None,
    start: dt.datetime,
    end: dt.datetime,
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The concrete UTC intervals a weekly timetable (plus release day) covers in [start, end).

    On the release day the release-day period replaces that day's own periods. Intervals are
    clipped to the range, sorted, and touching or overlapping ones merged.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end <= start:
        return []
    weekly = [parse_period(p) for p in periods or ()]
    release_date = dt.date.fromisoformat(release_day["date"]) if release_day else None
    first = start.astimezone(LONDON).date() - dt.timedelta(days=1)
    last = end.astimezone(LONDON).date()
    raw: list[tuple[dt.datetime, dt.datetime]] = []
    day = first
    while day <= last:
        if day == release_date and release_day is not None:
            raw.append(
                _span(day, parse_clock(release_day["start"]), parse_clock(release_day["end"]))
            )
        else:
            raw.extend(_span(day, p.start, p.end) for p in weekly if p.day == day.weekday())
        day += dt.timedelta(days=1)
    clipped = sorted((max(s, start), min(e, end)) for s, e in raw if e > start and s < end)
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for s, e in clipped:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        elif e > s:
            merged.append((s, e))
    return merged
