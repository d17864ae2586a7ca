"""Measure the false-fail rate: run `statistical_check` on lossless presets over many seeds at
a loose alpha and test the observed failure count against Binomial(runs, alpha)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scipy import stats

from ...reference.presets import PRESETS
from ...spec.errors import InvalidParameterError
from ...spec.model import Problem
from ...spec.strategy import Strategy
from .check import statistical_check
from .sequential import sequential_check


@dataclass(frozen=True)
class FalseFailReport:
    runs: int
    failures: int
    alpha: float
    budget: int
    presets: tuple[str, ...]
    sequential: bool  # each run a sequential check (looks up to `budget` samples) or a fixed-sample one
    accelerated: bool  # the accelerated twins were judged (sampled through decode_batch)
    p_value_two_sided: float  # binomial test of failures ~ Binomial(runs, alpha)
    p_value_excess: float  # one-sided: P(X >= failures) when the rate is alpha
    failed_runs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.failures / self.runs

    @property
    def consistent(self) -> bool:
        """The rate is not significantly above alpha (one-sided binomial test at 1%)."""
        return self.p_value_excess > 0.01

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["presets"] = list(self.presets)
        out["rate"] = self.rate
        out["consistent"] = self.consistent
        return out


def measure_false_fail_rate(
    problem: Problem,
    presets: Sequence[str],
    seeds: int,
    alpha: float = 0.01,
    budget: int = 100,
    progress: Callable[[int, int], None] | None = None,
    sequential: bool = False,
    workers: int = 1,
    build: Callable[[str], Strategy] | None = None,
) -> FalseFailReport:
    """Seed s checks preset presets[s % len(presets)] with noise seed s: `seeds` runs in all.
    `sequential`: each run is a `sequential_check` with at most `budget` samples, so a run
    fails when ANY of its looks rejects (the false-fail probability it states is for that).
    `build(name)` makes the decoder judged (default: the reference preset; e.g. its
    accelerated twin)."""
    # Verify the presets are lossless ones
    for name in presets:
        if name not in PRESETS or not PRESETS[name].lossless:
            raise InvalidParameterError(f"{name!r} is not a lossless preset")
    # Verify there is at least one run
    if seeds < 1 or not presets:
        raise InvalidParameterError(f"need seeds >= 1 and at least one preset, got {seeds!r}, {list(presets)!r}")
    failures: list[dict[str, Any]] = []
    seconds = 0.0
    for seed in range(seeds):
        name = presets[seed % len(presets)]
        strategy = PRESETS[name].build() if build is None else build(name)
        if sequential:
            verdict = sequential_check(strategy, problem, alpha, budget, seed=seed, workers=workers)
        else:
            verdict = statistical_check(strategy, problem, budget, alpha, seed)
        seconds += verdict.seconds
        if not verdict.passed:
            failed = [t.name for t in verdict.failed_tests()]
            failures.append({"preset": name, "seed": seed, "failed_tests": failed})
        if progress is not None:
            progress(seed + 1, seeds)
    k = len(failures)
    two_sided = float(stats.binomtest(k, seeds, alpha).pvalue)
    excess = float(stats.binom.sf(k - 1, seeds, alpha))
    return FalseFailReport(
        seeds, k, alpha, budget, tuple(presets), sequential, build is not None, two_sided, excess, failures, seconds
    )
