"""Schedules: which cells are queried in the next pass, grouped into windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from jacobi_oracle.spec.errors import check_count
from jacobi_oracle.spec.model import Problem

from .state import JacobiState, Window


class Schedule(Protocol):
    def windows(self, problem: Problem, state: JacobiState) -> tuple[Window, ...]: ...


@dataclass(frozen=True)
class RasterWindow:
    """SJD: one window of `window` cells from the raster frontier; its last cell is the bonus."""

    window: int

    def __post_init__(self) -> None:
        check_count("window", self.window)  # at least the bonus cell

    def windows(self, problem: Problem, state: JacobiState) -> tuple[Window, ...]:
        start = state.first_uncommitted()
        stop = min(start + self.window, problem.layout.num_cells)
        return (Window(tuple(range(start, stop)), bonus=True),)


def row_prefixes(problem: Problem, state: JacobiState) -> list[int]:
    """Per row, the number of leading cells committed (the row's committed prefix)."""
    layout = problem.layout
    prefixes = []
    for row in range(layout.height):
        cells = range(row * layout.width, (row + 1) * layout.width)
        prefix = 0
        for cell in cells:
            if state.committed[cell] is None:
                break
            prefix += 1
        prefixes.append(prefix)
    return prefixes


def active_rows(problem: Problem, state: JacobiState, lag: int) -> list[int]:
    """Rows with an uncommitted cell whose row above is complete or has >= `lag` committed
    cells (PJD's context count c, ZipAR's window w); the top row is always active."""
    width = problem.layout.width
    prefixes = row_prefixes(problem, state)
    rows = []
    for row, prefix in enumerate(prefixes):
        if prefix == width:
            continue
        if row > 0 and prefixes[row - 1] < min(lag, width):
            break
        rows.append(row)
    return rows


@dataclass(frozen=True)
class ParallelRows:
    """PJD (spec/pjd.md): every active row gets a window of `window` cells from its first
    uncommitted cell. Row r+1 is active once row r has `context` committed cells. The top
    active row's window ends in a bonus cell; a lower row's window is all drafts (no bonus)."""

    context: int
    window: int

    def __post_init__(self) -> None:
        # Verify the context count and the window are positive
        check_count("context (c)", self.context)
        check_count("window", self.window)

    def windows(self, problem: Problem, state: JacobiState) -> tuple[Window, ...]:
        width = problem.layout.width
        prefixes = row_prefixes(problem, state)
        out = []
        for i, row in enumerate(active_rows(problem, state, self.context)):
            start = row * width + prefixes[row]
            stop = min(start + self.window, (row + 1) * width)
            out.append(Window(tuple(range(start, stop)), bonus=i == 0))
        return tuple(out)


@dataclass(frozen=True)
class StaggeredRows:
    """ZipAR (spec/zipar.md): row r+1 starts once row r has `window` committed cells; every
    active row samples its next cell in each pass (a one-cell window, no draft)."""

    window: int

    def __post_init__(self) -> None:
        # Verify the window is positive
        check_count("window (w)", self.window)

    def windows(self, problem: Problem, state: JacobiState) -> tuple[Window, ...]:
        width = problem.layout.width
        prefixes = row_prefixes(problem, state)
        rows = active_rows(problem, state, self.window)
        return tuple(Window((row * width + prefixes[row],), bonus=True) for row in rows)
