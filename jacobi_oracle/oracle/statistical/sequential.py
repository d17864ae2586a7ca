"""`sequential_check`: the statistical check as a group-sequential test (spec/statistical_oracle.md,
"Sequential checks"). Samples are drawn in looks of growing size (250, 500, 1000, ... by default);
at look k the whole family of sub-tests is judged on every sample so far at false-fail
probability alpha_k = alpha / (k (k + 1)). Since sum_k alpha_k < alpha, the probability that a
lossless decoder fails at ANY look is <= alpha (a union bound: it holds whatever the looks'
dependence and whenever the check stops), so the check can stop at the first rejection and at
a time budget. A clear failure stops after a few hundred samples; a pass costs the whole budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

from ...spec.errors import InvalidParameterError
from ...spec.model import Problem
from ...spec.strategy import Strategy
from .check import (
    REFERENCE_OFFSET,
    Look,
    ReferenceLaw,
    StatisticalVerdict,
    compute_exact_marginals,
    judge,
    reference_sampler,
)
from .counts import CountTables, is_enumerable
from .power import check_budget
from .sampler import Sampler

FIRST_LOOK = 250  # samples at the first look
GROWTH = 2.0  # each look has this many times the samples of the one before
SAFETY = 0.9  # a time-limited final look plans for this share of the time left
MAX_SAMPLES = 1 << 40  # the sample cap when only a time budget is given


def compute_look_alpha(alpha: float, look: int) -> float:
    """alpha_k = alpha / (k (k + 1)): the shares sum to alpha (1 - 1 / (K + 1)) < alpha over K looks."""
    # Verify the look index
    if look < 1:
        raise InvalidParameterError(f"looks are numbered from 1, got {look!r}")
    return alpha / (look * (look + 1))


def compute_look_sizes(max_samples: int, first: int = FIRST_LOOK, growth: float = GROWTH) -> list[int]:
    """Cumulative samples at each look, the last one exactly `max_samples` (while it is finite)."""
    sizes: list[int] = []
    n = first
    while n < max_samples and len(sizes) < 64:
        sizes.append(n)
        n = max(n + 1, math.ceil(n * growth))
    return [*sizes, max_samples]


def check_sequential_budget(max_samples: int | None, seconds: float | None, first: int, growth: float) -> int:
    # Verify there is a budget: samples, seconds or both
    if max_samples is None and seconds is None:
        raise InvalidParameterError("a sequential check needs max_samples, seconds or both")
    # Verify the time budget is positive
    if seconds is not None and not seconds > 0:
        raise InvalidParameterError(f"seconds must be > 0, got {seconds!r}")
    # Verify the look schedule
    if not isinstance(first, int) or first < 1 or not growth > 1.0:
        raise InvalidParameterError(f"need first >= 1 samples and growth > 1, got {first!r}, {growth!r}")
    return MAX_SAMPLES if max_samples is None else max_samples


def sequential_check(
    strategy: Strategy,
    problem: Problem,
    alpha: float = 1e-6,
    max_samples: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
    workers: int = 1,
    first: int = FIRST_LOOK,
    growth: float = GROWTH,
    progress: Callable[[int, int], None] | None = None,
    model_name: str = "custom",
) -> StatisticalVerdict:
    """Judge `strategy` on samples 0, 1, ... (noise KeyedRandomness(seed, sample=i)) in looks of
    growing size until a look rejects (FAIL), `max_samples` are judged or `seconds` run out
    (pass). Fails a lossless strategy with probability <= alpha. `progress(done, total)`."""
    cap = check_sequential_budget(max_samples, seconds, first, growth)
    check_budget(min(cap, MAX_SAMPLES), alpha)
    started = time.perf_counter()
    enumerable = is_enumerable(problem)
    looks: list[Look] = []
    tables = CountTables.empty(problem)
    reference = CountTables.empty(problem)
    law: ReferenceLaw | None = None
    verdict: StatisticalVerdict | None = None
    name = getattr(strategy, "name", type(strategy).__name__)
    with (
        Sampler(strategy, problem, seed, True, workers) as decoder,
        Sampler(reference_sampler(problem), problem, seed, False, workers if not enumerable else 1) as ar,
    ):
        for look, planned in enumerate(compute_look_sizes(cap, first, growth), start=1):
            target = fit_to_time(planned, tables.num_samples, started, seconds)
            if target <= tables.num_samples:
                break
            report = None if progress is None else _reporter(progress, tables.num_samples, cap)
            deadline = None if seconds is None else started + seconds
            tables = tables + decoder.count(range(tables.num_samples, target), report, deadline)
            cut = tables.num_samples < target  # the deadline passed inside this look
            target = tables.num_samples
            if enumerable:
                law = law or compute_exact_marginals(problem, tables)
            else:
                offset = REFERENCE_OFFSET + reference.num_samples
                reference = reference + ar.count(range(offset, REFERENCE_OFFSET + target))
                law = ReferenceLaw(None, None, reference)
            look_alpha = compute_look_alpha(alpha, look)
            verdict = judge(name, model_name, problem, tables, law, look_alpha, time.perf_counter() - started)
            worst = min(verdict.tests, key=lambda t: (t.passed, t.p_value / max(t.alpha, 1e-300)))
            looks.append(
                Look(target, look_alpha, verdict.seconds, verdict.passed, worst.p_value, worst.name),
            )
            if not verdict.passed or cut or target < planned:  # a rejection, or the look the time left allowed
                break
    assert verdict is not None, "the first look always runs"
    return replace(verdict, alpha=alpha, seconds=time.perf_counter() - started, looks=tuple(looks))


def fit_to_time(target: int, done: int, started: float, seconds: float | None) -> int:
    """The look's planned sample count, cut to what fits in the time left at the rate so far (the
    first look has no rate yet; every look also stops at the deadline, between chunks)."""
    if seconds is None or done == 0:
        return target
    elapsed = time.perf_counter() - started
    rate = done / max(elapsed, 1e-9)  # samples (and their AR references) per second so far
    fits = done + int(rate * (seconds - elapsed) * SAFETY)
    return min(target, fits)


def _reporter(progress: Callable[[int, int], None], offset: int, cap: int) -> Callable[[int], None]:
    return lambda done: progress(offset + done, cap)
