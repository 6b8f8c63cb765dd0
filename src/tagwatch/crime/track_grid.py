"""A space-time grid over tracks: built once for a set of fixes, searched by many crimes.

Pure kernel: NumPy arrays in, arrays out; no database, no clock, no I/O. Coordinates are
metres (EPSG:27700), times epoch milliseconds.

A track's elements (joined segments and lone fixes, for one max gap) are filed under the grid
cell of their midpoint; an element longer than the piece length is filed once per piece
instead (equal pieces no longer than `piece_m`, for filing only: the matcher always measures
the whole element). Entries are sorted by (cell, element start time), so the entries of one
cell starting in a time range are one slice, found with two binary searches.

Why nothing within the radius is missed: a point of an element within `radius` of a crime
lies on a piece no longer than `piece_m`, within `piece_m / 2` of that piece's midpoint, so
the midpoint is within `reach = radius + piece_m / 2` of the crime. The cells overlapping the
square of side `2 * reach` around the crime hold that entry, and the disc test on the stored
midpoint keeps it (single precision, with a metre of slack, so rounding only adds
candidates). An element that meets the window [w0, w1] starts in [w0 - max gap, w1], because
an element lasts at most the max gap.

Nothing here depends on the crimes or on the radius: one grid serves every batch and every
radius matched against the same fixes with the same max gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BoolArr = NDArray[np.bool_]

CELL_M = 200.0
PIECE_M = 50.0
# Slack of the disc test on single-precision midpoints (their error is millimetres).
_DISC_SLACK_M = 1.0
# Elements filed per block while building: keeps the temporaries in cache.
_BLOCK = 1 << 19


@dataclass(frozen=True)
class Elements:
    """Track elements: joined segments (start fix i, end fix i + 1) and lone fixes (i, i),
    in order of their start fix, so an owner's elements are in time order."""

    start: I64
    end: I64

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def lone(self) -> BoolArr:
        return np.asarray(self.start == self.end, dtype=np.bool_)


def track_elements(owner: I64, t_ms: I64, max_gap_ms: float) -> Elements:
    """The elements of fixes sorted by (owner, time): consecutive fixes of one owner at most
    `max_gap_ms` apart are joined; a fix joined to neither neighbour is a lone fix."""
    n = len(owner)
    if n == 0:
        empty = np.empty(0, dtype=np.int64)
        return Elements(empty, empty)
    joined = np.empty(n, dtype=np.bool_)  # joined[i]: fix i is joined to fix i + 1
    np.equal(owner[1:], owner[:-1], out=joined[:-1])
    joined[:-1] &= (t_ms[1:] - t_ms[:-1]) <= max_gap_ms
    joined[-1] = False
    has_prev = np.empty(n, dtype=np.bool_)
    has_prev[0] = False
    has_prev[1:] = joined[:-1]
    # An element starts at every fix joined to its next one, and at every lone fix.
    start = np.flatnonzero(joined | ~has_prev).astype(np.int64)
    end = start + joined[start]
    return Elements(start, end)


@dataclass(frozen=True)
class TimeDirectory:
    """For rows sorted by (group, time): where each group's rows of each time bucket begin,
    so a search for a time within a group starts from its bucket's few rows."""

    first: I64  # rows of group g in bucket k: first[g * buckets + k]:first[g * buckets + k + 1]
    buckets: int
    bucket_ms: int

    def bracket(
        self, group: I64, offset: NDArray[np.int64] | NDArray[np.float64]
    ) -> tuple[I64, I64]:
        """The rows of `group` in the bucket of time `offset` (from the directory's start):
        every row before them is earlier than that bucket, every row after them later."""
        bucket = np.clip(np.floor(offset / self.bucket_ms), 0, self.buckets - 1).astype(np.int64)
        at = group * self.buckets + bucket
        return self.first[at], self.first[at + 1]


# Entries of a time directory at most: the buckets grow for long periods over many groups.
_DIRECTORY_LIMIT = 8_000_000


def time_directory(
    group: I64, offset: I64, groups: int, *, bucket_ms: int = 3_600_000
) -> TimeDirectory:
    """The directory of rows sorted by (group, offset), offset being time from the start."""
    span = int(offset.max()) + 1 if len(offset) else 1
    bucket_ms = max(bucket_ms, -(-span * groups // _DIRECTORY_LIMIT))
    buckets = span // bucket_ms + 1
    key = group * buckets + offset // bucket_ms
    first = np.searchsorted(key, np.arange(groups * buckets + 1, dtype=np.int64))
    return TimeDirectory(first.astype(np.int64), buckets, bucket_ms)


@dataclass(frozen=True)
class TrackGrid:
    """The elements of a set of fixes filed by (cell, start time). See the module docstring."""

    max_gap_ms: float
    elements: Elements
    key: I64  # cell * span + (element start - t_min), sorted
    cells: I64  # the cells that hold entries, sorted
    directory: TimeDirectory  # entries by (cell rank, start time)
    entry_element: I64
    entry_xy: NDArray[np.complex64]  # the filed midpoint, relative to the origin, as x + iy
    origin_x: float
    origin_y: float
    cell_m: float
    piece_m: float
    ncx: int
    ncy: int
    t_min: int
    span: int

    def __len__(self) -> int:
        return int(self.key.shape[0])


def build_grid(
    t_ms: I64,
    x: F64,
    y: F64,
    elements: Elements,
    max_gap_ms: float,
    *,
    cell_m: float = CELL_M,
    piece_m: float = PIECE_M,
) -> TrackGrid:
    """File every element of the fixes (see the module docstring)."""
    if not (cell_m > 0 and piece_m > 0):
        raise ValueError("cell_m, piece_m: must be positive")
    if len(elements) == 0:
        e = np.empty(0, dtype=np.int64)
        f = np.empty(0, dtype=np.complex64)
        directory = TimeDirectory(np.zeros(2, dtype=np.int64), 1, 1)
        return TrackGrid(
            max_gap_ms, elements, e, e, directory, e, f, 0.0, 0.0, cell_m, piece_m, 1, 1, 0, 1
        )
    extent = (float(np.min(x)), float(np.min(y)), float(np.max(x)), float(np.max(y)))
    if not all(np.isfinite(extent)):
        raise ValueError("x, y: every position must be a finite number of metres")
    origin_x = extent[0] - cell_m
    origin_y = extent[1] - cell_m
    ncx = int((extent[2] - origin_x) // cell_m) + 2
    ncy = int((extent[3] - origin_y) // cell_m) + 2
    t_min = int(np.min(t_ms))
    span = int(np.max(t_ms)) - t_min + 1
    if ncx * ncy * span >= 2**62:
        raise ValueError("tracks: area and period too large for one grid; split the period")
    keys: list[I64] = []
    entry_element: list[I64] = []
    entry_xy: list[NDArray[np.complex64]] = []
    for lo in range(0, len(elements), _BLOCK):
        hi = min(lo + _BLOCK, len(elements))
        start = elements.start[lo:hi]
        end = elements.end[lo:hi]
        element, mx, my = _filed_points(x[start], y[start], x[end], y[end], piece_m)
        gx = ((mx - origin_x) * (1.0 / cell_m)).astype(np.int64)
        gy = ((my - origin_y) * (1.0 / cell_m)).astype(np.int64)
        keys.append((gy * ncx + gx) * span + (t_ms[start[element]] - t_min))
        entry_element.append(element + lo)
        xy = np.empty(len(mx), dtype=np.complex64)
        xy.real = mx - origin_x
        xy.imag = my - origin_y
        entry_xy.append(xy)
    key = np.concatenate(keys)
    order = np.argsort(key)
    key = key[order]
    cell = key // span
    new_cell = np.empty(len(key), dtype=np.bool_)
    new_cell[0] = True
    np.not_equal(cell[1:], cell[:-1], out=new_cell[1:])
    cell_rank = np.cumsum(new_cell) - 1
    cells = cell[new_cell]
    return TrackGrid(
        max_gap_ms,
        elements,
        key,
        cells,
        time_directory(cell_rank, key - cell * span, len(cells)),
        np.concatenate(entry_element)[order],
        np.concatenate(entry_xy)[order],
        origin_x,
        origin_y,
        cell_m,
        piece_m,
        ncx,
        ncy,
        t_min,
        span,
    )


def _filed_points(x0: F64, y0: F64, x1: F64, y1: F64, piece_m: float) -> tuple[I64, F64, F64]:
    """(element, x, y) of the points an element is filed under: its midpoint when it is no
    longer than a piece, else the midpoint of each of its equal pieces."""
    dx = x1 - x0
    dy = y1 - y0
    length = np.hypot(dx, dy)
    n = np.maximum(np.ceil(length / piece_m), 1.0).astype(np.int64)
    if bool(np.all(n == 1)):
        return np.arange(len(x0), dtype=np.int64), x0 + 0.5 * dx, y0 + 0.5 * dy
    element = np.repeat(np.arange(len(x0), dtype=np.int64), n)
    k = np.arange(len(element), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    s_mid = (k + 0.5) / n[element]
    return element, x0[element] + s_mid * dx[element], y0[element] + s_mid * dy[element]


def grid_candidates(
    grid: TrackGrid, cx: F64, cy: F64, w0: F64, w1: F64, radius_m: float
) -> tuple[I64, I64]:
    """(crime position, element) pairs that may come within `radius_m` of crime (cx, cy)
    during [w0, w1]: every pair that does is among them. A long element may appear more than
    once for one crime (once per piece near it)."""
    empty = np.empty(0, dtype=np.int64)
    if len(grid) == 0 or len(cx) == 0:
        return empty, empty
    reach = radius_m + grid.piece_m / 2.0
    rel_x = cx - grid.origin_x
    rel_y = cy - grid.origin_y
    gx_lo = np.floor((rel_x - reach) / grid.cell_m).astype(np.int64)
    gx_hi = np.floor((rel_x + reach) / grid.cell_m).astype(np.int64)
    gy_lo = np.floor((rel_y - reach) / grid.cell_m).astype(np.int64)
    gy_hi = np.floor((rel_y + reach) / grid.cell_m).astype(np.int64)
    off_lo = np.clip(np.ceil(w0 - grid.max_gap_ms - grid.t_min), 0, grid.span).astype(np.int64)
    off_hi = np.clip(np.floor(w1 - grid.t_min), -1, grid.span - 1).astype(np.int64)
    in_time = off_hi >= off_lo
    q_crime: list[I64] = []
    q_cell: list[I64] = []
    q_lo: list[I64] = []
    q_hi: list[I64] = []
    width = int(np.max(gx_hi - gx_lo)) + 1
    height = int(np.max(gy_hi - gy_lo)) + 1
    crime_pos = np.arange(len(cx), dtype=np.int64)
    for ox in range(width):
        for oy in range(height):
            gx = gx_lo + ox
            gy = gy_lo + oy
            ok = in_time & (gx <= gx_hi) & (gy <= gy_hi)
            ok &= (gx >= 0) & (gx < grid.ncx) & (gy >= 0) & (gy < grid.ncy)
            q_crime.append(crime_pos[ok])
            q_cell.append(gy[ok] * grid.ncx + gx[ok])
            q_lo.append(off_lo[ok])
            q_hi.append(off_hi[ok])
    crime_q = np.concatenate(q_crime)
    cell_q = np.concatenate(q_cell)
    # Only cells that hold entries are searched, each within its own slice of the keys.
    k = np.searchsorted(grid.cells, cell_q)
    k_safe = np.minimum(k, len(grid.cells) - 1)
    held = grid.cells[k_safe] == cell_q
    crime_q, cell_q, k = crime_q[held], cell_q[held], k[held]
    base = cell_q * grid.span
    q_from = np.concatenate(q_lo)[held]
    q_to = np.concatenate(q_hi)[held]
    first, last = grid.directory.bracket(k, q_from)
    lo = search_sorted_within(grid.key, first, last, base + q_from)
    first, last = grid.directory.bracket(k, q_to)
    hi = search_sorted_within(grid.key, first, last, base + q_to, strict=True)
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return empty, empty
    pair_crime = np.repeat(crime_q, counts)
    pos = np.arange(total, dtype=np.int64) + np.repeat(lo - (np.cumsum(counts) - counts), counts)
    # The disc test: the filed midpoint within reach of the crime.
    crime_xy = np.empty(len(rel_x), dtype=np.complex64)
    crime_xy.real = rel_x
    crime_xy.imag = rel_y
    offset = grid.entry_xy[pos]
    offset -= crime_xy[pair_crime]
    ex, ey = offset.real, offset.imag
    near = ex * ex + ey * ey <= np.float32((reach + _DISC_SLACK_M) ** 2)
    return pair_crime[near], grid.entry_element[pos[near]]


def search_sorted_within(
    values: NDArray[np.int64] | NDArray[np.float64],
    lo: I64,
    hi: I64,
    target: NDArray[np.int64] | NDArray[np.float64],
    *,
    strict: bool = False,
) -> I64:
    """Per query: the first position k in [lo, hi) with values[k] >= target (> target when
    `strict`), or hi when there is none; `values` is sorted within each range.

    A branch-free binary search run for all queries at once: each step halves every range
    with one gather, so the memory reads of all queries overlap instead of waiting on each
    other as they do in one search after another."""
    base = lo.astype(np.int64, copy=True)
    size = hi - lo
    if len(size) == 0:
        return base
    last = len(values) - 1
    while int(size.max()) > 1:
        half = size >> 1
        mid = np.minimum(base + half, last)
        before = values[mid] <= target if strict else values[mid] < target
        np.copyto(base, mid, where=before & (half > 0))
        size -= half
    value = values[np.clip(base, 0, last)] if last >= 0 else np.zeros(len(base))
    before = value <= target if strict else value < target
    return base + (before & (size > 0))
