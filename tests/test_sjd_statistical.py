"""SJD against AR sampling on the tiny transformer (L=16, V=8), too large to enumerate.

Two-sample chi-square tests (jacobi_oracle.oracle.statistical.tests.homogeneity) on the
per-position laws (16 tests) and the raster-adjacent pair laws (15 tests). False-fail
probability of the whole family: FAMILY_ALPHA = 1e-6, split by Bonferroni over the 31 tests, so
a lossless decoder fails this test with probability <= 1e-6. Negative control: the same test
must reject SJD with mislabelled draft laws (proofs/counterexample.py: uniform drafts recorded
with q(0) = 0.95, window 8), a known-lossy mutant; measured when written: its worst sub-test had
p ~ 4e-18 against the per-test threshold 3.2e-8, so the control is far from the boundary.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from jacobi_oracle.models.registry import build_model
from jacobi_oracle.oracle.statistical.tests import TestResult, homogeneity
from jacobi_oracle.proofs.counterexample import mislabelled_sjd
from jacobi_oracle.reference.presets import ar, sjd
from jacobi_oracle.spec.randomness import KeyedRandomness
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Strategy

SAMPLES = 400  # per decoder
FAMILY_ALPHA = 1e-6  # false-fail probability of the whole test
VOCAB, CELLS = 8, 16


@functools.cache
def token_samples(name: str) -> np.ndarray:
    strategies: dict[str, Strategy] = {
        "ar": ar(),
        "sjd": sjd(4, q="one-hot"),
        "mutant": mislabelled_sjd(8, claimed_first=0.95),
    }
    strategy = strategies[name]
    seed = {"ar": 1, "sjd": 2, "mutant": 3}[name]  # independent noise for each sample set
    case = build_model("transformer-16")
    rows = [
        strategy.decode(case.model, case.condition, case.layout, Sampling(), KeyedRandomness(seed, i)).tokens
        for i in range(SAMPLES)
    ]
    return np.array(rows, dtype=np.int64)


def family(candidate: np.ndarray, reference: np.ndarray) -> list[TestResult]:
    tests = 2 * CELLS - 1
    alpha = FAMILY_ALPHA / tests
    out = []
    for t in range(CELLS):
        a = np.bincount(candidate[:, t], minlength=VOCAB)
        b = np.bincount(reference[:, t], minlength=VOCAB)
        out.append(homogeneity(f"position {t}", a, b, alpha))
    for t in range(CELLS - 1):
        a = np.bincount(candidate[:, t] * VOCAB + candidate[:, t + 1], minlength=VOCAB * VOCAB)
        b = np.bincount(reference[:, t] * VOCAB + reference[:, t + 1], minlength=VOCAB * VOCAB)
        out.append(homogeneity(f"pair {t},{t + 1}", a, b, alpha))
    assert len(out) == tests
    return out


@pytest.mark.slow
def test_sjd_matches_ar_per_position_and_adjacent_pair() -> None:
    results = family(token_samples("sjd"), token_samples("ar"))
    failed = [r for r in results if not r.passed]
    assert not failed, [(r.name, r.p_value, r.effect_size) for r in failed]


@pytest.mark.slow
def test_negative_control_mislabelled_q_is_rejected() -> None:
    results = family(token_samples("mutant"), token_samples("ar"))
    worst = min(results, key=lambda r: r.p_value)
    print(f"mutant: worst {worst.name} p={worst.p_value:.3g} tv={worst.effect_size:.3f}")
    assert not worst.passed
