"""The speculative acceptance rule and its residual (spec/speculative.md).

A draft token d, drawn from draft_probs q, is accepted as a sample of target_probs p with
probability min(1, p(d) / q(d)); when rejected, the committed token is drawn from the residual

    r(y) = max(0, p(y) - q(y)) / sum_z max(0, p(z) - q(z)).

The committed token then has law exactly p (Leviathan et al. 2023; Chen et al. 2023),
*provided d really was drawn from q*. A draft with q(d) = 0 cannot have been drawn from q;
it is a caller bug and is refused.

One module for every caller: reference/, accelerated/ and the oracle all call these functions.
Each rule takes a batch ([..., V], any leading shape, any device; what accelerated/ calls) or one
distribution ([V]; what the reference decoders call once per cell, millions of times inside the
exact engine, so it is computed on Python floats there: 12x faster than the batched path on a
[3] tensor). tests/test_acceptance.py checks that the two agree bit for bit on every row.
Arithmetic is float64.
"""

from __future__ import annotations

import torch

from .errors import ProbabilityError

RESIDUAL_MASS_FLOOR = 1e-15  # below this the residual is numerically empty (then p == q)


def compute_acceptance_probabilities(
    target_probs: torch.Tensor, draft_probs: torch.Tensor, drafts: torch.Tensor, drafted: torch.Tensor | None = None
) -> torch.Tensor:
    """[...] min(1, p(d) / q(d)) for [...] draft tokens d under [..., V] p and q, float64.
    Where `drafted` ([...] bool) is False there is no draft: the result is 0 and q is not read.
    A drafted d with q(d) <= 0 (or NaN) raises ProbabilityError."""
    index = drafts.long().unsqueeze(-1)
    p_d = target_probs.to(torch.float64).gather(-1, index).squeeze(-1)
    q_d = draft_probs.to(torch.float64).gather(-1, index).squeeze(-1)
    live = torch.ones_like(q_d, dtype=torch.bool) if drafted is None else drafted
    impossible = live & ~(q_d > 0.0)
    if bool(impossible.any()):
        where = tuple(int(i) for i in impossible.nonzero()[0])
        token, q_bad = int(drafts.reshape(impossible.shape)[where]), float(q_d[where])
        raise ProbabilityError(f"draft token {token} has draft probability {q_bad!r}: it cannot have been drawn from q")
    # where there is no draft q_d may be 0 (the ratio inf or NaN): the outer where drops it
    return torch.where(live, (p_d / q_d).clamp(max=1.0), 0.0)


def compute_acceptance_probability(target_probs: torch.Tensor, draft_probs: torch.Tensor, draft: int) -> float:
    """min(1, p(d) / q(d)) for one draft d drawn from q ([V] p and q): the batched rule on one row."""
    q_d = float(draft_probs[draft])
    if not q_d > 0.0:
        raise ProbabilityError(f"draft token {draft} has draft probability {q_d!r}: it cannot have been drawn from q")
    return min(1.0, float(target_probs[draft]) / q_d)


def compute_residual_mass(target_probs: torch.Tensor, draft_probs: torch.Tensor) -> torch.Tensor:
    """[...] sum_y max(0, p(y) - q(y)): the probability that a draft d ~ q is rejected."""
    return torch.clamp(target_probs.to(torch.float64) - draft_probs.to(torch.float64), min=0.0).sum(dim=-1)


def compute_residual(target_probs: torch.Tensor, draft_probs: torch.Tensor) -> torch.Tensor:
    """[..., V] norm(max(0, p - q)): the law of the corrected token after a rejection."""
    p = target_probs.to(torch.float64)
    excess = torch.clamp(p - draft_probs.to(torch.float64), min=0.0)
    # Where mass <= 1e-15 a rejection has probability <= 1e-15: p equals q up to rounding, and
    # the residual is only reached through rounding. Sampling p itself there moves the law by at
    # most `mass` (never a fixed fallback token).
    if excess.dim() == 1:  # one row, on floats (see the module docstring)
        mass = float(excess.sum())
        return excess / mass if mass > RESIDUAL_MASS_FLOOR else p / float(p.sum())
    law = torch.where(excess.sum(dim=-1, keepdim=True) > RESIDUAL_MASS_FLOOR, excess, p)  # [..., V] per row
    return law / law.sum(dim=-1, keepdim=True)
