"""Schedules: which cells are queried in the next pass, grouped into windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..spec.errors import InvalidParameterError
from ..spec.model import Problem
from .state import JacobiState, Window


class Schedule(Protocol):
    def windows(self, problem: Problem, state: JacobiState) -> tuple[Window, ...]: ...


@dataclass(frozen=True)
class RasterWindow:
    """SJD: one window of `window` cells from the raster frontier; its last cell is the bonus."""

    window: int

    def __post_init__(self) -> None:
        # Verify the window holds at least the bonus cell
        if not isinstance(self.window, int) or self.window < 1:
            raise InvalidParameterError(f"window must be an int >= 1, got {self.window!r}")

    def windows(self, problem: Problem, state: JacobiState) -> tuple[Window, ...]:
        start = state.first_uncommitted()
        stop = min(start + self.window, problem.layout.num_cells)
        return (Window(tuple(range(start, stop)), bonus=True),)
