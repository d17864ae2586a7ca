"""Machine check of proofs/counterexamples_2d.md: the counterexamples for zipar and pjd are
recomputed here (no total variation is written down anywhere)."""

from __future__ import annotations

from itertools import product

import pytest

from jacobi_oracle.models.toy import HashModel, MarkovGrid
from jacobi_oracle.oracle.exact import LOSSLESS_TOLERANCE, Law, compare_laws, exact_ar_law, exact_output_law
from jacobi_oracle.reference.keys import committed_keys, run_queries
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.spec import Layout, Problem, Sampling

LOSSY_TV_FLOOR = 1e-6


def hash_problem() -> Problem:
    return Problem(HashModel(vocab_size=2, num_positions=6, row_stride=3), 0, Layout(2, 3), Sampling())


def markov_problem() -> Problem:
    return Problem(MarkovGrid(vocab_size=2, height=2, width=3), 0, Layout(2, 3), Sampling())


def zipar_closed_form(problem: Problem, w: int) -> Law:
    """ZipAR's law on a 2-row grid, factor by factor: cell (1, c) is sampled from the conditional
    that sees every committed cell except row 0's columns >= c + w (spec/zipar.md)."""
    layout, vocab = problem.layout, problem.model.vocab_size
    assert layout.height == 2
    law: Law = {}
    for x in product(range(vocab), repeat=layout.num_cells):
        weight = 1.0
        for t in range(layout.num_cells):
            row, col = layout.row_col(t)
            hidden = set(range(min(col + w, layout.width), layout.width)) if row == 1 else set()
            keys = committed_keys(problem, {c: x[c] for c in range(t) if c not in hidden})
            probs = run_queries(problem, keys, [t], [[k.position < layout.position(t) for k in keys]])[0]
            weight *= float(probs[x[t]])
        law[x] = weight
    return law


def test_zipar_counterexample_is_its_closed_form_and_not_ar() -> None:
    problem, w = hash_problem(), 2
    closed = zipar_closed_form(problem, w)
    engine = exact_output_law(build_preset("zipar", window=w), problem).law
    ar = exact_ar_law(problem)
    cells, vocab = problem.layout.num_cells, problem.model.vocab_size
    assert compare_laws(engine, closed, cells, vocab).total_variation <= LOSSLESS_TOLERANCE
    tv = compare_laws(closed, ar, cells, vocab)
    print(f"zipar w={w} on hash 2x3 V=2: TV {tv.total_variation:.4g}, worst cell {tv.worst_position}")
    assert tv.total_variation > LOSSY_TV_FLOOR
    assert tv.worst_position == problem.layout.cell(1, 0)  # the cell sampled without (0, 2)


def test_zipar_is_exact_on_a_first_order_markov_grid() -> None:
    """The control: when (1, c) reads only (0, c) and (1, c-1), hiding (0, >= c+w) changes nothing."""
    problem = markov_problem()
    law = exact_output_law(build_preset("zipar", window=2), problem).law
    assert compare_laws(law, exact_ar_law(problem), 6, 2).total_variation <= LOSSLESS_TOLERANCE


def pjd_tv(problem: Problem, threshold: float) -> float:
    law = exact_output_law(build_preset("pjd", reuse_threshold=threshold), problem).law
    return compare_laws(law, exact_ar_law(problem), problem.layout.num_cells, 2).total_variation


@pytest.mark.parametrize(
    ("name", "make", "threshold", "lossy"),
    [
        ("markov", markov_problem, 0.5, True),  # cause 2 alone: the reuse rule
        ("markov", markov_problem, 1.0, False),  # neither cause: no reuse, lag keeps (r-1, j) committed
        ("hash", hash_problem, 1.0, True),  # cause 1 alone: partial-context verification
    ],
)
def test_pjd_counterexamples_separate_its_two_causes(name: str, make: object, threshold: float, lossy: bool) -> None:
    assert callable(make)
    tv = pjd_tv(make(), threshold)
    print(f"pjd reuse_threshold={threshold} on {name} 2x3 V=2: TV {tv:.4g}")
    assert (tv > LOSSY_TV_FLOOR) if lossy else (tv <= LOSSLESS_TOLERANCE)
