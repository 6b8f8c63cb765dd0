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

An entry names its element packed in one integer, `2 * start fix + (1 if joined to the next
fix)` (`unpack_elements`), so a candidate carries both its fixes without another lookup, and
sorting packed elements sorts them by start fix: an owner's elements in time order.

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
# Elements filed per block while building: the temporaries stay small, in cache, and are
# reused rather than mapped afresh (page faults on fresh memory cost as much as the work).
_BLOCK = 1 << 18


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

    def packed(self) -> I64:
        return self.start * 2 + (self.end - self.start)


def unpack_elements(packed: I64) -> tuple[I64, I64]:
    """(start fix, end fix) of packed elements (see the module docstring)."""
    start = packed >> 1
    return start, start + (packed & 1)


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
    start = np.flatnonzero(joined | ~has_prev).astype(np.int64, copy=False)
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
    values: I64, group_first: I64, group_base: I64, span: int, *, bucket_ms: int = 3_600_000
) -> TimeDirectory:
    """The directory of rows sorted by (group, value): group g's rows are
    group_first[g]:group_first[g + 1], their values sorted and within
    [group_base[g], group_base[g] + span). Found by searching, not by a pass over every row."""
    groups = len(group_first) - 1
    bucket_ms = max(bucket_ms, -(-span * groups // _DIRECTORY_LIMIT))
    buckets = span // bucket_ms + 1
    bucket_start = np.arange(buckets, dtype=np.int64) * bucket_ms
    target = (group_base[:, None] + bucket_start).ravel()
    if bool(np.all(np.diff(group_base) >= span)):
        # Each group's values lie below the next group's: the rows are sorted as a whole.
        first = np.searchsorted(values, target)
    else:
        first = search_sorted_within(
            values,
            np.repeat(group_first[:-1], buckets),
            np.repeat(group_first[1:], buckets),
            target,
        )
    return TimeDirectory(np.append(first, group_first[-1:]).astype(np.int64), buckets, bucket_ms)


@dataclass(frozen=True)
class TrackGrid:
    """The elements of a set of fixes filed by (cell, start time). See the module docstring."""

    max_gap_ms: float
    key: I64  # cell * span + (element start - t_min), sorted
    cells: I64  # the cells that hold entries, sorted
    # cell -> its rank in `cells` (-1: no entries), when the grid's extent is modest
    cell_rank: NDArray[np.int32] | None
    directory: TimeDirectory  # entries by (cell rank, start time)
    entry_element: I64  # packed (see unpack_elements)
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

    def ranks(self, cell: I64) -> I64:
        """Each cell's rank in `cells`, or -1 when it holds no entry."""
        if self.cell_rank is not None:
            return self.cell_rank[cell].astype(np.int64)
        k = np.minimum(np.searchsorted(self.cells, cell), len(self.cells) - 1)
        return np.where(self.cells[k] == cell, k, -1)


# Cells of a grid's extent up to which `cell_rank` is a table (4 bytes a cell), when that is
# also no more than a few cells an entry (a small set of fixes over a wide area searches).
_RANK_TABLE_CELLS = 4_000_000
_RANK_TABLE_CELLS_PER_ENTRY = 8


def build_grid(
    t_ms: I64,
    x: F64,
    y: F64,
    elements: Elements,
    max_gap_ms: float,
    *,
    cell_m: float = CELL_M,
    piece_m: float = PIECE_M,
    rank_table_cells: int | None = None,
) -> TrackGrid:
    """File every element of the fixes (see the module docstring). A grid of at most
    `rank_table_cells` cells (by default, see _RANK_TABLE_CELLS) finds a cell's rank in a
    table, a larger one by searching."""
    if not (cell_m > 0 and piece_m > 0):
        raise ValueError("cell_m, piece_m: must be positive")
    if len(elements) == 0:
        e = np.empty(0, dtype=np.int64)
        f = np.empty(0, dtype=np.complex64)
        directory = TimeDirectory(np.zeros(2, dtype=np.int64), 1, 1)
        return TrackGrid(
            max_gap_ms, e, e, None, directory, e, f, 0.0, 0.0, cell_m, piece_m, 1, 1, 0, 1
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
        block = Elements(elements.start[lo : lo + _BLOCK], elements.end[lo : lo + _BLOCK])
        start, end = block.start, block.end
        element, mx, my = _filed_points(x[start], y[start], x[end], y[end], piece_m)
        gx = ((mx - origin_x) * (1.0 / cell_m)).astype(np.int64)
        gy = ((my - origin_y) * (1.0 / cell_m)).astype(np.int64)
        keys.append((gy * ncx + gx) * span + (t_ms[start[element]] - t_min))
        entry_element.append(block.packed()[element])
        xy = np.empty(len(mx), dtype=np.complex64)
        xy.real = mx - origin_x
        xy.imag = my - origin_y
        entry_xy.append(xy)
    unsorted = np.concatenate(keys)
    del keys
    # Stable sort: an owner's entries in one cell already come in time order, runs it merges
    # cheaply.
    order = np.argsort(unsorted, kind="stable")
    key = unsorted.take(order)
    # The sorted columns reuse the buffers of the unsorted ones (fresh memory costs faults).
    element_buffer = np.concatenate(entry_element)
    del entry_element
    sorted_element = np.take(element_buffer, order, out=unsorted)
    sorted_xy = np.take(np.concatenate(entry_xy), order, out=element_buffer.view(np.complex64))
    del entry_xy, order
    cell_first = _cell_starts(key, span)
    cells = key[cell_first] // span
    cell_rank = None
    if rank_table_cells is None:
        rank_table_cells = min(_RANK_TABLE_CELLS, _RANK_TABLE_CELLS_PER_ENTRY * len(key))
    if ncx * ncy <= rank_table_cells:
        cell_rank = np.full(ncx * ncy, -1, dtype=np.int32)
        cell_rank[cells] = np.arange(len(cells), dtype=np.int32)
    return TrackGrid(
        max_gap_ms,
        key,
        cells,
        cell_rank,
        time_directory(key, np.append(cell_first, len(key)), cells * span, span),
        sorted_element,
        sorted_xy,
        origin_x,
        origin_y,
        cell_m,
        piece_m,
        ncx,
        ncy,
        t_min,
        span,
    )


def _cell_starts(key: I64, span: int) -> I64:
    """Where each cell's entries begin in the sorted keys (block by block: no full-size
    temporaries)."""
    starts = [np.zeros(1, dtype=np.int64)]
    for lo in range(0, len(key) - 1, _BLOCK):
        cell = key[lo : lo + _BLOCK + 1] // span
        starts.append(np.flatnonzero(cell[1:] != cell[:-1]) + (lo + 1))
    return np.concatenate(starts).astype(np.int64)


def _filed_points(x0: F64, y0: F64, x1: F64, y1: F64, piece_m: float) -> tuple[I64, F64, F64]:
    """(element, x, y) of the points an element is filed under: its midpoint when it is no
    longer than a piece, else the midpoint of each of its equal pieces."""
    dx = x1 - x0
    dy = y1 - y0
    mx = x0 + 0.5 * dx
    my = y0 + 0.5 * dy
    # Most elements are short: only the long ones are measured exactly and cut.
    long = np.flatnonzero(dx * dx + dy * dy > piece_m * piece_m)
    if len(long) == 0:
        return np.arange(len(x0), dtype=np.int64), mx, my
    short = np.ones(len(x0), dtype=np.bool_)
    short[long] = False
    n = np.maximum(np.ceil(np.hypot(dx[long], dy[long]) / piece_m), 1.0).astype(np.int64)
    cut = np.repeat(long, n)
    k = np.arange(len(cut), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    s_mid = (k + 0.5) / np.repeat(n, n)
    return (
        np.concatenate([np.flatnonzero(short), cut]),
        np.concatenate([mx[short], x0[cut] + s_mid * dx[cut]]),
        np.concatenate([my[short], y0[cut] + s_mid * dy[cut]]),
    )


def grid_candidates(
    grid: TrackGrid, cx: F64, cy: F64, w0: F64, w1: F64, radius_m: float
) -> tuple[I64, I64]:
    """(crime position, packed element) pairs that may come within `radius_m` of crime
    (cx, cy) during [w0, w1]: every pair that does is among them. A long element may appear
    more than once for one crime (once per piece near it)."""
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
    crime_q = np.concatenate(q_crime)
    cell_q = np.concatenate(q_cell)
    # Only cells that hold entries are searched, each within its own slice of the keys.
    k = grid.ranks(cell_q)
    held = k >= 0
    crime_q, cell_q, k = crime_q[held], cell_q[held], k[held]
    base = cell_q * grid.span
    q_from = off_lo[crime_q]
    q_to = off_hi[crime_q]
    first, last = grid.directory.bracket(k, q_from)
    lo = search_sorted_within(grid.key, first, last, base + q_from)
    first, last = grid.directory.bracket(k, q_to)
    hi = search_sorted_within(grid.key, first, last, base + q_to, strict=True)
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return empty, empty
    pos = np.arange(total, dtype=np.int64) + np.repeat(lo - (np.cumsum(counts) - counts), counts)
    # The disc test: the filed midpoint within reach of the crime.
    crime_xy = np.empty(len(rel_x), dtype=np.complex64)
    crime_xy.real = rel_x
    crime_xy.imag = rel_y
    offset = grid.entry_xy.take(pos, mode="clip")
    offset -= np.repeat(crime_xy[crime_q], counts)
    ex, ey = offset.real, offset.imag
    d2 = ex * ex
    d2 += ey * ey
    near = np.flatnonzero(d2 <= np.float32((reach + _DISC_SLACK_M) ** 2))
    return np.repeat(crime_q, counts)[near], grid.entry_element.take(pos[near], mode="clip")


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
