"""Randomness: the only source of randomness a strategy may use.

Two primitives, each keyed by the event it decides:

    bernoulli(p, key)        -> bool   (True with probability p)
    categorical(probs, key)  -> int    (token t with probability probs[t])

key = EventKey(purpose, iteration, position). Implementations:
- `KeyedRandomness`: counter-based noise; the uniform for an event is a hash of
  (seed, sample, purpose, iteration, position), so two implementations that make the same
  decisions from the same distributions get the same tokens whatever order they draw in.
- `GeneratorRandomness`: a torch.Generator, drawn in call order (keys are ignored).
- the exact engine's enumerator (jacobi_oracle.oracle.exact), which branches on every outcome.
"""

from __future__ import annotations

import bisect
import itertools
import math
import zlib
from typing import NamedTuple, Protocol

import torch

from .errors import InvalidParameterError, ProbabilityError

PROBABILITY_TOLERANCE = 1e-9  # |sum(probs) - 1| allowed before a vector is rejected
# a float64 law of at most this many tokens is checked and searched on Python floats: the same
# checks and the same cumulative sums in the same order, ~5x faster than tensor ops on [3]
SMALL_LAW = 64


class EventKey(NamedTuple):
    purpose: str
    iteration: int
    cell: int


class Randomness(Protocol):
    def bernoulli(self, p: float, key: EventKey) -> bool: ...

    def categorical(self, probs: torch.Tensor, key: EventKey) -> int: ...

    def gumbel_argmax(self, probs: torch.Tensor, key: EventKey) -> int: ...


def cell_noise_key(cell: int) -> EventKey:
    """The noise vector that follows a cell through every pass (fixed-noise / coupled decoders,
    and the Gumbel AR reference): G(cell) is the same in every pass that reads it."""
    return EventKey(CELL_NOISE_PURPOSE, 0, cell)


CELL_NOISE_PURPOSE = "gumbel"


def check_probability(p: float, key: EventKey) -> float:
    """Verify 0 <= p <= 1 (allowing rounding), return p clipped into [0, 1]."""
    if not (-PROBABILITY_TOLERANCE <= p <= 1 + PROBABILITY_TOLERANCE) or math.isnan(p):
        raise ProbabilityError(f"bernoulli probability {p!r} is outside [0, 1] at {key}")
    return min(1.0, max(0.0, p))


def check_distribution_values(values: list[float], key: EventKey) -> None:
    """Verify a list of floats is a distribution: finite, >= 0, sums to 1 within tolerance."""
    if not values:
        raise ProbabilityError(f"categorical needs a non-empty vector at {key}")
    if not all(0.0 <= v < math.inf for v in values):  # also rejects NaN
        raise ProbabilityError(f"categorical probabilities must be finite and >= 0 at {key}, got {values}")
    total = math.fsum(values)
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        raise ProbabilityError(f"categorical probabilities sum to {total!r}, not 1, at {key}")


def check_distribution(probs: torch.Tensor, key: EventKey) -> torch.Tensor:
    """Verify `probs` is a 1-D distribution: finite, >= 0, sums to 1 within tolerance."""
    if probs.dim() != 1 or probs.numel() == 0:
        raise ProbabilityError(f"categorical needs a non-empty 1-D vector at {key}, got shape {tuple(probs.shape)}")
    probs = probs.to(torch.float64)
    if probs.numel() <= SMALL_LAW:  # the total by fsum: exact, where the tensor sum rounds (~1e-16)
        check_distribution_values(probs.tolist(), key)
        return probs
    if not bool(torch.isfinite(probs).all()) or bool((probs < 0).any()):
        raise ProbabilityError(f"categorical probabilities must be finite and >= 0 at {key}, got {probs.tolist()}")
    total = float(probs.sum())
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        raise ProbabilityError(f"categorical probabilities sum to {total!r}, not 1, at {key}")
    return probs


_MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """One round of SplitMix64: a bijective 64-bit mixer (Steele, Lea, Flood 2014)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def purpose_id(purpose: str) -> int:
    """Stable 32-bit id of a purpose string (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(purpose.encode("utf-8"))


def keyed_hash(seed: int, sample: int, key: EventKey) -> int:
    """The 64-bit hash of one event: a SplitMix64 chain over seed, sample and the key's fields."""
    h = splitmix64(seed & _MASK64)
    for field in (sample, purpose_id(key.purpose), key.iteration, key.cell):
        h = splitmix64(h ^ (field & _MASK64))
    return h


def keyed_uniform(seed: int, sample: int, key: EventKey) -> float:
    """The uniform u(key) in [0, 1): the top 53 bits of the event's hash."""
    return (keyed_hash(seed, sample, key) >> 11) * (1.0 / (1 << 53))


VECTOR_TAG = 0x47554D42454C  # "GUMBEL": the chain step that separates G(key) from u(key)


def signed64(x: int) -> int:
    """A uint64 as the int64 with the same bits (torch has no uint64 arithmetic)."""
    x &= _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


_GOLDEN, _MIX1, _MIX2 = (signed64(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    return (x >> k) & ((1 << (64 - k)) - 1)  # logical shift of the uint64 bits


def splitmix64_tensor(x: torch.Tensor) -> torch.Tensor:
    """`splitmix64` on int64 tensors: two's complement wraps like uint64, shifts are logical."""
    x = x + _GOLDEN
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    return x ^ _shr(x, 31)


def gumbel_from_hashes(key_hashes: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """[..., V] float64 Gumbels from [...] int64 event hashes (signed64 of `keyed_hash`):

    h_t = splitmix64(splitmix64(h ^ VECTOR_TAG) ^ t),  u_t = ((h_t >> 11) + 1/2) 2^-53  in (0, 1),
    G_t = -log(-log u_t).
    """
    base = splitmix64_tensor(key_hashes ^ VECTOR_TAG)[..., None]
    tokens = torch.arange(vocab_size, dtype=torch.int64, device=key_hashes.device)
    u = (_shr(splitmix64_tensor(base ^ tokens), 11).to(torch.float64) + 0.5) * (1.0 / (1 << 53))
    return -torch.log(-torch.log(u))


def keyed_gumbel(seed: int, sample: int, key: EventKey, vocab_size: int) -> torch.Tensor:
    """G(key): the [V] float64 noise vector of one event."""
    h = torch.tensor(signed64(keyed_hash(seed, sample, key)), dtype=torch.int64)
    return gumbel_from_hashes(h, vocab_size)


def gumbel_max(probs: torch.Tensor, gumbel: torch.Tensor) -> torch.Tensor:
    """argmax_t log probs[t] + G[t] over the last axis, among tokens with mass > 0; ties go to
    the smallest t (the law is categorical(probs): the Gumbel-max trick)."""
    scores = torch.where(probs > 0, torch.log(probs) + gumbel, -math.inf)
    return scores.argmax(dim=-1)


def inverse_cdf(probs: torch.Tensor, u: float) -> int:
    """Smallest t with cumsum(probs)[t] > u * sum(probs), restricted to tokens with mass > 0.
    A float64 law of at most SMALL_LAW tokens is searched on Python floats: torch's CPU cumsum
    adds in order in float64, as `itertools.accumulate` does, so the same t."""
    masses: list[float] | torch.Tensor = probs
    if probs.dtype == torch.float64 and probs.numel() <= SMALL_LAW:
        masses = probs.tolist()
        running = list(itertools.accumulate(masses))
        t = bisect.bisect_right(running, u * running[-1])
    else:
        cumulative = torch.cumsum(probs, dim=0)
        t = int(torch.searchsorted(cumulative, u * float(cumulative[-1]), right=True))
    t = min(t, probs.numel() - 1)
    while masses[t] <= 0:  # rounding can land on a zero-mass token at the very end
        t -= 1
    return t


class KeyedRandomness:
    """Counter-based keyed noise: identical keys give identical decisions."""

    def __init__(self, seed: int, sample: int = 0) -> None:
        if seed < 0 or sample < 0:
            raise InvalidParameterError(f"seed and sample must be >= 0, got {seed!r}, {sample!r}")
        self.seed = seed
        self.sample = sample

    def uniform(self, key: EventKey) -> float:
        return keyed_uniform(self.seed, self.sample, key)

    def bernoulli(self, p: float, key: EventKey) -> bool:
        return self.uniform(key) < check_probability(p, key)

    def categorical(self, probs: torch.Tensor, key: EventKey) -> int:
        return inverse_cdf(check_distribution(probs, key), self.uniform(key))

    def gumbel(self, key: EventKey, vocab_size: int) -> torch.Tensor:
        return keyed_gumbel(self.seed, self.sample, key, vocab_size)

    def gumbel_argmax(self, probs: torch.Tensor, key: EventKey) -> int:
        probs = check_distribution(probs, key)
        return int(gumbel_max(probs, self.gumbel(key, probs.numel())))


class PrefixedRandomness:
    """The same randomness under renamed event purposes: two processes drawing at the same
    (iteration, cell) stay independent under keyed noise."""

    def __init__(self, inner: Randomness, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def bernoulli(self, p: float, key: EventKey) -> bool:
        return self.inner.bernoulli(p, key._replace(purpose=self.prefix + key.purpose))

    def categorical(self, probs: torch.Tensor, key: EventKey) -> int:
        return self.inner.categorical(probs, key._replace(purpose=self.prefix + key.purpose))

    def gumbel_argmax(self, probs: torch.Tensor, key: EventKey) -> int:
        return self.inner.gumbel_argmax(probs, key._replace(purpose=self.prefix + key.purpose))


class GeneratorRandomness:
    """Draws from a torch.Generator in call order; keys are checked but not used."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator, dtype=torch.float64))

    def bernoulli(self, p: float, key: EventKey) -> bool:
        return self._uniform() < check_probability(p, key)

    def categorical(self, probs: torch.Tensor, key: EventKey) -> int:
        return inverse_cdf(check_distribution(probs, key), self._uniform())

    def gumbel_argmax(self, probs: torch.Tensor, key: EventKey) -> int:
        probs = check_distribution(probs, key)
        u = torch.rand(probs.shape, generator=self.generator, dtype=torch.float64).clamp(2.0**-54, 1 - 2.0**-53)
        return int(gumbel_max(probs, -torch.log(-torch.log(u))))
