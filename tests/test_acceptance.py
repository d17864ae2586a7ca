"""Properties of spec/speculative.md: accept-or-residual has law exactly p."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given

from jacobi_oracle.spec.acceptance import (
    compute_acceptance_probabilities,
    compute_acceptance_probability,
    compute_residual,
    compute_residual_mass,
)
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


@given(st.data())
def test_a_batch_is_judged_exactly_as_its_rows_one_by_one(data: st.DataObject) -> None:
    """The batched form ([..., V], what accelerated/ calls) equals the [V] form on every row,
    bit for bit; undrafted rows give 0 and their q is never read."""
    vocab, rows = data.draw(st.integers(2, 6)), data.draw(st.integers(1, 5))
    target = torch.stack([data.draw(distributions_with_zeros(vocab)) for _ in range(rows)])
    draft = torch.stack([data.draw(distributions_with_zeros(vocab)) for _ in range(rows)])
    tokens = torch.tensor([data.draw(st.sampled_from((q > 0).nonzero().flatten().tolist())) for q in draft])
    drafted = torch.tensor(data.draw(st.lists(st.booleans(), min_size=rows, max_size=rows)))
    draft_or_zero = torch.where(drafted[:, None], draft, 0.0)  # an undrafted row's q may be anything
    batched = compute_acceptance_probabilities(
        target.view(1, rows, vocab), draft_or_zero.view(1, rows, vocab), tokens.view(1, rows), drafted.view(1, rows)
    )[0]
    residuals = compute_residual(target.view(rows, 1, vocab), draft.view(rows, 1, vocab))[:, 0]
    for row in range(rows):
        expected = compute_acceptance_probability(target[row], draft[row], int(tokens[row])) if drafted[row] else 0.0
        assert float(batched[row]) == expected
        assert torch.equal(residuals[row], compute_residual(target[row], draft[row]))
        assert float(compute_residual_mass(target[row], draft[row])) == pytest.approx(
            float(torch.clamp(target[row] - draft[row], min=0).sum()), abs=0
        )


def test_a_batch_with_an_impossible_draft_is_refused() -> None:
    target = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    draft = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ProbabilityError, match=r"draft token 1 has draft probability 0\.0"):
        compute_acceptance_probabilities(target, draft, torch.tensor([0, 1]))
    masked = compute_acceptance_probabilities(target, draft, torch.tensor([0, 1]), torch.tensor([True, False]))
    assert masked.tolist() == [1.0, 0.0]  # not drafted: not an error


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
