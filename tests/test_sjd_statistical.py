"""SJD against AR sampling on the tiny transformer (L=16, V=8), too large to enumerate.

The oracle's own two-sample token tests (`check.token_tests`: chi-square homogeneity of the
per-position laws, 16 tests, and of the adjacent-pair laws, 12 across and 12 down). False-fail
probability of the whole family: FAMILY_ALPHA = 1e-6, split by Bonferroni over the 40 tests, so
a lossless decoder fails this test with probability <= 1e-6. Negative control: the same test
must reject SJD with mislabelled draft laws (proofs/counterexample.py: uniform drafts recorded
with q(0) = 0.95, window 8), a known-lossy mutant; measured 2026-12-03: its worst sub-test
(pair[0,1]) had p = 3.9e-18 against the per-test threshold 2.5e-8, so the control is far from
the boundary.
"""

from __future__ import annotations

import functools

import pytest

from jacobi_oracle.models.registry import build_model
from jacobi_oracle.oracle.statistical.check import ReferenceLaw, token_tests
from jacobi_oracle.oracle.statistical.counts import CountTables, adjacent_pairs, count_samples
from jacobi_oracle.oracle.statistical.power import bonferroni_level
from jacobi_oracle.oracle.statistical.tests import TestResult
from jacobi_oracle.proofs.counterexample import mislabelled_sjd
from jacobi_oracle.reference.presets import ar, sjd
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Strategy

SAMPLES = 400  # per decoder
FAMILY_ALPHA = 1e-6  # false-fail probability of the whole test


def problem() -> Problem:
    case = build_model("transformer-16")
    return Problem(case.model, case.condition, case.layout, Sampling())


@functools.cache
def tables(name: str) -> CountTables:
    strategies: dict[str, Strategy] = {
        "ar": ar(),
        "sjd": sjd(4, recorded_law="one-hot"),
        "mutant": mislabelled_sjd(8, claimed_first=0.95),
    }
    seed = {"ar": 1, "sjd": 2, "mutant": 3}[name]  # independent noise for each sample set
    return count_samples(strategies[name], problem(), range(SAMPLES), seed, calibration=False)


def family(candidate: CountTables, reference: CountTables) -> list[TestResult]:
    case = problem()
    tests = case.layout.num_cells + len(adjacent_pairs(case))
    out = token_tests(case, candidate, ReferenceLaw(None, None, reference), bonferroni_level(FAMILY_ALPHA, tests))
    assert len(out) == tests == 40
    return out


@pytest.mark.slow
def test_sjd_matches_ar_per_position_and_adjacent_pair() -> None:
    results = family(tables("sjd"), tables("ar"))
    failed = [r for r in results if not r.passed]
    assert not failed, [(r.name, r.p_value, r.effect_size) for r in failed]


@pytest.mark.slow
def test_negative_control_mislabelled_q_is_rejected() -> None:
    results = family(tables("mutant"), tables("ar"))
    worst = min(results, key=lambda r: r.p_value)
    print(f"mutant: worst {worst.name} p={worst.p_value:.3g} tv={worst.effect_size:.3f}")
    assert not worst.passed
