"""The statistical engine: accepts lossless decoders at its stated false-fail probability,
rejects a known-broken one, merges count tables exactly, and its power bound holds.

False-fail probabilities: every `statistical_check` here runs at ALPHA = 1e-6 (Bonferroni over
its sub-tests, spec/statistical_oracle.md); every Monte Carlo assertion on synthetic data states
its own bound next to it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobi_oracle.accelerated import build_accelerated
from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.mutants import get_mutant, mutant_problem
from jacobi_oracle.oracle.statistical import (
    CountTables,
    compute_min_detectable_tv,
    count_samples,
    judge,
    power,
    reference_law,
    statistical_check,
)
from jacobi_oracle.oracle.statistical.check import is_enumerable
from jacobi_oracle.oracle.statistical.falsefail import measure_false_fail_rate
from jacobi_oracle.oracle.statistical.tests import (
    acceptance_hazard,
    format_p_value,
    goodness_of_fit,
    pool_small,
    surprise_martingale,
)
from jacobi_oracle.reference.presets import ar, sjd
from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.sampling import Sampling

ALPHA = 1e-6  # false-fail probability of every statistical_check below
BUDGET = 300  # samples per check on the tiny case (V=3, 2x2: exact marginals)
TWO_SAMPLE_BUDGET = 120  # samples per side on the non-enumerable case


def two_sample_problem() -> Problem:
    """V=8 on a 2x3 grid: 8^6 sequences, too many to enumerate: two-sample mode."""
    return Problem(HashModel(8, 6, row_stride=3, sharpness=2.0), 0, Layout(2, 3), Sampling())


@pytest.mark.parametrize("strategy", [ar(), sjd(3), sjd(3, recorded_law="uniform")], ids=lambda s: s.name)
def test_lossless_decoders_pass_at_the_stated_false_fail_probability(strategy: object) -> None:
    verdict = statistical_check(strategy, mutant_problem(Sampling(temperature=0.7)), BUDGET, ALPHA, seed=11)  # type: ignore[arg-type]
    assert verdict.passed, [t for t in verdict.tests if not t.passed]
    assert verdict.reference == "exact"
    assert 0.0 < verdict.power < 1.0


def test_always_accept_is_rejected_negative_control() -> None:
    verdict = statistical_check(get_mutant("always-accept").build(), mutant_problem(), BUDGET, ALPHA, seed=11)
    assert not verdict.passed
    assert {t.name for t in verdict.failed_tests()} & {"accept-hazard", "surprise", "position[1]"}


def test_two_sample_mode_passes_sjd_and_rejects_always_accept() -> None:
    problem = two_sample_problem()
    assert not is_enumerable(problem)
    good = statistical_check(sjd(3), problem, TWO_SAMPLE_BUDGET, ALPHA, seed=3)
    assert good.reference == "two-sample"
    assert good.passed, good.failed_tests()
    bad = statistical_check(get_mutant("always-accept").build(), problem, TWO_SAMPLE_BUDGET, ALPHA, seed=3)
    assert not bad.passed


def test_count_tables_of_disjoint_samples_add_up_to_the_union() -> None:
    problem = mutant_problem()
    whole = count_samples(sjd(3), problem, range(24), seed=5)
    halves = count_samples(sjd(3), problem, range(0, 24, 2), seed=5) + count_samples(
        sjd(3), problem, range(1, 24, 2), seed=5
    )
    for name, array in whole.arrays().items():
        assert np.array_equal(array, halves.arrays()[name]), name
    law = reference_law(problem, whole, 24, 5, None)
    assert (
        judge("sjd", "tiny", problem, whole, law, ALPHA).to_json()
        == judge("sjd", "tiny", problem, halves, law, ALPHA).to_json()
    )
    assert CountTables.from_json(whole.to_json()).arrays().keys() == whole.arrays().keys()


def test_invalid_budget_and_alpha_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="budget"):
        statistical_check(ar(), mutant_problem(), 0)
    with pytest.raises(InvalidParameterError, match="alpha"):
        statistical_check(ar(), mutant_problem(), 10, alpha=1.5)


@given(st.lists(st.floats(0.0, 50.0), min_size=1, max_size=12))
@settings(max_examples=60, deadline=None)
def test_pooling_preserves_total_expected_and_observed_counts(expected_list: list[float]) -> None:
    expected = np.array(expected_list)
    observed = np.arange(expected.size, dtype=np.float64)
    pooled_expected, (pooled_observed,) = pool_small(expected, observed)
    assert np.isclose(pooled_expected.sum(), expected.sum())
    assert np.isclose(pooled_observed.sum(), observed.sum())
    assert (pooled_expected[:-1] >= 10.0).all() or pooled_expected.size <= 1 or expected.sum() < 10


def test_goodness_of_fit_holds_its_level_and_rejects_a_shifted_law() -> None:
    rng = np.random.default_rng(0)
    law = np.array([0.5, 0.3, 0.15, 0.05])
    p_values = [goodness_of_fit("t", rng.multinomial(400, law), law, 0.01).p_value for _ in range(400)]
    # under H0 the rejection rate at 0.01 is ~1%; P(>= 15 of 400 | rate 0.01) < 1e-3
    assert sum(p <= 0.01 for p in p_values) < 15
    shifted = np.array([0.4, 0.4, 0.15, 0.05])
    assert not goodness_of_fit("t", rng.multinomial(2000, shifted), law, ALPHA).passed


def test_min_detectable_tv_is_detected_with_probability_099() -> None:
    """Monte Carlo of the worst-case direction at the power bound: detection rate >= 0.99 is
    claimed; P(fewer than 95% of 400 detections | true rate 0.99) < 1e-6."""
    rng = np.random.default_rng(1)
    law = np.array([0.25, 0.25, 0.25, 0.25])
    budget = 1500
    tv = compute_min_detectable_tv(budget, ALPHA, categories=4, tests=1)
    shifted = law + tv * np.array([1.0, -1.0, 0.0, 0.0])  # chi2 = 8 tv^2 here (>= 4 tv^2)
    detected = [not goodness_of_fit("t", rng.multinomial(budget, shifted), law, ALPHA).passed for _ in range(400)]
    assert np.mean(detected) >= 0.95


def test_power_shrinks_as_the_budget_grows() -> None:
    small, large = power(500), power(5000)
    assert large.total_variation < small.total_variation
    assert large.surprise_shift < small.surprise_shift
    assert np.isclose(small.total_variation / large.total_variation, np.sqrt(10.0))


def test_acceptance_hazard_accepts_its_own_law_and_rejects_a_wrong_rate() -> None:
    rng = np.random.default_rng(2)
    alphas = rng.uniform(0.2, 0.9, size=(3, 500))
    scale = 1 << 24

    def table(rate_shift: float) -> np.ndarray:
        accepts = rng.random(alphas.shape) < np.clip(alphas + rate_shift, 0, 1)
        rows = [
            (alphas.shape[1], a.sum(), round(al.sum() * scale), round((al * (1 - al)).sum() * scale))
            for a, al in zip(accepts, alphas, strict=True)
        ]
        return np.array(rows, dtype=np.int64)

    # P(a false fail) <= 1e-6 by construction of the test; the shift 0.2 gives z ~ 10 per depth
    assert acceptance_hazard("h", table(0.0), ALPHA).passed
    assert not acceptance_hazard("h", table(0.2), ALPHA).passed


def test_surprise_martingale_fails_on_an_impossible_token() -> None:
    result = surprise_martingale("s", np.array([10, 1, 0, 100], dtype=np.int64), ALPHA)
    assert not result.passed and result.p_value == 0.0


def test_surprise_martingale_on_a_deterministic_target_needs_zero_surprise() -> None:
    assert surprise_martingale("s", np.array([10, 0, 0, 0], dtype=np.int64), ALPHA).passed
    assert not surprise_martingale("s", np.array([10, 0, 1 << 24, 0], dtype=np.int64), ALPHA).passed


def test_the_false_fail_harness_runs_reference_or_accelerated_decoders() -> None:
    """The counts it reports are its runs (a real rate needs >= 200 seeds: benchmarks/); a
    lossy preset is refused, not measured."""
    for build in (None, build_accelerated):
        report = measure_false_fail_rate(mutant_problem(), ["sjd", "ar"], 4, 0.01, 200, build=build)
        assert report.runs == 4 and report.accelerated == (build is not None) and report.budget == 200
    with pytest.raises(InvalidParameterError, match="not a lossless preset"):
        measure_false_fail_rate(mutant_problem(), ["pjd"], 4)


def test_a_p_below_the_float_range_is_not_printed_as_zero() -> None:
    assert format_p_value(0.0) == "<1e-300"  # what scipy returns for a p under ~1e-308
    assert format_p_value(1.234e-5) == "1.23e-05" and format_p_value(0.5, 2) == "0.5"
    assert format_p_value(5e-324) == "4.94e-324"  # the smallest float is still a number
