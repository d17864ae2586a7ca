"""LPD: locality-aware parallel decoding (spec/lpd.md), one group of cells per forward pass.

groups = order(grid, group sizes, repulsion, seed)        content-independent, precomputed
for i, G_i in enumerate(groups):
    keys  = real tokens of G_0 .. G_{i-1}  (+ the query keys of G_i: queries see each other)
    p_t   = target_probs(model(keys, queries G_i))   for t in G_i    ONE pass
    x_t  ~ p_t independently, EventKey("lpd", i, t)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from jacobi_oracle.spec.errors import InvalidParameterError, UnsupportedStrategyError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.lpd_order import (
    DEFAULT_REPULSION,
    check_group_sizes,
    compute_group_sizes,
    compute_locality_order,
    compute_random_order,
    compute_raster_order,
)
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.position_query import QUERY_TOKEN, is_position_query_model
from jacobi_oracle.spec.randomness import EventKey, Randomness
from jacobi_oracle.spec.strategy import IterationTrace, SteppedDecoder

from .keys import Key, committed_keys, run_queries

OrderKind = Literal["locality", "raster", "random"]
QueryMode = Literal["auto", "mutual", "independent"]


@dataclass(frozen=True)
class LPDState:
    groups: tuple[tuple[int, ...], ...]  # the whole order, fixed at start
    step: int  # passes done = groups committed
    committed: tuple[int | None, ...]  # per cell


@dataclass
class LPDDecoder(SteppedDecoder[LPDState]):
    """`group_sizes` (or `steps` for the cosine schedule; default: spec.lpd_order's rule),
    `order` of the cells, `queries`: "mutual" sends the group's query keys (needs a
    position-query model), "independent" does not, "auto" sends them iff the model accepts them."""

    group_sizes: tuple[int, ...] | None = None
    steps: int | None = None
    repulsion: int = DEFAULT_REPULSION
    order_seed: int = 0
    order: OrderKind = "locality"
    queries: QueryMode = "auto"
    name: str = "lpd"

    def __post_init__(self) -> None:
        # Verify the order and query mode are known
        if self.order not in ("locality", "raster", "random"):
            raise InvalidParameterError(f"order must be 'locality', 'raster' or 'random', got {self.order!r}")
        if self.queries not in ("auto", "mutual", "independent"):
            raise InvalidParameterError(f"queries must be 'auto', 'mutual' or 'independent', got {self.queries!r}")
        # Verify at most one of group_sizes / steps is given
        if self.group_sizes is not None and self.steps is not None:
            raise InvalidParameterError(f"give group_sizes or steps, not both ({self.group_sizes!r}, {self.steps!r})")

    def compute_groups(self, layout: Layout) -> tuple[tuple[int, ...], ...]:
        n = layout.num_cells
        sizes = compute_group_sizes(n, self.steps) if self.group_sizes is None else tuple(self.group_sizes)
        check_group_sizes(sizes, n)
        if self.order == "raster":
            return compute_raster_order(n, sizes)
        if self.order == "random":
            return compute_random_order(n, sizes, self.order_seed)
        return compute_locality_order(layout.height, layout.width, sizes, self.repulsion, self.order_seed)

    def sends_query_keys(self, problem: Problem) -> bool:
        accepts = is_position_query_model(problem.model)
        if self.queries == "mutual" and not accepts:
            raise UnsupportedStrategyError(
                f"queries='mutual' needs a position-query model (accepts_query_keys=True), got {problem.model!r}"
            )
        return self.queries == "mutual" or (self.queries == "auto" and accepts)

    def start(self, problem: Problem) -> LPDState:
        self.sends_query_keys(problem)  # fail before the first pass
        return LPDState(self.compute_groups(problem.layout), 0, (None,) * problem.layout.num_cells)

    def finished(self, problem: Problem, state: LPDState) -> bool:
        return state.step == len(state.groups)

    def result(self, problem: Problem, state: LPDState) -> tuple[int, ...]:
        assert self.finished(problem, state)
        return tuple(t for t in state.committed if t is not None)

    def step(self, problem: Problem, state: LPDState, randomness: Randomness) -> tuple[LPDState, IterationTrace]:
        group = state.groups[state.step]
        target_probs = self.query_group(problem, state, group)
        committed = list(state.committed)
        for cell, probs in zip(group, target_probs, strict=True):
            committed[cell] = randomness.categorical(probs, EventKey("lpd", state.step, cell))
        new_state = LPDState(state.groups, state.step + 1, tuple(committed))
        return new_state, IterationTrace((), (), tuple(sorted(group)))

    def context(self, state: LPDState) -> dict[int, int]:
        """The real tokens a group's queries see: every cell of the earlier groups."""
        return {cell: token for cell, token in enumerate(state.committed) if token is not None}

    def query_group(self, problem: Problem, state: LPDState, group: tuple[int, ...]) -> torch.Tensor:
        """One forward pass: [g, V] target probabilities for the group's cells."""
        keys = committed_keys(problem, self.context(state))
        if self.sends_query_keys(problem):
            keys += [Key(problem.layout.position(cell), QUERY_TOKEN, cell, False) for cell in group]
        visible = [[True] * len(keys) for _ in group]
        return run_queries(problem, keys, list(group), visible)


def lpd(
    steps: int | None = None,
    group_sizes: tuple[int, ...] | None = None,
    repulsion: int = DEFAULT_REPULSION,
    order_seed: int = 0,
    order: OrderKind = "locality",
    queries: QueryMode = "auto",
) -> LPDDecoder:
    sizes = None if group_sizes is None else tuple(group_sizes)
    return LPDDecoder(sizes, steps, repulsion, order_seed, order, queries)
