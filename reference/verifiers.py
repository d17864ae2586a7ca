"""Verifiers: walk a window left to right and decide what is committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from jacobi_oracle.spec.acceptance import compute_acceptance_probability, compute_residual
from jacobi_oracle.spec.errors import (
    InvalidParameterError,
    ProbabilityError,
    ShapeMismatchError,
    UnsupportedStrategyError,
    check_count,
)
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.randomness import EventKey, Randomness, cell_noise_key

from .drafters import fresh_sample
from .state import Draft, JacobiState, Window


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


class AcceptanceRule(Protocol):
    """How one draft is judged: the probability it is accepted, the law of the token committed
    in its place when it is not, and the law of the bonus token (spec/jacobi.md, gsd.md, lantern.md)."""

    def acceptance_probability(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> float: ...

    def rejection_law(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> torch.Tensor: ...

    def bonus_law(self, target_probs: torch.Tensor) -> torch.Tensor: ...


class ExactRule:
    """Speculative sampling: accept with min(1, p(d) / q(d)), else sample norm(max(0, p - q))."""

    def acceptance_probability(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> float:
        return compute_acceptance_probability(target_probs, draft.draft_probs, draft.token)

    def rejection_law(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> torch.Tensor:
        return compute_residual(target_probs, draft.draft_probs)

    def bonus_law(self, target_probs: torch.Tensor) -> torch.Tensor:
        return target_probs


def verify_window(
    rule: AcceptanceRule,
    problem: Problem,
    state: JacobiState,
    window: Window,
    target_probs: dict[int, torch.Tensor],
    randomness: Randomness,
) -> WindowOutcome:
    """Walk the window left to right under `rule`; stop at the first rejection."""
    it = state.iteration
    committed: dict[int, int] = {}
    proposed: list[int] = []
    accepted: list[int] = []
    for i, cell in enumerate(window.cells):
        p = target_probs[cell]
        draft = state.drafts[cell]
        if draft is None:  # the bonus cell: its own fresh sample
            assert window.bonus and i == len(window.cells) - 1
            committed[cell] = fresh_sample(rule.bonus_law(p), it, cell, randomness)
            break
        proposed.append(cell)
        accept = rule.acceptance_probability(problem, p, draft)
        if randomness.bernoulli(accept, EventKey("accept", it, cell)):
            committed[cell] = draft.token
            accepted.append(cell)
            continue
        correction = rule.rejection_law(problem, p, draft)
        committed[cell] = randomness.categorical(correction, EventKey("residual", it, cell))
        return WindowOutcome(committed, tuple(proposed), tuple(accepted), window.cells[i + 1 :])
    return WindowOutcome(committed, tuple(proposed), tuple(accepted), ())


@dataclass(frozen=True)
class RuleVerifier:
    """A verifier that walks the window under an acceptance rule (GSD, LANTERN, Jacobi)."""

    rule: AcceptanceRule

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        return verify_window(self.rule, problem, state, window, target_probs, randomness)


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
        return verify_window(ExactRule(), problem, state, window, target_probs, randomness)


class GreedyRule:
    """Jacobi's fixed point (spec/jacobi.md): a draft stands iff it is argmax p; otherwise, and
    for the bonus, argmax p is committed. With greedy Sampling (p one-hot) this is ExactRule."""

    def acceptance_probability(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> float:
        return 1.0 if draft.token == int(target_probs.argmax()) else 0.0

    def rejection_law(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> torch.Tensor:
        return self.bonus_law(target_probs)

    def bonus_law(self, target_probs: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(target_probs.argmax(), target_probs.numel()).double()


def get_token_embeddings(problem: Problem, strategy: str) -> torch.Tensor:
    """The model's [V, D] token-embedding table, which relaxed verifiers measure closeness in."""
    table = getattr(problem.model, "token_embeddings", None)
    # Verify the model exposes a [V, D] table
    if not isinstance(table, torch.Tensor):
        raise UnsupportedStrategyError(
            f"{strategy} needs model.token_embeddings ([V, D]); {type(problem.model).__name__} has {table!r}"
        )
    if table.dim() != 2 or table.shape[0] != problem.model.vocab_size:
        raise ShapeMismatchError(
            f"{strategy}: token_embeddings has shape {tuple(table.shape)}, expected [{problem.model.vocab_size}, D]"
        )
    return table.to(torch.float64)


def compute_unit_distances(table: torch.Tensor) -> torch.Tensor:
    """[V, V] Euclidean distances between L2-normalised embeddings (each in [0, 2])."""
    unit = table / table.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.cdist(unit, unit)


def compute_probability_ranks(target_probs: torch.Tensor) -> torch.Tensor:
    """rank[y] = 0 for the most probable token (ties: lower id first) = its logit rank."""
    order = torch.sort(target_probs, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())
    return ranks


def _check_non_negative(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value < float("inf")):
        raise InvalidParameterError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class GroupedRule:
    """GSD (spec/gsd.md): G(x) = tokens within `rank_window` logit ranks of x, within
    `prob_window` of p(x) and closer than `embedding_radius` (unit-normalised embeddings);
    accept x with min(1, sum_G p / sum_G q); residual norm(max(0, p - q)) unchanged (lossy)."""

    rank_window: int = 1
    prob_window: float = 0.15
    embedding_radius: float = 1.5

    def __post_init__(self) -> None:
        # Verify the group bounds
        check_count("gsd rank_window", self.rank_window, minimum=0)
        _check_non_negative("gsd prob_window", self.prob_window)
        _check_non_negative("gsd embedding_radius", self.embedding_radius)

    def group(self, problem: Problem, target_probs: torch.Tensor, token: int) -> torch.Tensor:
        """[V] bool: the group G(token) (always contains token)."""
        distances = compute_unit_distances(get_token_embeddings(problem, "gsd"))[token]
        ranks = compute_probability_ranks(target_probs)
        close_rank = (ranks - ranks[token]).abs() <= self.rank_window
        close_prob = (target_probs - target_probs[token]).abs() <= self.prob_window
        members = close_rank & close_prob & (distances < self.embedding_radius)
        members[token] = True
        return members

    def acceptance_probability(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> float:
        # Verify the draft could have been drawn from its q
        if float(draft.draft_probs[draft.token]) <= 0.0:
            raise ProbabilityError(f"draft token {draft.token} has draft probability 0: it cannot have been drawn")
        members = self.group(problem, target_probs, draft.token)
        return min(1.0, float(target_probs[members].sum()) / float(draft.draft_probs[members].sum()))

    def rejection_law(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> torch.Tensor:
        return compute_residual(target_probs, draft.draft_probs)

    def bonus_law(self, target_probs: torch.Tensor) -> torch.Tensor:
        return target_probs


@dataclass(frozen=True)
class LatentNeighbourRule:
    """LANTERN (spec/lantern.md): move onto x the p-mass of its nearest latent neighbours (the
    k nearest by embedding distance, nearest first) while the moved mass stays <= delta:
    p~(x) = p(x) + moved; accept with min(1, p~(x) / q(x)); residual unchanged (lossy)."""

    neighbours: int = 1
    delta: float = 0.1

    def __post_init__(self) -> None:
        # Verify k >= 1 and the budget is a total variation in [0, 1]
        check_count("lantern neighbours (k)", self.neighbours)
        if not (isinstance(self.delta, (int, float)) and 0.0 <= self.delta <= 1.0):
            raise InvalidParameterError(f"lantern delta must be in [0, 1], got {self.delta!r}")

    def relaxed_target(self, problem: Problem, target_probs: torch.Tensor, token: int) -> float:
        """p~(token): p(token) plus the mass of the longest nearest-first neighbour prefix <= delta."""
        distances = compute_unit_distances(get_token_embeddings(problem, "lantern"))[token].clone()
        distances[token] = float("inf")
        k = min(self.neighbours, target_probs.numel() - 1)
        nearest = torch.sort(distances, stable=True).indices[:k]
        moved = torch.cumsum(target_probs[nearest], dim=0)
        within = moved[moved <= self.delta + 1e-15]
        return float(target_probs[token]) + (float(within[-1]) if within.numel() else 0.0)

    def acceptance_probability(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> float:
        q_d = float(draft.draft_probs[draft.token])
        if q_d <= 0.0:
            raise ProbabilityError(
                f"draft token {draft.token} has draft probability {q_d!r}: it cannot have been drawn"
            )
        return min(1.0, self.relaxed_target(problem, target_probs, draft.token) / q_d)

    def rejection_law(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> torch.Tensor:
        return compute_residual(target_probs, draft.draft_probs)

    def bonus_law(self, target_probs: torch.Tensor) -> torch.Tensor:
        return target_probs


def compute_row_limit(problem: Problem, state: JacobiState, window: Window, lag: int) -> int:
    """How many leading cells of a one-row window may be committed: (r, j) needs the row above
    to have had (r-1, j+lag) committed before the pass (for j+lag >= W, the whole row)."""
    width = problem.layout.width
    row, _ = problem.layout.row_col(window.cells[0])
    if row == 0:
        return len(window.cells)
    above = state.committed[(row - 1) * width : row * width]
    prefix = next((col for col, token in enumerate(above) if token is None), width)
    limit = 0
    for cell in window.cells:
        _, col = problem.layout.row_col(cell)
        if prefix < min(col + 1 + lag, width):
            break
        limit += 1
    return limit


@dataclass(frozen=True)
class RowLagVerifier:
    """PJD's lower-row rule (spec/pjd.md): cell (r, j) is committed only when (r-1, j+lag) was
    committed before the pass (lag = 1 in the official code), so a lower row stays behind the
    row above. Cells past that limit are not verified; they stay unresolved (and refreshed)."""

    inner: Verifier
    lag: int = 1

    def __post_init__(self) -> None:
        # Verify the lag is a column count >= 0
        check_count("row lag", self.lag, minimum=0)

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        limit = compute_row_limit(problem, state, window, self.lag)
        if limit == len(window.cells):
            return self.inner.verify(problem, state, window, target_probs, randomness)
        if limit == 0:
            return WindowOutcome({}, (), (), window.cells)
        head = Window(window.cells[:limit], bonus=False)
        outcome = self.inner.verify(problem, state, head, target_probs, randomness)
        held = window.cells[limit:]
        return WindowOutcome(outcome.committed, outcome.proposed, outcome.accepted, outcome.unresolved + held)


class NoVerifier:
    """No verification (ZipAR, spec/zipar.md): every window cell is undrafted and gets this
    pass's fresh sample y ~ p, committed as is."""

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        assert all(state.drafts[cell] is None for cell in window.cells), "NoVerifier windows carry no drafts"
        committed = {cell: fresh_sample(target_probs[cell], state.iteration, cell, randomness) for cell in window.cells}
        return WindowOutcome(committed, (), (), ())


class FixedNoiseVerifier:
    """Fixed-noise Jacobi (spec/gumbel_jacobi.md): each cell's decision is
    y_j = argmax(log p_j + G(cell_noise_key(j))) under the current prefix. Walk the window left
    to right: a draft stands iff it equals y_j; the first that does not is replaced by y_j (its
    prefix is correct, so y_j is the AR token) and the rest is refreshed; the bonus cell commits
    its y_j. Deterministic given the noise: equal, token for token, to Gumbel AR."""

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        committed: dict[int, int] = {}
        proposed: list[int] = []
        for i, cell in enumerate(window.cells):
            decision = randomness.gumbel_argmax(target_probs[cell], cell_noise_key(cell))
            committed[cell] = decision
            draft = state.drafts[cell]
            if draft is None:  # the bonus cell
                break
            proposed.append(cell)
            if draft.token != decision:
                return WindowOutcome(committed, tuple(proposed), tuple(proposed[:-1]), window.cells[i + 1 :])
        return WindowOutcome(committed, tuple(proposed), tuple(proposed), ())
