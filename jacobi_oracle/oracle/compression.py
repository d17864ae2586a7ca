"""Step compression by sampling: forward passes per image, mean and spread over many runs, on a
toy model large enough to matter (issue 3; benchmarks/STEP_COMPRESSION.md).

The model is a 16x16 `MarkovGrid` with strong locality: the token at (r, c) depends only on
its left and above neighbours, and a high `sharpness` makes that dependence nearly
deterministic, the regime where image decoders draft well. Each preset decodes `runs` samples
with `KeyedRandomness(seed, run)`; step compression = AR passes (H*W) / mean passes.
"""

from __future__ import annotations

import inspect
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models.toy import MarkovGrid
from ..reference.presets import PRESETS, build_preset
from ..spec.errors import InvalidParameterError, JacobiOracleError
from ..spec.layout import Layout
from ..spec.model import Problem
from ..spec.randomness import KeyedRandomness
from ..spec.sampling import Sampling

GRID = 16  # LlamaGen's 256 px grid
VOCAB = 16  # enough tokens for drafts to be wrong; small enough for a fast toy
SHARPNESS = 3.0  # strong locality: the left / above pair nearly fixes the token
RUNS = 100


@dataclass(frozen=True)
class CompressionRow:
    strategy: str
    params: dict[str, Any]
    runs: int
    mean_forward_passes: float
    sd_forward_passes: float
    min_forward_passes: int
    max_forward_passes: int
    step_compression: float  # AR passes / mean passes
    seconds: float
    status: str = "ok"  # "ok" or "error"
    error: str = ""
    greedy_only: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CompressionSetup:
    grid: int = GRID
    vocab: int = VOCAB
    sharpness: float = SHARPNESS
    runs: int = RUNS
    seed: int = 0
    presets: tuple[str, ...] = field(default_factory=lambda: tuple(PRESETS))

    def __post_init__(self) -> None:
        # Verify the sizes, the locality and the preset names
        for name, value, least in (("grid", self.grid, 1), ("runs", self.runs, 1), ("vocab", self.vocab, 2)):
            if not isinstance(value, int) or value < least:
                raise InvalidParameterError(f"{name} must be an int >= {least}, got {value!r}")
        if not (math.isfinite(self.sharpness) and self.sharpness >= 0):
            raise InvalidParameterError(f"sharpness must be a finite number >= 0, got {self.sharpness!r}")
        unknown = [name for name in self.presets if name not in PRESETS]
        if unknown:
            raise InvalidParameterError(f"unknown presets {unknown}; built-in presets: {', '.join(PRESETS)}")

    def problem(self) -> Problem:
        model = MarkovGrid(self.vocab, self.grid, self.grid, sharpness=self.sharpness)
        return Problem(model, 0, Layout(self.grid, self.grid), Sampling())


def compute_default_params(name: str, grid: int) -> dict[str, Any]:
    """Official-code proportions on a `grid`-wide image: SJD's window = one row (16 at 16x16),
    PJD's c = window = half a row (8), pjd-exact verifies one row like SJD, ZipAR w = half a
    row (LlamaGen: 8). Only the parameters the preset's builder accepts are passed."""
    half = max(1, grid // 2)
    wanted: dict[str, Any] = {"window": grid}
    if name in ("pjd", "pjd-causal", "pjd-exact"):
        wanted = {"context": half, "window": half, "verify": grid}
    elif name == "zipar":
        wanted = {"window": half}
    accepted = inspect.signature(PRESETS[name].build).parameters
    return {k: v for k, v in wanted.items() if k in accepted}


def measure_preset(name: str, setup: CompressionSetup, problem: Problem) -> CompressionRow:
    params = compute_default_params(name, setup.grid)
    started = time.perf_counter()
    try:
        decoder = build_preset(name, **params)
        passes = [
            decoder.decode_problem(problem, KeyedRandomness(setup.seed, run)).forward_passes
            for run in range(setup.runs)
        ]
    except (JacobiOracleError, NotImplementedError, AttributeError, TypeError) as error:
        seconds = time.perf_counter() - started
        nan = float("nan")
        return CompressionRow(
            name, params, 0, nan, nan, 0, 0, nan, seconds, "error", f"{type(error).__name__}: {error}"
        )
    mean = statistics.fmean(passes)
    sd = statistics.stdev(passes) if len(passes) > 1 else 0.0
    return CompressionRow(
        strategy=name,
        params=params,
        runs=len(passes),
        mean_forward_passes=mean,
        sd_forward_passes=sd,
        min_forward_passes=min(passes),
        max_forward_passes=max(passes),
        step_compression=problem.layout.num_cells / mean,
        seconds=time.perf_counter() - started,
        greedy_only=PRESETS[name].greedy_only,
    )


def measure_compression(
    setup: CompressionSetup, progress: Callable[[str, int, int], None] | None = None
) -> list[CompressionRow]:
    """One row per preset, in `setup.presets` order."""
    problem = setup.problem()
    rows = []
    for i, name in enumerate(setup.presets):
        if progress is not None:
            progress(name, i, len(setup.presets))
        rows.append(measure_preset(name, setup, problem))
    return rows


def format_markdown(rows: Sequence[CompressionRow]) -> str:
    """The table for benchmarks/STEP_COMPRESSION.md."""
    lines = [
        "| strategy | params | runs | mean passes | sd | min | max | step compression |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r.params.items()) or "-"
        if r.status != "ok":
            lines.append(f"| {r.strategy} | {params} | - | - | - | - | - | {r.status}: {r.error} |")
            continue
        lines.append(
            f"| {r.strategy} | {params} | {r.runs} | {r.mean_forward_passes:.2f} | {r.sd_forward_passes:.2f} "
            f"| {r.min_forward_passes} | {r.max_forward_passes} | {r.step_compression:.2f}x |"
        )
    return "\n".join(lines)
