"""Fixed-noise Jacobi as one plain decoder (spec/gumbel_jacobi.md), written without the parts.

The `gumbel-jacobi` preset (reference/presets.py) composes the same rule from parts
(CellNoiseDrafter, FixedNoiseVerifier, GumbelCouplingRefresher); this module states it in one
place, as a second implementation to hold the composed one to (tests/test_pathwise.py checks
both give the same tokens, passes and traces, and both give Gumbel AR's tokens).

Every cell j owns the noise vector G_j = G(cell_noise_key(j)). Window f .. f+W-1 (f the first
uncommitted cell): cells f .. f+W-2 carry drafts d_j, the last is the bonus cell.

    new drafts:  d_j = argmax_t G_j[t]                  (argmax of log uniform + G_j)
    one pass:    p_j = p(. | x_<f, d_f .. d_{j-1})      for every window cell (causal mask)
                 y_j = argmax_t log p_j[t] + G_j[t]
    commit:      left to right, d_j == y_j stands; the first d_j != y_j commits y_j and stops;
                 if every draft stands the bonus cell commits y
    redraft:     the window cells after the first mismatch (bonus included) take d_j = y_j
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..spec.errors import InvalidParameterError
from ..spec.model import Problem
from ..spec.randomness import Randomness, cell_noise_key
from ..spec.strategy import IterationTrace, PhasedDecoder
from .keys import Key, committed_keys, run_queries
from .masks import CausalMask

DEFAULT_WINDOW = 3


@dataclass(frozen=True)
class FixedNoiseState:
    prefix: tuple[int, ...]  # committed cells 0 .. f-1
    drafts: tuple[int, ...]  # drafts of cells f .. f+len(drafts)-1


class FixedNoiseJacobi(PhasedDecoder[FixedNoiseState, FixedNoiseState, torch.Tensor]):
    """Deterministic given the noise; its fixed point (and output) is the Gumbel AR sample."""

    name = "gumbel-jacobi-plain"

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        # Verify the window holds at least the bonus cell
        if not isinstance(window, int) or window < 1:
            raise InvalidParameterError(f"window must be an int >= 1, got {window!r}")
        self.window = window

    def start(self, problem: Problem) -> FixedNoiseState:
        return FixedNoiseState((), ())

    def finished(self, problem: Problem, state: FixedNoiseState) -> bool:
        return len(state.prefix) == problem.layout.num_cells

    def result(self, problem: Problem, state: FixedNoiseState) -> tuple[int, ...]:
        return state.prefix

    def window_cells(self, problem: Problem, state: FixedNoiseState) -> range:
        start = len(state.prefix)
        return range(start, min(start + self.window, problem.layout.num_cells))

    def propose(self, problem: Problem, state: FixedNoiseState, randomness: Randomness) -> FixedNoiseState:
        """Drafts for the window's cells but the bonus: the old ones, then argmax G_j for new cells.
        (A window cut short by the grid's end may keep a draft on its last cell.)"""
        cells = self.window_cells(problem, state)
        vocab = problem.model.vocab_size
        uniform = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
        drafted = cells[:-1]
        drafts = state.drafts[: len(cells)]
        drafts += tuple(randomness.gumbel_argmax(uniform, cell_noise_key(c)) for c in drafted[len(drafts) :])
        return FixedNoiseState(state.prefix, drafts)

    def forward(self, problem: Problem, plan: FixedNoiseState) -> torch.Tensor:
        """One pass: [len(window), V] targets, each window cell seeing the prefix and earlier drafts."""
        cells = self.window_cells(problem, plan)
        keys = committed_keys(problem, dict(enumerate(plan.prefix)))
        keys += [Key(problem.layout.position(c), d, c, True) for c, d in zip(cells, plan.drafts, strict=False)]
        mask = CausalMask()
        visible = [[mask.is_visible(problem.layout.position(c), 0, k, 0) for k in keys] for c in cells]
        return run_queries(problem, keys, list(cells), visible)

    def conclude(
        self, problem: Problem, plan: FixedNoiseState, output: torch.Tensor, randomness: Randomness
    ) -> tuple[FixedNoiseState, IterationTrace]:
        cells = self.window_cells(problem, plan)
        decisions = [randomness.gumbel_argmax(output[i], cell_noise_key(c)) for i, c in enumerate(cells)]
        stood = 0
        while stood < len(plan.drafts) and plan.drafts[stood] == decisions[stood]:
            stood += 1
        proposed = tuple(cells[: min(stood + 1, len(plan.drafts))])  # verification stops at the mismatch
        commits = min(stood + 1, len(cells))  # the stood drafts, then the first mismatch's (or bonus cell's) y
        prefix = (*plan.prefix, *decisions[:commits])
        redrafts = tuple(decisions[commits:])  # the bonus cell's y too: it is drafted next pass
        trace = IterationTrace(proposed, proposed[:stood], tuple(cells[:commits]))
        return FixedNoiseState(prefix, redrafts), trace


def gumbel_jacobi_plain(window: int = DEFAULT_WINDOW) -> FixedNoiseJacobi:
    return FixedNoiseJacobi(window)
