"""The pathwise engine: for decoders that are deterministic given their noise.

A fixed-noise decoder (gumbel-jacobi, spec/gumbel_jacobi.md) claims more than an equal law: under
the same noise it returns the very tokens of Gumbel AR (`GumbelAR`: x_j = argmax(log p_j +
G(cell_noise_key(j)))). `check_pathwise` runs the decoder and the reference under
`KeyedRandomness(seed, sample)` for `samples` noise draws and compares them token for token: no
enumeration, no statistics, any model. One mismatch is a counterexample, reported with its seed,
sample and first differing cell. A pass is evidence over those noise draws only (it is not a
proof); a failure is certain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..reference.ar import GumbelAR
from ..spec.errors import InvalidParameterError
from ..spec.model import Problem
from ..spec.randomness import KeyedRandomness
from ..spec.strategy import Strategy
from .exact import single_threaded


@dataclass(frozen=True)
class Counterexample:
    seed: int
    sample: int
    cell: int  # the first cell where the decoder and Gumbel AR differ
    decoder_token: int
    ar_token: int
    decoder_tokens: tuple[int, ...]
    ar_tokens: tuple[int, ...]

    def describe(self) -> str:
        return (
            f"KeyedRandomness({self.seed}, {self.sample}): cell {self.cell} is {self.decoder_token}, "
            f"Gumbel AR has {self.ar_token}"
        )


@dataclass(frozen=True)
class PathwiseVerdict:
    strategy: str
    model: str
    engine: str
    seed: int
    samples: int
    mismatches: int
    counterexample: Counterexample | None
    mean_forward_passes: float
    ar_forward_passes: int

    @property
    def equal(self) -> bool:
        return self.mismatches == 0

    @property
    def step_compression(self) -> float:
        return self.ar_forward_passes / self.mean_forward_passes

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["equal"] = self.equal
        out["step_compression"] = self.step_compression
        return out


def check_pathwise(
    strategy: Strategy,
    problem: Problem,
    samples: int = 100,
    seed: int = 0,
    model_name: str = "custom",
    progress: Callable[[int, int], None] | None = None,
) -> PathwiseVerdict:
    """Decode `samples` noise draws with `strategy` and with Gumbel AR; compare token for token."""
    # Verify the sample count and seed
    if samples < 1 or seed < 0:
        raise InvalidParameterError(f"samples must be >= 1 and seed >= 0, got {samples!r}, {seed!r}")
    reference = GumbelAR()
    mismatches, passes, first = 0, 0, None
    with single_threaded():
        for sample in range(samples):
            decoded = strategy.decode(
                problem.model, problem.condition, problem.layout, problem.sampling, KeyedRandomness(seed, sample)
            )
            ar = reference.decode_problem(problem, KeyedRandomness(seed, sample)).tokens
            passes += decoded.forward_passes
            if decoded.tokens != ar:
                mismatches += 1
                if first is None:
                    pairs = enumerate(zip(decoded.tokens, ar, strict=False))
                    cell = next((j for j, (a, b) in pairs if a != b), len(ar))
                    mine = decoded.tokens[cell] if cell < len(decoded.tokens) else -1
                    theirs = ar[cell] if cell < len(ar) else -1
                    first = Counterexample(seed, sample, cell, mine, theirs, decoded.tokens, ar)
            if progress is not None:
                progress(sample + 1, samples)
    return PathwiseVerdict(
        strategy=getattr(strategy, "name", type(strategy).__name__),
        model=model_name,
        engine="pathwise",
        seed=seed,
        samples=samples,
        mismatches=mismatches,
        counterexample=first,
        mean_forward_passes=passes / samples,
        ar_forward_passes=problem.layout.num_cells,
    )
