"""The crime matcher: which tracks came within a radius of which crimes, and how.

Pure kernel: NumPy arrays and dataclasses in, results out; no database, no clock, no I/O.
Coordinates are metres on the British National Grid (EPSG:27700); times are epoch
milliseconds. The semantics are those of docs/crime-mapping.md:

* a track is one owner's fixes in time order; consecutive fixes at most `max_gap_s` apart are
  joined by a straight segment along which time runs linearly; a longer gap breaks the track
  and a fix with no neighbour within `max_gap_s` is a track of one point ("lone fix");
* the track is clipped to the window [t_from - tolerance, t_to + tolerance];
* an owner matches a crime when the clipped track comes within `radius_m` of the crime
  (inclusive), in the plane.

Speed comes from an index over the tracks alone (`index_tracks`, built once for a set of
fixes and reused by every batch): the space-time grid of `track_grid` finds the candidate
(crime, element) pairs for all crimes at once, vectorised, and the exact geometry runs only
on them, in two steps: for every candidate, in cache-sized blocks, whether it comes within
the radius (its squared distance decides, but near the radius the distance itself does) and
whether its end fixes are inside; then, for each (crime, person) match, the closest approach
among its least-distance hits and the radius crossings of its first and last hits. With few
crimes over a long period, only the fixes within reach of a window are indexed at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from tagwatch.crime.track_grid import (
    Elements,
    TimeDirectory,
    TrackGrid,
    build_grid,
    grid_candidates,
    search_sorted_within,
    time_directory,
    track_elements,
    unpack_elements,
)

ALGORITHM_VERSION = "tagwatch-crime-match/1"

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BoolArr = NDArray[np.bool_]


@dataclass(frozen=True)
class MatchParams:
    radius_m: float = 100.0
    tolerance_s: float = 0.0
    max_gap_s: float = 600.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.radius_m) and self.radius_m >= 0):
            raise ValueError("radius_m: must be a finite number of metres, 0 or more")
        if not (math.isfinite(self.tolerance_s) and self.tolerance_s >= 0):
            raise ValueError("tolerance_s: must be a finite number of seconds, 0 or more")
        if not (math.isfinite(self.max_gap_s) and self.max_gap_s >= 0):
            raise ValueError("max_gap_s: must be a finite number of seconds, 0 or more")

    @property
    def tolerance_ms(self) -> float:
        return self.tolerance_s * 1000.0

    @property
    def max_gap_ms(self) -> float:
        return self.max_gap_s * 1000.0


@dataclass(frozen=True)
class CrimeSet:
    """Crimes: ids, position (metres, EPSG:27700) and window (epoch ms, inclusive)."""

    crime_id: I64
    x: F64
    y: F64
    t_from: I64
    t_to: I64

    def __post_init__(self) -> None:
        n = len(self.crime_id)
        for name in ("x", "y", "t_from", "t_to"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: length differs from crime_id")
        if n and bool(np.any(self.t_to < self.t_from)):
            raise ValueError("t_to: before t_from")

    def __len__(self) -> int:
        return len(self.crime_id)


@dataclass(frozen=True)
class TrackSet:
    """Fixes of many owners, sorted by (owner, t_ms); x, y in metres (EPSG:27700)."""

    owner: I64
    t_ms: I64
    x: F64
    y: F64
    accuracy_m: F64

    def __post_init__(self) -> None:
        n = len(self.owner)
        for name in ("t_ms", "x", "y", "accuracy_m"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: length differs from owner")
        if n > 1:
            d_owner = np.diff(self.owner)
            unsorted = (d_owner < 0) | ((d_owner == 0) & (np.diff(self.t_ms) < 0))
            if bool(np.any(unsorted)):
                raise ValueError("owner, t_ms: fixes must be sorted by (owner, t_ms)")

    def __len__(self) -> int:
        return len(self.owner)


@dataclass(frozen=True)
class MatchResult:
    """One row per (crime, owner) match, plus the fixes inside the radius with their labels.

    Times are epoch milliseconds as floats: closest approach and radius crossings fall
    between fixes. `fix_match` indexes the match rows, `fix_index` the TrackSet rows;
    `fix_pass` (0-based pass) and `fix_seq` (1-based within the pass) give the labels.
    """

    crime_index: I64
    crime_id: I64
    owner: I64
    closest_distance_m: F64
    closest_time_ms: F64
    closest_x: F64
    closest_y: F64
    first_time_ms: F64
    last_time_ms: F64
    passes: I64
    fixes_in_radius: I64
    coverage_pct: F64
    max_accuracy_m: F64
    fix_match: I64
    fix_index: I64
    fix_pass: I64
    fix_seq: I64

    def __len__(self) -> int:
        return len(self.crime_id)

    def labels(self, match: int) -> list[tuple[int, str]]:
        """(TrackSet row, label) for the fixes inside the radius of one match, in time order."""
        rows = np.flatnonzero(self.fix_match == match)
        return [
            (int(self.fix_index[r]), sequence_label(int(self.fix_pass[r]), int(self.fix_seq[r])))
            for r in rows
        ]


def pass_letters(pass_number: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: spreadsheet-style letters, so passes never run out."""
    letters = ""
    n = pass_number + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def sequence_label(pass_number: int, seq: int) -> str:
    return f"{pass_letters(pass_number)}{seq}"


# --- the track as elements (see track_grid) -------------------------------------------------


def _elements(tracks: TrackSet, params: MatchParams) -> Elements:
    return track_elements(tracks.owner, tracks.t_ms, params.max_gap_ms)


# --- exact geometry of one (crime, element) pair, vectorised ---------------------------------


@dataclass(frozen=True)
class _Closest:
    valid: BoolArr  # the element meets the crime window
    s_lo: F64  # clipped parameter range along the element
    s_hi: F64
    s_closest: F64
    px: F64  # the closest point, from the crime
    py: F64
    # Squared distance along the element: a s^2 + 2 b s + |f|^2, with f = start - crime.
    a: F64
    b: F64
    fx: F64
    fy: F64

    @property
    def dist(self) -> F64:
        """The closest distance over the clipped element (hypot is costly: only on demand)."""
        return np.hypot(self.px, self.py)


def _closest(
    cx: F64, cy: F64, w0: F64, w1: F64, x0: F64, y0: F64, x1: F64, y1: F64, t0: F64, t1: F64
) -> _Closest:
    """The clipped parameter range and the closest point of each pair.

    Written for the common case (time moves along the element, the element has a length),
    then the rare rows of zero duration or zero length are set apart: the same arithmetic as
    a branch per row, without paying for both branches on every row."""
    dt = t1 - t0
    with np.errstate(divide="ignore", invalid="ignore"):
        s_lo = w0 - t0
        s_lo /= dt
        np.maximum(s_lo, 0.0, out=s_lo)
        s_hi = w1 - t0
        s_hi /= dt
        np.minimum(s_hi, 1.0, out=s_hi)
        valid = s_lo <= s_hi
        still = np.flatnonzero(dt <= 0)
        if len(still):
            # No time passes along the element: all of it is at t0, in the window or not.
            s_lo[still] = 0.0
            s_hi[still] = 1.0
            valid[still] = (t0[still] >= w0[still]) & (t0[still] <= w1[still])
        dx = x1 - x0
        dy = y1 - y0
        a = dx * dx
        a += dy * dy
        fx = x0 - cx
        fy = y0 - cy
        b = dx * fx
        b += dy * fy
        s_star = np.negative(b)
        s_star /= a
        np.clip(s_star, s_lo, s_hi, out=s_star)
        point = np.flatnonzero(a <= 0)
        if len(point):
            s_star[point] = s_lo[point]
    px = s_star * dx
    px += x0
    px -= cx
    py = s_star * dy
    py += y0
    py -= cy
    return _Closest(valid, s_lo, s_hi, s_star, px, py, a, b, fx, fy)


def _inside(c: _Closest, radius: float) -> tuple[F64, F64]:
    """The parameter range of the clipped element inside the radius (where dist <= radius)."""
    a, b = c.a, c.b
    disc = b * b - a * (c.fx * c.fx + c.fy * c.fy - radius * radius)
    root = np.sqrt(np.maximum(disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r_lo = (-b - root) / a
        r_hi = (-b + root) / a
    point = np.flatnonzero(a <= 0)
    if len(point):
        # No length: the whole clipped range is at the one distance.
        r_lo[point] = c.s_lo[point]
        r_hi[point] = c.s_hi[point]
    # Rounding must not split what the closest distance decides: the range always holds s*.
    in_lo = np.minimum(np.maximum(r_lo, c.s_lo), c.s_closest)
    in_hi = np.maximum(np.minimum(r_hi, c.s_hi), c.s_closest)
    return in_lo, in_hi


# --- per-owner time lookups: coverage and accuracy ----------------------------------------------


@dataclass(frozen=True)
class _FixIndex:
    """Where each owner's fixes are, for per-match time searches within one owner."""

    owners: I64  # distinct owners in order; an owner's rank is its position here
    owner_first: I64  # the fixes of owners[k] are rows owner_first[k]:owner_first[k + 1]
    joined_prev: BoolArr  # fix i is joined to fix i - 1 by a segment
    cum: F64  # time covered by segments from the first fix up to fix i
    block_max: F64  # the worst accuracy of each block of _BLOCK fixes
    directory: TimeDirectory  # the fixes by (owner rank, time from t_min)
    t_min: int


def _fix_index(tracks: TrackSet, params: MatchParams) -> _FixIndex:
    t = tracks.t_ms
    n = len(t)
    new_owner = np.empty(n, dtype=np.bool_)
    new_owner[0] = True
    np.not_equal(tracks.owner[1:], tracks.owner[:-1], out=new_owner[1:])
    # Whole milliseconds as floats are exact (far below 2**53): the steps and their running
    # sum share one array.
    cum = np.empty(n, dtype=np.float64)
    cum[0] = 0.0
    np.subtract(t[1:], t[:-1], out=cum[1:])
    joined_prev = ~new_owner & (cum <= params.max_gap_ms)
    cum[~joined_prev] = 0.0
    np.cumsum(cum, out=cum)
    first = np.append(np.flatnonzero(new_owner), n).astype(np.int64)
    owners = tracks.owner[new_owner]
    t_min = int(t.min())
    t_base = np.full(len(owners), t_min, dtype=np.int64)
    directory = time_directory(t, first, t_base, int(t.max()) - t_min + 1)
    return _FixIndex(
        owners, first, joined_prev, cum, _block_max(tracks.accuracy_m), directory, t_min
    )


@dataclass(frozen=True)
class _Windows:
    """For each match: the owner's fix rows [lo, hi) and the fixes in the window [a, b)."""

    lo: I64
    hi: I64
    a: I64
    b: I64
    rank: I64  # the owner's rank in the fix index


def _windows(fx: _FixIndex, t_ms: I64, owner: I64, w0: F64, w1: F64) -> _Windows:
    rank = np.searchsorted(fx.owners, owner)
    first, last = fx.directory.bracket(rank, w0 - fx.t_min)
    a = search_sorted_within(t_ms, first, last, w0)
    first, last = fx.directory.bracket(rank, w1 - fx.t_min)
    b = search_sorted_within(t_ms, first, last, w1, strict=True)
    return _Windows(fx.owner_first[rank], fx.owner_first[rank + 1], a, b, rank)


def _coverage_pct(fx: _FixIndex, t_ms: I64, win: _Windows, w0: F64, w1: F64) -> F64:
    """Share of each window [w0, w1] covered by joined segments (lone fixes cover nothing)."""
    n = len(t_ms)

    def until(t: F64, b: I64, lo: I64, hi: I64) -> F64:
        # Time covered from the owner's first fix up to t; b is the first fix after t.
        k = b - 1
        has = k >= lo
        k_safe = np.maximum(k, 0)
        nxt = np.minimum(k + 1, n - 1)
        continues = has & (k + 1 < hi) & fx.joined_prev[nxt]
        partial = np.where(continues, np.minimum(t, t_ms[nxt]) - t_ms[k_safe], 0.0)
        first = np.minimum(lo, n - 1)
        return np.where(has, fx.cum[k_safe] - fx.cum[first] + partial, 0.0)

    def first_after(t: F64, rows: I64) -> I64:
        first, last = fx.directory.bracket(win.rank[rows], t - fx.t_min)
        return search_sorted_within(t_ms, first, last, t, strict=True)

    # The first fix after w0 is the first at or after it, unless fixes lie exactly at w0.
    after_w0 = win.a.copy()
    at_w0 = np.flatnonzero((win.a < win.hi) & (t_ms[np.minimum(win.a, n - 1)] == w0))
    after_w0[at_w0] = first_after(w0[at_w0], at_w0)
    covered = until(w1, win.b, win.lo, win.hi) - until(w0, after_w0, win.lo, win.hi)
    length = w1 - w0
    pct = np.zeros(len(w0))
    timed = np.flatnonzero(length > 0)
    pct[timed] = 100.0 * covered[timed] / length[timed]
    # A zero-length window is covered when a segment spans its instant.
    zero = np.flatnonzero(length <= 0)
    if len(zero):
        lo, hi, t = win.lo[zero], win.hi[zero], w0[zero]
        instant = until(t + 0.5, first_after(t + 0.5, zero), lo, hi) - until(
            t - 0.5, first_after(t - 0.5, zero), lo, hi
        )
        pct[zero] = np.where(instant > 0, 100.0, 0.0)
    return np.clip(pct, 0.0, 100.0)


def _max_accuracy(tracks: TrackSet, fx: _FixIndex, win: _Windows, w0: F64, w1: F64) -> F64:
    """Worst accuracy among the fixes that carry the clipped track: the fixes in the window,
    plus the fix on either side when a segment joins it into the window."""
    n = len(tracks)
    t = tracks.t_ms
    a_in = np.minimum(win.a, n - 1)
    extend_a = (win.a > win.lo) & (win.a < win.hi) & fx.joined_prev[a_in] & (t[a_in] > w0)
    b_in = np.minimum(win.b, n - 1)
    b_prev = np.maximum(win.b - 1, 0)
    extend_b = (win.b > win.lo) & (win.b < win.hi) & fx.joined_prev[b_in] & (t[b_prev] < w1)
    return _range_fmax(tracks.accuracy_m, fx.block_max, win.a - extend_a, win.b + extend_b)


# Fixes per block of the accuracy maxima: a range reads its blocks, and fixes at its ends.
_BLOCK = 4


def _block_max(values: F64) -> F64:
    return np.fmax.reduceat(values, np.arange(0, len(values), _BLOCK)) if len(values) else values


def _range_fmax(values: F64, block_max: F64, lo: I64, hi: I64) -> F64:
    """Per query: the largest of values[lo:hi] ignoring NaN (NaN when the range is empty).

    The whole blocks inside a range come from `block_max`; the at most 2 x (_BLOCK - 1)
    values before and after them are read directly."""
    head_end = np.minimum(hi, -(-lo // _BLOCK) * _BLOCK)
    tail_start = np.maximum(head_end, hi // _BLOCK * _BLOCK)
    out = np.fmax(_ends_fmax(values, lo, head_end), _ends_fmax(values, tail_start, hi))
    block_lo = head_end // _BLOCK
    block_hi = tail_start // _BLOCK
    rows = np.flatnonzero(block_hi > block_lo)
    if len(rows):
        # reduceat also reduces between one range's end and the next range's start; with the
        # ranges in descending order of start that stretch is a single value. The ranges end
        # at their last block (an end past the last block is no valid index), taken on its own.
        rows = rows[np.argsort(-block_lo[rows])]
        bounds = np.empty(2 * len(rows), dtype=np.int64)
        bounds[0::2] = block_lo[rows]
        bounds[1::2] = block_hi[rows] - 1
        inner = np.fmax(np.fmax.reduceat(block_max, bounds)[0::2], block_max[block_hi[rows] - 1])
        out[rows] = np.fmax(out[rows], inner)
    return out


def _ends_fmax(values: F64, lo: I64, hi: I64) -> F64:
    """fmax of values[lo:hi] for short ranges (under a block), one position at a time."""
    out = np.full(len(lo), np.nan)
    last = len(values) - 1
    for k in range(int(np.max(hi - lo, initial=0))):
        at = lo + k
        value = values[np.minimum(at, last)]
        np.fmax(out, value, out=out, where=at < hi)
    return out


# --- the index: everything derived from the tracks alone ----------------------------------------


@dataclass(frozen=True)
class TrackIndex:
    """What the matcher derives from a TrackSet alone for one max gap: the space-time grid of
    its elements and per-owner time lookups. Build it once for a set of fixes (a day, say) and
    match any number of crime batches, at any radius and tolerance, against it."""

    tracks: TrackSet
    max_gap_s: float
    grid: TrackGrid
    fixes: _FixIndex


def index_tracks(tracks: TrackSet, params: MatchParams) -> TrackIndex:
    """Index `tracks` for matching with `params.max_gap_s` (radius and tolerance are free)."""
    elements = _elements(tracks, params)
    grid = build_grid(tracks.t_ms, tracks.x, tracks.y, elements, params.max_gap_ms)
    return TrackIndex(tracks, params.max_gap_s, grid, _fix_index(tracks, params))


# --- the matcher -----------------------------------------------------------------------------


def _empty_result() -> MatchResult:
    i = np.empty(0, dtype=np.int64)
    f = np.empty(0, dtype=np.float64)
    return MatchResult(i, i, i, f, f, f, f, f, f, i, i, f, f, i, i, i, i)


@dataclass
class _Hits:
    """Matching (crime row, element) pairs in (crime, element) order, accumulated over chunks:
    the squared closest distance, and whether the element's start (end) fix is inside the
    radius and inside the window. The rest of a pair's geometry is worked out again for the
    few pairs whose detail is reported (`_pair_geometry` gives the same numbers for the same
    pair): that costs less than carrying it for every hit."""

    crime: list[I64] = field(default_factory=list)
    element: list[I64] = field(default_factory=list)  # packed (see track_grid)
    dist2: list[F64] = field(default_factory=list)  # squared closest distance
    start_in: list[BoolArr] = field(default_factory=list)
    end_in: list[BoolArr] = field(default_factory=list)


@dataclass(frozen=True)
class _PairGeometry:
    """Pairs' crime (position, window), element (ends, times) and closest approach."""

    cx: F64
    cy: F64
    w0: F64
    w1: F64
    x0: F64
    y0: F64
    x1: F64
    y1: F64
    t0: F64
    t1: F64
    closest: _Closest

    @property
    def t_closest(self) -> F64:
        return self.t0 + self.closest.s_closest * (self.t1 - self.t0)


def _pair_geometry(
    crimes: CrimeSet, w0: F64, w1: F64, index: TrackIndex, crime: I64, element: I64
) -> _PairGeometry:
    """The exact geometry of (crime row, packed element) pairs; w0, w1 are every crime's window."""
    tracks = index.tracks
    i, j = unpack_elements(element)
    cx, cy, a, b = crimes.x[crime], crimes.y[crime], w0[crime], w1[crime]
    # mode="clip" skips the bounds checks: the rows come from the index of these fixes.
    x0, y0 = tracks.x.take(i, mode="clip"), tracks.y.take(i, mode="clip")
    x1, y1 = tracks.x.take(j, mode="clip"), tracks.y.take(j, mode="clip")
    t0 = tracks.t_ms.take(i, mode="clip").astype(np.float64)
    t1 = tracks.t_ms.take(j, mode="clip").astype(np.float64)
    g = _closest(cx, cy, a, b, x0, y0, x1, y1, t0, t1)
    return _PairGeometry(cx, cy, a, b, x0, y0, x1, y1, t0, t1, g)


def _fix_inside(dx: F64, dy: F64, t: F64, w0: F64, w1: F64, radius_m: float) -> BoolArr:
    """A fix at offset (dx, dy) from the crime and time t is inside the radius and the window."""
    d2 = dx * dx
    d2 += dy * dy
    inside = d2 <= radius_m * radius_m
    inside &= t >= w0
    inside &= t <= w1
    return inside


# Relative error that squaring and summing may add to a squared distance, with a wide margin
# (each step rounds by at most 2**-53): squared distances further apart than this order the
# distances (hypot, within an ulp) the same way.
_SQUARED_TOLERANCE = 1e-12
# Squared distances below this may have lost precision to underflow: never trusted.
_SQUARED_TINY = 1e-280


def _squared(px: F64, py: F64) -> F64:
    d2 = px * px
    d2 += py * py
    return d2


def _square_band(ref2: F64 | float) -> tuple[F64, F64]:
    """Squared distances within (low, high) of `ref2` may not compare with it as the distances
    themselves (hypot) do: too close to it, or so small that squaring lost precision. Outside
    the band the squares decide."""
    low = np.multiply(ref2, 1.0 - _SQUARED_TOLERANCE)
    high = np.maximum(ref2, _SQUARED_TINY) * (1.0 + _SQUARED_TOLERANCE)
    return low, high


def _evaluate(
    crimes: CrimeSet,
    w0: F64,
    w1: F64,
    index: TrackIndex,
    radius_m: float,
    crime: I64,
    element: I64,
    hits: _Hits,
) -> None:
    """Exact geometry of candidate pairs; the pairs within the radius join `hits`."""
    geo = _pair_geometry(crimes, w0, w1, index, crime, element)
    g = geo.closest
    # The closest distance decides; its square stands in for it except near the radius.
    dist2 = _squared(g.px, g.py)
    low, high = _square_band(radius_m * radius_m)
    near = dist2 >= low
    near &= dist2 <= high
    near |= dist2 < _SQUARED_TINY
    within = dist2 <= radius_m * radius_m
    within |= near
    within &= g.valid
    edge = np.flatnonzero(within & near)
    if len(edge):
        within[edge] = np.hypot(g.px[edge], g.py[edge]) <= radius_m
    keep = np.flatnonzero(within)
    # Most candidates are hits: the flags cost less on every row than gathering first.
    start_in = _fix_inside(g.fx, g.fy, geo.t0, geo.w0, geo.w1, radius_m)
    end_in = _fix_inside(geo.x1 - geo.cx, geo.y1 - geo.cy, geo.t1, geo.w0, geo.w1, radius_m)
    hits.crime.append(crime[keep])
    hits.element.append(element[keep])
    hits.dist2.append(dist2[keep])
    hits.start_in.append(start_in[keep])
    hits.end_in.append(end_in[keep])


def _rows_in_reach(crimes: CrimeSet, tracks: TrackSet, params: MatchParams) -> I64 | None:
    """The fixes that can carry any crime's clipped track, when they are a small share.

    A segment meeting a window [w0, w1] lies within [w0 - max gap, w1 + max gap], and an
    owner's fixes in that range are consecutive, so dropping the rest changes no segment
    that matters. None when most fixes are in reach anyway.
    """
    lo = float(np.min(crimes.t_from)) - params.tolerance_ms - params.max_gap_ms
    hi = float(np.max(crimes.t_to)) + params.tolerance_ms + params.max_gap_ms
    t_lo, t_hi = float(tracks.t_ms.min()), float(tracks.t_ms.max())
    if (min(hi, t_hi) - max(lo, t_lo)) > 0.5 * (t_hi - t_lo):
        return None
    rows = np.flatnonzero((tracks.t_ms >= lo) & (tracks.t_ms <= hi)).astype(np.int64)
    return rows if len(rows) < len(tracks) else None


def match_crimes(crimes: CrimeSet, tracks: TrackSet, params: MatchParams) -> MatchResult:
    """Every (crime, owner) whose clipped track comes within the radius, with its detail."""
    if len(crimes) == 0 or len(tracks) == 0:
        return _empty_result()
    rows = _rows_in_reach(crimes, tracks, params)
    if rows is not None:
        # Few crimes against a long period: match the fixes in reach, then name the originals.
        if len(rows) == 0:
            return _empty_result()
        part = TrackSet(
            tracks.owner[rows],
            tracks.t_ms[rows],
            tracks.x[rows],
            tracks.y[rows],
            tracks.accuracy_m[rows],
        )
        result = match_crimes(crimes, part, params)
        return replace(result, fix_index=rows[result.fix_index])
    return match_indexed(crimes, index_tracks(tracks, params), params)


# Crimes searched at once: bounds the candidate pairs held at a time.
_CRIME_CHUNK = 2000
# Candidate pairs evaluated at once: the geometry's temporaries then stay in cache.
_PAIR_BLOCK = 32_768


def match_indexed(crimes: CrimeSet, index: TrackIndex, params: MatchParams) -> MatchResult:
    """`match_crimes` against an index built beforehand with the same max gap."""
    if index.max_gap_s != params.max_gap_s:
        raise ValueError("max_gap_s: differs from the max gap the index was built for")
    tracks = index.tracks
    if len(crimes) == 0 or len(tracks) == 0:
        return _empty_result()
    w0 = (crimes.t_from - params.tolerance_ms).astype(np.float64)
    w1 = (crimes.t_to + params.tolerance_ms).astype(np.float64)
    # (crime, packed element) in one sortable integer: crime position above the element's bits.
    bits = (2 * len(tracks)).bit_length()
    hits = _Hits()
    for first in range(0, len(crimes), _CRIME_CHUNK):
        rows = slice(first, first + _CRIME_CHUNK)
        pos, element = grid_candidates(
            index.grid, crimes.x[rows], crimes.y[rows], w0[rows], w1[rows], params.radius_m
        )
        # In (crime, element) order, each pair once: a long element found through several of
        # its pieces is measured once. The grid yields runs already in order (an owner's
        # entries in a cell come in time order), which a stable sort merges cheaply.
        pair = np.sort((pos << bits) | element, kind="stable")
        pair = pair[np.flatnonzero(np.diff(pair, prepend=-1))]
        crime = (pair >> bits) + first
        element = pair & ((1 << bits) - 1)
        for p in range(0, len(pair), _PAIR_BLOCK):
            block = slice(p, p + _PAIR_BLOCK)
            _evaluate(crimes, w0, w1, index, params.radius_m, crime[block], element[block], hits)
    return _assemble(crimes, w0, w1, index, params, hits)


def _assemble(
    crimes: CrimeSet, w0: F64, w1: F64, index: TrackIndex, params: MatchParams, hits: _Hits
) -> MatchResult:
    tracks = index.tracks
    if not hits.crime:
        return _empty_result()
    crime = np.concatenate(hits.crime)
    if len(crime) == 0:
        return _empty_result()
    element = np.concatenate(hits.element)
    dist2 = np.concatenate(hits.dist2)
    start_in = np.concatenate(hits.start_in)
    end_in = np.concatenate(hits.end_in)
    start_fix, end_fix = unpack_elements(element)
    owner = tracks.owner[start_fix]

    # Hits are in (crime, element) order, and element order within an owner is time order.
    new_group = np.ones(len(crime), dtype=bool)
    new_group[1:] = (crime[1:] != crime[:-1]) | (owner[1:] != owner[:-1])
    group = np.cumsum(new_group) - 1
    group_start = np.flatnonzero(new_group)
    group_last = np.append(group_start[1:], len(crime)) - 1
    n_groups = len(group_start)

    # Closest approach: least distance, then earliest time, then the first such hit. Every
    # group has a row at its least distance, so `at` lists the groups in order. The same
    # pass works out when each group's first hit enters the radius and its last hit leaves:
    # an element's times lie between its fixes' and a group's elements follow each other in
    # time, so no other hit of the group enters earlier or leaves later.
    # Rows whose squared distance is not clearly above the group's least may be at the least
    # distance; their distances settle it.
    maybe = np.flatnonzero(dist2 <= _square_band(np.minimum.reduceat(dist2, group_start))[1][group])
    rows = np.concatenate([maybe, group_start, group_last])
    geo = _pair_geometry(crimes, w0, w1, index, crime[rows], element[rows])
    dist = np.hypot(geo.closest.px[: len(maybe)], geo.closest.py[: len(maybe)])
    at = group[maybe]
    group_least = np.minimum.reduceat(dist, np.flatnonzero(np.diff(at, prepend=-1)))
    least = np.flatnonzero(dist == group_least[at])
    at = at[least]
    t_closest = geo.t_closest[least]
    t_least = np.minimum.reduceat(t_closest, np.flatnonzero(np.diff(at, prepend=-1)))
    best = np.flatnonzero(t_closest == t_least[at])
    best = best[np.flatnonzero(np.diff(at[best], prepend=-1))]
    best_row = least[best]
    s_best = geo.closest.s_closest[best_row]
    x_closest = geo.x0[best_row] + s_best * (geo.x1[best_row] - geo.x0[best_row])
    y_closest = geo.y0[best_row] + s_best * (geo.y1[best_row] - geo.y0[best_row])
    in_lo, in_hi = _inside(geo.closest, params.radius_m)
    t_in = geo.t0 + in_lo * (geo.t1 - geo.t0)
    t_out = geo.t0 + in_hi * (geo.t1 - geo.t0)
    first_time = t_in[len(maybe) : len(maybe) + n_groups]
    last_time = t_out[len(maybe) + n_groups :]

    # Passes: consecutive hits join when they share a fix that lies inside the radius and
    # inside the window (the track is then inside at that instant, so the intervals touch).
    lone = start_fix == end_fix
    shared = np.zeros(len(crime), dtype=bool)
    shared[1:] = (
        ~new_group[1:] & ~lone[1:] & ~lone[:-1] & (end_fix[:-1] == start_fix[1:]) & end_in[:-1]
    )
    new_pass = ~shared
    pass_global = np.cumsum(new_pass) - 1
    first_pass_of_group = pass_global[group_start]
    passes_per_group = np.diff(first_pass_of_group, append=pass_global[-1] + 1)
    pass_in_group = pass_global - first_pass_of_group[group]

    # Fixes inside the radius: element ends inside the window and within the radius, in
    # time order within each group. A lone fix is its element's start and end, and a fix
    # shared with the group's previous hit was counted there as its end: each counts once.
    taken = np.empty((len(crime), 2), dtype=np.bool_)
    taken[:, 0] = start_in
    taken[:, 1] = end_in
    taken[:, 1] &= ~lone
    taken[1:, 0] &= new_group[1:] | (end_fix[:-1] != start_fix[1:])
    flat = np.flatnonzero(taken.ravel())
    f_hit = flat >> 1
    f_fix = np.where(flat & 1, end_fix[f_hit], start_fix[f_hit])
    f_group = group[f_hit]
    fixes_per_group = np.bincount(f_group, minlength=n_groups).astype(np.int64)
    f_pass = pass_in_group[f_hit]
    # Sequence number within the pass: position among the group's fixes of that pass.
    f_pass_global = pass_global[f_hit]
    pass_start = np.ones(len(f_fix), dtype=bool)
    pass_start[1:] = f_pass_global[1:] != f_pass_global[:-1]
    run_first = np.maximum.accumulate(np.where(pass_start, np.arange(len(f_fix)), 0))
    f_seq = np.arange(len(f_fix), dtype=np.int64) - run_first + 1

    g_crime = crime[group_start]
    g_owner = owner[group_start]
    g_w0 = w0[g_crime]
    g_w1 = w1[g_crime]
    fix_ix = index.fixes
    win = _windows(fix_ix, tracks.t_ms, g_owner, g_w0, g_w1)
    cov_pct = _coverage_pct(fix_ix, tracks.t_ms, win, g_w0, g_w1)
    max_acc = _max_accuracy(tracks, fix_ix, win, g_w0, g_w1)

    return MatchResult(
        crime_index=g_crime.astype(np.int64, copy=False),
        crime_id=crimes.crime_id[g_crime].astype(np.int64, copy=False),
        owner=g_owner.astype(np.int64, copy=False),
        closest_distance_m=dist[best_row],
        closest_time_ms=t_closest[best],
        closest_x=x_closest,
        closest_y=y_closest,
        first_time_ms=first_time,
        last_time_ms=last_time,
        passes=passes_per_group,
        fixes_in_radius=fixes_per_group,
        coverage_pct=cov_pct,
        max_accuracy_m=max_acc,
        fix_match=f_group.astype(np.int64, copy=False),
        fix_index=f_fix.astype(np.int64, copy=False),
        fix_pass=f_pass.astype(np.int64, copy=False),
        fix_seq=f_seq,
    )


# --- one named person: where were they? --------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """Where one track was during one crime's window.

    `verdict` is "within" (closest distance within the radius), "away" (the track stayed at
    least `closest_distance_m` away, over `coverage_pct` of the window) or "no_data" (no
    segment and no fix in the window). `uncovered` lists the parts of the window not covered
    by a joined segment, as (start, end) epoch ms; lone fixes cover no time but still count
    as positions.
    """

    verdict: str
    radius_m: float
    closest_distance_m: float | None
    closest_time_ms: float | None
    coverage_pct: float
    fixes_in_window: int
    window_start_ms: float
    window_end_ms: float
    uncovered: list[tuple[float, float]]


def where_was(track: TrackSet, crimes: CrimeSet, params: MatchParams, row: int = 0) -> Answer:
    """The closest approach of one person's track to crime `row`, its coverage and gaps."""
    if len(track) and bool(np.any(track.owner != track.owner[0])):
        raise ValueError("owner: where_was takes one person's track")
    tracks = track
    t_ms, x, y = track.t_ms, track.x, track.y
    crime_x = float(crimes.x[row])
    crime_y = float(crimes.y[row])
    w0 = float(crimes.t_from[row] - params.tolerance_ms)
    w1 = float(crimes.t_to[row] + params.tolerance_ms)
    elems = _elements(tracks, params)
    m = len(elems.start)
    g = _closest(
        np.full(m, crime_x),
        np.full(m, crime_y),
        np.full(m, w0),
        np.full(m, w1),
        x[elems.start],
        y[elems.start],
        x[elems.end],
        y[elems.end],
        t_ms[elems.start].astype(np.float64),
        t_ms[elems.end].astype(np.float64),
    )
    in_window = (t_ms >= w0) & (t_ms <= w1)
    uncovered = _uncovered(tracks, elems, w0, w1)
    covered = (w1 - w0) - sum(b - a for a, b in uncovered)
    # A zero-length window is covered when a segment spans its instant.
    coverage = 100.0 * covered / (w1 - w0) if w1 > w0 else (0.0 if uncovered else 100.0)
    if not bool(np.any(g.valid)):
        return Answer("no_data", params.radius_m, None, None, 0.0, 0, w0, w1, uncovered)
    valid = np.flatnonzero(g.valid)
    dt = (t_ms[elems.end] - t_ms[elems.start]).astype(np.float64)
    t_close = t_ms[elems.start].astype(np.float64) + g.s_closest * dt
    dist = g.dist
    pick = valid[np.lexsort((t_close[valid], dist[valid]))[0]]
    d = float(dist[pick])
    verdict = "within" if d <= params.radius_m else "away"
    return Answer(
        verdict,
        params.radius_m,
        d,
        float(t_close[pick]),
        max(0.0, min(100.0, coverage)),
        int(np.count_nonzero(in_window)),
        w0,
        w1,
        uncovered,
    )


def _uncovered(
    tracks: TrackSet, elems: Elements, w0: float, w1: float
) -> list[tuple[float, float]]:
    seg = ~elems.lone
    a = np.maximum(tracks.t_ms[elems.start[seg]].astype(np.float64), w0)
    b = np.minimum(tracks.t_ms[elems.end[seg]].astype(np.float64), w1)
    use = b > a
    gaps: list[tuple[float, float]] = []
    cursor = w0
    for lo, hi in zip(a[use].tolist(), b[use].tolist(), strict=True):
        if lo > cursor:
            gaps.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < w1:
        gaps.append((cursor, w1))
    if w1 == w0 and not bool(
        np.any((tracks.t_ms[elems.start[seg]] <= w0) & (tracks.t_ms[elems.end[seg]] >= w0))
    ):
        gaps.append((w0, w1))
    return gaps
