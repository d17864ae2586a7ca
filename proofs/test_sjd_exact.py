"""Machine check of proofs/sjd.md: the exact engine finds SJD's output law equal to the AR law
(total variation <= 1e-12) on every case of the grid in proofs/cases.py, for both initial-draft
laws, and finds the broken variant of proofs/counterexample.py lossy."""

from __future__ import annotations

import time

import pytest

from jacobi_oracle.models.registry import build_model
from jacobi_oracle.oracle.exact import LOSSLESS_TOLERANCE, check_exact
from jacobi_oracle.proofs.cases import Case, grid, problem_for
from jacobi_oracle.proofs.counterexample import counterexample_verdict
from jacobi_oracle.reference.presets import sjd
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.sampling import Sampling

CASES = list(grid())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sjd_output_law_is_the_ar_law(case: Case) -> None:
    # both initial-draft laws, spread over the grid
    strategy = (
        sjd(case.window, recorded_law="one-hot") if case.window == 2 else sjd(case.window, recorded_law="uniform")
    )
    verdict = check_exact(strategy, problem_for(case))
    assert verdict.total_variation <= LOSSLESS_TOLERANCE, verdict
    assert verdict.mean_forward_passes <= case.height * case.width + 1e-9


def test_the_counterexample_is_lossy() -> None:
    verdict = counterexample_verdict()
    print(f"counterexample total variation: {verdict.total_variation:.6g}")
    assert verdict.total_variation > 1e-6
    assert not verdict.lossless


def test_sjd_w3_on_v3_l6_runs_within_a_minute() -> None:
    """The foundation issue's size target: V=3, L=6 (729 sequences), SJD W=3, < 60 s on one core."""
    case = build_model("hash")
    problem = Problem(case.model, case.condition, case.layout, Sampling())
    started = time.perf_counter()
    verdict = check_exact(sjd(3, recorded_law="uniform"), problem)
    seconds = time.perf_counter() - started
    assert verdict.lossless, verdict
    assert seconds < 60.0, f"exact engine took {seconds:.1f} s"
