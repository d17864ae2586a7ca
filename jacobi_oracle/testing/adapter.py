"""Wrapping a plain decoding function into a `Strategy` (spec/testing.md, "The adapter").

An external decoder is a function

    decode(target: CausalTarget, rng) -> Sequence[int]

* `target(tokens)` is ONE forward pass of a causal model over `tokens` (a committed prefix
  followed by drafts, raster order). It returns [min(n + 1, L), V] float64 target
  probabilities: row j is p(x_j | tokens[:j]) after CFG / temperature / top-k / top-p, the
  same law vanilla AR samples from. The adapter counts the calls as forward passes.
* `rng` is where every random draw comes from. With `randomness="oracle"` it is an
  `OracleRng` (`bernoulli(p)`, `categorical(probs)`), so the exact engine can branch on every
  outcome. With `randomness="torch"` it is a `torch.Generator`, seeded per sample: such a
  decoder can only be tested statistically (`UnsupportedStrategyError` from the exact engine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..reference.keys import committed_keys, run_queries
from ..spec.errors import InvalidParameterError, ShapeMismatchError, UnsupportedStrategyError
from ..spec.layout import Layout
from ..spec.model import Model, Problem
from ..spec.randomness import EventKey, GeneratorRandomness, KeyedRandomness, Randomness, keyed_uniform
from ..spec.sampling import Sampling
from ..spec.strategy import Decoded

RandomnessMode = Literal["oracle", "torch"]
RANDOMNESS_MODES: tuple[RandomnessMode, ...] = ("oracle", "torch")
GENERATOR_SEED_KEY = EventKey("torch-generator-seed", 0, 0)  # the uniform a torch-mode seed is made from


@dataclass
class CausalTarget:
    """The decoder's view of the model: one call = one causal forward pass."""

    problem: Problem
    forward_passes: int = 0

    @property
    def num_cells(self) -> int:
        return self.problem.layout.num_cells

    @property
    def vocab_size(self) -> int:
        return self.problem.model.vocab_size

    def __call__(self, tokens: Sequence[int]) -> torch.Tensor:
        """[min(n + 1, L), V] target probabilities; row j = p(x_j | tokens[:j])."""
        tokens = check_tokens(tokens, self.num_cells, self.vocab_size, allow_prefix=True)
        self.forward_passes += 1
        layout = self.problem.layout
        keys = committed_keys(self.problem, dict(enumerate(tokens)))
        cells = list(range(min(len(tokens) + 1, self.num_cells)))
        visible = [[k.position < layout.position(c) for k in keys] for c in cells]
        return run_queries(self.problem, keys, cells, visible)


@dataclass
class OracleRng:
    """Random draws routed through the oracle's `Randomness`.

    `key` (purpose, iteration, cell) names the event; under keyed noise two runs that use
    the same key for the same decision draw the same uniform. Omitted, each draw gets a fresh
    key ("draw", n, 0) from a running counter n."""

    randomness: Randomness
    draws: int = 0

    def bernoulli(self, p: float, key: tuple[str, int, int] | None = None) -> bool:
        return self.randomness.bernoulli(float(p), self._key(key))

    def categorical(self, probs: torch.Tensor, key: tuple[str, int, int] | None = None) -> int:
        return self.randomness.categorical(torch.as_tensor(probs, dtype=torch.float64), self._key(key))

    def gumbel_argmax(self, probs: torch.Tensor, key: tuple[str, int, int] | None = None) -> int:
        """argmax(log probs + G(key)): the key's noise vector, the same on every read of the key."""
        return self.randomness.gumbel_argmax(torch.as_tensor(probs, dtype=torch.float64), self._key(key))

    def _key(self, key: tuple[str, int, int] | None) -> EventKey:
        self.draws += 1
        return EventKey("draw", self.draws - 1, 0) if key is None else EventKey(*key)


DecoderFn = Callable[[CausalTarget, Any], Sequence[int]]


@dataclass
class CallableDecoder:
    """A `Strategy` around an external decoding function (see the module docstring)."""

    fn: DecoderFn
    name: str
    randomness: RandomnessMode = "oracle"
    exact_capable: bool = field(init=False)

    def __post_init__(self) -> None:
        # Verify the randomness mode
        if self.randomness not in RANDOMNESS_MODES:
            raise InvalidParameterError(f"randomness must be one of {RANDOMNESS_MODES}, got {self.randomness!r}")
        self.exact_capable = self.randomness == "oracle"

    def decode(
        self, model: Model, condition: int | None, layout: Layout, sampling: Sampling, randomness: Randomness
    ) -> Decoded:
        target = CausalTarget(Problem(model, condition, layout, sampling))
        rng = OracleRng(randomness) if self.randomness == "oracle" else torch_generator_for(randomness, self.name)
        tokens = check_tokens(self.fn(target, rng), layout.num_cells, model.vocab_size, allow_prefix=False)
        return Decoded(tokens, target.forward_passes, ())


def wrap_decoder(fn: DecoderFn, name: str | None = None, randomness: RandomnessMode = "oracle") -> CallableDecoder:
    """`fn(target, rng) -> tokens` as a Strategy; `randomness="torch"` for a torch.Generator rng."""
    if not callable(fn):
        raise InvalidParameterError(f"a decoder must be a Strategy or a callable, got {fn!r}")
    label = name or str(getattr(fn, "__name__", type(fn).__name__))
    return CallableDecoder(fn, label, randomness)


def torch_generator_for(randomness: Randomness, name: str) -> torch.Generator:
    """A torch.Generator seeded from the sample's noise: keyed noise gives a reproducible seed."""
    if isinstance(randomness, KeyedRandomness):
        u = keyed_uniform(randomness.seed, randomness.sample, GENERATOR_SEED_KEY)
        return torch.Generator().manual_seed(int(u * (1 << 53)))
    if isinstance(randomness, GeneratorRandomness):
        seed = int(torch.randint(0, 1 << 62, (), generator=randomness.generator))
        return torch.Generator().manual_seed(seed)
    raise UnsupportedStrategyError(
        f"decoder {name!r} draws from its own torch.Generator, so {type(randomness).__name__} cannot steer it: "
        "the exact engine needs every draw through the oracle's Randomness; test it with engine='stat', "
        "or wrap it with randomness='oracle' and draw through rng.bernoulli / rng.categorical"
    )


def check_tokens(tokens: Sequence[int], num_cells: int, vocab_size: int, allow_prefix: bool) -> tuple[int, ...]:
    """Verify a token sequence fits the grid and vocabulary; return it as a tuple of ints."""
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.reshape(-1).tolist()
    out = tuple(int(t) for t in tokens)
    # Verify the length (a full grid, or at most a full grid for a forward pass)
    if len(out) > num_cells or (not allow_prefix and len(out) != num_cells):
        want = f"at most {num_cells}" if allow_prefix else f"exactly {num_cells}"
        raise ShapeMismatchError(f"decoder gave {len(out)} tokens, expected {want} (one per grid cell)")
    # Verify every token is in the vocabulary
    bad = [t for t in out if not 0 <= t < vocab_size]
    if bad:
        raise ShapeMismatchError(f"token {bad[0]} is outside the vocabulary 0..{vocab_size - 1}")
    return out
