"""Broken parts: each subclasses (or wraps) one correct part of reference/ and injects ONE bug
of a class that reached users (shared/algorithms.md, "How the field tests losslessness" and
"Known departures"). A mutant is SJD with exactly one of these parts swapped in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch

from ..reference.composed import ComposedStrategy
from ..reference.drafters import FreshSampleRefresher, MaximalCouplingRefresher, ReuseRefresher, fresh_sample
from ..reference.keys import Key
from ..reference.masks import CausalMask
from ..reference.presets import sjd
from ..reference.state import Draft, JacobiState, Window
from ..reference.verifiers import ExactRule, FixedNoiseVerifier, SpeculativeVerifier, WindowOutcome
from ..spec.acceptance import compute_residual
from ..spec.model import Problem
from ..spec.randomness import EventKey, PrefixedRandomness, Randomness
from ..spec.sampling import Sampling

SamplingChange = Callable[[Sampling], Sampling]
_PROBE: ComposedStrategy = sjd()  # only its query_windows (causal mask) is used, to re-ask the model


def requery_window(problem: Problem, sampling: Sampling, state: JacobiState, window: Window) -> dict[int, torch.Tensor]:
    """The window's target distributions recomputed under another sampling rule (what a
    buggy implementation's second code path computes)."""
    return _PROBE.query_windows(replace(problem, sampling=sampling), state, (window,))


def requery_cell(problem: Problem, sampling: Sampling, state: JacobiState, cell: int) -> torch.Tensor:
    """One cell's p under another sampling rule, with the same drafts before it in context."""
    window = Window(tuple(range(state.first_uncommitted(), cell + 1)), bonus=True)
    return requery_window(problem, sampling, state, window)[cell]


def normalised(weights: torch.Tensor) -> torch.Tensor:
    return weights / weights.sum()


# --- acceptance rules (used through RuleVerifier) ---


class AlwaysAcceptRule(ExactRule):
    """Bug class: always-accept. Every draft is accepted whatever p and q say."""

    def acceptance_probability(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> float:
        return 1.0


class EqualityRule(ExactRule):
    """Bug class: equality instead of min(1, p/q). A draft is accepted when it equals a fresh
    target sample (probability p(d)), but a rejection still draws the speculative residual
    norm(max(0, p - q)) instead of the target sample conditioned on differing."""

    def acceptance_probability(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> float:
        return float(target_probs[draft.token])


class WrongSignResidualRule(ExactRule):
    """Bug class: residual with the wrong sign, norm(max(0, q - p))."""

    def rejection_law(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> torch.Tensor:
        return compute_residual(draft.draft_probs, target_probs)


class UnnormalisedResidualRule(ExactRule):
    """Bug class: residual not normalised. max(0, p - q) is walked by inverse CDF as if it
    summed to 1; a uniform beyond its mass falls off the end onto the last vocabulary token."""

    def rejection_law(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> torch.Tensor:
        excess = torch.clamp(target_probs - draft.draft_probs, min=0.0)
        excess[-1] += 1.0 - float(excess.sum())
        return excess


@dataclass(frozen=True)
class ZeroResidualFallbackRule(ExactRule):
    """Bug class: zero residual mass falling back to a fixed token. The residual is judged
    "empty" by a loose float16-era tolerance and token 0 is emitted instead of sampling it."""

    empty_below: float = 0.25

    def rejection_law(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> torch.Tensor:
        mass = float(torch.clamp(target_probs - draft.draft_probs, min=0.0).sum())
        if mass < self.empty_below:
            return torch.nn.functional.one_hot(torch.tensor(0), target_probs.numel()).double()
        return super().rejection_law(problem, target_probs, draft)


class ReprocessedResidualRule(ExactRule):
    """Bug class: the residual passed through the logits processors again (known departure of
    public SJD code): norm(max(0, p - q)) is re-tempered, r^(1/T), before it is sampled."""

    def rejection_law(self, problem: Problem, target_probs: torch.Tensor, draft: Draft) -> torch.Tensor:
        residual = super().rejection_law(problem, target_probs, draft)
        return normalised(residual ** (1.0 / problem.sampling.temperature))


# --- verifiers ---


@dataclass(frozen=True)
class TargetSamplingVerifier(SpeculativeVerifier):
    """Bug class: a sampling transform (temperature / top-k / top-p) applied to the draft only:
    drafts and their q come from the processed p, the verifier's target from `change(sampling)`."""

    change: SamplingChange

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        unprocessed = requery_window(problem, self.change(problem.sampling), state, window)
        return super().verify(problem, state, window, unprocessed, randomness)


class OffByOneVerifier(SpeculativeVerifier):
    """Bug class: off-by-one between p and the draft position: the draft at cell i is judged
    against the distribution computed for cell i + 1 (a shifted logits slice)."""

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        shifted = {cell: target_probs.get(cell + 1, target_probs[cell]) for cell in window.drafted_cells()}
        if window.bonus:
            shifted[window.cells[-1]] = target_probs[window.cells[-1]]
        return super().verify(problem, state, window, shifted, randomness)


class BatchMinimumVerifier(SpeculativeVerifier):
    """Bug class: batch > 1 with the minimum accepted count applied to every sample (known
    departure of public SJD code). Sample 0 is decoded in lockstep with a sample 1 that
    verifies the same window under its own noise; both commit min(K0, K1) accepted drafts plus
    one token. Sample 0's accepted-but-uncommitted drafts stay, with their old q, and are
    tested again in the next pass. Sample 0 is reported."""

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        own = super().verify(problem, state, window, target_probs, randomness)
        peer = super().verify(problem, state, window, target_probs, PrefixedRandomness(randomness, "peer-"))
        shared = min(len(own.accepted), len(peer.accepted))
        if len(own.accepted) <= shared:
            return own
        kept = own.accepted[: shared + 1]  # the extra token everyone commits is an accepted draft here
        committed = {cell: own.committed[cell] for cell in kept}
        stale = set(own.accepted[shared + 1 :])  # accepted, not committed: re-tested with stale q
        unresolved = tuple(c for c in window.cells if c not in committed and c not in stale)
        return WindowOutcome(committed, own.proposed, kept, unresolved)


# --- refreshers ---


class GreedyDraftRefresher(FreshSampleRefresher):
    """Bug class: q that is not the draft's law: greedy drafts (argmax p) verified with the
    softmax q = p."""

    def refresh(
        self, problem: Problem, state: JacobiState, cell: int, target_probs: torch.Tensor, randomness: Randomness
    ) -> Draft | None:
        token = int(target_probs.argmax())
        return Draft(token, target_probs, last_target=target_probs)


@dataclass(frozen=True)
class StaleReuseRefresher(ReuseRefresher):
    """Bug class: stale q after reuse (SJD++ as published): a draft kept because its confidence
    p_t(x) / p_{t-1}(x) exceeds the threshold is verified with its old q, although the keep
    decision read its value; its true law is the keep-or-resample mixture."""

    threshold: float = 0.5
    kept_law: Literal["stale", "mixture"] = "stale"


@dataclass(frozen=True)
class OldQCouplingRefresher(MaximalCouplingRefresher):
    """Bug class: a coupled refresh recording the wrong q (SCD's official sampler): a draft kept
    by the maximal coupling keeps its OLD q, although the keep decision read its value under
    this pass's p; the kept draft's law is p, so the next verification divides by the wrong q."""

    official: bool = True


class _AcceptReadsDraftKey(PrefixedRandomness):
    """The acceptance coin of pass `it` reads the key the tested draft was drawn with (pass it - 1)."""

    def bernoulli(self, p: float, key: EventKey) -> bool:
        if key.purpose == "accept":
            key = EventKey("fresh", key.iteration - 1, key.cell)
        return self.inner.bernoulli(p, key)


class AcceptKeyReuseVerifier(SpeculativeVerifier):
    """Bug class: randomness reused by accident: the acceptance coin of a refreshed draft reads
    the uniform the draft was drawn with (an off-by-one in the pass of its key), so the coin and
    the value it tests are coupled, not independent."""

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        return super().verify(problem, state, window, target_probs, _AcceptReadsDraftKey(randomness, ""))


@dataclass(frozen=True)
class DraftSamplingRefresher(FreshSampleRefresher):
    """Bug class: a transform applied to the target only: the next draft is sampled from the
    model under `change(sampling)` (e.g. without temperature, without CFG) while its recorded q
    is the processed target p of the pass."""

    change: SamplingChange

    def refresh(
        self, problem: Problem, state: JacobiState, cell: int, target_probs: torch.Tensor, randomness: Randomness
    ) -> Draft | None:
        draft_law = requery_cell(problem, self.change(problem.sampling), state, cell)
        token = fresh_sample(draft_law, state.iteration, cell, randomness)
        return Draft(token, target_probs, last_target=target_probs)


@dataclass(frozen=True)
class RawLogitsQRefresher(FreshSampleRefresher):
    """Bug class: raw vs processed logits: the draft is sampled from the processed p, but the
    q stored with it is the softmax of the raw logits (`change(sampling)` strips processing)."""

    change: SamplingChange

    def refresh(
        self, problem: Problem, state: JacobiState, cell: int, target_probs: torch.Tensor, randomness: Randomness
    ) -> Draft | None:
        token = fresh_sample(target_probs, state.iteration, cell, randomness)
        raw = requery_cell(problem, self.change(problem.sampling), state, cell)
        return Draft(token, raw, last_target=target_probs)


# --- masks ---


class LeakyMask(CausalMask):
    """Bug class: a mask that leaks other rows' drafts: every draft in the pass is visible to
    every query (not only the raster-earlier ones), so p at a cell reads drafts after it."""

    def is_visible(self, query_position: int, query_window: int, key: Key, key_window: int | None) -> bool:
        if key.is_draft:
            return key.position != query_position
        return super().is_visible(query_position, query_window, key, key_window)


class StaleDraftFixedNoiseVerifier(FixedNoiseVerifier):
    """Bug class (fixed-noise decoders): at the first draft that differs from the cell's
    decision y_j, the stale draft is committed instead of y_j: one wrong cell."""

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        outcome = super().verify(problem, state, window, target_probs, randomness)
        rejected = [c for c in outcome.proposed if c not in outcome.accepted]
        if not rejected:
            return outcome
        draft = state.drafts[rejected[0]]
        assert draft is not None
        return replace(outcome, committed={**outcome.committed, rejected[0]: draft.token})
