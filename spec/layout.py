"""The token grid: H x W image cells in raster order, optional end-of-row tokens.

Decoders work on *cells* 0 .. H*W-1 (raster order: cell = row * W + col). The model sees
*positions*: without end-of-row tokens position == cell; with them (Lumina-mGPT / Emu3 style)
every row is followed by one fixed end-of-row token, so cell (r, c) sits at position
r * (W + 1) + c and the end-of-row token of row r at position r * (W + 1) + W. End-of-row
tokens are deterministic, so every decoder treats them as committed from the start.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidParameterError, check_count


@dataclass(frozen=True)
class Layout:
    height: int
    width: int
    end_of_row_token: int | None = None

    def __post_init__(self) -> None:
        # Verify the grid is non-empty
        check_count("layout height", self.height)
        check_count("layout width", self.width)
        # Verify the end-of-row token is a token id
        if self.end_of_row_token is not None and self.end_of_row_token < 0:
            raise InvalidParameterError(f"end_of_row_token must be a token id >= 0, got {self.end_of_row_token!r}")

    @property
    def num_cells(self) -> int:
        """Number of image tokens a decoder must commit."""
        return self.height * self.width

    @property
    def row_stride(self) -> int:
        """Positions per row: W, or W + 1 with an end-of-row token."""
        return self.width + (0 if self.end_of_row_token is None else 1)

    @property
    def length(self) -> int:
        """Number of sequence positions (image tokens plus end-of-row tokens)."""
        return self.height * self.row_stride

    def cell(self, row: int, col: int) -> int:
        """Raster index of (row, col)."""
        if not (0 <= row < self.height and 0 <= col < self.width):
            raise InvalidParameterError(f"(row, col) = ({row}, {col}) is outside the {self.height}x{self.width} grid")
        return row * self.width + col

    def row_col(self, cell: int) -> tuple[int, int]:
        """(row, col) of a raster index."""
        self._check_cell(cell)
        return divmod(cell, self.width)

    def position(self, cell: int) -> int:
        """Sequence position of an image cell."""
        row, col = self.row_col(cell)
        return row * self.row_stride + col

    def cell_at(self, position: int) -> int | None:
        """Image cell at a sequence position, or None for an end-of-row position."""
        if not 0 <= position < self.length:
            raise InvalidParameterError(f"position {position} is outside 0..{self.length - 1}")
        row, col = divmod(position, self.row_stride)
        return None if col >= self.width else row * self.width + col

    def fixed_keys(self) -> tuple[tuple[int, int], ...]:
        """(position, token) of every end-of-row token: known before decoding starts."""
        if self.end_of_row_token is None:
            return ()
        return tuple((r * self.row_stride + self.width, self.end_of_row_token) for r in range(self.height))

    def _check_cell(self, cell: int) -> None:
        if not 0 <= cell < self.num_cells:
            raise InvalidParameterError(f"cell {cell} is outside 0..{self.num_cells - 1}")
