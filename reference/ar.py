"""Vanilla AR sampling (spec/ar.md): one forward pass per cell, raster order.

for t in 0 .. H*W-1:
    p_t = target_probs(model(x_<t))      # the query for cell t sees every earlier key
    x_t ~ p_t                            # ar: inverse CDF at u("sample", t, t)
                                         # ar-gumbel: argmax(log p_t + G(cell_noise_key(t)))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.randomness import EventKey, Randomness, cell_noise_key
from jacobi_oracle.spec.strategy import IterationTrace, PhasedDecoder

from .keys import causal_query


@dataclass(frozen=True)
class ARState:
    prefix: tuple[int, ...]  # committed cells 0 .. len(prefix)-1


class AutoRegressive(PhasedDecoder[ARState, ARState, torch.Tensor]):
    name = "ar"

    def start(self, problem: Problem) -> ARState:
        return ARState(())

    def finished(self, problem: Problem, state: ARState) -> bool:
        return len(state.prefix) == problem.layout.num_cells

    def result(self, problem: Problem, state: ARState) -> tuple[int, ...]:
        return state.prefix

    def propose(self, problem: Problem, state: ARState, randomness: Randomness) -> ARState:
        return state  # nothing to draft

    def forward(self, problem: Problem, plan: ARState) -> torch.Tensor:
        return causal_query(problem, plan.prefix)  # p_t for t = len(prefix)

    def conclude(
        self, problem: Problem, plan: ARState, output: torch.Tensor, randomness: Randomness
    ) -> tuple[ARState, IterationTrace]:
        t = len(plan.prefix)
        token = self.draw(output, t, randomness)
        return ARState((*plan.prefix, token)), IterationTrace((), (), (t,))

    def draw(self, target_probs: torch.Tensor, cell: int, randomness: Randomness) -> int:
        return randomness.categorical(target_probs, EventKey("sample", cell, cell))


class GumbelAR(AutoRegressive):
    """AR under the cells' fixed noise: x_t = argmax(log p_t + G(cell_noise_key(t))). The
    reference the pathwise oracle compares fixed-noise decoders with, token for token."""

    name = "ar-gumbel"

    def draw(self, target_probs: torch.Tensor, cell: int, randomness: Randomness) -> int:
        return randomness.gumbel_argmax(target_probs, cell_noise_key(cell))
