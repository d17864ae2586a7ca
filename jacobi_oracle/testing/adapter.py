"""Wrapping a plain decoding function into a `Strategy` (spec/testing.md, "The adapter").

Two forms. Whole-run (`wrap_decoder`): the exact engine re-runs the function once per path of
random outcomes, so its cost grows with the number of paths. Stepped (`wrap_stepped_decoder`):
the decoder is a step function over a hashable state, one forward pass per step, and the exact
engine merges identical states after every step, as it does for the project's own presets.

An external (whole-run) decoder is a function

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

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..reference.keys import committed_keys, run_queries
from ..spec.errors import InvalidParameterError, ShapeMismatchError, UnsupportedStrategyError
from ..spec.layout import Layout
from ..spec.model import Model, Problem
from ..spec.randomness import EventKey, GeneratorRandomness, KeyedRandomness, Randomness, keyed_uniform
from ..spec.sampling import Sampling
from ..spec.strategy import Decoded, IterationTrace, SteppedDecoder

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
    step: int | None = None  # stepped decoders: the step index, so default keys differ between steps

    def bernoulli(self, p: float, key: tuple[str, int, int] | None = None) -> bool:
        return self.randomness.bernoulli(float(p), self._key(key))

    def categorical(self, probs: torch.Tensor, key: tuple[str, int, int] | None = None) -> int:
        return self.randomness.categorical(torch.as_tensor(probs, dtype=torch.float64), self._key(key))

    def gumbel_argmax(self, probs: torch.Tensor, key: tuple[str, int, int] | None = None) -> int:
        """argmax(log probs + G(key)): the key's noise vector, the same on every read of the key."""
        return self.randomness.gumbel_argmax(torch.as_tensor(probs, dtype=torch.float64), self._key(key))

    def _key(self, key: tuple[str, int, int] | None) -> EventKey:
        self.draws += 1
        if key is not None:
            return EventKey(*key)
        if self.step is None:
            return EventKey("draw", self.draws - 1, 0)
        return EventKey("draw", self.step, self.draws - 1)


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


StartFn = Callable[[CausalTarget], Hashable]
StepFn = Callable[[CausalTarget, OracleRng, Any], Hashable]
OutputFn = Callable[[CausalTarget, Any], "Sequence[int] | None"]
StepperState = tuple[int, Hashable]  # (steps taken, the decoder's own state)


@dataclass
class SteppedCallableDecoder(SteppedDecoder[StepperState]):
    """A stepped decoder from three functions (spec/testing.md, "The stepped adapter").

    `start(target) -> state`; `step(target, rng, state) -> state`, ONE forward pass
    (`target(...)` call) per step; `output(target, state) -> tokens`, or None while unfinished.
    States must be hashable and equal exactly when their futures are: the exact engine merges
    equal states (with their noise memory), so their number, not the number of random paths,
    sets its cost."""

    start_fn: StartFn
    step_fn: StepFn
    output_fn: OutputFn
    name: str

    def start(self, problem: Problem) -> StepperState:
        return (0, self._hashable(self.start_fn(CausalTarget(problem)), "start"))

    def step(
        self, problem: Problem, state: StepperState, randomness: Randomness
    ) -> tuple[StepperState, IterationTrace]:
        steps, inner = state
        target = CausalTarget(problem)
        after = self.step_fn(target, OracleRng(randomness, step=steps), inner)
        if target.forward_passes != 1:
            raise InvalidParameterError(
                f"decoder {self.name!r}: a step must make exactly one forward pass (one target(...) call), "
                f"step {steps} made {target.forward_passes}"
            )
        return (steps + 1, self._hashable(after, "step")), IterationTrace((), (), ())

    def finished(self, problem: Problem, state: StepperState) -> bool:
        return self.output_fn(CausalTarget(problem), state[1]) is not None

    def result(self, problem: Problem, state: StepperState) -> tuple[int, ...]:
        tokens = self.output_fn(CausalTarget(problem), state[1])
        if tokens is None:
            raise InvalidParameterError(f"decoder {self.name!r}: output() is None for a finished state")
        return check_tokens(tokens, problem.layout.num_cells, problem.model.vocab_size, allow_prefix=False)

    def state_key(self, state: StepperState) -> Hashable:
        return state

    def _hashable(self, state: Any, where: str) -> Hashable:
        try:
            hash(state)
        except TypeError as error:
            raise InvalidParameterError(
                f"decoder {self.name!r}: {where}() returned an unhashable state ({error}); use tuples, "
                "not lists or tensors (e.g. tuple(probs.tolist()) for a distribution)"
            ) from None
        return state  # type: ignore[no-any-return]


def wrap_stepped_decoder(
    start: StartFn, step: StepFn, output: OutputFn, name: str | None = None
) -> SteppedCallableDecoder:
    """`start(target) -> state`, `step(target, rng, state) -> state` (one forward pass),
    `output(target, state) -> tokens | None` as a stepped Strategy; draws go through `rng`
    (an `OracleRng`), so the exact engine can branch on them and merge equal states."""
    for role, fn in (("start", start), ("step", step), ("output", output)):
        if not callable(fn):
            raise InvalidParameterError(f"{role} must be a callable, got {fn!r}")
    label = name or str(getattr(step, "__name__", type(step).__name__))
    return SteppedCallableDecoder(start, step, output, label)


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
