"""Drafters: where a draft comes from, always with the law it was drawn from.

* initial drafters give a cell its first draft (before the pass);
* refreshers give the unaccepted cells after a rejection their next draft (after the pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from jacobi_oracle.spec.acceptance import compute_acceptance_probability, compute_residual
from jacobi_oracle.spec.errors import InvalidParameterError, check_reuse_threshold
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.randomness import EventKey, Randomness, cell_noise_key

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
    """A uniformly random token. `recorded_law="uniform"`: its true law. `"one-hot"`: a point mass on
    the drawn token, as the official SJD code stores it; exact too, because verification is
    then conditional on the drawn value (spec/speculative.md, "point-mass drafts")."""

    recorded_law: Literal["uniform", "one-hot"] = "one-hot"  # the q stored with the draft

    def __post_init__(self) -> None:
        if self.recorded_law not in ("uniform", "one-hot"):
            raise InvalidParameterError(
                f"RandomDrafter recorded_law must be 'uniform' or 'one-hot', got {self.recorded_law!r}"
            )

    def initial_draft(self, problem: Problem, state: JacobiState, cell: int, randomness: Randomness) -> Draft:
        vocab = problem.model.vocab_size
        uniform = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
        token = randomness.categorical(uniform, EventKey("init", state.iteration, cell))
        if self.recorded_law == "uniform":
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


def point_mass(token: int, vocab_size: int) -> torch.Tensor:
    """q = one-hot on `token`: the law of a draft that is a function of what is already known."""
    return torch.nn.functional.one_hot(torch.tensor(token), vocab_size).double()


def neighbour_cell(layout: Layout, cell: int, neighbour: Literal["left", "above"]) -> int | None:
    """The left (same row) or above (same column) cell of `cell`, in cells, not positions."""
    row, col = layout.row_col(cell)
    if neighbour == "left":
        return None if col == 0 else layout.cell(row, col - 1)
    return None if row == 0 else layout.cell(row - 1, col)


@dataclass(frozen=True)
class SpatialDrafter:
    """SJD++ 4.2 spatial initialisation (spec/sjd-spatial.md): a new draft repeats the left /
    above token (q = point mass on it) or is sampled from the left / above cell's remembered p
    (q = that p). Cells without that neighbour, token or p get the fallback's draft."""

    neighbour: Literal["left", "above"]
    mode: Literal["repeat", "sample"]
    fallback: RandomDrafter = RandomDrafter()

    def __post_init__(self) -> None:
        # Verify the neighbour and the mode are known
        if self.neighbour not in ("left", "above"):
            raise InvalidParameterError(f"SpatialDrafter neighbour must be 'left' or 'above', got {self.neighbour!r}")
        if self.mode not in ("repeat", "sample"):
            raise InvalidParameterError(f"SpatialDrafter mode must be 'repeat' or 'sample', got {self.mode!r}")

    @property
    def reads_targets(self) -> bool:
        return self.mode == "sample"

    def initial_draft(self, problem: Problem, state: JacobiState, cell: int, randomness: Randomness) -> Draft:
        source = neighbour_cell(problem.layout, cell, self.neighbour)
        if source is not None and self.mode == "repeat":
            token = state.token_at(source)
            if token is not None:
                return Draft(token, point_mass(token, problem.model.vocab_size))
        if source is not None and self.mode == "sample":
            source_probs = state.target_at(source)
            if source_probs is not None:
                token = randomness.categorical(source_probs, EventKey("init", state.iteration, cell))
                return Draft(token, source_probs)
        return self.fallback.initial_draft(problem, state, cell, randomness)


@dataclass(frozen=True)
class ArgmaxRefresher:
    """Jacobi refinement: the next draft is argmax p (q = point mass; no randomness)."""

    def refresh(
        self,
        problem: Problem,
        state: JacobiState,
        cell: int,
        target_probs: torch.Tensor,
        randomness: Randomness,
    ) -> Draft | None:
        token = int(target_probs.argmax())
        return Draft(token, point_mass(token, problem.model.vocab_size), last_target=target_probs)


def compute_keep_mask(
    previous_target: torch.Tensor | None, target_probs: torch.Tensor, threshold: float
) -> torch.Tensor:
    """SJD++ Eq. 4: keep(y) = [p_t(y) / p_{t-1}(y) > threshold], written p_t(y) > threshold *
    p_{t-1}(y) so that p_{t-1}(y) = 0 < p_t(y) keeps y. No p_{t-1}: nothing is kept."""
    if previous_target is None:
        return torch.zeros_like(target_probs, dtype=torch.bool)
    return target_probs > threshold * previous_target


def compute_reuse_law(draft_probs: torch.Tensor, keep: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """The true law of the draft after keep-or-resample (spec/sjdpp.md):
    q_next(y) = q_old(y) keep(y) + (1 - sum_z q_old(z) keep(z)) p_t(y),
    [V] or [..., V] (accelerated/ calls it on batches)."""
    kept = draft_probs * keep
    resample_mass = (1.0 - kept.sum(dim=-1, keepdim=True)).clamp(min=0.0)  # >= 0 also when rounding makes sum(kept) > 1
    return kept + resample_mass * target_probs


@dataclass(frozen=True)
class ReuseRefresher:
    """SJD++ token reuse (spec/sjdpp.md, Eq. 4-5): after a rejection, a draft whose confidence
    p_t(x) / p_{t-1}(x) exceeds `threshold` is kept, any other is resampled from p_t.
    `kept_law="stale"` (published): a kept draft keeps its old q, a resampled one gets p_t (lossy).
    `kept_law="mixture"` (sjdpp-exact): either carries the keep-or-resample law, its true q."""

    threshold: float = 1.0
    kept_law: Literal["stale", "mixture"] = "stale"  # the q recorded with a reused draft
    fallback: Refresher = FreshSampleRefresher()  # a cell without a draft to reuse (the bonus cell)

    def __post_init__(self) -> None:
        # Verify the threshold is a finite ratio >= 0
        check_reuse_threshold(self.threshold)
        # Verify the q rule is known
        if self.kept_law not in ("stale", "mixture"):
            raise InvalidParameterError(f"ReuseRefresher kept_law must be 'stale' or 'mixture', got {self.kept_law!r}")

    def refresh(
        self,
        problem: Problem,
        state: JacobiState,
        cell: int,
        target_probs: torch.Tensor,
        randomness: Randomness,
    ) -> Draft | None:
        old = state.drafts[cell]
        if old is None:  # nothing to reuse (the bonus cell): plain refinement
            return self.fallback.refresh(problem, state, cell, target_probs, randomness)
        keep = compute_keep_mask(old.last_target, target_probs, self.threshold)
        kept = bool(keep[old.token])
        token = old.token if kept else fresh_sample(target_probs, state.iteration, cell, randomness)
        if self.kept_law == "mixture":
            draft_probs = compute_reuse_law(old.draft_probs, keep, target_probs)
        else:
            draft_probs = old.draft_probs if kept else target_probs
        return Draft(token, draft_probs, last_target=target_probs)


@dataclass(frozen=True)
class ConfidentReuseRefresher:
    """PJD's post-rejection reuse (spec/pjd.md): an unresolved draft x is kept, with its old q,
    when min(1, p(x) / q(x)) under this pass's p exceeds `threshold` (0.5 in the official
    code); otherwise it is replaced by this pass's fresh sample y ~ p with q = p. The keep
    decision reads the draft's own value, so a kept draft's q is no longer its law (lossy)."""

    threshold: float = 0.5
    fallback: Refresher = FreshSampleRefresher()  # a cell without a draft to reuse (the bonus cell)

    def __post_init__(self) -> None:
        # Verify the threshold is an acceptance probability
        check_reuse_threshold(self.threshold, at_most=1.0)

    def refresh(
        self,
        problem: Problem,
        state: JacobiState,
        cell: int,
        target_probs: torch.Tensor,
        randomness: Randomness,
    ) -> Draft | None:
        old = state.drafts[cell]
        if old is not None:
            confidence = compute_acceptance_probability(target_probs, old.draft_probs, old.token)
            if confidence > self.threshold:
                return Draft(old.token, old.draft_probs, last_target=target_probs)
        return self.fallback.refresh(problem, state, cell, target_probs, randomness)


@dataclass(frozen=True)
class MaximalCouplingRefresher:
    """SCD / MC-SJD (spec/coupling.md): after a rejection, the next draft at a cell with an old
    draft x (recorded law q_old) is maximally coupled to it: x is kept with probability
    min(1, p(x) / q_old(x)) (key ("couple", it, cell)), else redrawn from norm(max(0, p - q_old))
    (key ("couple-residual", it, cell)). The new draft's law is exactly p, and it is recorded
    as q = p. `official=True` is the official sampler's q rule: a kept draft keeps its OLD q,
    a redrawn one gets p (a q that depends on the coupling's outcome). A cell without an old
    draft (the bonus cell) gets this pass's fresh sample, as in FreshSampleRefresher."""

    official: bool = False
    fallback: Refresher = FreshSampleRefresher()  # a cell without a draft to couple to (the bonus cell)

    def refresh(
        self,
        problem: Problem,
        state: JacobiState,
        cell: int,
        target_probs: torch.Tensor,
        randomness: Randomness,
    ) -> Draft | None:
        old = state.drafts[cell]
        if old is None:  # nothing to couple to: plain refinement
            return self.fallback.refresh(problem, state, cell, target_probs, randomness)
        keep = compute_acceptance_probability(target_probs, old.draft_probs, old.token)
        if randomness.bernoulli(keep, EventKey("couple", state.iteration, cell)):
            draft_probs = old.draft_probs if self.official else target_probs
            return Draft(old.token, draft_probs, last_target=target_probs)
        residual = compute_residual(target_probs, old.draft_probs)
        token = randomness.categorical(residual, EventKey("couple-residual", state.iteration, cell))
        return Draft(token, target_probs, last_target=target_probs)


@dataclass(frozen=True)
class GumbelCouplingRefresher:
    """SCD's Gumbel coupling (spec/coupling.md): the next draft at a cell is
    argmax(log p + G(cell)), with the cell's own noise vector G(cell) = cell_noise_key(cell),
    the same in every pass, so successive drafts of a cell agree wherever their laws allow.
    Its marginal law is p, and it is recorded as q = p; verification draws independently."""

    def refresh(
        self,
        problem: Problem,
        state: JacobiState,
        cell: int,
        target_probs: torch.Tensor,
        randomness: Randomness,
    ) -> Draft | None:
        token = randomness.gumbel_argmax(target_probs, cell_noise_key(cell))
        return Draft(token, target_probs, last_target=target_probs)


@dataclass(frozen=True)
class CellNoiseDrafter:
    """A first draft from the cell's own noise vector G(cell): argmax(log q + G(cell)), recorded
    with q. q is the uniform law (argmax G(cell): a uniform draw), or with `above=True` the
    remembered p of the cell above, where there is one: the token the cell would get if its law
    were its upper neighbour's (spec/gumbel_jacobi.md, "spatial drafts"). Either way the draft
    is coupled to every later decision at the cell."""

    above: bool = False

    @property
    def reads_targets(self) -> bool:
        return self.above

    def initial_draft(self, problem: Problem, state: JacobiState, cell: int, randomness: Randomness) -> Draft:
        source = neighbour_cell(problem.layout, cell, "above") if self.above else None
        law = None if source is None else state.target_at(source)
        if law is None:
            vocab = problem.model.vocab_size
            law = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
        return Draft(randomness.gumbel_argmax(law, cell_noise_key(cell)), law)
