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
    @property
    def name(self) -> str: ...

    def decode(
        self,
        model: Model,
        condition: int | None,
        layout: Layout,
        sampling: Sampling,
        randomness: Randomness,
    ) -> Decoded: ...


@runtime_checkable
class BatchStrategy(Strategy, Protocol):
    """A Strategy that also decodes many samples at once: `decode_batch(...)[i]` is exactly
    `decode(..., randomness[i])` (the accelerated decoders; the statistical engine samples
    through it, so a batch is judged as the same program the user runs)."""

    def decode_batch(
        self,
        model: Model,
        conditions: list[int | None],
        layout: Layout,
        sampling: Sampling,
        randomness: list[Randomness],
    ) -> list[Decoded]: ...


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


PlanT = TypeVar("PlanT")
OutT = TypeVar("OutT")


class PhasedDecoder(SteppedDecoder[StateT], Generic[StateT, PlanT, OutT]):
    """A step in three phases: a random proposal, ONE deterministic forward pass, a random
    conclusion. The exact engine runs the forward pass once per distinct proposal instead of
    once per random path (the pass is the expensive, deterministic middle)."""

    def propose(self, problem: Problem, state: StateT, randomness: Randomness) -> PlanT:
        raise NotImplementedError

    def forward(self, problem: Problem, plan: PlanT) -> OutT:
        raise NotImplementedError

    def conclude(
        self, problem: Problem, plan: PlanT, output: OutT, randomness: Randomness
    ) -> tuple[StateT, IterationTrace]:
        raise NotImplementedError

    def plan_key(self, plan: PlanT) -> Hashable:
        return freeze(plan)

    def step(self, problem: Problem, state: StateT, randomness: Randomness) -> tuple[StateT, IterationTrace]:
        plan = self.propose(problem, state, randomness)
        return self.conclude(problem, plan, self.forward(problem, plan), randomness)


VerifiedT = TypeVar("VerifiedT")


class VerifyRefreshDecoder(PhasedDecoder[StateT, PlanT, OutT], Generic[StateT, PlanT, OutT, VerifiedT]):
    """A PhasedDecoder whose random conclusion is itself two phases: `verify` (what the pass
    commits, and which cells are left for new drafts) then `refresh` (those cells' next drafts).
    `conclude` is `refresh(verify(...))`. The exact engine runs `verify` once per verification
    path and `refresh` from each of its outcomes, instead of re-running the verification once
    per refresh path (a refresh draws a token per cell, so it multiplies the paths)."""

    def verify(self, problem: Problem, plan: PlanT, output: OutT, randomness: Randomness) -> VerifiedT:
        raise NotImplementedError

    def refresh(self, problem: Problem, verified: VerifiedT, randomness: Randomness) -> tuple[StateT, IterationTrace]:
        raise NotImplementedError

    def conclude(
        self, problem: Problem, plan: PlanT, output: OutT, randomness: Randomness
    ) -> tuple[StateT, IterationTrace]:
        return self.refresh(problem, self.verify(problem, plan, output, randomness), randomness)


def freeze(value: object) -> Hashable:
    """Recursively turn dataclasses, tuples and tensors into nested tuples of plain values."""
    if isinstance(value, torch.Tensor):
        return (value.dtype, tuple(value.shape), value.detach().cpu().numpy().tobytes())
    if isinstance(value, (tuple, list)):
        if all(v is None or type(v) is int for v in value):  # the common case: tokens per cell
            return tuple(value)
        return tuple(freeze(v) for v in value)
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return (type(value).__name__, *(freeze(getattr(value, f)) for f in fields))
    assert isinstance(value, Hashable), f"cannot freeze {type(value).__name__}"
    return value
