"""The sub-tests of the statistical engine, each a function of count tables
(spec/statistical_oracle.md, "Sub-tests"). Each returns a `TestResult`: its statistic, p-value,
the false-fail probability it is judged at, and an effect size in the test's own units."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from .counts import PIT_BINS, IntArray, from_fixed

MIN_EXPECTED = 10.0  # categories expected fewer times are pooled (chi-square tail accuracy)
PIT_CHI2_BINS = 16  # the fine PIT histogram is merged into this many equal bins
FloatArray = npt.NDArray[np.float64]


def format_p_value(p: float, digits: int = 3) -> str:
    """A p-value for a table or a caption: 0.0 is a p below the float range (~1e-308), shown as
    "<1e-300" rather than as a zero no test can return."""
    return f"{p:.{digits}g}" if p > 0 else "<1e-300"


@dataclass(frozen=True)
class TestResult:
    name: str
    statistic: float
    p_value: float
    alpha: float  # the false-fail probability this sub-test is judged at (after Bonferroni)
    effect_size: float
    detail: dict[str, Any] = field(default_factory=dict)

    __test__ = False  # not a pytest class

    @property
    def passed(self) -> bool:
        return self.p_value > self.alpha

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statistic": finite_or_none(self.statistic),
            "p_value": self.p_value,
            "alpha": self.alpha,
            "effect_size": finite_or_none(self.effect_size),
            "passed": self.passed,
            "detail": self.detail,
        }


def finite_or_none(value: float) -> float | None:
    """JSON has no infinity: a certain failure's statistic is written as null."""
    return value if math.isfinite(value) else None


def pool_small(expected: FloatArray, *observed: FloatArray) -> tuple[FloatArray, list[FloatArray]]:
    """Merge the categories expected < MIN_EXPECTED times (smallest first) into one pool,
    growing the pool with the next smallest category until it too reaches MIN_EXPECTED."""
    order = [int(i) for i in np.argsort(expected, kind="stable")]
    pool: list[int] = []
    while order and (expected[order[0]] < MIN_EXPECTED or (pool and expected[pool].sum() < MIN_EXPECTED)):
        pool.append(order.pop(0))
    if not pool:
        return expected, list(observed)
    keep = sorted(order)
    pooled = [np.append(o[keep], o[pool].sum()) for o in observed]
    return np.append(expected[keep], expected[pool].sum()), pooled


def compute_likelihood_ratio(observed: FloatArray, expected: FloatArray) -> FloatArray:
    """G = 2 sum O log(O / E) per row (last axis), 0 log 0 = 0: the likelihood-ratio statistic.
    Asymptotically chi-square like Pearson's X^2 (same noncentrality), but with the right large-
    deviation exponent: P(G >= g) = exp(-g/2 + O(log g)) by the method of types, where X^2 is
    heavier-tailed (one category expected 10 times and seen 38 times adds 78 to X^2, 45 to G).
    The sub-tests are judged at alpha / (family x looks) ~ 1e-10, deep in that tail."""
    ratio = np.divide(observed, expected, out=np.ones_like(observed), where=observed > 0)
    terms = np.where(observed > 0, observed * np.log(ratio), 0.0) - (observed - expected)
    g: FloatArray = 2.0 * terms.sum(axis=-1)
    return g


def goodness_of_fit(name: str, observed: IntArray, law: FloatArray, alpha: float) -> TestResult:
    """G-test (likelihood ratio, `compute_likelihood_ratio`) of counts against a known law, with
    pooling; effect: TV estimate."""
    n = float(observed.sum())
    obs = observed.astype(np.float64)
    expected = n * law
    support = expected > 0
    outside = float(obs[~support].sum())
    if outside > 0:  # a token the law gives probability 0: certain failure
        return TestResult(name, math.inf, 0.0, alpha, outside / n, {"impossible_tokens": outside})
    pooled_expected, (pooled_obs,) = pool_small(expected[support], obs[support])
    categories = pooled_expected.size
    tv = 0.5 * float(np.abs(obs / n - law).sum()) if n else 0.0
    if categories < 2 or n == 0:
        return TestResult(name, 0.0, 1.0, alpha, tv, {"categories": categories, "samples": n})
    statistic = float(compute_likelihood_ratio(pooled_obs, pooled_expected))
    p_value = float(stats.chi2.sf(statistic, categories - 1))
    return TestResult(name, statistic, p_value, alpha, tv, {"categories": categories, "samples": n})


def homogeneity(name: str, observed: IntArray, reference: IntArray, alpha: float) -> TestResult:
    """Two-sample chi-square (2 x K contingency, pooled); effect: TV of the empirical laws."""
    a, b = observed.astype(np.float64).ravel(), reference.astype(np.float64).ravel()
    n, m = float(a.sum()), float(b.sum())
    if n == 0 or m == 0:
        return TestResult(name, 0.0, 1.0, alpha, 0.0, {"samples": n, "reference_samples": m})
    total = a + b
    seen = total > 0
    pooled_total, (pa, pb) = pool_small(total[seen] * min(n, m) / (n + m), a[seen], b[seen])
    tv = 0.5 * float(np.abs(a / n - b / m).sum())
    categories = pooled_total.size
    if categories < 2:
        return TestResult(name, 0.0, 1.0, alpha, tv, {"categories": categories})
    share = (pa + pb) / (n + m)
    statistic = float(((pa - n * share) ** 2 / (n * share)).sum() + ((pb - m * share) ** 2 / (m * share)).sum())
    p_value = float(stats.chi2.sf(statistic, categories - 1))
    return TestResult(name, statistic, p_value, alpha, tv, {"categories": categories, "samples": n})


def merged_bins(fine: IntArray, bins: int = PIT_CHI2_BINS) -> IntArray:
    merged: IntArray = fine.reshape(bins, PIT_BINS // bins).sum(axis=1)
    return merged


def pit_uniformity(name: str, fine: IntArray, alpha: float) -> TestResult:
    """Chi-square of the PIT histogram against Uniform(0, 1); effect: largest bin deviation."""
    counts = merged_bins(fine)
    n = float(counts.sum())
    if n == 0:
        return TestResult(name, 0.0, 1.0, alpha, 0.0, {"values": 0})
    law = np.full(counts.size, 1.0 / counts.size)
    result = goodness_of_fit(name, counts, law, alpha)
    deviation = np.abs(counts / n - law)
    return TestResult(
        name,
        result.statistic,
        result.p_value,
        alpha,
        float(deviation.max()),
        {"values": n, "bins": counts.size, "bin_frequencies": (counts / n).round(5).tolist()},
    )


def pit_ks(name: str, fine: IntArray, alpha: float) -> TestResult:
    """Kolmogorov-Smirnov distance of the PIT values from Uniform(0, 1), read at the fine
    histogram's edges (a lower bound on the exact D, so the p-value is conservative)."""
    n = int(fine.sum())
    if n == 0:
        return TestResult(name, 0.0, 1.0, alpha, 0.0, {"values": 0})
    ecdf = np.cumsum(fine) / n
    edges = np.arange(1, PIT_BINS + 1) / PIT_BINS
    distance = float(np.abs(ecdf - edges).max())
    p_value = float(stats.kstwo.sf(distance, n))
    return TestResult(name, distance, p_value, alpha, distance, {"values": n, "grid": PIT_BINS})


def surprise_martingale(name: str, surprise: IntArray, alpha: float) -> TestResult:
    """z = sum(-log p(x_t) - H_t) / sqrt(sum Var_t): N(0, 1) under losslessness (martingale CLT).
    Effect: the surprise deficit in nats per token (> 0: tokens likelier than AR draws them)."""
    tokens, impossible = int(surprise[0]), int(surprise[1])
    total, variance = from_fixed(surprise[2]), from_fixed(surprise[3])
    detail = {"tokens": tokens, "impossible_tokens": impossible, "sum_variance": variance}
    if impossible:
        return TestResult(name, math.inf, 0.0, alpha, math.inf, detail)
    deficit = -total / tokens if tokens else 0.0
    if variance <= 1e-9:  # deterministic target (greedy): the surprise must be exactly zero
        passed = abs(total) <= 1e-6
        return TestResult(name, 0.0 if passed else math.inf, 1.0 if passed else 0.0, alpha, deficit, detail)
    z = total / math.sqrt(variance)
    return TestResult(name, z, float(2.0 * stats.norm.sf(abs(z))), alpha, deficit, detail)


def acceptance_hazard(name: str, hazard: IntArray, alpha: float) -> TestResult:
    """At every draft depth k: accepts ~ sum of Bernoulli(alpha_i), alpha_i = sum min(p_i, q_i).
    Statistic: sum_k z_k^2 ~ chi2(#depths). Effect: (accepts - sum alpha) / trials, largest |.|."""
    trials, accepts = hazard[:, 0].astype(np.float64), hazard[:, 1].astype(np.float64)
    expected = np.array([from_fixed(v) for v in hazard[:, 2]])
    variance = np.array([from_fixed(v) for v in hazard[:, 3]])
    used = trials > 0
    if not used.any():
        return TestResult(name, 0.0, 1.0, alpha, 0.0, {"trials": 0})
    excess = np.where(used, (accepts - expected) / np.maximum(trials, 1.0), 0.0)
    effect = float(excess[np.argmax(np.abs(excess))])
    detail = {
        "trials": trials[used].astype(int).tolist(),
        "accept_rate": (accepts[used] / trials[used]).round(5).tolist(),
        "expected_rate": (expected[used] / trials[used]).round(5).tolist(),
    }
    random = used & (variance > 1e-9)
    certain = used & ~random
    if bool((np.abs(accepts[certain] - expected[certain]) > 0.5).any()):
        return TestResult(name, math.inf, 0.0, alpha, effect, detail)  # a certain event went the other way
    if not random.any():
        return TestResult(name, 0.0, 1.0, alpha, effect, detail)
    z = (accepts[random] - expected[random]) / np.sqrt(variance[random])
    statistic = float((z**2).sum())
    return TestResult(name, statistic, float(stats.chi2.sf(statistic, int(random.sum()))), alpha, effect, detail)


def conditional_fit(name: str, observed: IntArray, conditionals: FloatArray, alpha: float) -> TestResult:
    """Counts [G, V] of the token at one cell, grouped by the prefix before it, against the AR
    conditionals [G, V] of each prefix. Given the group sizes N_g, the rows are independent
    Multinomial(N_g, p(. | g)) under AR, so the summed G statistics are chi-square with
    sum_g (K_g - 1) degrees of freedom (each row pooled like `goodness_of_fit`).
    Effect: the mean over samples of the TV between a prefix's empirical and AR conditional."""
    counts = observed.astype(np.float64)
    sizes = counts.sum(axis=1)
    expected = sizes[:, None] * conditionals
    support = expected > 0
    total = float(sizes.sum())
    impossible = float(counts[~support].sum())
    if impossible > 0:  # a token impossible after its prefix: certain failure
        return TestResult(name, math.inf, 0.0, alpha, math.inf, {"impossible_tokens": impossible})
    effect = 0.5 * float(np.abs(counts - expected).sum()) / total if total else 0.0
    # rows whose every possible token is expected >= MIN_EXPECTED need no pooling: vectorised
    plain = (sizes > 0) & np.where(support, expected >= MIN_EXPECTED, True).all(axis=1)
    statistic = float(compute_likelihood_ratio(counts[plain], expected[plain]).sum())
    degrees = int((support[plain].sum(axis=1) - 1).clip(min=0).sum())
    for row in np.flatnonzero((sizes > 0) & ~plain):
        kept = support[row]
        pooled_expected, (pooled,) = pool_small(expected[row][kept], counts[row][kept])
        if pooled_expected.size >= 2:
            statistic += float(compute_likelihood_ratio(pooled, pooled_expected))
            degrees += pooled_expected.size - 1
    detail = {"degrees_of_freedom": degrees, "samples": total}
    if degrees == 0:
        return TestResult(name, 0.0, 1.0, alpha, effect, detail)
    return TestResult(name, statistic, float(stats.chi2.sf(statistic, degrees)), alpha, effect, detail)
