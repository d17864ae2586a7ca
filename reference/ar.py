"""Vanilla AR sampling (spec/ar.md): one forward pass per cell, raster order.

for t in 0 .. H*W-1:
    p_t = target_probs(model(x_<t))      # the query for cell t sees every earlier key
    x_t ~ p_t
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec.model import Problem
from ..spec.randomness import EventKey, Randomness
from ..spec.strategy import IterationTrace, SteppedDecoder
from .keys import causal_query


@dataclass(frozen=True)
class ARState:
    prefix: tuple[int, ...]  # committed cells 0 .. len(prefix)-1


class AutoRegressive(SteppedDecoder[ARState]):
    name = "ar"

    def start(self, problem: Problem) -> ARState:
        return ARState(())

    def finished(self, problem: Problem, state: ARState) -> bool:
        return len(state.prefix) == problem.layout.num_cells

    def result(self, problem: Problem, state: ARState) -> tuple[int, ...]:
        return state.prefix

    def step(self, problem: Problem, state: ARState, randomness: Randomness) -> tuple[ARState, IterationTrace]:
        t = len(state.prefix)
        target_probs = causal_query(problem, state.prefix)
        token = randomness.categorical(target_probs, EventKey("sample", t, t))
        return ARState((*state.prefix, token)), IterationTrace((), (), (t,))
