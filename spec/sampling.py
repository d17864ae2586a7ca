"""Sampling: the ONE function from model logits to the target distribution.

    logits  = u + s * (c - u)            classifier-free guidance (only when s != 1)
    logits  = logits / T                 temperature
    logits  = keep the k largest         top-k (ties broken towards the lower token id)
    probs   = softmax(logits)
    probs   = keep the smallest prefix (by decreasing prob) with mass >= top_p, renormalise
    greedy  : one-hot on argmax of the guided logits (lowest id on ties)

Every decoder and the AR baseline call `target_probs`, so "lossless" has one meaning.
See spec/sampling.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import InvalidLogitsError, InvalidParameterError, ShapeMismatchError


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    cfg_scale: float = 1.0
    greedy: bool = False

    def __post_init__(self) -> None:
        # Verify temperature > 0 (greedy is an explicit mode, not temperature 0)
        if not self.greedy and not (math.isfinite(self.temperature) and self.temperature > 0):
            raise InvalidParameterError(
                f"temperature must be > 0 (use greedy=True for argmax), got {self.temperature!r}"
            )
        # Verify top-k >= 1 (its upper bound, the vocabulary, is checked against the logits)
        if self.top_k is not None and self.top_k < 1:
            raise InvalidParameterError(f"top_k must be >= 1, got {self.top_k!r}")
        # Verify 0 < top-p <= 1
        if self.top_p is not None and not (0.0 < self.top_p <= 1.0):
            raise InvalidParameterError(f"top_p must be in (0, 1], got {self.top_p!r}")
        # Verify cfg scale >= 0
        if not (math.isfinite(self.cfg_scale) and self.cfg_scale >= 0):
            raise InvalidParameterError(f"cfg_scale must be >= 0, got {self.cfg_scale!r}")

    @property
    def uses_cfg(self) -> bool:
        return self.cfg_scale != 1.0

    def check_vocab(self, vocab_size: int) -> None:
        """Verify the parameters fit a vocabulary of `vocab_size` tokens."""
        if self.top_k is not None and self.top_k > vocab_size:
            raise InvalidParameterError(f"top_k={self.top_k} exceeds the vocabulary size {vocab_size}")

    def target_probs(self, cond_logits: torch.Tensor, uncond_logits: torch.Tensor | None = None) -> torch.Tensor:
        """[Q, V] logits (and unconditional logits when CFG is on) -> [Q, V] float64 probs."""
        logits = _checked_logits(cond_logits, "conditional")
        self.check_vocab(logits.shape[-1])
        uncond = None
        if self.uses_cfg:
            if uncond_logits is None:
                raise InvalidParameterError(f"cfg_scale={self.cfg_scale} needs unconditional logits, got None")
            uncond = _checked_logits(uncond_logits, "unconditional")
            if uncond.shape != logits.shape:
                raise ShapeMismatchError(
                    f"unconditional logits shape {tuple(uncond.shape)} != conditional {tuple(logits.shape)}"
                )
        return self.compute_target_probs(logits, uncond)

    def compute_target_probs(self, cond_logits: torch.Tensor, uncond_logits: torch.Tensor | None) -> torch.Tensor:
        """The math of `target_probs` without its checks (no host sync; any device and dtype):
        [Q, V] logits -> [Q, V] probs. Callers have validated the logits (accelerated/)."""
        logits = cond_logits
        if uncond_logits is not None:
            logits = uncond_logits + self.cfg_scale * (logits - uncond_logits)
        if self.greedy:
            return _one_hot_argmax(logits)
        if self.temperature != 1.0:  # dividing by 1 changes no bit
            logits = logits / self.temperature
        if self.top_k is not None:
            logits = _keep_top_k(logits, self.top_k)
        probs = torch.softmax(logits, dim=-1)
        if self.top_p is not None:
            probs = _keep_top_p(probs, self.top_p)
        return probs


def _checked_logits(logits: torch.Tensor, name: str) -> torch.Tensor:
    if logits.dim() != 2:
        raise InvalidLogitsError(f"{name} logits must be [queries, vocab], got {tuple(logits.shape)}")
    logits = logits.to(torch.float64)
    if not bool(torch.isfinite(logits).all()):
        bad = (~torch.isfinite(logits)).nonzero()[0].tolist()
        raise InvalidLogitsError(
            f"{name} logits contain NaN or inf (first at [query, token] = {bad}: {logits[bad[0], bad[1]].item()})"
        )
    return logits


def _one_hot_argmax(logits: torch.Tensor) -> torch.Tensor:
    # torch.argmax returns the first maximal index: ties go to the lowest token id
    out = torch.zeros_like(logits)
    out.scatter_(-1, logits.argmax(dim=-1, keepdim=True), 1.0)
    return out


def _keep_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    order = torch.sort(logits, dim=-1, descending=True, stable=True).indices
    keep = torch.zeros_like(logits, dtype=torch.bool)
    keep.scatter_(-1, order[:, :k], True)
    return logits.masked_fill(~keep, -math.inf)


def _keep_top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    keep_sorted = mass_before < top_p  # the first token is always kept (mass_before = 0)
    keep = torch.zeros_like(keep_sorted)
    keep.scatter_(-1, order, keep_sorted)
    kept = probs * keep
    return kept / kept.sum(dim=-1, keepdim=True)
