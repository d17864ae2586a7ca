"""The speculative acceptance rule and its residual (spec/speculative.md).

A draft token d, drawn from draft_probs q, is accepted as a sample of target_probs p with
probability min(1, p(d) / q(d)); when rejected, the committed token is drawn from the residual

    r(y) = max(0, p(y) - q(y)) / sum_z max(0, p(z) - q(z)).

The committed token then has law exactly p (Leviathan et al. 2023; Chen et al. 2023),
*provided d really was drawn from q*. A draft with q(d) = 0 cannot have been drawn from q;
it is a caller bug and is refused.
"""

from __future__ import annotations

import torch

from .errors import ProbabilityError

RESIDUAL_MASS_FLOOR = 1e-15  # below this the residual is numerically empty (then p == q)


def compute_acceptance_probability(target_probs: torch.Tensor, draft_probs: torch.Tensor, draft: int) -> float:
    """min(1, p(d) / q(d)) for a draft d drawn from q."""
    q_d = float(draft_probs[draft])
    if q_d <= 0.0:
        raise ProbabilityError(f"draft token {draft} has draft probability {q_d!r}: it cannot have been drawn from q")
    return min(1.0, float(target_probs[draft]) / q_d)


def compute_residual(target_probs: torch.Tensor, draft_probs: torch.Tensor) -> torch.Tensor:
    """norm(max(0, p - q)): the law of the corrected token after a rejection."""
    excess = torch.clamp(target_probs.to(torch.float64) - draft_probs.to(torch.float64), min=0.0)
    mass = float(excess.sum())
    if mass <= RESIDUAL_MASS_FLOOR:
        # A rejection has probability sum(max(0, q - p)) = mass <= 1e-15: p equals q up to
        # rounding, and this branch is only reached through rounding. Sampling p itself here
        # moves the law by at most `mass` (never a fixed fallback token).
        return target_probs.to(torch.float64) / float(target_probs.sum())
    return excess / mass
