"""Power claims against measured detection rates on planted departures of known size.

A planted departure's exact total variation is checked by the exact engine; the detection rate
of the one-sample tests is measured on counts drawn from the planted law and compared with the
noncentral chi-square prediction, and the printed bound `power_sequence` is held to its claim
(detected with probability >= 0.99). Each Monte Carlo assertion states its error bound."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from jacobi_oracle.models.registry import build_model
from jacobi_oracle.mutants import mutant_problem
from jacobi_oracle.oracle.exact import check_exact
from jacobi_oracle.oracle.statistical import power, statistical_check
from jacobi_oracle.oracle.statistical.check import compute_exact_marginals, sequence_power
from jacobi_oracle.oracle.statistical.counts import CountTables, compute_calibration
from jacobi_oracle.oracle.statistical.measure import predict_detection, simulate_detection
from jacobi_oracle.oracle.statistical.planted import compute_sequence, compute_tilt, compute_towards, plant, planted_law
from jacobi_oracle.oracle.statistical.power import bonferroni_level
from jacobi_oracle.oracle.statistical.tests import goodness_of_fit
from jacobi_oracle.reference.presets import ar, sjd
from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.sampling import Sampling

ALPHA = 1e-6
PLAIN = Sampling()


def sequence_law(sampling: Sampling = PLAIN) -> tuple[object, np.ndarray]:
    problem = mutant_problem(sampling)
    law = compute_exact_marginals(problem, CountTables.empty(problem)).sequences
    assert law is not None
    return problem, law


@pytest.mark.parametrize("tv", [0.005, 0.02])
def test_a_planted_departure_has_the_exact_total_variation_asked_for(tv: float) -> None:
    problem, law = sequence_law()
    for direction in (compute_tilt(law, seed=1), compute_towards(law, sequence_law(Sampling(temperature=2.0))[1])):
        planted = plant(ar(), law, direction, tv, 3, 4)
        verdict = check_exact(planted, problem)  # type: ignore[arg-type]
        assert abs(verdict.total_variation - tv) < 1e-12
        assert np.isclose(0.5 * np.abs(planted_law(law, direction, tv) - law).sum(), tv)


def test_a_departure_beyond_the_simplex_is_refused() -> None:
    _, law = sequence_law()
    with pytest.raises(InvalidParameterError, match="total_variation"):
        plant(ar(), law, compute_tilt(law), 1.5, 3, 4)


def test_measured_detection_matches_the_noncentral_chi_square_prediction() -> None:
    """Tilt departure, one fixed-sample look sized for a predicted rate near 1/2: the measured
    rate over 200 runs is within 0.2 of the prediction (binomial sd <= 0.036, so a miss by 0.2
    is > 5 sd; the approximation itself is what is tested)."""
    _, law = sequence_law()
    alternative = planted_law(law, compute_tilt(law, seed=2), 0.03)
    level = 1e-4
    predicted = predict_detection(law, alternative, 3, 4, 8000, level)
    runs = simulate_detection(law, alternative, 3, 4, [8000], level, family=4, runs=200, seed=5, sequential=False)
    # the union of the four tests is at least the best one and at most their sum
    best, total = max(predicted.values()), min(1.0, sum(predicted.values()))
    assert best - 0.2 <= runs.rate() <= total + 0.2


def test_power_sequence_is_detected_with_probability_099_in_the_worst_direction() -> None:
    """At n samples the verdict claims: any departure of the whole law of TV >= power_sequence
    is detected w.p. >= 0.99. Planted at exactly that TV along the worst-case tilt, the sequence
    test alone (at its Bonferroni share alpha / 30) must detect it in >= 388 of 400 runs: if the
    claim holds this fails with probability P(< 388 | 0.99) = 2.5e-4, and a true rate of 0.95
    passes it with probability P(>= 388 | 0.95) = 0.036."""
    _, law = sequence_law()
    n, family = 20_000, 30
    tables = CountTables.empty(mutant_problem())
    reference = compute_exact_marginals(mutant_problem(), tables)
    tables.sequences[:] = 1  # only the sizes matter to the bound
    bound = sequence_power(tables, reference, n, ALPHA, family)
    assert bound is not None and 0.0 < bound < 0.5
    alternative = planted_law(law, compute_tilt(law, seed=3), bound)
    rng = np.random.default_rng(6)
    detected = sum(
        not goodness_of_fit("sequence", rng.multinomial(n, alternative), law, ALPHA / family).passed for _ in range(400)
    )
    assert detected >= 388
    # and the bound is not vacuous: at a third of it the worst direction is mostly missed
    weak = planted_law(law, compute_tilt(law, seed=3), bound / 3)
    missed = sum(goodness_of_fit("sequence", rng.multinomial(n, weak), law, ALPHA / family).passed for _ in range(50))
    assert missed >= 25
    assert float(stats.binom.cdf(387, 400, 0.99)) < 1e-3


def test_power_surprise_shift_is_detected_with_probability_099() -> None:
    """`power().surprise_shift` claims: a mean surprise shift of that many nats per token is
    detected w.p. >= 0.99 by the surprise z-test. Planted along the direction towards AR at
    temperature 0.7 (sharper: tokens likelier than AR draws them), at the TV whose shift per token
    is the claimed bound, the z-test on the planted counts detects it in >= 388 of 400 runs
    (P(< 388 | 0.99) = 2.5e-4)."""
    problem, law = sequence_law()
    _, sharp = sequence_law(Sampling(temperature=0.7))
    cells, n, family = 4, 5000, 19
    calibrations = [compute_calibration(problem, compute_sequence(i, 3, cells)) for i in range(law.size)]  # type: ignore[arg-type]
    totals = [0 if None in c.surprise else sum(s for s in c.surprise if s is not None) for c in calibrations]
    surprise = np.array(totals) / (1 << 24)
    variance = np.array([sum(c.variance) for c in calibrations]) / (1 << 24)
    direction = compute_towards(law, sharp)
    shift_per_tv = -float((direction * surprise).sum()) / cells  # deficit per token per unit of TV
    mean_variance = float((law * variance).sum()) / cells
    claimed = power(n, ALPHA, vocab_size=3, num_cells=cells, tests=family, mean_variance=mean_variance)
    tv = claimed.surprise_shift / shift_per_tv
    alternative = planted_law(law, direction, tv)
    rng = np.random.default_rng(8)
    level = ALPHA / family
    detected = 0
    for _ in range(400):
        counts = rng.multinomial(n, alternative / alternative.sum())
        z = float((counts * surprise).sum()) / np.sqrt(float((counts * variance).sum()))
        detected += float(2.0 * stats.norm.sf(abs(z))) <= level
    assert detected >= 388


def test_power_defaults_to_the_family_a_check_judges() -> None:
    """`power()`'s default family is the one `compute_family_size` formula the check uses: on
    hash (2x3) SJD exercises every verifier test and the sequence law is tested."""
    case = build_model("hash")
    problem = Problem(case.model, case.condition, case.layout, Sampling())
    verdict = statistical_check(sjd(3), problem, 300, 1e-6, 3)
    assert power(300, layout=problem.layout).tests == len(verdict.tests) - 1  # the support test is not Bonferroni-split
    assert {t.name for t in verdict.tests} >= {"accept-hazard", "residual-pit", "bonus-pit", "draft-pit", "sequence"}


def test_a_family_needs_a_test() -> None:
    with pytest.raises(InvalidParameterError, match="family has >= 1 test"):
        bonferroni_level(1e-6, 0)
