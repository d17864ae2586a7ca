"""What a third-party project's CI looks like: its own decoder, the jacobi-oracle plugin
(auto-loaded through its pytest11 entry point: no conftest, no config), one fixture call.

False-fail probabilities: the exact-engine tests are deterministic (a lossless decoder's total
variation is ~1e-17, the threshold 1e-12); each statistical test fails a lossless decoder with
probability <= alpha = 1e-6. Every check has a broken decoder it must reject.
"""

from __future__ import annotations

import pytest
from external_sjd import (
    broken_sjd_step,
    broken_speculative_jacobi,
    broken_speculative_jacobi_torch,
    sjd_output,
    sjd_start,
    sjd_step,
    speculative_jacobi,
    speculative_jacobi_torch,
)

from jacobi_oracle.spec.errors import UnsupportedStrategyError
from jacobi_oracle.testing import wrap_decoder, wrap_stepped_decoder

STAT_BUDGET = 600  # hash-tiny: the check then detects a per-cell TV >= ~0.16 w.p. >= 0.99 (compute_min_detectable_tv)


def test_external_sjd_is_lossless_exactly(lossless_oracle):
    report = lossless_oracle(speculative_jacobi)
    assert report.engine == "exact" and report.passed


def test_external_sjd_with_the_wrong_residual_is_rejected(lossless_oracle):
    with pytest.raises(AssertionError, match="NOT lossless"):
        lossless_oracle(broken_speculative_jacobi)


@pytest.mark.lossless(model="hash")  # V=3, 2x3: the stepped form merges states, ~1 s exactly
def test_external_stepped_sjd_is_lossless_exactly_on_hash(lossless_oracle):
    report = lossless_oracle(wrap_stepped_decoder(sjd_start, sjd_step, sjd_output), engine="exact")
    assert report.passed


@pytest.mark.lossless(model="hash")
def test_external_stepped_sjd_with_the_wrong_residual_is_rejected_on_hash(lossless_oracle):
    with pytest.raises(AssertionError, match="NOT lossless"):
        lossless_oracle(wrap_stepped_decoder(sjd_start, broken_sjd_step, sjd_output), engine="exact")


@pytest.mark.lossless(engine="stat", budget=STAT_BUDGET, alpha=1e-6)
def test_external_sjd_on_a_torch_generator_passes_the_statistical_check(lossless_oracle):
    report = lossless_oracle(wrap_decoder(speculative_jacobi_torch, randomness="torch"))
    assert report.engine == "stat"


@pytest.mark.lossless(engine="stat", budget=STAT_BUDGET, alpha=1e-6)
def test_external_always_accept_on_a_torch_generator_is_rejected(lossless_oracle):
    with pytest.raises(AssertionError, match="FAILED the statistical"):
        lossless_oracle(wrap_decoder(broken_speculative_jacobi_torch, randomness="torch"))


def test_a_torch_generator_decoder_cannot_be_checked_exactly(lossless_oracle):
    with pytest.raises(UnsupportedStrategyError, match=r"torch\.Generator"):
        lossless_oracle(wrap_decoder(speculative_jacobi_torch, randomness="torch"), engine="exact")
