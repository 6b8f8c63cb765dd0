"""No published table lets a hidden cell be worked out from a total."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tagwatch.reports.suppression import Grid, suppress


def _with_totals(inner: list[list[int]], column_total: bool) -> list[list[int]]:
    rows = [[*row, sum(row)] if column_total else list(row) for row in inner]
    return [*rows, [sum(col) for col in zip(*rows, strict=True)]]


@settings(max_examples=300, deadline=None)
@given(
    inner=st.integers(1, 6).flatmap(
        lambda cols: st.lists(
            st.lists(st.integers(0, 12), min_size=cols, max_size=cols), min_size=1, max_size=7
        )
    ),
    column_total=st.booleans(),
    threshold=st.integers(2, 6),
)
def test_hidden_cells_cannot_be_recovered(
    inner: list[list[int]], column_total: bool, threshold: int
) -> None:
    values = _with_totals(inner, column_total)
    grid = Grid(values, column_total)
    hidden = suppress(grid, threshold)
    for r, row in enumerate(values):
        for c, value in enumerate(row):
            if 0 < value < threshold:
                assert (r, c) in hidden
    for line in grid.lines():
        assert sum(1 for cell in line if cell in hidden) != 1, line


def test_a_lone_small_cell_takes_a_neighbour_with_it() -> None:
    values = _with_totals([[3, 10, 20], [7, 8, 9]], column_total=True)
    hidden = suppress(Grid(values, True), 5)
    assert (0, 0) in hidden
    assert len(hidden) >= 4  # the 3, one more in its row, and one in each of their columns
