"""An "external" speculative Jacobi decoder, written only against jacobi_oracle's public
testing API (the `target(tokens)` forward pass and an `rng`), the way another project would
plug its own decoder into the oracle. Not the project's reference: its own code, its own
bookkeeping.

decode(target, rng) -> tokens
    target(tokens) -> [min(n + 1, L), V] probs, row j = p(x_j | tokens[:j]); one forward pass
    rng.bernoulli(p, key) / rng.categorical(probs, key), key = (purpose, iteration, cell)
"""

from __future__ import annotations

from typing import Any

import torch

WINDOW = 3


def speculative_jacobi(target: Any, rng: Any, window: int = WINDOW) -> list[int]:
    """SJD: uniform random drafts, min(1, p/q) acceptance, residual on rejection, the
    rejected window's later drafts refreshed from this pass's p."""
    return _jacobi(target, rng, window, _acceptance, _residual)


def broken_speculative_jacobi(target: Any, rng: Any, window: int = WINDOW) -> list[int]:
    """A classic bug: after a rejection, resample from p instead of norm(max(0, p - q))."""
    return _jacobi(target, rng, window, _acceptance, lambda p, q: p)


def broken_speculative_jacobi_torch(target: Any, generator: torch.Generator) -> list[int]:
    """Another bug class, drawing from a torch.Generator: every draft is accepted."""
    return _jacobi(target, TorchDraws(generator), WINDOW, lambda p, q, token: 1.0, _residual)


def speculative_jacobi_torch(target: Any, generator: torch.Generator) -> list[int]:
    """The same decoder drawing from its own torch.Generator (statistical engine only)."""
    return speculative_jacobi(target, TorchDraws(generator))


class TorchDraws:
    """bernoulli / categorical from a torch.Generator; keys are ignored."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def bernoulli(self, p: float, key: Any = None) -> bool:
        return bool(torch.rand((), generator=self.generator, dtype=torch.float64) < p)

    def categorical(self, probs: torch.Tensor, key: Any = None) -> int:
        return int(torch.multinomial(probs, 1, generator=self.generator))


def _acceptance(p: torch.Tensor, q: torch.Tensor, token: int) -> float:
    return min(1.0, float(p[token] / q[token]))


def _residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    excess = torch.clamp(p - q, min=0.0)
    return excess / excess.sum() if float(excess.sum()) > 0 else p


def _jacobi(target: Any, rng: Any, window: int, acceptance_fn: Any, residual_fn: Any) -> list[int]:
    length, vocab = target.num_cells, target.vocab_size
    uniform = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
    committed: list[int] = []
    drafts: list[tuple[int, torch.Tensor]] = []  # (token, q it was drawn from)
    iteration = 0
    while len(committed) < length:
        base = len(committed)
        wanted = min(window, length - base) - 1  # the window's last slot is the bonus
        while len(drafts) < wanted:
            drafts.append((rng.categorical(uniform, ("init", iteration, base + len(drafts))), uniform))
        drafts = drafts[:wanted]
        probs = target(committed + [token for token, _ in drafts])  # [base + wanted + 1, V]
        refreshed: list[tuple[int, torch.Tensor]] = []
        for j, (token, q) in enumerate(drafts):
            p = probs[base + j]
            if rng.bernoulli(acceptance_fn(p, q, token), ("accept", iteration, base + j)):
                committed.append(token)
                continue
            committed.append(rng.categorical(residual_fn(p, q), ("residual", iteration, base + j)))
            for k in range(j + 1, len(drafts)):
                p_k = probs[base + k]
                refreshed.append((rng.categorical(p_k, ("fresh", iteration, base + k)), p_k))
            break
        else:
            committed.append(rng.categorical(probs[base + wanted], ("fresh", iteration, base + wanted)))
        drafts = refreshed
        iteration += 1
    return committed
