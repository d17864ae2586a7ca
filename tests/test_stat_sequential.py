"""The sequential check: its looks spend at most alpha in all, it stops at the first rejection,
it honours a time budget, and its false-fail rate (simulated over many runs) is within alpha.

False-fail probabilities: every check of a decoder here runs at ALPHA = 1e-6; the Monte Carlo
assertions state their own bounds."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats

from jacobi_oracle.mutants import get_mutant, mutant_problem
from jacobi_oracle.oracle.statistical.check import compute_exact_marginals
from jacobi_oracle.oracle.statistical.counts import CountTables
from jacobi_oracle.oracle.statistical.measure import simulate_detection
from jacobi_oracle.oracle.statistical.sequential import compute_look_alpha, compute_look_sizes, sequential_check
from jacobi_oracle.reference.presets import sjd
from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.testing import assert_lossless

ALPHA = 1e-6


def test_the_looks_spend_less_than_alpha_in_all() -> None:
    spent = sum(compute_look_alpha(0.05, k) for k in range(1, 10_000))
    assert spent < 0.05
    assert compute_look_alpha(1.0, 1) == 0.5


def test_look_sizes_grow_and_end_at_the_budget() -> None:
    assert compute_look_sizes(2000) == [250, 500, 1000, 2000]
    assert compute_look_sizes(3000) == [250, 500, 1000, 2000, 3000]
    assert compute_look_sizes(40) == [40]


def test_invalid_sequential_budgets_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="max_samples, seconds"):
        sequential_check(sjd(3), mutant_problem())
    with pytest.raises(InvalidParameterError, match="seconds"):
        sequential_check(sjd(3), mutant_problem(), seconds=-1.0)
    with pytest.raises(InvalidParameterError, match="workers"):
        sequential_check(sjd(3), mutant_problem(), max_samples=10, workers=0)


def test_a_clear_failure_stops_at_the_first_look_negative_control() -> None:
    verdict = sequential_check(get_mutant("always-accept").build(), mutant_problem(), ALPHA, max_samples=64_000)
    assert not verdict.passed
    assert len(verdict.looks) == 1 and verdict.budget == 250


def test_a_lossless_decoder_runs_every_look_and_passes() -> None:
    verdict = sequential_check(sjd(3), mutant_problem(), ALPHA, max_samples=1000, seed=4)
    assert verdict.passed, verdict.failed_tests()
    assert [look.samples for look in verdict.looks] == [250, 500, 1000]
    assert all(look.passed for look in verdict.looks)
    assert verdict.alpha == ALPHA and verdict.looks[-1].alpha == compute_look_alpha(ALPHA, 3)


def test_a_time_budget_stops_the_check_in_time() -> None:
    started = time.perf_counter()
    verdict = sequential_check(sjd(3), mutant_problem(), ALPHA, seconds=3.0, seed=4)
    elapsed = time.perf_counter() - started
    assert verdict.passed
    # the first look is never cut; later looks are planned to end within the budget
    assert elapsed < 3.0 + 0.5 * max(verdict.looks[0].seconds, 1.0) + 1.0
    assert verdict.budget >= 250


def test_assert_lossless_stat_is_sequential_and_says_so() -> None:
    report = assert_lossless(sjd(3), mutant_problem(), engine="stat", budget=500, seed=4)
    assert report.verdict.budget == 500 and len(report.verdict.looks) == 2  # type: ignore[union-attr]
    with pytest.raises(AssertionError, match="stopped at look 1"):
        assert_lossless(get_mutant("always-accept").build(), mutant_problem(), engine="stat", budget=4000)


def test_simulated_false_fail_rate_of_the_sequential_one_sample_tests_is_within_alpha() -> None:
    """300 sequential runs of the sequence + conditional tests on counts drawn from the AR law
    itself, looks up to 64000 samples, at a loose alpha = 0.05 (so it is measurable). The union
    bound promises a rate <= 0.05; P(>= 25 of 300 | rate 0.05) < 1e-3."""
    problem = mutant_problem()
    law = compute_exact_marginals(problem, CountTables.empty(problem)).sequences
    assert law is not None
    looks = compute_look_sizes(64_000)
    # four tests (sequence, conditional[1..3]), each judged at alpha_k / 4
    runs = simulate_detection(law, law, 3, 4, looks, 0.05, family=4, runs=300, seed=2)
    assert runs.detected[-1] < 25
    assert float(stats.binom.sf(runs.detected[-1] - 1, 300, 0.05)) > 1e-3
    # the same procedure rejects a planted departure of TV 0.05 (the negative control)
    shifted = law.copy()
    top = int(np.argmax(law))
    shifted[top] -= 0.05
    shifted[int(np.argsort(law)[-2])] += 0.05
    caught = simulate_detection(law, shifted, 3, 4, looks, 0.05, family=4, runs=20, seed=3)
    assert caught.detected[-1] == 20
