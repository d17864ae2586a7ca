"""Power: the smallest departure a budget detects with probability >= 0.99
(spec/statistical_oracle.md, "Power")."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize, stats

from ...spec.errors import InvalidParameterError
from ...spec.layout import Layout
from .counts import layout_pairs

DETECTION_PROBABILITY = 0.99
CALIBRATION_TESTS = 3  # pit-chi2, pit-ks, surprise (check.calibration_tests)
VERIFIER_TESTS = 4  # accept-hazard, residual-pit, bonus-pit, draft-pit, each when exercised (check.verifier_tests)


def bonferroni_level(alpha: float, family: int) -> float:
    """The level each of `family` sub-tests is judged at, so that the family fails a lossless
    decoder with probability <= alpha (Bonferroni). The one place this division is made."""
    if not isinstance(family, int) or family < 1:
        raise InvalidParameterError(f"a test family has >= 1 test, got {family!r}")
    return alpha / family


def compute_family_size(layout: Layout, verifier_tests: int = VERIFIER_TESTS, sequence_tests: int = 0) -> int:
    """The sub-tests of a statistical check on `layout` (spec/statistical_oracle.md), support
    test aside: one per cell, one per adjacent pair, the calibration tests, the verifier tests
    the samples exercised, and `sequence` + `conditional[1..L-1]` when the sequence law is tested."""
    return layout.num_cells + len(layout_pairs(layout)) + CALIBRATION_TESTS + verifier_tests + sequence_tests


def check_budget(budget: int, alpha: float) -> None:
    # Verify the budget is a positive sample count
    if not isinstance(budget, int) or budget < 1:
        raise InvalidParameterError(f"budget must be an int >= 1 (samples), got {budget!r}")
    # Verify alpha is a probability
    if not (0.0 < alpha < 1.0):
        raise InvalidParameterError(f"alpha (false-fail probability) must be in (0, 1), got {alpha!r}")


def compute_noncentrality(degrees: int, test_alpha: float, detection: float = DETECTION_PROBABILITY) -> float:
    """lambda with P(ncx2(degrees, lambda) > chi2 critical value at test_alpha) = detection."""
    critical = float(stats.chi2.isf(test_alpha, degrees))

    def shortfall(lam: float) -> float:
        return float(stats.ncx2.sf(critical, degrees, lam)) - detection

    upper = 1.0
    while shortfall(upper) < 0:
        upper *= 2.0
    return float(optimize.brentq(shortfall, 1e-9, upper, xtol=1e-9))


def effective_samples(budget: int, reference_budget: int | None) -> float:
    """n for a known law; n m / (n + m) against a reference sample of size m (two-sample)."""
    if reference_budget is None:
        return float(budget)
    return budget * reference_budget / (budget + reference_budget)


def compute_min_detectable_tv(
    budget: int,
    alpha: float,
    categories: int,
    tests: int = 1,
    reference_budget: int | None = None,
) -> float:
    """Smallest total variation of one tested marginal (k categories) that its chi-square test,
    judged at alpha / tests, detects with probability >= 0.99. Uses chi2 >= 4 TV^2."""
    check_budget(budget, alpha)
    if categories < 2:
        raise InvalidParameterError(f"a marginal needs >= 2 categories, got {categories!r}")
    lam = compute_noncentrality(categories - 1, bonferroni_level(alpha, tests))
    return min(1.0, math.sqrt(lam / (4.0 * effective_samples(budget, reference_budget))))


def compute_min_detectable_shift(tokens: int, alpha: float, mean_variance: float, tests: int = 1) -> float:
    """Smallest mean surprise shift (nats per token) the two-sided z-test at alpha / tests
    detects with probability >= 0.99, for `tokens` tokens of mean surprise variance."""
    if tokens < 1 or mean_variance <= 0:
        return math.inf
    z = float(stats.norm.isf(bonferroni_level(alpha, tests) / 2.0) + stats.norm.isf(1.0 - DETECTION_PROBABILITY))
    return z * math.sqrt(mean_variance / tokens)


@dataclass(frozen=True)
class PowerReport:
    budget: int
    alpha: float
    tests: int
    total_variation: float  # smallest per-position TV detected w.p. >= 0.99
    pair_total_variation: float  # the same for one adjacent-pair joint law
    surprise_shift: float  # smallest surprise shift (nats / token) detected w.p. >= 0.99


def power(
    budget: int,
    alpha: float = 1e-6,
    vocab_size: int = 3,
    num_cells: int = 6,
    tests: int | None = None,
    two_sample: bool = False,
    pair_categories: int | None = None,
    mean_variance: float = 1.0,
    layout: Layout | None = None,
) -> PowerReport:
    """The power of a `statistical_check` with this budget: the smallest TV (per-position and
    pair marginals) and the smallest surprise shift detected with probability >= 0.99.
    `tests` defaults to the family of a check on `layout` (default: one row of `num_cells`)
    exercising every verifier test and testing the sequence law (`compute_family_size`)."""
    check_budget(budget, alpha)
    grid = layout if layout is not None else Layout(1, num_cells)
    num_cells = grid.num_cells
    family = tests if tests is not None else compute_family_size(grid, sequence_tests=num_cells)
    reference = budget if two_sample else None
    pair_k = pair_categories if pair_categories is not None else vocab_size * vocab_size
    return PowerReport(
        budget=budget,
        alpha=alpha,
        tests=family,
        total_variation=compute_min_detectable_tv(budget, alpha, vocab_size, family, reference),
        pair_total_variation=compute_min_detectable_tv(budget, alpha, pair_k, family, reference),
        surprise_shift=compute_min_detectable_shift(budget * num_cells, alpha, mean_variance, family),
    )
