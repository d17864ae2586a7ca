"""Drafters: where a draft comes from, always with the law it was drawn from.

* initial drafters give a cell its first draft (before the pass);
* refreshers give the unaccepted cells after a rejection their next draft (after the pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from ..spec.errors import InvalidParameterError
from ..spec.model import Problem
from ..spec.randomness import EventKey, Randomness
from .state import Draft, JacobiState


class InitialDrafter(Protocol):
    def initial_draft(self, problem: Problem, state: JacobiState, cell: int, randomness: Randomness) -> Draft: ...


class Refresher(Protocol):
    def refresh(
        self,
        problem: Problem,
        state: JacobiState,
        cell: int,
        target_probs: torch.Tensor,
        randomness: Randomness,
    ) -> Draft | None: ...


def fresh_sample(target_probs: torch.Tensor, iteration: int, cell: int, randomness: Randomness) -> int:
    """y ~ p at a cell: the pass's own sample (bonus token, SJD refinement)."""
    return randomness.categorical(target_probs, EventKey("fresh", iteration, cell))


@dataclass(frozen=True)
class RandomDrafter:
    """A uniformly random token. `q="uniform"`: its true law. `q="one-hot"`: a point mass on
    the drawn token, as the official SJD code stores it; exact too, because verification is
    then conditional on the drawn value (spec/speculative.md, "point-mass drafts")."""

    q: Literal["uniform", "one-hot"] = "one-hot"

    def __post_init__(self) -> None:
        if self.q not in ("uniform", "one-hot"):
            raise InvalidParameterError(f"RandomDrafter q must be 'uniform' or 'one-hot', got {self.q!r}")

    def initial_draft(self, problem: Problem, state: JacobiState, cell: int, randomness: Randomness) -> Draft:
        vocab = problem.model.vocab_size
        uniform = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
        token = randomness.categorical(uniform, EventKey("init", state.iteration, cell))
        if self.q == "uniform":
            return Draft(token, uniform)
        return Draft(token, torch.nn.functional.one_hot(torch.tensor(token), vocab).double())


@dataclass(frozen=True)
class FreshSampleRefresher:
    """SJD refinement: the next draft is this pass's fresh sample y ~ p, with q = p."""

    def refresh(
        self,
        problem: Problem,
        state: JacobiState,
        cell: int,
        target_probs: torch.Tensor,
        randomness: Randomness,
    ) -> Draft | None:
        token = fresh_sample(target_probs, state.iteration, cell, randomness)
        return Draft(token, target_probs, last_target=target_probs)
