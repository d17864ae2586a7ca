"""Power: the smallest departure a budget detects with probability >= 0.99
(spec/statistical_oracle.md, "Power")."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize, stats

from ...spec.errors import InvalidParameterError

DETECTION_PROBABILITY = 0.99


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
    lam = compute_noncentrality(categories - 1, alpha / max(tests, 1))
    return min(1.0, math.sqrt(lam / (4.0 * effective_samples(budget, reference_budget))))


def compute_min_detectable_shift(tokens: int, alpha: float, mean_variance: float, tests: int = 1) -> float:
    """Smallest mean surprise shift (nats per token) the two-sided z-test at alpha / tests
    detects with probability >= 0.99, for `tokens` tokens of mean surprise variance."""
    if tokens < 1 or mean_variance <= 0:
        return math.inf
    z = float(stats.norm.isf(alpha / max(tests, 1) / 2.0) + stats.norm.isf(1.0 - DETECTION_PROBABILITY))
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
) -> PowerReport:
    """The power of a `statistical_check` with this budget: the smallest TV (per-position and
    pair marginals) and the smallest surprise shift detected with probability >= 0.99.
    `tests` defaults to the family size of a check on `num_cells` cells."""
    check_budget(budget, alpha)
    family = tests if tests is not None else 3 * num_cells + 6
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
