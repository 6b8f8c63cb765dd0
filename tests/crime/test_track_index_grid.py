"""The matcher's track index: its grid finds every pair within the radius, its searches and
range maxima agree with plain NumPy, and one index serves every radius and tolerance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from crime_reference import Crime, Fix, _closest, _pieces, match_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagwatch.crime.matcher import (
    CrimeSet,
    MatchParams,
    TrackSet,
    _block_max,
    _range_fmax,
    index_tracks,
    match_crimes,
    match_indexed,
)
from tagwatch.crime.track_grid import (
    build_grid,
    grid_candidates,
    search_sorted_within,
    time_directory,
    track_elements,
    unpack_elements,
)

E0, N0 = 530_000.0, 180_000.0
STEPS_MS = [0, 1_000, 60_000, 599_999, 600_000, 600_001, 1_200_000]


@st.composite
def tracks_and_crimes(draw: st.DrawFn) -> tuple[list[Fix], list[Crime], float, float]:
    """Owners moving anywhere in a few kilometres (long segments cross many cells), crimes
    near them or anywhere, windows of any length."""
    spread = draw(st.sampled_from([300.0, 3_000.0]))
    coord = st.floats(-spread, spread, allow_nan=False)
    fixes: list[Fix] = []
    for owner in range(draw(st.integers(1, 4))):
        t = draw(st.integers(0, 3_000_000))
        for _ in range(draw(st.integers(1, 12))):
            t += draw(st.sampled_from(STEPS_MS) | st.integers(0, 900_000))
            stationary = fixes and fixes[-1].owner == owner and draw(st.booleans())
            x = fixes[-1].x if stationary else E0 + draw(coord)
            y = fixes[-1].y if stationary else N0 + draw(coord)
            fixes.append(Fix(owner * 5 + 2, t, x, y, 5.0, len(fixes)))
    times = [f.t for f in fixes]
    crimes = []
    for cid in range(draw(st.integers(1, 4))):
        t_from = draw(st.sampled_from(times) | st.integers(0, 8_000_000))
        t_to = t_from + draw(st.sampled_from([0, 60_000, 3_600_000]) | st.integers(0, 5_000_000))
        near = draw(st.sampled_from(fixes))
        x = near.x + draw(st.floats(-150, 150)) if draw(st.booleans()) else E0 + draw(coord)
        y = near.y + draw(st.floats(-150, 150)) if draw(st.booleans()) else N0 + draw(coord)
        crimes.append(Crime(cid + 1, x, y, t_from, t_to))
    radius = draw(st.sampled_from([0.0, 25.0, 100.0, 400.0]))
    max_gap = draw(st.sampled_from([600_000.0, 60_000.0]))
    return fixes, crimes, radius, max_gap


def _track_set(fixes: list[Fix]) -> TrackSet:
    return TrackSet(
        np.array([f.owner for f in fixes], dtype=np.int64),
        np.array([f.t for f in fixes], dtype=np.int64),
        np.array([f.x for f in fixes]),
        np.array([f.y for f in fixes]),
        np.array([f.acc for f in fixes]),
    )


def _crime_set(crimes: list[Crime]) -> CrimeSet:
    return CrimeSet(
        np.array([c.crime_id for c in crimes], dtype=np.int64),
        np.array([c.x for c in crimes]),
        np.array([c.y for c in crimes]),
        np.array([c.t_from for c in crimes], dtype=np.int64),
        np.array([c.t_to for c in crimes], dtype=np.int64),
    )


def _pairs_within(
    fixes: list[Fix], crimes: list[Crime], radius: float, max_gap: float
) -> set[tuple[int, int]]:
    """Brute force: (crime position, start fix row) of every element whose clipped part comes
    within the radius (with a hair of slack: rounding must never hide a pair)."""
    by_owner: dict[int, list[Fix]] = {}
    for f in fixes:
        by_owner.setdefault(f.owner, []).append(f)
    found = set()
    for k, c in enumerate(crimes):
        for track in by_owner.values():
            for piece in _pieces(track, c.t_from, c.t_to, max_gap):
                if _closest(piece, c.x, c.y)[0] <= radius + 1e-6:
                    found.add((k, piece.a.row))
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tracks_and_crimes(),
    st.sampled_from([(200.0, 50.0), (30.0, 20.0), (500.0, 700.0)]),
    st.sampled_from([0, 10**9]),
)
def test_the_grid_finds_every_element_within_the_radius(
    scenario: tuple[list[Fix], list[Crime], float, float],
    grid_size: tuple[float, float],
    rank_table_cells: int,
) -> None:
    fixes, crimes, radius, max_gap = scenario
    tracks = _track_set(fixes)
    elements = track_elements(tracks.owner, tracks.t_ms, max_gap)
    cell_m, piece_m = grid_size
    grid = build_grid(
        tracks.t_ms,
        tracks.x,
        tracks.y,
        elements,
        max_gap,
        cell_m=cell_m,
        piece_m=piece_m,
        rank_table_cells=rank_table_cells,
    )
    assert (grid.cell_rank is None) == (rank_table_cells == 0)
    c = _crime_set(crimes)
    pos, element = grid_candidates(
        grid, c.x, c.y, c.t_from.astype(float), c.t_to.astype(float), radius
    )
    start, end = unpack_elements(element)
    found = set(zip(pos.tolist(), start.tolist(), strict=True))
    assert _pairs_within(fixes, crimes, radius, max_gap) <= found
    # Each candidate names a real element: its two fixes.
    real = set(zip(elements.start.tolist(), elements.end.tolist(), strict=True))
    assert set(zip(start.tolist(), end.tolist(), strict=True)) <= real


@settings(max_examples=200, deadline=None)
@given(tracks_and_crimes())
def test_elements_are_the_reference_pieces(
    scenario: tuple[list[Fix], list[Crime], float, float],
) -> None:
    fixes, _, _, max_gap = scenario
    tracks = _track_set(fixes)
    elements = track_elements(tracks.owner, tracks.t_ms, max_gap)
    by_owner: dict[int, list[Fix]] = {}
    for f in fixes:
        by_owner.setdefault(f.owner, []).append(f)
    expected = sorted(
        (p.a.row, p.b.row)
        for track in by_owner.values()
        for p in _pieces(track, -math.inf, math.inf, max_gap)
    )
    got = list(zip(elements.start.tolist(), elements.end.tolist(), strict=True))
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 50), max_size=30), min_size=1, max_size=8),
    st.lists(st.tuples(st.integers(0, 7), st.floats(-5, 55)), min_size=1, max_size=30),
    st.booleans(),
)
def test_search_within_ranges_is_numpys_searchsorted(
    groups: list[list[int]], queries: list[tuple[int, float]], strict: bool
) -> None:
    values = np.concatenate([np.sort(np.array(g, dtype=np.int64)) for g in groups])
    starts = np.cumsum([0] + [len(g) for g in groups])
    rows = [(g % len(groups), t) for g, t in queries]
    lo = np.array([starts[g] for g, _ in rows], dtype=np.int64)
    hi = np.array([starts[g + 1] for g, _ in rows], dtype=np.int64)
    target = np.array([t for _, t in rows])
    side = "right" if strict else "left"
    expected = [
        a + int(np.searchsorted(values[a:b], t, side=side))
        for a, b, t in zip(lo.tolist(), hi.tolist(), target.tolist(), strict=True)
    ]
    assert search_sorted_within(values, lo, hi, target, strict=strict).tolist() == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 20_000), max_size=40), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 5), st.integers(-100, 21_000)), min_size=1),
    st.sampled_from([1, 7, 1000, 3_600_000]),
    st.sampled_from([0, 20_001, 50_000]),
)
def test_a_directory_bracket_holds_the_answer(
    groups: list[list[int]], queries: list[tuple[int, int]], bucket_ms: int, spacing: int
) -> None:
    offsets = [sorted(g) for g in groups]
    # Each group's values from its own base: one base for all (an owner's fix times), or
    # bases at least the span apart (the grid's keys, from each cell's base).
    base = np.arange(len(groups), dtype=np.int64) * spacing + 7
    values = np.array(
        [b + t for b, g in zip(base.tolist(), offsets, strict=True) for t in g], dtype=np.int64
    )
    starts = np.cumsum([0] + [len(g) for g in offsets]).astype(np.int64)
    directory = time_directory(values, starts, base, 20_001, bucket_ms=bucket_ms)
    for g, t in queries:
        g %= len(groups)
        first, last = directory.bracket(np.array([g]), np.array([t]))
        answer = starts[g] + int(np.searchsorted(offsets[g], t))
        assert first[0] <= answer <= last[0]
        assert starts[g] <= first[0] <= last[0] <= starts[g + 1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 100) | st.just(math.nan), min_size=1, max_size=60),
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=20),
)
def test_range_maxima_are_the_maxima_of_the_ranges(
    values: list[float], ranges: list[tuple[int, int]]
) -> None:
    array = np.array(values)
    lo = np.array([min(a, b, len(values)) for a, b in ranges], dtype=np.int64)
    hi = np.array([min(max(a, b), len(values)) for a, b in ranges], dtype=np.int64)
    got = _range_fmax(array, _block_max(array), lo, hi)
    for k, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
        part = array[a:b]
        if len(part) == 0 or bool(np.all(np.isnan(part))):
            assert math.isnan(got[k])
        else:
            assert got[k] == np.nanmax(part)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tracks_and_crimes(), st.sampled_from([0.0, 30.0, 300.0]))
def test_one_index_serves_every_radius_and_tolerance(
    scenario: tuple[list[Fix], list[Crime], float, float], tolerance_s: float
) -> None:
    fixes, crimes, radius, max_gap = scenario
    params = MatchParams(radius_m=radius, tolerance_s=tolerance_s, max_gap_s=max_gap / 1000)
    tracks = _track_set(fixes)
    index = index_tracks(tracks, MatchParams(radius_m=5.0, max_gap_s=max_gap / 1000))
    built_once = match_indexed(_crime_set(crimes), index, params)
    fresh = match_crimes(_crime_set(crimes), tracks, params)
    for name in ("crime_id", "owner", "closest_distance_m", "passes", "fixes_in_radius"):
        assert np.array_equal(getattr(built_once, name), getattr(fresh, name))
    expected = match_all(crimes, fixes, radius, params.tolerance_ms, max_gap)
    decidable = {key for key, m in expected.items() if not m.near_boundary}
    got = set(zip(built_once.crime_id.tolist(), built_once.owner.tolist(), strict=True))
    assert decidable <= got


def test_an_index_refuses_another_max_gap() -> None:
    tracks = _track_set([Fix(1, 0, E0, N0, 5.0, 0), Fix(1, 60_000, E0, N0, 5.0, 1)])
    index = index_tracks(tracks, MatchParams(max_gap_s=600))
    crimes = _crime_set([Crime(1, E0, N0, 0, 60_000)])
    with pytest.raises(ValueError, match="max_gap_s"):
        match_indexed(crimes, index, MatchParams(max_gap_s=60))
    assert len(match_indexed(crimes, index, MatchParams(max_gap_s=600, radius_m=10))) == 1


def test_a_position_that_is_not_a_number_is_refused() -> None:
    tracks = _track_set([Fix(1, 0, E0, N0, 5.0, 0), Fix(1, 60_000, math.nan, N0, 5.0, 1)])
    with pytest.raises(ValueError, match="finite"):
        index_tracks(tracks, MatchParams())


def test_a_crime_just_beyond_the_end_of_a_long_segment_is_found() -> None:
    # A 90 m segment is filed as two pieces of 45 m. The crime lies on its line 99 m beyond
    # its end: 121.5 m from the nearer piece's midpoint, within the reach (radius + 25 m);
    # filed whole, its midpoint would be 144 m away and the match lost.
    tracks = _track_set([Fix(1, 0, E0, N0, 5.0, 0), Fix(1, 60_000, E0 + 90.0, N0, 5.0, 1)])
    crimes = _crime_set([Crime(1, E0 + 189.0, N0, 0, 60_000)])
    result = match_crimes(crimes, tracks, MatchParams())
    assert result.closest_distance_m.tolist() == [99.0]
    assert result.closest_time_ms.tolist() == [60_000.0]
