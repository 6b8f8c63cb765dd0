"""Worked cases for the matcher's edges, each checked against a value worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tagwatch.crime.matcher import (
    CrimeSet,
    MatchParams,
    TrackSet,
    match_crimes,
    pass_letters,
    where_was,
)

MIN = 60_000


def crimes(*rows: tuple[float, float, int, int]) -> CrimeSet:
    return CrimeSet(
        np.arange(1, len(rows) + 1, dtype=np.int64),
        np.array([r[0] for r in rows], dtype=np.float64),
        np.array([r[1] for r in rows], dtype=np.float64),
        np.array([r[2] for r in rows], dtype=np.int64),
        np.array([r[3] for r in rows], dtype=np.int64),
    )


def track(*fixes: tuple[int, float, float], owner: int = 1, acc: float = 5.0) -> TrackSet:
    n = len(fixes)
    return TrackSet(
        np.full(n, owner, dtype=np.int64),
        np.array([f[0] for f in fixes], dtype=np.int64),
        np.array([f[1] for f in fixes], dtype=np.float64),
        np.array([f[2] for f in fixes], dtype=np.float64),
        np.full(n, acc),
    )


def test_a_segment_through_the_circle_matches_without_a_fix_inside() -> None:
    # From 500 m west to 500 m east in 10 minutes, passing 30 m north of the crime.
    result = match_crimes(
        crimes((0.0, 0.0, 0, 10 * MIN)),
        track((0, -500.0, 30.0), (10 * MIN, 500.0, 30.0)),
        MatchParams(),
    )
    assert len(result) == 1
    assert result.closest_distance_m[0] == pytest.approx(30.0)
    assert result.closest_time_ms[0] == pytest.approx(5 * MIN)
    assert result.fixes_in_radius[0] == 0
    assert result.passes[0] == 1
    # Inside while |x| <= sqrt(100^2 - 30^2) = 95.39 m, at 500 m per 5 minutes.
    half = np.sqrt(100**2 - 30**2) / 1000 * 10 * MIN
    assert result.first_time_ms[0] == pytest.approx(5 * MIN - half)
    assert result.last_time_ms[0] == pytest.approx(5 * MIN + half)
    assert result.coverage_pct[0] == pytest.approx(100.0)
    assert result.labels(0) == []


def test_a_gap_of_exactly_max_gap_is_joined_and_one_more_millisecond_breaks_it() -> None:
    joined = track((0, -500.0, 0.0), (10 * MIN, 500.0, 0.0))
    broken = track((0, -500.0, 0.0), (10 * MIN + 1, 500.0, 0.0))
    window = crimes((0.0, 0.0, 0, 10 * MIN + 1))
    assert len(match_crimes(window, joined, MatchParams())) == 1
    assert len(match_crimes(window, broken, MatchParams())) == 0


def test_the_track_is_clipped_to_the_window_by_interpolation() -> None:
    # Moving east at 1 m/s from x = -300; the crime window ends when it is 150 m away.
    t = track((0, -300.0, 0.0), (300_000, 0.0, 0.0))
    assert len(match_crimes(crimes((0.0, 0.0, 0, 150_000)), t, MatchParams())) == 0
    # Ten seconds of tolerance is not enough (140 m); sixty is (90 m).
    assert len(match_crimes(crimes((0.0, 0.0, 0, 150_000)), t, MatchParams(tolerance_s=10))) == 0
    hit = match_crimes(crimes((0.0, 0.0, 0, 150_000)), t, MatchParams(tolerance_s=60))
    assert hit.closest_distance_m[0] == pytest.approx(90.0)
    assert hit.closest_time_ms[0] == pytest.approx(210_000)
    assert hit.first_time_ms[0] == pytest.approx(200_000)
    assert hit.last_time_ms[0] == pytest.approx(210_000)


def test_a_fix_exactly_on_the_window_end_and_exactly_on_the_radius_counts() -> None:
    t = track((0, 100.0, 0.0), (MIN, 400.0, 0.0))
    result = match_crimes(crimes((0.0, 0.0, -MIN, 0)), t, MatchParams())
    assert len(result) == 1
    assert result.closest_distance_m[0] == 100.0
    assert result.fixes_in_radius[0] == 1
    assert result.labels(0) == [(0, "A1")]
    # The window ends where the track starts: it covers nothing of the window.
    assert result.coverage_pct[0] == 0.0


def test_the_radius_is_decided_by_the_distance_not_its_square() -> None:
    # Three people standing a hair inside, exactly on and a hair outside the radius: the
    # squares of these distances differ by less than their rounding, the distances do not.
    hair = 1e-11
    people = [
        track((0, 100.0 - hair, 0.0), (MIN, 100.0 - hair, 0.0), owner=1),
        track((0, 100.0, 0.0), (MIN, 100.0, 0.0), owner=2),
        track((0, 100.0 + hair, 0.0), (MIN, 100.0 + hair, 0.0), owner=3),
    ]
    tracks = TrackSet(
        *(np.concatenate([getattr(p, f) for p in people]) for f in TrackSet.__dataclass_fields__)
    )
    result = match_crimes(crimes((0.0, 0.0, 0, MIN)), tracks, MatchParams())
    assert result.owner.tolist() == [1, 2]
    assert result.closest_distance_m.tolist() == [100.0 - hair, 100.0]
    assert result.fixes_in_radius.tolist() == [2, 2]


def test_the_closest_approach_is_the_least_distance_where_squares_disagree() -> None:
    # Two lone fixes whose squared distances (rounded) order them one way and whose
    # distances order them the other: the distance decides.
    first = (45.45828853461354, 36.74946926522013)
    second = (45.45828853461352, 36.74946926522014)
    assert first[0] ** 2 + first[1] ** 2 < second[0] ** 2 + second[1] ** 2
    assert math.hypot(*first) > math.hypot(*second)
    t = track((0, *first), (20 * MIN, *second))
    result = match_crimes(crimes((0.0, 0.0, 0, 20 * MIN)), t, MatchParams())
    assert result.closest_distance_m.tolist() == [math.hypot(*second)]
    assert result.closest_time_ms.tolist() == [20.0 * MIN]


def test_a_lone_fix_matches_and_covers_no_time() -> None:
    t = track((0, 10.0, 0.0), (60 * MIN, 10.0, 0.0))
    result = match_crimes(crimes((0.0, 0.0, -MIN, MIN)), t, MatchParams())
    assert result.passes[0] == 1
    assert result.fixes_in_radius[0] == 1
    assert result.coverage_pct[0] == 0.0


def test_a_stationary_person_is_closest_at_the_start_of_the_window() -> None:
    t = track((0, 20.0, 0.0), (5 * MIN, 20.0, 0.0), (10 * MIN, 20.0, 0.0))
    result = match_crimes(crimes((0.0, 0.0, 2 * MIN, 8 * MIN)), t, MatchParams())
    assert result.closest_distance_m[0] == 20.0
    assert result.closest_time_ms[0] == 2 * MIN
    assert result.passes[0] == 1
    assert result.labels(0) == [(1, "A1")]
    assert result.coverage_pct[0] == pytest.approx(100.0)


def test_leaving_and_returning_makes_two_passes_and_a_break_ends_a_pass() -> None:
    t = track(
        (0, 0.0, 0.0),  # A1
        (MIN, 50.0, 0.0),  # A2
        (2 * MIN, 300.0, 0.0),  # out
        (3 * MIN, 10.0, 0.0),  # B1
        (30 * MIN, 10.0, 0.0),  # after a break: C1
        (31 * MIN, 20.0, 0.0),  # C2
    )
    result = match_crimes(crimes((0.0, 0.0, 0, 31 * MIN)), t, MatchParams())
    assert result.passes[0] == 3
    assert [label for _, label in result.labels(0)] == ["A1", "A2", "B1", "C1", "C2"]
    assert result.coverage_pct[0] == pytest.approx(100.0 * 4 / 31)


def test_a_long_fast_segment_is_found_wherever_it_crosses() -> None:
    # 20 km in ten minutes: filed as many pieces; the crime is near the middle.
    t = track((0, -10_000.0, 5.0), (10 * MIN, 10_000.0, 5.0))
    result = match_crimes(crimes((1234.0, 0.0, 0, 10 * MIN)), t, MatchParams())
    assert len(result) == 1
    assert result.closest_distance_m[0] == pytest.approx(5.0)


def test_max_accuracy_includes_the_fixes_carrying_the_window() -> None:
    n = 3
    t = TrackSet(
        np.ones(n, dtype=np.int64),
        np.array([0, 5 * MIN, 10 * MIN], dtype=np.int64),
        np.array([-200.0, 0.0, 200.0]),
        np.zeros(n),
        np.array([40.0, 8.0, 25.0]),
    )
    result = match_crimes(crimes((0.0, 0.0, 4 * MIN, 6 * MIN)), t, MatchParams())
    assert result.max_accuracy_m[0] == 40.0


def test_owners_are_kept_apart() -> None:
    a = track((0, 500.0, 0.0), (MIN, 500.0, 0.0), owner=1)
    b = track((0, 0.0, 0.0), (MIN, 0.0, 0.0), owner=2)
    both = TrackSet(
        *(
            np.concatenate([getattr(a, f), getattr(b, f)])
            for f in ("owner", "t_ms", "x", "y", "accuracy_m")
        )
    )
    result = match_crimes(crimes((0.0, 0.0, 0, MIN)), both, MatchParams())
    assert result.owner.tolist() == [2]


def test_unsorted_tracks_and_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        track((MIN, 0.0, 0.0), (0, 0.0, 0.0))
    with pytest.raises(ValueError, match="t_to"):
        crimes((0.0, 0.0, MIN, 0))
    with pytest.raises(ValueError, match="radius_m"):
        MatchParams(radius_m=-1)


def test_pass_letters_run_past_z() -> None:
    assert [pass_letters(n) for n in (0, 1, 25, 26, 27, 701, 702)] == [
        "A",
        "B",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
    ]


def test_where_was_within_away_and_no_data() -> None:
    near = track((0, 30.0, 0.0), (10 * MIN, 30.0, 0.0))
    answer = where_was(near, crimes((0.0, 0.0, 0, 10 * MIN)), MatchParams())
    assert answer.verdict == "within"
    assert answer.closest_distance_m == 30.0
    assert answer.coverage_pct == pytest.approx(100.0)
    assert answer.uncovered == []

    far = track((0, 800.0, 0.0), (4 * MIN, 700.0, 0.0), (20 * MIN, 600.0, 0.0))
    answer = where_was(far, crimes((0.0, 0.0, 0, 10 * MIN)), MatchParams())
    assert answer.verdict == "away"
    assert answer.closest_distance_m == pytest.approx(700.0)
    assert answer.coverage_pct == pytest.approx(40.0)
    assert answer.uncovered == [(4 * MIN, 10 * MIN)]

    answer = where_was(far, crimes((0.0, 0.0, 30 * MIN, 40 * MIN)), MatchParams())
    assert answer.verdict == "no_data"
    assert answer.closest_distance_m is None
    assert answer.uncovered == [(30 * MIN, 40 * MIN)]
