"""Verifiers: walk a window left to right and decide what is committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from ..spec.acceptance import compute_acceptance_probability, compute_residual
from ..spec.model import Problem
from ..spec.randomness import EventKey, Randomness
from .drafters import fresh_sample
from .state import JacobiState, Window


@dataclass(frozen=True)
class WindowOutcome:
    committed: dict[int, int]  # cell -> token committed in this pass
    proposed: tuple[int, ...]  # cells whose draft was verified
    accepted: tuple[int, ...]  # cells whose draft was accepted
    unresolved: tuple[int, ...]  # window cells after the first rejection (to be refreshed)


class Verifier(Protocol):
    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome: ...


class SpeculativeVerifier:
    """Exact speculative verification (spec/speculative.md), one rejection per window."""

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        it = state.iteration
        committed: dict[int, int] = {}
        proposed: list[int] = []
        accepted: list[int] = []
        for i, cell in enumerate(window.cells):
            p = target_probs[cell]
            draft = state.drafts[cell]
            if draft is None:  # the bonus cell: its own fresh sample
                assert window.bonus and i == len(window.cells) - 1
                committed[cell] = fresh_sample(p, it, cell, randomness)
                break
            proposed.append(cell)
            accept = compute_acceptance_probability(p, draft.draft_probs, draft.token)
            if randomness.bernoulli(accept, EventKey("accept", it, cell)):
                committed[cell] = draft.token
                accepted.append(cell)
                continue
            residual = compute_residual(p, draft.draft_probs)
            committed[cell] = randomness.categorical(residual, EventKey("residual", it, cell))
            return WindowOutcome(committed, tuple(proposed), tuple(accepted), window.cells[i + 1 :])
        return WindowOutcome(committed, tuple(proposed), tuple(accepted), ())
