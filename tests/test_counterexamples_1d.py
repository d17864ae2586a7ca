"""The counterexamples of proofs/counterexamples.md, recomputed with the exact engine.

Each lossy preset of the raster-window family gets a small concrete case where its exact output
law differs from the AR law (TV > 1e-6, printed), and, where the case is small enough to solve
by hand, the engine's TV must equal the closed form derived in proofs/counterexamples.md from
the model's own conditionals (nothing here is copied from a run)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.oracle.exact import LOSSLESS_TOLERANCE, check_exact
from jacobi_oracle.reference.keys import causal_query
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.spec import Layout, Problem, Sampling

LOSSY_TV_FLOOR = 1e-6
CLOSED_FORM_TOLERANCE = 1e-12


def row_problem(vocab: int, width: int, greedy: bool = False) -> Problem:
    """HashModel(seed 0), one row of `width` cells, condition 0, T = 1 (or greedy) sampling."""
    model = HashModel(vocab_size=vocab, num_positions=width, row_stride=width)
    return Problem(model, 0, Layout(1, width), Sampling(greedy=greedy))


def first_cell_target(problem: Problem) -> torch.Tensor:
    """p_0: the AR conditional of cell 0 (empty prefix)."""
    return causal_query(problem, ())


def lossy_tv(name: str, problem: Problem, **params: Any) -> float:
    verdict = check_exact(build_preset(name, **params), problem)
    print(f"{name} {params}: exact TV = {verdict.total_variation:.6g}, mean passes {verdict.mean_forward_passes:.4f}")
    assert verdict.total_variation > LOSSY_TV_FLOOR, verdict
    return verdict.total_variation


def test_jacobi_under_sampling_outputs_only_the_greedy_token() -> None:
    """1 cell, V=2: jacobi commits argmax p_0, AR samples p_0: TV = 1 - max p_0."""
    problem = row_problem(2, 1)
    tv = lossy_tv("jacobi", problem, window=2)
    assert tv == pytest.approx(1.0 - float(first_cell_target(problem).max()), abs=CLOSED_FORM_TOLERANCE)


def test_jacobi_with_greedy_sampling_is_exact_on_the_same_case() -> None:
    verdict = check_exact(build_preset("jacobi", window=2), row_problem(2, 1, greedy=True))
    assert verdict.total_variation <= LOSSLESS_TOLERANCE


def test_lantern_accepts_the_improbable_draft_too_often() -> None:
    """1x2, V=2, window 2, k=1, delta=0.1. Cell 0 gets a uniform one-hot draft; with a the less
    likely token and p_0(a) <= delta: draft b has p~(b) = p(b) + p(a) = 1 (always accepted),
    draft a has p~(a) = p(a) (p(b) > delta moves nothing). So P(x_0 = a) = p(a) / 2, cell 1 is
    the exact bonus: TV = p_0(a) / 2."""
    problem = row_problem(2, 2)
    target = first_cell_target(problem)
    least = float(target.min())
    assert least <= 0.1 < 1.0 - least, "the closed form needs p_0(a) <= delta < p_0(b)"
    tv = lossy_tv("lantern", problem, window=2, neighbours=1, delta=0.1)
    assert tv == pytest.approx(least / 2.0, abs=CLOSED_FORM_TOLERANCE)


def test_gsd_with_a_whole_vocabulary_group_accepts_every_draft() -> None:
    """1x2, V=2, window 2, groups = the whole vocabulary (rank +-1, probability window 1,
    radius 2 > every unit distance): sum_G p / sum_G q = 1, every uniform draft is accepted,
    x_0 is uniform: TV = |p_0(0) - 1/2|."""
    problem = row_problem(2, 2)
    tv = lossy_tv("gsd", problem, window=2, rank_window=1, prob_window=1.0, embedding_radius=2.0)
    assert tv == pytest.approx(abs(float(first_cell_target(problem)[0]) - 0.5), abs=CLOSED_FORM_TOLERANCE)


def test_gsd_with_toy_defaults_is_lossy() -> None:
    """1x3, V=3, window 3 with the preset's toy defaults (rank +-1, 0.15, radius 1.5)."""
    lossy_tv("gsd", row_problem(3, 3), window=3)


def test_sjdpp_verifies_reused_drafts_with_a_stale_q() -> None:
    """1x3, V=2, window 3, threshold 1: a refreshed draft at cell 2 that is unresolved again is
    kept when its probability rose, and later verified with its old q; sjdpp-exact, identical
    except for the recorded q, is exact on the same case."""
    problem = row_problem(2, 3)
    lossy_tv("sjdpp", problem, window=3, threshold=1.0)
    exact = check_exact(build_preset("sjdpp-exact", window=3, threshold=1.0), problem)
    assert exact.total_variation <= LOSSLESS_TOLERANCE, exact
