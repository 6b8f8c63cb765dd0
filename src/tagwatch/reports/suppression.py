"""Small-number suppression for published tables, primary and secondary.

A count from 1 to threshold - 1 is replaced by `[c]` (primary). A suppressed cell could be
recovered by subtraction when it is the only suppressed member of a line that carries its
total (a row with a Total column, a column with a Total row), so another member of that line
is suppressed too (secondary), repeating until no line has exactly one suppressed member.
Zeros are published: a structural or true zero identifies nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SUPPRESSED = "[c]"
Cell = tuple[int, int]


@dataclass(frozen=True)
class Grid:
    """Counts with their totals: the last row is the Total row; the last column is the Total
    column when `column_total` is set (columns that add up), else there is none."""

    values: Sequence[Sequence[float]]
    column_total: bool

    def lines(self) -> list[list[Cell]]:
        n_rows = len(self.values)
        n_cols = len(self.values[0]) if n_rows else 0
        found = [[(r, c) for r in range(n_rows)] for c in range(n_cols)]
        if self.column_total:
            found += [[(r, c) for c in range(n_cols)] for r in range(n_rows)]
        return [line for line in found if len(line) > 1]


def suppress(grid: Grid, threshold: int) -> set[Cell]:
    """The cells to hide so that none under `threshold` can be seen or worked out."""
    if threshold <= 1:
        return set()
    values = grid.values
    n_cols = len(values[0]) if values else 0
    last_row, last_col = len(values) - 1, n_cols - 1
    hidden = {
        (r, c)
        for r, row in enumerate(values)
        for c, value in enumerate(row)
        if 0 < value < threshold
    }
    lines = grid.lines()

    def cost(cell: Cell) -> tuple[int, int, float]:
        # Hide the least information: a non-zero inner cell, the smallest first, totals last.
        r, c = cell
        is_total = r == last_row or (grid.column_total and c == last_col)
        return (int(is_total), int(values[r][c] == 0), values[r][c])

    changed = True
    while changed:
        changed = False
        for line in lines:
            if sum(1 for cell in line if cell in hidden) != 1:
                continue
            candidates = [cell for cell in line if cell not in hidden]
            hidden.add(min(candidates, key=cost))
            changed = True
    return hidden
