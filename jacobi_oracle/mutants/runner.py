"""Run the catalogue through an engine: every mutant must be caught, every lossless preset pass."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ..oracle.exact import check_exact
from ..oracle.statistical import statistical_check
from ..oracle.statistical.sequential import sequential_check
from ..reference.presets import PRESETS
from ..spec.errors import InvalidParameterError
from ..spec.model import Problem
from ..spec.sampling import Sampling
from ..spec.strategy import Strategy
from .catalogue import (
    CASE_HEIGHT,
    CASE_VOCAB,
    CASE_WIDTH,
    DEFAULT_SAMPLING,
    MUTANTS,
    PRESET_SETTINGS,
    Mutant,
    mutant_problem,
)

Engine = Literal["exact", "stat"]
ENGINES: tuple[Engine, ...] = ("exact", "stat")
DEFAULT_BUDGET = 8000  # samples per mutant / preset (stat engine): stale-q-after-reuse needs ~8000
DEFAULT_ALPHA = 1e-6  # false-fail probability of each statistical check


@dataclass(frozen=True)
class Judgement:
    """One strategy judged by one engine: `flagged` means "not lossless"."""

    name: str
    kind: Literal["mutant", "preset"]
    setting: str
    engine: Engine
    flagged: bool
    effect: float  # exact: total variation; stat: the largest effect of a failed sub-test (or 0)
    evidence: str  # exact: "tv"; stat: the failed sub-test with the smallest p-value
    p_value: float | None
    power: float | None
    seconds: float
    samples: int | None = None  # stat engine: samples judged (a sequential check stops early)

    @property
    def ok(self) -> bool:
        """A mutant must be flagged, a lossless preset must not be."""
        return self.flagged if self.kind == "mutant" else not self.flagged

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["ok"] = self.ok
        out["caught" if self.kind == "mutant" else "passed"] = self.ok
        return out


def describe(sampling: Sampling) -> str:
    fields = [f"T={sampling.temperature:g}"]
    fields += [f"top_k={sampling.top_k}"] if sampling.top_k is not None else []
    fields += [f"top_p={sampling.top_p:g}"] if sampling.top_p is not None else []
    fields += [f"cfg={sampling.cfg_scale:g}"] if sampling.uses_cfg else []
    return ", ".join(fields)


def judge_strategy(
    name: str,
    kind: Literal["mutant", "preset"],
    strategy: Strategy,
    problem: Problem,
    engine: Engine,
    budget: int | None = DEFAULT_BUDGET,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    seconds: float | None = None,
    workers: int = 1,
) -> Judgement:
    """Stat engine: with `seconds` (or several `workers`) a sequential check with that time
    budget and at most `budget` samples (None: no cap), stopping at the first rejecting look;
    otherwise one look of `budget` samples."""
    setting = describe(problem.sampling)
    if engine == "exact":
        exact = check_exact(strategy, problem, model_name="mutant-case")
        return Judgement(
            name, kind, setting, engine, not exact.lossless, exact.total_variation, "tv", None, None, exact.seconds
        )
    if seconds is None and workers == 1:
        fixed = DEFAULT_BUDGET if budget is None else budget
        verdict = statistical_check(strategy, problem, fixed, alpha, seed, model_name="mutant-case")
    else:
        verdict = sequential_check(strategy, problem, alpha, budget, seconds, seed, workers, model_name="mutant-case")
    used = verdict.looks[-1].samples if verdict.looks else verdict.budget
    failed = sorted(verdict.failed_tests(), key=lambda t: t.p_value)
    worst = failed[0] if failed else min(verdict.tests, key=lambda t: t.p_value)
    effect = worst.effect_size if failed else 0.0
    return Judgement(
        name,
        kind,
        setting,
        engine,
        not verdict.passed,
        effect if math.isfinite(effect) else -1.0,
        worst.name,
        worst.p_value,
        verdict.power,
        verdict.seconds,
        used,
    )


def preset_settings(engine: Engine) -> tuple[Sampling, ...]:
    return PRESET_SETTINGS if engine == "exact" else (DEFAULT_SAMPLING,)


def lossless_presets() -> list[str]:
    return [name for name, preset in PRESETS.items() if preset.lossless and not preset.greedy_only]


def check_engine(engine: Engine) -> Engine:
    # Verify the engine is known
    if engine not in ENGINES:
        raise InvalidParameterError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    return engine


def run_catalogue(
    engine: Engine,
    mutants: Iterable[Mutant] | None = None,
    presets: Iterable[str] | None = None,
    settings: Iterable[Sampling] | None = None,
    budget: int | None = DEFAULT_BUDGET,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    on_result: Callable[[Judgement], None] | None = None,
    seconds: float | None = None,
    workers: int = 1,
    case: tuple[int, int, int] | None = None,
) -> list[Judgement]:
    """Judge every mutant on its own setting and every lossless preset on `settings` (default:
    every mutant setting for the exact engine, the plain setting T=1 for the stat engine, whose
    runs cost `budget` samples each, or run sequentially within `seconds` each). `case`:
    (V, height, width) of the hash model every run uses (default the mutants' 2x2 case)."""
    check_engine(engine)
    settings = preset_settings(engine) if settings is None else settings
    shape = case or (CASE_VOCAB, CASE_HEIGHT, CASE_WIDTH)
    results: list[Judgement] = []

    def judge(name: str, kind: Literal["mutant", "preset"], strategy: Strategy, problem: Problem) -> None:
        results.append(judge_strategy(name, kind, strategy, problem, engine, budget, alpha, seed, seconds, workers))
        if on_result is not None:
            on_result(results[-1])

    for mutant in MUTANTS.values() if mutants is None else mutants:
        judge(mutant.name, "mutant", mutant.build(), mutant.problem(*shape))
    for name in lossless_presets() if presets is None else presets:
        for sampling in settings:
            judge(name, "preset", PRESETS[name].build(), mutant_problem(sampling, *shape))
    return results
