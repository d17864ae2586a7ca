"""Properties of spec/layout.md."""

from __future__ import annotations

import pytest
from hypothesis import given

from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.spec.layout import Layout

from .strategies import layouts


@given(layouts())
def test_cells_round_trip_through_rows_columns_and_positions(layout: Layout) -> None:
    for cell in range(layout.num_cells):
        r, c = layout.row_col(cell)
        assert layout.cell(r, c) == cell
        assert layout.cell_at(layout.position(cell)) == cell


@given(layouts())
def test_end_of_row_positions_hold_no_cell(layout: Layout) -> None:
    fixed = layout.fixed_keys()
    assert len(fixed) == (0 if layout.end_of_row_token is None else layout.height)
    for position, token in fixed:
        assert layout.cell_at(position) is None
        assert token == layout.end_of_row_token
    assert layout.length == layout.num_cells + len(fixed)


@given(layouts())
def test_positions_are_increasing_in_raster_order(layout: Layout) -> None:
    positions = [layout.position(c) for c in range(layout.num_cells)]
    assert positions == sorted(set(positions))


@pytest.mark.parametrize(("h", "w"), [(0, 3), (3, 0), (-1, 2)])
def test_invalid_grid_sizes_are_named(h: int, w: int) -> None:
    with pytest.raises(InvalidParameterError, match=str(min(h, w))):
        Layout(h, w)


def test_invalid_cell_is_named() -> None:
    with pytest.raises(InvalidParameterError, match="cell 6"):
        Layout(2, 3).row_col(6)
