"""Properties of spec/sampling.md: the one function from logits to the target distribution."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given

from jacobi_oracle.spec.errors import InvalidLogitsError, InvalidParameterError, ShapeMismatchError
from jacobi_oracle.spec.sampling import Sampling

from .strategies import logit_matrices, samplings


@given(st.data())
def test_target_probs_are_distributions(data: st.DataObject) -> None:
    logits = data.draw(logit_matrices())
    sampling = data.draw(samplings(logits.shape[1]))
    uncond = 0.5 * logits.roll(1, dims=1) if sampling.uses_cfg else None
    probs = sampling.target_probs(logits, uncond)
    assert probs.dtype == torch.float64
    assert bool((probs >= 0).all())
    assert torch.allclose(probs.sum(-1), torch.ones(probs.shape[0], dtype=torch.float64), atol=1e-12)


@given(logit_matrices(), st.integers(1, 12))
def test_top_k_support_is_the_k_largest_logits(logits: torch.Tensor, k: int) -> None:
    k = min(k, logits.shape[1])
    probs = Sampling(top_k=k).target_probs(logits)
    for row, p in zip(logits, probs, strict=True):
        support = (p > 0).nonzero().flatten().tolist()
        assert 1 <= len(support) <= k
        outside = [v for i, v in enumerate(row.tolist()) if i not in support]
        assert all(row[s] >= max(outside, default=-1e9) for s in support)


@given(logit_matrices(), st.floats(0.01, 1.0))
def test_top_p_keeps_the_smallest_prefix_reaching_p(logits: torch.Tensor, top_p: float) -> None:
    plain = Sampling().target_probs(logits)
    probs = Sampling(top_p=top_p).target_probs(logits)
    for full, kept in zip(plain, probs, strict=True):
        support = kept > 0
        mass = float(full[support].sum())
        assert mass >= top_p - 1e-12  # the kept prefix reaches top_p
        smallest = float(full[support].min())
        assert mass - smallest < top_p + 1e-12  # and dropping its least likely token would not
        assert torch.allclose(kept[support], full[support] / mass, atol=1e-12)


@given(logit_matrices())
def test_cfg_at_scale_one_equals_the_conditional(logits: torch.Tensor) -> None:
    uncond = torch.zeros_like(logits)
    guided = Sampling(cfg_scale=1.0).target_probs(logits, uncond)
    assert torch.equal(guided, Sampling().target_probs(logits))


@given(logit_matrices())
def test_cfg_follows_u_plus_s_times_c_minus_u(logits: torch.Tensor) -> None:
    uncond = torch.flip(logits, dims=[1])
    scale = 3.0
    expected = torch.softmax(uncond + scale * (logits - uncond), dim=-1)
    assert torch.allclose(Sampling(cfg_scale=scale).target_probs(logits, uncond), expected, atol=1e-12)


@given(logit_matrices())
def test_low_temperature_approaches_greedy(logits: torch.Tensor) -> None:
    greedy = Sampling(greedy=True).target_probs(logits)
    cold = Sampling(temperature=1e-3).target_probs(logits)
    gap = torch.sort(logits, dim=-1, descending=True).values
    clear = (gap[:, 0] - gap[:, 1]) > 0.1  # a unique argmax by a margin
    assert torch.allclose(cold[clear], greedy[clear], atol=1e-12)


def test_greedy_is_one_hot_on_the_lowest_argmax() -> None:
    probs = Sampling(greedy=True).target_probs(torch.tensor([[1.0, 3.0, 3.0]]))
    assert probs.tolist() == [[0.0, 1.0, 0.0]]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"temperature": 0.0}, "0.0"),
        ({"temperature": -1.0}, "-1.0"),
        ({"top_k": 0}, "0"),
        ({"top_p": 0.0}, "0.0"),
        ({"top_p": 1.5}, "1.5"),
        ({"cfg_scale": -0.5}, "-0.5"),
    ],
)
def test_invalid_sampling_parameters_are_named(kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(InvalidParameterError, match=named.replace(".", r"\.")):
        Sampling(**kwargs)  # type: ignore[arg-type]


def test_invalid_top_k_above_vocab() -> None:
    with pytest.raises(InvalidParameterError, match="top_k=5 exceeds the vocabulary size 3"):
        Sampling(top_k=5).target_probs(torch.zeros(1, 3))


def test_invalid_logits_nan_or_inf() -> None:
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InvalidLogitsError, match="NaN or inf"):
            Sampling().target_probs(torch.tensor([[0.0, bad]]))


def test_invalid_logits_shape() -> None:
    with pytest.raises(InvalidLogitsError, match=r"\(3,\)"):
        Sampling().target_probs(torch.zeros(3))


def test_invalid_cfg_without_unconditional_logits() -> None:
    with pytest.raises(InvalidParameterError, match=r"cfg_scale=2\.0"):
        Sampling(cfg_scale=2.0).target_probs(torch.zeros(1, 3))


def test_invalid_unconditional_shape() -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(1, 4\)"):
        Sampling(cfg_scale=2.0).target_probs(torch.zeros(1, 3), torch.zeros(1, 4))
