"""Measured against predicted power of the one-sample tests (spec/statistical_oracle.md,
"Measuring power"): sample counts of whole sequences from a planted law, run the `sequence` and
`conditional[t]` tests at every look of a sequential check, and count the runs that reject.

This simulates the tests on multinomial counts, not the decoders: it measures the power of the
statistics, fast enough for hundreds of runs. A check's other sub-tests can only add rejections,
so a rate measured here is a lower bound on the whole family's (at the same per-test level).
`predict_detection` gives the noncentral chi-square prediction the printed power bounds rest on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .check import compute_conditionals, prefix_table
from .counts import IntArray
from .sequential import compute_look_alpha
from .tests import FloatArray, conditional_fit, goodness_of_fit, pool_small


@dataclass(frozen=True)
class Detection:
    looks: tuple[int, ...]  # cumulative samples at each look
    runs: int
    detected: tuple[int, ...]  # runs rejected at or before each look

    def rate(self, look: int = -1) -> float:
        return self.detected[look] / self.runs

    def clopper_pearson_lower(self, look: int = -1, confidence: float = 0.95) -> float:
        """One-sided lower confidence bound on the detection probability at `look`."""
        k = self.detected[look]
        return 0.0 if k == 0 else float(stats.beta.ppf(1.0 - confidence, k, self.runs - k + 1))


def one_sample_tests(counts: IntArray, law: FloatArray, vocab: int, cells: int, test_alpha: float) -> bool:
    """True when `sequence` or any `conditional[t]` rejects at `test_alpha` (each)."""
    if not goodness_of_fit("sequence", counts, law, test_alpha).passed:
        return True
    for cell in range(1, cells):
        conditionals = compute_conditionals(prefix_table(law, cell, vocab, cells), vocab)
        if not conditional_fit("c", prefix_table(counts, cell, vocab, cells), conditionals, test_alpha).passed:
            return True
    return False


def simulate_detection(
    law: FloatArray,
    alternative: FloatArray,
    vocab: int,
    cells: int,
    looks: list[int],
    alpha: float,
    family: int,
    runs: int,
    seed: int = 0,
    sequential: bool = True,
) -> Detection:
    """Runs of a check whose samples follow `alternative`, judged against `law` at each look:
    the one-sample tests at alpha_k / family (alpha_k = compute_look_alpha(alpha, k) when
    `sequential`, else alpha at every look, i.e. fixed-sample checks of each size)."""
    rng = np.random.default_rng(seed)
    alternative = np.clip(alternative, 0.0, None)  # rounding: law + TV D can be -1e-20 where law ~ 0
    alternative = alternative / alternative.sum()
    detected = np.zeros(len(looks), np.int64)
    for _ in range(runs):
        counts = np.zeros(law.size, np.int64)
        done = 0
        for k, n in enumerate(looks, start=1):
            counts += rng.multinomial(n - done, alternative)
            done = n
            level = (compute_look_alpha(alpha, k) if sequential else alpha) / family
            if not one_sample_tests(counts, law, vocab, cells, level):
                continue
            if not sequential:  # a fixed-sample check of n samples: each look on its own
                detected[k - 1] += 1
                continue
            detected[k - 1 :] += 1  # stopped: rejected at this look and so at every later one
            break
    return Detection(tuple(looks), runs, tuple(int(d) for d in detected))


def pooled_divergence(law: FloatArray, alternative: FloatArray, samples: float) -> tuple[float, int]:
    """chi2(alternative || law) and the degrees of freedom of a Pearson test of `samples`
    samples, after the test's own pooling of categories expected < MIN_EXPECTED times."""
    support = law > 0
    if samples <= 0 or not support.any():
        return 0.0, 0
    pooled_law, (pooled_alternative,) = pool_small(samples * law[support], samples * alternative[support])
    pooled_law, pooled_alternative = pooled_law / samples, pooled_alternative / samples
    divergence = float(((pooled_alternative - pooled_law) ** 2 / pooled_law).sum())
    return divergence, pooled_law.size - 1


def compute_noncentralities(
    law: FloatArray, alternative: FloatArray, vocab: int, cells: int, samples: int
) -> dict[str, tuple[float, int]]:
    """Per test, after pooling at `samples` samples: the noncentrality per sample and the degrees
    of freedom. `sequence`: chi2(P1 || P0) of whole sequences; `conditional[t]`: the sum over
    prefixes g of P1(g) chi2(P1(. | g) || P0(. | g))."""
    out = {"sequence": pooled_divergence(law, alternative, samples)}
    for cell in range(1, cells):
        p0 = prefix_table(law, cell, vocab, cells)
        p1 = prefix_table(alternative, cell, vocab, cells)
        c0, c1 = compute_conditionals(p0, vocab), compute_conditionals(p1, vocab)
        total, degrees = 0.0, 0
        for row in range(p0.shape[0]):
            share = float(p1[row].sum())
            divergence, df = pooled_divergence(c0[row], c1[row], samples * share)
            total += share * divergence
            degrees += df
        out[f"conditional[{cell}]"] = (total, degrees)
    return out


def predict_detection(
    law: FloatArray, alternative: FloatArray, vocab: int, cells: int, samples: int, test_alpha: float
) -> dict[str, float]:
    """P(each one-sample test rejects at `test_alpha`) after `samples` samples of `alternative`,
    by the noncentral chi-square approximation (lambda = samples x noncentrality per sample)."""
    out = {}
    for name, (per_sample, df) in compute_noncentralities(law, alternative, vocab, cells, samples).items():
        if df < 1:
            out[name] = 0.0
            continue
        critical = float(stats.chi2.isf(test_alpha, df))
        out[name] = float(stats.ncx2.sf(critical, df, samples * per_sample))
    return out
