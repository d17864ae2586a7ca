"""Run the catalogue through an engine: every mutant must be caught, every lossless preset pass."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ..oracle.exact import check_exact
from ..oracle.statistical import statistical_check
from ..reference.presets import PRESETS
from ..spec.errors import InvalidParameterError
from ..spec.model import Problem
from ..spec.sampling import Sampling
from ..spec.strategy import Strategy
from .catalogue import DEFAULT_SAMPLING, MUTANTS, PRESET_SETTINGS, Mutant, mutant_problem

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
    budget: int = DEFAULT_BUDGET,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> Judgement:
    setting = describe(problem.sampling)
    if engine == "exact":
        exact = check_exact(strategy, problem, model_name="mutant-case")
        return Judgement(
            name, kind, setting, engine, not exact.lossless, exact.total_variation, "tv", None, None, exact.seconds
        )
    verdict = statistical_check(strategy, problem, budget, alpha, seed, model_name="mutant-case")
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
    budget: int = DEFAULT_BUDGET,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    on_result: Callable[[Judgement], None] | None = None,
) -> list[Judgement]:
    """Judge every mutant on its own setting and every lossless preset on `settings` (default:
    every mutant setting for the exact engine, the plain setting T=1 for the stat engine, whose
    runs cost `budget` samples each)."""
    check_engine(engine)
    settings = preset_settings(engine) if settings is None else settings
    results = []
    for mutant in MUTANTS.values() if mutants is None else mutants:
        results.append(
            judge_strategy(mutant.name, "mutant", mutant.build(), mutant.problem(), engine, budget, alpha, seed)
        )
        if on_result is not None:
            on_result(results[-1])
    for name in lossless_presets() if presets is None else presets:
        for sampling in settings:
            strategy = PRESETS[name].build()
            results.append(
                judge_strategy(name, "preset", strategy, mutant_problem(sampling), engine, budget, alpha, seed)
            )
            if on_result is not None:
                on_result(results[-1])
    return results
