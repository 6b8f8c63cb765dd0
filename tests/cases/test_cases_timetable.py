"""Curfew timetables: the 2-20 hour, 112 hour and no-overlap rules, and concrete UTC times."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given
from hypothesis import strategies as st

from tagwatch.cases import timetable
from tagwatch.cases.timetable import (
    DAYS,
    MINUTES_PER_DAY,
    MINUTES_PER_WEEK,
    Period,
    curfew_problems,
    expand,
    overlaps,
    parse_period,
)

# Starts and ends on the quarter hour keep the search space small but cover midnight.
clock = st.integers(0, 95).map(lambda q: q * 15)
periods_strategy = st.lists(
    st.builds(Period, st.integers(0, 6), clock, clock), min_size=1, max_size=8
)


def minute_counts(periods: list[Period]) -> list[int]:
    """Brute force: how many periods cover each minute of the circular week."""
    counts = [0] * MINUTES_PER_WEEK
    for p in periods:
        for m in range(p.minutes):
            counts[(p.week_start + m) % MINUTES_PER_WEEK] += 1
    return counts


@given(periods_strategy)
def test_overlap_detection_agrees_with_a_minute_by_minute_check(periods: list[Period]) -> None:
    brute = any(c > 1 for c in minute_counts(periods))
    assert bool(overlaps(periods)) is brute


@given(periods_strategy)
def test_each_reported_pair_really_shares_a_minute(periods: list[Period]) -> None:
    for i, j in overlaps(periods):
        assert any(c > 1 for c in minute_counts([periods[i], periods[j]]))


@given(periods_strategy)
def test_daily_and_weekly_rules_match_their_definition(periods: list[Period]) -> None:
    totals = [0] * 7
    for p in periods:
        totals[p.day] += p.minutes
    bad_days = {DAYS[d] for d, t in enumerate(totals) if t and not 120 <= t <= 1200}
    reasons = [p.reason for p in curfew_problems(periods)]
    reported_days = {r.split()[0] for r in reasons if "each day must total" in r}
    assert reported_days == bad_days
    assert any("the week totals" in r for r in reasons) is (sum(totals) > 112 * 60)
    assert any("overlaps" in r for r in reasons) is any(c > 1 for c in minute_counts(periods))


def test_a_period_ending_before_it_starts_runs_past_midnight_and_counts_to_its_day() -> None:
    p = parse_period({"day": "friday", "start": "19:00", "end": "07:00"})
    assert p.minutes == 12 * 60
    assert timetable.daily_minutes([p])[4] == 12 * 60


def test_sunday_night_runs_into_monday_morning() -> None:
    sunday = parse_period({"day": "sunday", "start": "22:00", "end": "06:00"})
    monday = parse_period({"day": "monday", "start": "05:00", "end": "09:00"})
    assert overlaps([sunday, monday]) == [(0, 1)]
    [problem] = curfew_problems([sunday, monday])
    assert problem.index == 1 and problem.reason == "period overlaps sunday 22:00-06:00"


def test_bounds_are_inclusive() -> None:
    two = parse_period({"day": "monday", "start": "20:00", "end": "22:00"})
    twenty = parse_period({"day": "tuesday", "start": "02:00", "end": "22:00"})
    assert curfew_problems([two, twenty]) == []
    short = parse_period({"day": "monday", "start": "20:00", "end": "21:59"})
    assert "each day must total 2 to 20 hours" in curfew_problems([short])[0].reason
    # 7 x 16 h = 112 h is allowed, 7 x 16 h 15 min is not
    week = [Period(d, 16 * 60, 8 * 60) for d in range(7)]
    assert curfew_problems(week) == []
    longer = [Period(d, 15 * 60 + 45, 8 * 60) for d in range(7)]
    assert any("at most 112 hours" in p.reason for p in curfew_problems(longer))


UTC = dt.UTC


def hours(intervals: list[tuple[dt.datetime, dt.datetime]]) -> float:
    return sum((e - s).total_seconds() for s, e in intervals) / 3600


def test_expansion_follows_london_clocks_across_both_changes() -> None:
    week = [{"day": d, "start": "19:00", "end": "07:00"} for d in DAYS]
    spring = expand(week, None, dt.datetime(2026, 3, 28, 12, tzinfo=UTC),
                    dt.datetime(2026, 3, 29, 12, tzinfo=UTC))  # fmt: skip
    # Saturday 19:00 GMT to Sunday 07:00 BST is 11 hours
    assert spring == [
        (dt.datetime(2026, 3, 28, 19, tzinfo=UTC), dt.datetime(2026, 3, 29, 6, tzinfo=UTC))
    ]
    autumn = expand(week, None, dt.datetime(2026, 10, 24, 12, tzinfo=UTC),
                    dt.datetime(2026, 10, 25, 12, tzinfo=UTC))  # fmt: skip
    # Saturday 19:00 BST (18:00 UTC) to Sunday 07:00 GMT is 13 hours
    assert autumn == [
        (dt.datetime(2026, 10, 24, 18, tzinfo=UTC), dt.datetime(2026, 10, 25, 7, tzinfo=UTC))
    ]
    summer_week = expand(
        week, None, dt.datetime(2026, 7, 6, tzinfo=UTC), dt.datetime(2026, 7, 13, tzinfo=UTC)
    )
    assert summer_week[0][0] == dt.datetime(2026, 7, 6, 0, tzinfo=UTC)  # Sunday's period clipped
    assert hours(summer_week) == 7 * 12


def test_the_release_day_replaces_that_days_periods_and_ranges_clip() -> None:
    week = [{"day": d, "start": "19:00", "end": "07:00"} for d in DAYS]
    release = {"date": "2026-11-23", "start": "15:00", "end": "09:00"}
    got = expand(
        week, release, dt.datetime(2026, 11, 23, tzinfo=UTC), dt.datetime(2026, 11, 25, tzinfo=UTC)
    )
    assert got == [
        (dt.datetime(2026, 11, 23, 0, tzinfo=UTC), dt.datetime(2026, 11, 23, 7, tzinfo=UTC)),
        (dt.datetime(2026, 11, 23, 15, tzinfo=UTC), dt.datetime(2026, 11, 24, 9, tzinfo=UTC)),
        (dt.datetime(2026, 11, 24, 19, tzinfo=UTC), dt.datetime(2026, 11, 25, 0, tzinfo=UTC)),
    ]
    assert (
        expand(week, None, dt.datetime(2026, 1, 2, tzinfo=UTC), dt.datetime(2026, 1, 1, tzinfo=UTC))
        == []
    )


@given(periods_strategy.filter(lambda ps: not overlaps(ps)), st.integers(0, 400))
def test_expanded_hours_match_the_timetable_away_from_clock_changes(
    periods: list[Period], offset_days: int
) -> None:
    # January to March 2025 (no clock change): each whole week holds exactly the weekly total.
    start = dt.datetime(2025, 1, 6, tzinfo=UTC) + dt.timedelta(days=offset_days % 70)
    raw = [{"day": DAYS[p.day], "start": timetable.clock(p.start), "end": timetable.clock(p.end)}
           for p in periods]  # fmt: skip
    got = expand(raw, None, start, start + dt.timedelta(days=7))
    assert hours(got) * 60 == sum(p.minutes for p in periods)
    assert all(s < e for s, e in got) and all(a[1] < b[0] for a, b in itertools.pairwise(got))
    assert MINUTES_PER_DAY == 1440
