"""KeyedRandomness on the device: the same uniforms and the same inverse-CDF rule, vectorised.

spec/randomness.py defines the uniform of an event (purpose, iteration, cell) for noise
(seed, sample) as a SplitMix64 hash chain; here the chain runs on int64 tensors (two's
complement wraps like uint64; right shifts are masked to be logical), one lane per
(sample, cell). Equal bits, so equal decisions: reference and accelerated agree token for token.
"""

from __future__ import annotations

import torch

from ..spec.errors import UnsupportedStrategyError
from ..spec.randomness import KeyedRandomness, Randomness, purpose_id, splitmix64


def _signed(x: int) -> int:
    """A uint64 constant as the int64 with the same bits."""
    return x - (1 << 64) if x >= 1 << 63 else x


_GOLDEN, _MIX1, _MIX2 = (_signed(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    return (x >> k) & ((1 << (64 - k)) - 1)  # logical shift of the uint64 bits


def splitmix64_tensor(x: torch.Tensor) -> torch.Tensor:
    x = x + _GOLDEN
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    return x ^ _shr(x, 31)


def sample_streams(randomness: list[Randomness], device: torch.device) -> torch.Tensor:
    """[B] int64: the hash state after (seed, sample) of each sample's KeyedRandomness."""
    streams = []
    for r in randomness:
        # Verify the noise is counter-based (a call-order generator cannot be matched)
        if not isinstance(r, KeyedRandomness):
            raise UnsupportedStrategyError(f"accelerated decoders need KeyedRandomness, got {type(r).__name__}")
        streams.append(_signed(splitmix64(splitmix64(r.seed) ^ r.sample)))
    return torch.tensor(streams, dtype=torch.int64, device=device)


class EventNoise:
    """The uniforms of every (purpose, iteration, cell) event of an iteration in one hash pass:
    the (seed, sample, purpose) prefix of the chain is hashed once, at construction."""

    def __init__(self, streams: torch.Tensor, purposes: tuple[str, ...]):
        self.purposes = purposes
        ids = torch.tensor([purpose_id(p) for p in purposes], dtype=torch.int64, device=streams.device)
        self.prefix = splitmix64_tensor(streams[None, :] ^ ids[:, None])  # [P, B]

    def uniforms(self, iteration: int, cells: torch.Tensor) -> dict[str, torch.Tensor]:
        """{purpose: [B, W] float64 uniforms of events (purpose, iteration, cells[b, w])}."""
        h = splitmix64_tensor(self.prefix ^ iteration)[:, :, None]  # [P, B, 1]
        h = splitmix64_tensor(h ^ cells[None])  # [P, B, W]
        u = _shr(h, 11).to(torch.float64) * (1.0 / (1 << 53))
        return dict(zip(self.purposes, u.unbind(0), strict=True))


def keyed_uniforms(streams: torch.Tensor, purpose: str, iteration: int, cells: torch.Tensor) -> torch.Tensor:
    """[B, W] float64 uniforms of events (purpose, iteration, cells[b, w]) for sample streams[b]."""
    return EventNoise(streams, (purpose,)).uniforms(iteration, cells)[purpose]


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """[..., V] probs, [...] uniforms -> [...] tokens: spec.randomness.inverse_cdf per row."""
    cumulative = torch.cumsum(probs, dim=-1)
    target = (u * cumulative[..., -1])[..., None]
    t = torch.searchsorted(cumulative, target, right=True).clamp(max=probs.shape[-1] - 1)
    # step back over zero-mass tokens: the last token with mass at or before t
    ids = torch.arange(probs.shape[-1], device=probs.device).expand_as(probs)
    last_with_mass = torch.where(probs > 0, ids, -1).cummax(dim=-1).values
    return last_with_mass.gather(-1, t)[..., 0]


def keyed_categorical(
    streams: torch.Tensor, purpose: str, iteration: int, cells: torch.Tensor, probs: torch.Tensor
) -> torch.Tensor:
    """[B, W] tokens drawn from [B, W, V] probs with the events' keyed uniforms."""
    return inverse_cdf(probs.to(torch.float64), keyed_uniforms(streams, purpose, iteration, cells))
