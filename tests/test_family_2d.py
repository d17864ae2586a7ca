"""Exact verdicts for the 2D family (spec/pjd.md, spec/pjd_exact.md, spec/zipar.md): pjd-exact
has the AR law to 1e-12; pjd, pjd-causal and zipar move it. 2x3 grids with V=2 keep every
exact check to a few seconds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from jacobi_oracle.models.toy import HashModel, MarkovGrid
from jacobi_oracle.oracle.exact import LOSSLESS_TOLERANCE, check_exact
from jacobi_oracle.reference.masks import RowCausalMask
from jacobi_oracle.reference.pjd_exact import PJDExact
from jacobi_oracle.reference.presets import PRESETS, build_preset
from jacobi_oracle.spec import KeyedRandomness, Layout, Problem, Sampling

LOSSY_TV_FLOOR = 1e-6  # a lossy preset must move the law by more than rounding could


def hash_problem(height: int = 2, width: int = 3, vocab: int = 2, end_of_row: int | None = None) -> Problem:
    layout = Layout(height, width, end_of_row)
    model = HashModel(vocab_size=vocab, num_positions=layout.length, row_stride=layout.row_stride)
    return Problem(model, 0, layout, Sampling())


def markov_problem() -> Problem:
    return Problem(MarkovGrid(vocab_size=2, height=2, width=3), 0, Layout(2, 3), Sampling())


@pytest.mark.parametrize(
    ("problem", "params"),
    [
        (hash_problem(), {}),  # c=2, w=3, V's length 3: lower row settled, V crosses rows
        (hash_problem(), {"context": 1, "window": 2, "verify": 4}),  # shadow rows overlap V
        (markov_problem(), {}),
        (hash_problem(2, 2, end_of_row=1), {"context": 1, "window": 2}),  # end-of-row tokens
    ],
    ids=["hash-default", "hash-c1-w2-v4", "markov-default", "hash-end-of-row"],
)
def test_pjd_exact_has_the_ar_law(problem: Problem, params: dict[str, Any]) -> None:
    verdict = check_exact(build_preset("pjd-exact", **params), problem)
    assert verdict.total_variation <= LOSSLESS_TOLERANCE, verdict
    assert PRESETS["pjd-exact"].lossless


def test_pjd_exact_verified_under_the_row_causal_mask_is_rejected() -> None:
    """Negative control: V's queries under the Row-Causal Mask lose the frontier row's drafts,
    so commits follow a partial-context law; the same engine must see it."""
    broken = build_preset("pjd-exact")
    assert isinstance(broken, PJDExact)
    broken = replace(broken, verify_mask=RowCausalMask())
    verdict = check_exact(broken, hash_problem())
    assert verdict.total_variation > LOSSY_TV_FLOOR, verdict


@pytest.mark.parametrize("name", ["pjd-causal", "zipar"])  # pjd: proofs/test_counterexamples_2d.py
def test_lossy_2d_presets_move_the_ar_law(name: str) -> None:
    verdict = check_exact(build_preset(name), hash_problem())
    print(f"{name}: total variation {verdict.total_variation:.3g} on hash 2x3 V=2")
    assert verdict.total_variation > LOSSY_TV_FLOOR, verdict
    assert not PRESETS[name].lossless


def test_pjd_exact_uses_fewer_passes_than_ar_and_decodes_the_same_grid() -> None:
    """Sampled: pjd-exact commits several cells per pass on a 3x4 grid (not a law check)."""
    problem = hash_problem(3, 4, vocab=3)
    decoder = build_preset("pjd-exact", context=2, window=3, verify=6)
    passes = [decoder.decode_problem(problem, KeyedRandomness(7, s)).forward_passes for s in range(20)]
    assert max(passes) <= problem.layout.num_cells
    assert sum(passes) / len(passes) < problem.layout.num_cells
