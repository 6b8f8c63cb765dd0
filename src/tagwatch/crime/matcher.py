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

Speed comes from an index over the track: every segment (long ones also by pieces no longer
than the piece length, for indexing only) is filed under the grid cell of its midpoint and
sorted by (cell, start time), after a dense (cell, quarter-hour) mask of where and when any
crime could be met has dropped the rest. A crime then reads the 3 x 3 cells around it and,
within each, the segments starting in [window start - max gap, window end] with two binary
searches. The exact geometry runs vectorised over the candidate (crime, segment) pairs. With
few crimes over a long period, only the fixes within reach of a window are read at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

ALGORITHM_VERSION = "tagwatch-crime-match/1"

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BoolArr = NDArray[np.bool_]

# Pairs evaluated at once: bounds memory for big batches (about 40 bytes a pair per array).
_PAIR_CHUNK = 4_000_000


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


# --- the track as elements -----------------------------------------------------------------


@dataclass(frozen=True)
class _Elements:
    """Track elements: joined segments (start fix i, end fix i + 1) and lone fixes (i, i)."""

    start: I64
    end: I64

    @property
    def lone(self) -> BoolArr:
        return np.asarray(self.start == self.end, dtype=np.bool_)


def _elements(tracks: TrackSet, params: MatchParams) -> _Elements:
    n = len(tracks)
    if n == 0:
        empty = np.empty(0, dtype=np.int64)
        return _Elements(empty, empty)
    same_owner = tracks.owner[1:] == tracks.owner[:-1]
    joined = same_owner & ((tracks.t_ms[1:] - tracks.t_ms[:-1]) <= params.max_gap_ms)
    has_next = np.concatenate([joined, [False]])
    has_prev = np.concatenate([[False], joined])
    seg_start = np.flatnonzero(has_next).astype(np.int64)
    lone = np.flatnonzero(~has_next & ~has_prev).astype(np.int64)
    start = np.concatenate([seg_start, lone])
    end = np.concatenate([seg_start + 1, lone])
    order = np.argsort(start, kind="stable")
    return _Elements(start[order], end[order])


# --- exact geometry of one (crime, element) pair, vectorised ---------------------------------


@dataclass(frozen=True)
class _PairGeometry:
    valid: BoolArr  # the element meets the crime window
    s_lo: F64  # clipped parameter range along the element
    s_hi: F64
    dist: F64  # closest distance over the clipped element
    s_closest: F64
    in_lo: F64  # parameter range inside the radius (meaningful where dist <= radius)
    in_hi: F64


def _pair_geometry(
    cx: F64,
    cy: F64,
    w0: F64,
    w1: F64,
    x0: F64,
    y0: F64,
    x1: F64,
    y1: F64,
    t0: F64,
    t1: F64,
    radius: float,
) -> _PairGeometry:
    dt = t1 - t0
    moving_time = dt > 0
    safe_dt = np.where(moving_time, dt, 1.0)
    s_lo = np.where(moving_time, np.maximum(0.0, (w0 - t0) / safe_dt), 0.0)
    s_hi = np.where(moving_time, np.minimum(1.0, (w1 - t0) / safe_dt), 1.0)
    valid = np.where(moving_time, s_lo <= s_hi, (t0 >= w0) & (t0 <= w1))

    dx = x1 - x0
    dy = y1 - y0
    fx = x0 - cx
    fy = y0 - cy
    a = dx * dx + dy * dy
    b = dx * fx + dy * fy  # half the linear coefficient
    c = fx * fx + fy * fy - radius * radius
    has_length = a > 0
    safe_a = np.where(has_length, a, 1.0)
    s_star = np.where(has_length, np.clip(-b / safe_a, s_lo, s_hi), s_lo)
    px = x0 + s_star * dx - cx
    py = y0 + s_star * dy - cy
    dist = np.hypot(px, py)

    disc = b * b - a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    r_lo = np.where(has_length, (-b - root) / safe_a, s_lo)
    r_hi = np.where(has_length, (-b + root) / safe_a, s_hi)
    in_lo = np.maximum(r_lo, s_lo)
    in_hi = np.minimum(r_hi, s_hi)
    # Rounding must not split what the closest distance decides: the interval always holds s*.
    in_lo = np.minimum(in_lo, s_star)
    in_hi = np.maximum(in_hi, s_star)
    return _PairGeometry(valid, s_lo, s_hi, dist, s_star, in_lo, in_hi)


# --- the spatial-temporal index ---------------------------------------------------------------


@dataclass(frozen=True)
class _Index:
    keys: I64  # cell * span + (segment start - t_min), sorted
    element: I64  # element of each key
    cut: BoolArr  # per element: filed as several pieces
    cell_size: float
    origin_x: float
    origin_y: float
    ncx: int
    ncy: int
    t_min: int
    span: int


def _piece_length(radius: float) -> float:
    return max(2.0 * radius, 50.0)


_BIN_MS = 900_000  # time bins of the pre-filter: a quarter of an hour
_MAX_MASK_CELLS = 200_000_000


def _build_index(
    tracks: TrackSet, elems: _Elements, crimes: CrimeSet, params: MatchParams
) -> _Index | None:
    """File the elements that could meet some crime under (cell, start time).

    A dense (cell, quarter-hour) mask of where and when crimes could be met filters the
    elements first, so only those few are sorted."""
    if len(elems.start) == 0 or len(crimes) == 0:
        return None
    piece = _piece_length(params.radius_m)
    # A point within the radius of a crime lies on a piece whose midpoint is within
    # radius + piece / 2; a cell that size (plus rounding slack) keeps it in the 3 x 3 block.
    cell = (params.radius_m + piece / 2.0) * (1 + 1e-9) + 1e-6
    origin_x = float(np.min(crimes.x)) - 2 * cell
    origin_y = float(np.min(crimes.y)) - 2 * cell
    ncx = int((float(np.max(crimes.x)) - origin_x) // cell) + 3
    ncy = int((float(np.max(crimes.y)) - origin_y) // cell) + 3
    w_lo = crimes.t_from - params.tolerance_ms - params.max_gap_ms
    w_hi = crimes.t_to + params.tolerance_ms
    t_base = int(np.floor(np.min(w_lo)))
    bin_ms = _BIN_MS
    while ncx * ncy * ((int(np.max(w_hi)) - t_base) // bin_ms + 1) > _MAX_MASK_CELLS:
        bin_ms *= 2
    nbins = (int(np.max(w_hi)) - t_base) // bin_ms + 1
    mask = np.zeros(ncx * ncy * nbins, dtype=np.bool_)
    cgx = np.floor((crimes.x - origin_x) / cell).astype(np.int64)
    cgy = np.floor((crimes.y - origin_y) / cell).astype(np.int64)
    b_lo = ((np.floor(w_lo) - t_base) // bin_ms).astype(np.int64)
    b_hi = ((np.floor(w_hi) - t_base) // bin_ms).astype(np.int64)
    n_bins = b_hi - b_lo + 1
    for ox in (-1, 0, 1):
        for oy in (-1, 0, 1):
            cell_id = np.repeat(((cgy + oy) * ncx + (cgx + ox)) * nbins + b_lo, n_bins)
            k = np.arange(len(cell_id)) - np.repeat(np.cumsum(n_bins) - n_bins, n_bins)
            mask[cell_id + k] = True

    t_start_all = tracks.t_ms[elems.start]
    t_min = int(t_start_all.min())
    span = int(t_start_all.max()) - t_min + 1
    if ncx * ncy * span >= 2**62:
        raise ValueError("tracks: area and period too large for one index; split the period")
    grid = _Grid(origin_x, origin_y, cell, ncx, ncy, t_base, bin_ms, nbins, t_min, span)
    keys_parts: list[I64] = []
    elem_parts: list[I64] = []
    cut_parts: list[BoolArr] = []
    # Blocks keep the temporaries small enough to stay in cache and out of the page allocator.
    for lo in range(0, len(elems.start), _BLOCK):
        hi = min(lo + _BLOCK, len(elems.start))
        keys, element, cut = _file_block(tracks, elems, lo, hi, piece, grid, mask)
        keys_parts.append(keys)
        elem_parts.append(element)
        cut_parts.append(cut)
    keys = np.concatenate(keys_parts)
    element = np.concatenate(elem_parts)
    order = np.argsort(keys)
    return _Index(
        keys[order],
        element[order],
        np.concatenate(cut_parts),
        cell,
        origin_x,
        origin_y,
        ncx,
        ncy,
        t_min,
        span,
    )


_BLOCK = 1 << 19


@dataclass(frozen=True)
class _Grid:
    origin_x: float
    origin_y: float
    cell: float
    ncx: int
    ncy: int
    t_base: int
    bin_ms: int
    nbins: int
    t_min: int
    span: int


def _file_block(
    tracks: TrackSet,
    elems: _Elements,
    lo: int,
    hi: int,
    piece: float,
    grid: _Grid,
    mask: BoolArr,
) -> tuple[I64, I64, BoolArr]:
    """Keys and elements of block [lo, hi) that pass the mask, and which elements are cut."""
    start = elems.start[lo:hi]
    end = elems.end[lo:hi]
    x0 = tracks.x[start]
    y0 = tracks.y[start]
    dx = tracks.x[end] - x0
    dy = tracks.y[end] - y0
    t_start = tracks.t_ms[start]
    # Every element is filed by its midpoint; a long one also by each of its pieces.
    cut = dx * dx + dy * dy > piece * piece
    long_ = np.flatnonzero(cut)
    mx = x0 + 0.5 * dx
    my = y0 + 0.5 * dy
    element = np.arange(hi - lo, dtype=np.int64)
    if len(long_):
        n_long = np.ceil(np.hypot(dx[long_], dy[long_]) / piece).astype(np.int64)
        sub = np.repeat(long_, n_long)
        k = np.arange(len(sub), dtype=np.int64) - np.repeat(np.cumsum(n_long) - n_long, n_long)
        s_mid = (k + 0.5) / np.repeat(n_long, n_long)
        element = np.concatenate([element, sub])
        mx = np.concatenate([mx, x0[sub] + s_mid * dx[sub]])
        my = np.concatenate([my, y0[sub] + s_mid * dy[sub]])
        t_start = t_start[element]
    # Truncation misfiles only points below the grid's first cell, which no crime is near.
    gx = ((mx - grid.origin_x) * (1.0 / grid.cell)).astype(np.int64)
    gy = ((my - grid.origin_y) * (1.0 / grid.cell)).astype(np.int64)
    gt = (t_start - grid.t_base) // grid.bin_ms
    inside = (gx >= 0) & (gx < grid.ncx) & (gy >= 0) & (gy < grid.ncy)
    inside &= (gt >= 0) & (gt < grid.nbins)
    where = np.flatnonzero(inside)
    cell_id = gy[where] * grid.ncx + gx[where]
    hit = mask[cell_id * grid.nbins + gt[where]]
    where = where[hit]
    keys = cell_id[hit] * grid.span + (t_start[where] - grid.t_min)
    return keys, element[where] + lo, cut


def _candidates(
    index: _Index, crimes: CrimeSet, params: MatchParams, crime_rows: I64
) -> tuple[I64, I64]:
    """(crime row, element) pairs that may match: nothing within the radius is left out."""
    gx = np.floor((crimes.x[crime_rows] - index.origin_x) / index.cell_size).astype(np.int64)
    gy = np.floor((crimes.y[crime_rows] - index.origin_y) / index.cell_size).astype(np.int64)
    w_lo = crimes.t_from[crime_rows] - params.tolerance_ms - params.max_gap_ms - index.t_min
    w_hi = crimes.t_to[crime_rows] + params.tolerance_ms - index.t_min
    off_lo = np.clip(np.ceil(w_lo), 0, index.span - 1).astype(np.int64)
    off_hi = np.clip(np.floor(w_hi), -1, index.span - 1).astype(np.int64)
    q_crime = []
    q_lo = []
    q_hi = []
    for ox in (-1, 0, 1):
        for oy in (-1, 0, 1):
            cx = gx + ox
            cy = gy + oy
            ok = (cx >= 0) & (cx < index.ncx) & (cy >= 0) & (cy < index.ncy) & (off_hi >= off_lo)
            base = (cy * index.ncx + cx) * index.span
            q_crime.append(crime_rows[ok])
            q_lo.append(base[ok] + off_lo[ok])
            q_hi.append(base[ok] + off_hi[ok])
    crime_q = np.concatenate(q_crime)
    lo = np.searchsorted(index.keys, np.concatenate(q_lo), side="left")
    hi = np.searchsorted(index.keys, np.concatenate(q_hi), side="right")
    counts = hi - lo
    total = int(counts.sum())
    pair_crime = np.repeat(crime_q, counts)
    first = np.cumsum(counts) - counts
    pos = np.arange(total, dtype=np.int64) - np.repeat(first - lo, counts)
    pair_elem = index.element[pos]
    # A long segment is filed once per piece: keep each (crime, element) once.
    cut = index.cut[pair_elem]
    if not bool(np.any(cut)):
        return pair_crime, pair_elem
    width = len(index.cut)
    key = np.unique(pair_crime[cut] * width + pair_elem[cut])
    return (
        np.concatenate([pair_crime[~cut], key // width]).astype(np.int64),
        np.concatenate([pair_elem[~cut], key % width]).astype(np.int64),
    )


# --- per-owner time lookups: coverage and accuracy ----------------------------------------------


@dataclass(frozen=True)
class _FixIndex:
    """The fixes keyed by (owner rank, time), for per-match searches within one owner."""

    key: I64  # owner rank * span + (t - t_min): sorted, because fixes are
    owners: I64  # distinct owners in order; an owner's rank is its position here
    joined_prev: BoolArr  # fix i is joined to fix i - 1 by a segment
    cum: F64  # time covered by segments from the first fix up to fix i
    t_min: int
    span: int


def _fix_index(tracks: TrackSet, params: MatchParams) -> _FixIndex:
    t = tracks.t_ms
    n = len(t)
    new_owner = np.empty(n, dtype=np.bool_)
    new_owner[0] = True
    np.not_equal(tracks.owner[1:], tracks.owner[:-1], out=new_owner[1:])
    step = np.empty(n, dtype=np.int64)
    step[0] = 0
    np.subtract(t[1:], t[:-1], out=step[1:])
    joined_prev = ~new_owner & (step <= params.max_gap_ms)
    step[~joined_prev] = 0
    cum = np.cumsum(step).astype(np.float64)
    t_min = int(t.min())
    span = int(t.max()) - t_min + 2
    key = np.cumsum(new_owner, dtype=np.int64)
    key -= 1
    key *= span
    key += t
    key -= t_min
    return _FixIndex(key, tracks.owner[new_owner], joined_prev, cum, t_min, span)


@dataclass(frozen=True)
class _Windows:
    """For each match: the owner's fix rows [lo, hi) and the fixes in the window [a, b)."""

    base: I64  # owner rank * span
    lo: I64
    hi: I64
    a: I64
    b: I64


def _windows(fx: _FixIndex, owner: I64, w0: F64, w1: F64) -> _Windows:
    base = np.searchsorted(fx.owners, owner).astype(np.int64) * fx.span
    lo_off = np.clip(np.ceil(w0 - fx.t_min), 0, fx.span - 1).astype(np.int64)
    hi_off = np.clip(np.floor(w1 - fx.t_min), -1, fx.span - 1).astype(np.int64)
    return _Windows(
        base,
        np.searchsorted(fx.key, base, side="left").astype(np.int64),
        np.searchsorted(fx.key, base + fx.span, side="left").astype(np.int64),
        np.searchsorted(fx.key, base + lo_off, side="left").astype(np.int64),
        np.searchsorted(fx.key, base + hi_off, side="right").astype(np.int64),
    )


def _coverage_pct(fx: _FixIndex, t_ms: I64, win: _Windows, w0: F64, w1: F64) -> F64:
    """Share of each window [w0, w1] covered by joined segments (lone fixes cover nothing)."""

    def until(t: F64, b: I64) -> F64:
        # b: first fix after t; k = b - 1 is the last fix at or before t.
        k = b - 1
        has = k >= win.lo
        k_safe = np.maximum(k, 0)
        nxt = np.minimum(k + 1, len(t_ms) - 1)
        continues = has & (k + 1 < win.hi) & fx.joined_prev[nxt]
        partial = np.where(continues, np.minimum(t, t_ms[nxt]) - t_ms[k_safe], 0.0)
        first = np.minimum(win.lo, len(t_ms) - 1)
        return np.where(has, fx.cum[k_safe] - fx.cum[first] + partial, 0.0)

    def first_after(t: F64) -> I64:
        off = np.clip(np.floor(t - fx.t_min), -1, fx.span - 1).astype(np.int64)
        return np.searchsorted(fx.key, win.base + off, side="right").astype(np.int64)

    covered = until(w1, win.b) - until(w0, first_after(w0))
    length = w1 - w0
    # A zero-length window is covered when a segment spans its instant.
    instant = until(w0 + 0.5, first_after(w0 + 0.5)) - until(w0 - 0.5, first_after(w0 - 0.5))
    pct = np.where(length > 0, 100.0 * covered / np.where(length > 0, length, 1.0), 0.0)
    pct = np.where(length > 0, pct, np.where(instant > 0, 100.0, 0.0))
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
    lo = win.a - extend_a
    hi = win.b + extend_b
    out = np.full(len(lo), np.nan)
    rows = np.flatnonzero(hi > lo)
    if len(rows):
        # reduceat also reduces between one range's end and the next range's start; with the
        # ranges in descending order of start that stretch is empty and costs nothing.
        rows = rows[np.argsort(-lo[rows], kind="stable")]
        acc = np.concatenate([tracks.accuracy_m, [np.nan]])
        bounds = np.empty(2 * len(rows), dtype=np.int64)
        bounds[0::2] = lo[rows]
        bounds[1::2] = hi[rows]
        out[rows] = np.fmax.reduceat(acc, bounds)[0::2]
    return out


# --- the matcher -----------------------------------------------------------------------------


def _empty_result() -> MatchResult:
    i = np.empty(0, dtype=np.int64)
    f = np.empty(0, dtype=np.float64)
    return MatchResult(i, i, i, f, f, f, f, f, f, i, i, f, f, i, i, i, i)


@dataclass
class _Hits:
    """Matching (crime row, element) pairs with their geometry, accumulated over chunks."""

    crime: list[I64] = field(default_factory=list)
    elem: list[I64] = field(default_factory=list)
    dist: list[F64] = field(default_factory=list)
    t_closest: list[F64] = field(default_factory=list)
    x_closest: list[F64] = field(default_factory=list)
    y_closest: list[F64] = field(default_factory=list)
    t_in: list[F64] = field(default_factory=list)
    t_out: list[F64] = field(default_factory=list)


def _evaluate(
    crimes: CrimeSet,
    tracks: TrackSet,
    elems: _Elements,
    params: MatchParams,
    crime: I64,
    elem: I64,
    hits: _Hits,
) -> None:
    i = elems.start[elem]
    j = elems.end[elem]
    t0 = tracks.t_ms[i].astype(np.float64)
    t1 = tracks.t_ms[j].astype(np.float64)
    w0 = crimes.t_from[crime] - params.tolerance_ms
    w1 = crimes.t_to[crime] + params.tolerance_ms
    g = _pair_geometry(
        crimes.x[crime],
        crimes.y[crime],
        w0.astype(np.float64),
        w1.astype(np.float64),
        tracks.x[i],
        tracks.y[i],
        tracks.x[j],
        tracks.y[j],
        t0,
        t1,
        params.radius_m,
    )
    keep = g.valid & (g.dist <= params.radius_m)
    dt = t1 - t0
    hits.crime.append(crime[keep])
    hits.elem.append(elem[keep])
    hits.dist.append(g.dist[keep])
    hits.t_closest.append((t0 + g.s_closest * dt)[keep])
    hits.x_closest.append((tracks.x[i] + g.s_closest * (tracks.x[j] - tracks.x[i]))[keep])
    hits.y_closest.append((tracks.y[i] + g.s_closest * (tracks.y[j] - tracks.y[i]))[keep])
    hits.t_in.append((t0 + g.in_lo * dt)[keep])
    hits.t_out.append((t0 + g.in_hi * dt)[keep])


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
    elems = _elements(tracks, params)
    index = _build_index(tracks, elems, crimes, params)
    if index is None:
        return _empty_result()
    hits = _Hits()
    # Crimes in time order keep each chunk's searches local; chunks bound the pair count.
    crime_order = np.argsort(crimes.t_from, kind="stable").astype(np.int64)
    chunk = max(1, min(len(crimes), 2000))
    for start in range(0, len(crimes), chunk):
        rows = crime_order[start : start + chunk]
        pair_crime, pair_elem = _candidates(index, crimes, params, rows)
        for p in range(0, len(pair_crime), _PAIR_CHUNK):
            _evaluate(
                crimes,
                tracks,
                elems,
                params,
                pair_crime[p : p + _PAIR_CHUNK],
                pair_elem[p : p + _PAIR_CHUNK],
                hits,
            )
    return _assemble(crimes, tracks, elems, params, hits)


def _assemble(
    crimes: CrimeSet, tracks: TrackSet, elems: _Elements, params: MatchParams, hits: _Hits
) -> MatchResult:
    if not hits.crime:
        return _empty_result()
    crime = np.concatenate(hits.crime)
    elem = np.concatenate(hits.elem)
    if len(crime) == 0:
        return _empty_result()
    dist = np.concatenate(hits.dist)
    t_closest = np.concatenate(hits.t_closest)
    x_closest = np.concatenate(hits.x_closest)
    y_closest = np.concatenate(hits.y_closest)
    t_in = np.concatenate(hits.t_in)
    t_out = np.concatenate(hits.t_out)

    # Element order within an owner is time order, so (crime, element) sorts each group by time.
    order = np.lexsort((elem, crime))
    crime, elem = crime[order], elem[order]
    dist, t_closest = dist[order], t_closest[order]
    x_closest, y_closest = x_closest[order], y_closest[order]
    t_in, t_out = t_in[order], t_out[order]
    owner = tracks.owner[elems.start[elem]]

    new_group = np.ones(len(crime), dtype=bool)
    new_group[1:] = (crime[1:] != crime[:-1]) | (owner[1:] != owner[:-1])
    group = np.cumsum(new_group) - 1
    group_start = np.flatnonzero(new_group)
    n_groups = len(group_start)

    # Closest approach: least distance, then earliest time.
    best = np.lexsort((t_closest, dist, group))
    first_of = np.ones(len(best), dtype=bool)
    first_of[1:] = group[best][1:] != group[best][:-1]
    best = best[first_of]

    # Passes: consecutive hits join when they share a fix that lies inside the radius and
    # inside the window (the track is then inside at that instant, so the intervals touch).
    w0 = (crimes.t_from[crime] - params.tolerance_ms).astype(np.float64)
    w1 = (crimes.t_to[crime] + params.tolerance_ms).astype(np.float64)
    start_fix = elems.start[elem]
    end_fix = elems.end[elem]
    lone = start_fix == end_fix
    r2 = params.radius_m * params.radius_m
    shared = np.zeros(len(crime), dtype=bool)
    if len(crime) > 1:
        prev_end = end_fix[:-1]
        sx = tracks.x[prev_end] - crimes.x[crime[1:]]
        sy = tracks.y[prev_end] - crimes.y[crime[1:]]
        t_shared = tracks.t_ms[prev_end].astype(np.float64)
        shared[1:] = (
            ~new_group[1:]
            & ~lone[1:]
            & ~lone[:-1]
            & (prev_end == start_fix[1:])
            & (sx * sx + sy * sy <= r2)
            & (t_shared >= w0[1:])
            & (t_shared <= w1[1:])
        )
    new_pass = ~shared
    pass_global = np.cumsum(new_pass) - 1
    passes_per_group = np.bincount(group, weights=new_pass, minlength=n_groups).astype(np.int64)
    first_pass_of_group = pass_global[group_start]
    pass_in_group = pass_global - first_pass_of_group[group]

    first_time = np.minimum.reduceat(t_in, group_start)
    last_time = np.maximum.reduceat(t_out, group_start)

    # Fixes inside the radius: element ends inside the window and within the radius.
    fix_rows: list[I64] = []
    fix_hit: list[I64] = []
    for ends in (start_fix, end_fix):
        fx = tracks.x[ends] - crimes.x[crime]
        fy = tracks.y[ends] - crimes.y[crime]
        ft = tracks.t_ms[ends].astype(np.float64)
        inside = (fx * fx + fy * fy <= r2) & (ft >= w0) & (ft <= w1)
        fix_rows.append(ends[inside])
        fix_hit.append(np.flatnonzero(inside).astype(np.int64))
    f_fix = np.concatenate(fix_rows)
    f_hit = np.concatenate(fix_hit)
    f_group = group[f_hit]
    # A fix shared by two hits counts once (same group, same fix).
    f_order = np.lexsort((f_hit, f_fix, f_group))
    f_fix, f_hit, f_group = f_fix[f_order], f_hit[f_order], f_group[f_order]
    keep = np.ones(len(f_fix), dtype=bool)
    keep[1:] = (f_fix[1:] != f_fix[:-1]) | (f_group[1:] != f_group[:-1])
    f_fix, f_hit, f_group = f_fix[keep], f_hit[keep], f_group[keep]
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
    g_w0 = w0[group_start]
    g_w1 = w1[group_start]
    fix_ix = _fix_index(tracks, params)
    win = _windows(fix_ix, g_owner, g_w0, g_w1)
    cov_pct = _coverage_pct(fix_ix, tracks.t_ms, win, g_w0, g_w1)
    max_acc = _max_accuracy(tracks, fix_ix, win, g_w0, g_w1)

    return MatchResult(
        crime_index=g_crime.astype(np.int64),
        crime_id=crimes.crime_id[g_crime].astype(np.int64),
        owner=g_owner.astype(np.int64),
        closest_distance_m=dist[best],
        closest_time_ms=t_closest[best],
        closest_x=x_closest[best],
        closest_y=y_closest[best],
        first_time_ms=first_time,
        last_time_ms=last_time,
        passes=passes_per_group,
        fixes_in_radius=fixes_per_group,
        coverage_pct=cov_pct,
        max_accuracy_m=max_acc,
        fix_match=f_group.astype(np.int64),
        fix_index=f_fix.astype(np.int64),
        fix_pass=f_pass.astype(np.int64),
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
    g = _pair_geometry(
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
        params.radius_m,
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
    pick = valid[np.lexsort((t_close[valid], g.dist[valid]))[0]]
    d = float(g.dist[pick])
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
    tracks: TrackSet, elems: _Elements, w0: float, w1: float
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
