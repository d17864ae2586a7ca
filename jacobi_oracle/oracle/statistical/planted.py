"""Planted departures of known size: decoders whose law is AR's moved by an exact total variation
(spec/statistical_oracle.md, "Measuring power"). Every power statement of the statistical engine
is checked against detection rates measured on these.

`PlantedDeparture(base, departure, weight)` runs the lossless `base` decoder, except that with
probability `weight` (its own keyed event) it returns a sequence drawn from the law `departure`.
Its law is (1 - w) P + w Q; with Q = P + c D (D a direction: sum D = 0, sum |D| = 2) the
departure is P + w c D, at total variation exactly w c from P. `plant` picks c and w for a
requested TV; the directions:

* `tilt`: D proportional to P(x) (s(x) - m), s(x) = +-1 by a hash of x, m = E_P[s]: the worst
  direction for its size (chi-square divergence 4 TV^2 / (1 - m^2) ~ 4 TV^2, the bound every
  chi-square power statement is computed for);
* `law`: towards another law R (a mutant's exact law, AR at another temperature):
  D = (R - P) / TV(R, P), a departure shaped like a real bug.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...spec.errors import InvalidParameterError
from ...spec.layout import Layout
from ...spec.model import Model
from ...spec.randomness import EventKey, Randomness
from ...spec.sampling import Sampling
from ...spec.strategy import BatchStrategy, Decoded, Strategy
from .tests import FloatArray

PLANTED_PURPOSE = "planted-departure"  # event purposes no decoder uses


@dataclass(frozen=True)
class PlantedDeparture:
    """`base`, except with probability `weight` a sequence drawn from `departure` ([V^L], ranks
    of `sequence_index`). Not a ComposedStrategy: only its output law is tested."""

    base: Strategy
    departure: tuple[float, ...]
    weight: float
    vocab_size: int
    num_cells: int
    name: str = "planted"

    def decode(
        self, model: Model, condition: int | None, layout: Layout, sampling: Sampling, randomness: Randomness
    ) -> Decoded:
        planted = self._planted(randomness)
        return planted if planted is not None else self.base.decode(model, condition, layout, sampling, randomness)

    def decode_batch(
        self,
        model: Model,
        conditions: list[int | None],
        layout: Layout,
        sampling: Sampling,
        randomness: list[Randomness],
    ) -> list[Decoded]:
        """`decode` per sample: the base decodes every sample (batched when it is a
        BatchStrategy), then each planted sample is replaced, on the same events as `decode`."""
        if isinstance(self.base, BatchStrategy):
            decoded = self.base.decode_batch(model, conditions, layout, sampling, randomness)
        else:
            decoded = [
                self.base.decode(model, c, layout, sampling, r) for c, r in zip(conditions, randomness, strict=True)
            ]
        planted = [self._planted(r) for r in randomness]
        return [d if p is None else p for d, p in zip(decoded, planted, strict=True)]

    def _planted(self, randomness: Randomness) -> Decoded | None:
        """The planted sample when this sample's event says so, else None."""
        if self.weight > 0.0 and randomness.bernoulli(self.weight, EventKey(PLANTED_PURPOSE, 0, 0)):
            probs = torch.tensor(self.departure, dtype=torch.float64)
            index = randomness.categorical(probs, EventKey(PLANTED_PURPOSE + "-sequence", 0, 0))
            return Decoded(compute_sequence(index, self.vocab_size, self.num_cells), 0, ())
        return None


def compute_sequence(index: int, vocab_size: int, num_cells: int) -> tuple[int, ...]:
    """The inverse of `sequence_index`: base-V digits, most significant first."""
    digits = []
    for _ in range(num_cells):
        index, digit = divmod(index, vocab_size)
        digits.append(digit)
    return tuple(reversed(digits))


def compute_tilt(law: FloatArray, seed: int = 0) -> FloatArray:
    """The worst-case direction: D(x) ~ P(x) (s(x) - m), s = +-1 pseudo-random, scaled to sum |D| = 2."""
    signs = np.where(np.random.default_rng(seed).random(law.size) < 0.5, -1.0, 1.0)
    direction = law * (signs - float((law * signs).sum()))
    return normalised_direction(direction)


def compute_towards(law: FloatArray, other: FloatArray) -> FloatArray:
    """The direction from `law` towards `other` (e.g. a mutant's exact law)."""
    return normalised_direction(other - law)


def normalised_direction(direction: FloatArray) -> FloatArray:
    size = float(np.abs(direction).sum())
    # Verify the direction is a departure at all
    if size <= 1e-15:
        raise InvalidParameterError("a planted departure needs a nonzero direction")
    out: FloatArray = 2.0 * direction / size
    return out


def compute_reach(law: FloatArray, direction: FloatArray) -> float:
    """The largest c with law + c D >= 0 (how far the direction goes inside the simplex)."""
    negative = direction < 0
    if not negative.any():
        return np.inf
    return float((law[negative] / -direction[negative]).min())


def plant(
    base: Strategy, law: FloatArray, direction: FloatArray, total_variation: float, vocab_size: int, num_cells: int
) -> PlantedDeparture:
    """`base` moved by exactly `total_variation` along `direction` from the AR law `law`."""
    reach = compute_reach(law, direction)
    # Verify the requested size fits inside the simplex
    if not 0.0 <= total_variation <= min(reach, 1.0):
        raise InvalidParameterError(f"total_variation must be in [0, {min(reach, 1.0):.4g}], got {total_variation!r}")
    scale = min(reach, 1.0)
    departure = np.clip(law + scale * direction, 0.0, None)
    departure /= departure.sum()
    weight = total_variation / scale
    name = f"planted(tv={total_variation:g})"
    return PlantedDeparture(base, tuple(departure.tolist()), weight, vocab_size, num_cells, name)


def planted_law(law: FloatArray, direction: FloatArray, total_variation: float) -> FloatArray:
    """The law of `plant(...)` when its base is lossless: law + TV D (rounding below 0 clipped)."""
    out: FloatArray = np.clip(law + total_variation * direction, 0.0, None)
    return out
