"""Strategy: a decoder. `decode(...) -> Decoded`.

A *stepped* strategy is a state machine whose every step is exactly one forward pass:

    state = start(problem)
    while not finished(state):
        state, trace = step(problem, state, randomness)
    tokens = result(state)

The exact engine needs this form: it enumerates the random outcomes of one step at a time
and merges identical states (`state_key`). `SteppedDecoder.decode` is that loop.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

import torch

from .layout import Layout
from .model import Model, Problem
from .randomness import Randomness
from .sampling import Sampling


@dataclass(frozen=True)
class IterationTrace:
    """What one forward pass did, in cells (raster indices)."""

    proposed: tuple[int, ...]  # cells whose drafts were verified
    accepted: tuple[int, ...]  # cells whose drafts were accepted
    committed: tuple[int, ...]  # every cell committed in this pass (accepted + corrected / bonus)


@dataclass(frozen=True)
class Decoded:
    tokens: tuple[int, ...]  # one token per cell, raster order
    forward_passes: int
    trace: tuple[IterationTrace, ...]

    def commit_pass(self, num_cells: int) -> list[int]:
        """For each cell, the 1-based pass in which it was committed (acceptance maps)."""
        when = [0] * num_cells
        for i, it in enumerate(self.trace, start=1):
            for cell in it.committed:
                when[cell] = i
        return when


@runtime_checkable
class Strategy(Protocol):
    name: str

    def decode(
        self,
        model: Model,
        condition: int | None,
        layout: Layout,
        sampling: Sampling,
        randomness: Randomness,
    ) -> Decoded: ...


StateT = TypeVar("StateT")


class SteppedDecoder(Generic[StateT]):
    """Base class of stepped strategies: `decode` is the plain loop over `step`."""

    name: str

    def start(self, problem: Problem) -> StateT:
        raise NotImplementedError

    def step(self, problem: Problem, state: StateT, randomness: Randomness) -> tuple[StateT, IterationTrace]:
        raise NotImplementedError

    def finished(self, problem: Problem, state: StateT) -> bool:
        raise NotImplementedError

    def result(self, problem: Problem, state: StateT) -> tuple[int, ...]:
        raise NotImplementedError

    def state_key(self, state: StateT) -> Hashable:
        """A hashable summary equal for states with identical futures (exact-engine merging)."""
        return freeze(state)

    def decode(
        self,
        model: Model,
        condition: int | None,
        layout: Layout,
        sampling: Sampling,
        randomness: Randomness,
    ) -> Decoded:
        problem = Problem(model, condition, layout, sampling)
        return self.decode_problem(problem, randomness)

    def decode_problem(self, problem: Problem, randomness: Randomness) -> Decoded:
        state = self.start(problem)
        traces: list[IterationTrace] = []
        while not self.finished(problem, state):
            state, trace = self.step(problem, state, randomness)
            traces.append(trace)
            assert len(traces) <= problem.layout.num_cells, f"{self.name} did not terminate"
        return Decoded(self.result(problem, state), len(traces), tuple(traces))


def freeze(value: object) -> Hashable:
    """Recursively turn dataclasses, tuples and tensors into nested tuples of plain values."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), tuple(value.reshape(-1).tolist()))
    if isinstance(value, (tuple, list)):
        return tuple(freeze(v) for v in value)
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return (type(value).__name__, *tuple(freeze(getattr(value, f)) for f in fields))
    assert isinstance(value, Hashable), f"cannot freeze {type(value).__name__}"
    return value
