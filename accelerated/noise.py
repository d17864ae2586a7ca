"""KeyedRandomness on the device: the same uniforms, Gumbel vectors and decision rules, vectorised.

spec/randomness.py defines the hash of an event (purpose, iteration, cell) for noise
(seed, sample) as a SplitMix64 chain, and its tensor form `splitmix64_tensor`; here the chain
runs one lane per (sample, cell). Equal bits, so equal decisions: reference and accelerated
agree token for token.
"""

from __future__ import annotations

import torch

from jacobi_oracle.spec.errors import UnsupportedStrategyError
from jacobi_oracle.spec.randomness import (
    KeyedRandomness,
    Randomness,
    gumbel_from_hashes,
    gumbel_max,
    purpose_id,
    signed64,
    splitmix64_tensor,
)


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    return (x >> k) & ((1 << (64 - k)) - 1)  # logical shift of the uint64 bits


def sample_streams(randomness: list[Randomness], device: torch.device) -> torch.Tensor:
    """[B] int64: the hash state after (seed, sample) of each sample's KeyedRandomness
    (spec keyed_hash's first two rounds, one tensor pass for the batch)."""
    seeds, samples = [], []
    for r in randomness:
        # Verify the noise is counter-based (a call-order generator cannot be matched)
        if not isinstance(r, KeyedRandomness):
            raise UnsupportedStrategyError(f"accelerated decoders need KeyedRandomness, got {type(r).__name__}")
        seeds.append(signed64(r.seed))
        samples.append(signed64(r.sample))
    seed = torch.tensor(seeds, dtype=torch.int64, device=device)
    return splitmix64_tensor(splitmix64_tensor(seed) ^ torch.tensor(samples, dtype=torch.int64, device=device))


class EventNoise:
    """The uniforms of every (purpose, iteration, cell) event of an iteration in one hash pass:
    the (seed, sample, purpose) prefix of the chain is hashed once, at construction."""

    def __init__(self, streams: torch.Tensor, purposes: tuple[str, ...], iterations: int = 0):
        """`iterations`: hash the (purpose, iteration) prefix of iterations 0 .. iterations - 1
        once here (a window decoder's passes), instead of once per pass."""
        self.purposes = purposes
        ids = torch.tensor([purpose_id(p) for p in purposes], dtype=torch.int64, device=streams.device)
        self.prefix = splitmix64_tensor(streams[None, :] ^ ids[:, None])  # [P, B]
        steps = torch.arange(iterations, device=streams.device)
        self.by_iteration = splitmix64_tensor(self.prefix[:, :, None] ^ steps)  # [P, B, iterations]

    def hashes(self, iteration: int | torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """[P, B, W] int64 hashes of events (purpose, iteration, cells[b, w]); `iteration` is one
        int, or [W] int64, one per column (e.g. AR's events (purpose, i, i) for a whole image), or
        [B, 1], one per row (windows of different passes recorded together)."""
        if isinstance(iteration, int) and iteration < self.by_iteration.shape[2]:
            h = self.by_iteration[:, :, iteration : iteration + 1]  # hashed at construction
        else:
            h = splitmix64_tensor(self.prefix[:, :, None] ^ iteration)  # [P, B, 1 or W]
        return splitmix64_tensor(h ^ cells[None])

    def uniforms(self, iteration: int | torch.Tensor, cells: torch.Tensor) -> dict[str, torch.Tensor]:
        """{purpose: [B, W] float64 uniforms of events (purpose, iteration, cells[b, w])}."""
        u = _shr(self.hashes(iteration, cells), 11).to(torch.float64) * (1.0 / (1 << 53))
        return dict(zip(self.purposes, u.unbind(0), strict=True))

    def gumbels(self, iteration: int, cells: torch.Tensor, vocab_size: int) -> dict[str, torch.Tensor]:
        """{purpose: [B, W, V] float64 noise vectors G of events (purpose, iteration, cells[b, w])}."""
        g = gumbel_from_hashes(self.hashes(iteration, cells), vocab_size)
        return dict(zip(self.purposes, g.unbind(0), strict=True))


def keyed_uniforms(
    streams: torch.Tensor, purpose: str, iteration: int | torch.Tensor, cells: torch.Tensor
) -> torch.Tensor:
    """[B, W] float64 uniforms of events (purpose, iteration, cells[b, w]) for sample streams[b]
    (`iteration`: see `EventNoise.hashes`)."""
    return EventNoise(streams, (purpose,)).uniforms(iteration, cells)[purpose]


def keyed_gumbel_argmax(
    streams: torch.Tensor, purpose: str, iteration: int, cells: torch.Tensor, probs: torch.Tensor
) -> torch.Tensor:
    """[B, W] tokens argmax(log probs + G(purpose, iteration, cells[b, w])) from [B, W, V] probs."""
    noise = EventNoise(streams, (purpose,)).gumbels(iteration, cells, probs.shape[-1])[purpose]
    return gumbel_max(probs.to(torch.float64), noise)


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """[..., V] probs, [...] uniforms -> [...] tokens: spec.randomness.inverse_cdf per row, for rows
    whose total is at least 2**-1021 (every law the accelerated decoders sample is
    normalised: target, residual, uniform, a remembered target).

    Then the spec's step-back never fires, so the search alone is the rule. With u <= 1 - 2**-53
    and total in [2**e, 2**(e+1)), the exact u * total is below total by total * 2**-53, which
    is at least half the float spacing there (2**(e-52)) and more than half unless total = 2**e,
    where the spacing below total halves (for e > -1022) and total - 2**(e-53) is itself a float:
    either way x = fl(u * total) < total = cumsum[-1], so the first t with cumsum[t] > x exists (t < V),
    and probs[t] > 0 (cumsum[t] > x >= cumsum[t - 1]). At 2**-1022 and below the spacing stops
    halving (subnormals) and x can round up to total: hence the precondition."""
    return search_cumulative(torch.cumsum(probs, dim=-1), u)


def search_cumulative(cumulative: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """`inverse_cdf` from a law's cumulative sums [..., V] (a law drawn from on every pass
    has them computed once)."""
    return torch.searchsorted(cumulative, (u * cumulative[..., -1])[..., None], right=True)[..., 0]


def keyed_categorical(
    streams: torch.Tensor, purpose: str, iteration: int, cells: torch.Tensor, probs: torch.Tensor
) -> torch.Tensor:
    """[B, W] tokens drawn from [B, W, V] probs with the events' keyed uniforms."""
    return inverse_cdf(probs.to(torch.float64), keyed_uniforms(streams, purpose, iteration, cells))
