"""Properties of spec/speculative.md: accept-or-residual has law exactly p."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given

from jacobi_oracle.spec.acceptance import compute_acceptance_probability, compute_residual
from jacobi_oracle.spec.errors import ProbabilityError

from .strategies import distributions_with_zeros


def exact_outcome_law(target: torch.Tensor, draft: torch.Tensor) -> torch.Tensor:
    """Law of the committed token when d ~ q is verified by rule (A) and residual (R)."""
    law = torch.zeros_like(target)
    for d in (draft > 0).nonzero().flatten().tolist():
        accept = compute_acceptance_probability(target, draft, d)
        law[d] += draft[d] * accept
        if accept < 1.0:
            law += draft[d] * (1.0 - accept) * compute_residual(target, draft)
    return law


@given(st.data())
def test_accept_or_residual_has_law_exactly_p(data: st.DataObject) -> None:
    vocab = data.draw(st.integers(2, 10))
    target = data.draw(distributions_with_zeros(vocab))
    draft = data.draw(distributions_with_zeros(vocab))
    assert torch.allclose(exact_outcome_law(target, draft), target, atol=1e-12)


@given(st.data())
def test_the_residual_is_normalised_and_supported_where_p_exceeds_q(data: st.DataObject) -> None:
    vocab = data.draw(st.integers(2, 10))
    target = data.draw(distributions_with_zeros(vocab))
    draft = data.draw(distributions_with_zeros(vocab))
    if torch.allclose(target, draft, atol=1e-15):
        return
    residual = compute_residual(target, draft)
    assert abs(float(residual.sum()) - 1.0) < 1e-12
    assert bool((residual[target <= draft] == 0).all())


@given(st.data())
def test_an_impossible_draft_is_never_proposed(data: st.DataObject) -> None:
    vocab = data.draw(st.integers(2, 10))
    target = data.draw(distributions_with_zeros(vocab))
    draft = data.draw(distributions_with_zeros(vocab))
    zeros = (draft == 0).nonzero().flatten().tolist()
    for d in zeros:
        with pytest.raises(ProbabilityError, match=f"draft token {d}"):
            compute_acceptance_probability(target, draft, d)


def test_negative_control_a_wrong_q_breaks_the_law() -> None:
    """The lemma needs d ~ q: verifying uniform draws against a non-uniform q is caught."""
    target = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    claimed = torch.tensor([0.6, 0.2, 0.2], dtype=torch.float64)
    actual = torch.full((3,), 1 / 3, dtype=torch.float64)
    law = torch.zeros(3, dtype=torch.float64)
    for d in range(3):
        accept = compute_acceptance_probability(target, claimed, d)
        law[d] += actual[d] * accept
        law += actual[d] * (1 - accept) * compute_residual(target, claimed)
    assert float((law - target).abs().sum()) > 1e-3
