"""Every precondition of the foundation raises a typed error that names the bad value."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from jacobi_oracle.accelerated import build_accelerated
from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.reference.presets import build_preset, sjd
from jacobi_oracle.spec.errors import (
    ConditionError,
    InvalidLogitsError,
    InvalidParameterError,
    ProbabilityError,
    ShapeMismatchError,
)
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.randomness import EventKey, KeyedRandomness
from jacobi_oracle.spec.sampling import Sampling


class BrokenModel:
    """A model whose logits are corrupted in a chosen way."""

    vocab_size = 3
    num_classes = 2
    num_positions = 6

    def __init__(self, corrupt: str) -> None:
        self.corrupt = corrupt
        self.inner = HashModel()

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        out = self.inner.logits(condition, key_tokens, key_positions, query_positions, visible)
        if self.corrupt == "nan":
            out[0, 1] = float("nan")
        elif self.corrupt == "inf":
            out[-1, 0] = float("inf")
        elif self.corrupt == "shape":
            out = out[:, :2]
        return out


def decode(model: object, strategy: str = "sjd") -> None:
    build_preset(strategy).decode(model, 0, Layout(2, 3), Sampling(), KeyedRandomness(0))  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["ar", "sjd"])
@pytest.mark.parametrize(
    ("corrupt", "message"), [("nan", "NaN or inf"), ("inf", "NaN or inf"), ("shape", r"\(1, 2\)|, 2\)")]
)
def test_invalid_model_output_is_refused(strategy: str, corrupt: str, message: str) -> None:
    with pytest.raises(InvalidLogitsError, match=message):
        decode(BrokenModel(corrupt), strategy)


@pytest.mark.parametrize("window", [0, -3])
def test_invalid_window_is_named(window: int) -> None:
    with pytest.raises(InvalidParameterError, match=f"window must be an int >= 1, got {window}"):
        sjd(window)


def test_invalid_grid_longer_than_the_model() -> None:
    with pytest.raises(ShapeMismatchError, match="layout needs 9 positions, the model has 6"):
        Problem(HashModel(), 0, Layout(3, 3), Sampling())


def test_invalid_end_of_row_token_outside_vocab() -> None:
    model = HashModel(num_positions=8)
    with pytest.raises(ShapeMismatchError, match="end_of_row_token 7"):
        Problem(model, 0, Layout(2, 3, end_of_row_token=7), Sampling())


@pytest.mark.parametrize("condition", [2, -1])
def test_invalid_condition_is_named(condition: int) -> None:
    with pytest.raises(ConditionError, match=f"condition {condition}"):
        Problem(HashModel(), condition, Layout(2, 3), Sampling())


def test_invalid_condition_for_an_unconditional_model() -> None:
    with pytest.raises(ConditionError, match="unconditional model"):
        Problem(HashModel(num_classes=0), 0, Layout(2, 3), Sampling())


def test_invalid_cfg_without_a_condition() -> None:
    with pytest.raises(ConditionError, match=r"cfg_scale=3\.0"):
        Problem(HashModel(), None, Layout(2, 3), Sampling(cfg_scale=3.0))


def test_invalid_top_k_above_the_model_vocab() -> None:
    with pytest.raises(InvalidParameterError, match="top_k=4 exceeds the vocabulary size 3"):
        Problem(HashModel(), 0, Layout(2, 3), Sampling(top_k=4))


@pytest.mark.parametrize(
    ("probs", "message"),
    [([0.5, 0.4], "sum to 0.9"), ([1.2, -0.2], "finite and >= 0"), ([float("nan"), 1.0], "finite")],
)
def test_invalid_distributions_are_refused(probs: list[float], message: str) -> None:
    with pytest.raises(ProbabilityError, match=message):
        KeyedRandomness(0).categorical(torch.tensor(probs, dtype=torch.float64), EventKey("t", 0, 0))


def test_invalid_bernoulli_probability() -> None:
    with pytest.raises(ProbabilityError, match=r"1\.5"):
        KeyedRandomness(0).bernoulli(1.5, EventKey("t", 0, 0))


def test_unknown_preset_is_named() -> None:
    with pytest.raises(InvalidParameterError, match="unknown strategy 'nope'"):
        build_preset("nope")


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: build_preset("sjd", window=0), "window must be an int >= 1, got 0"),
        (lambda: build_preset("sjd", window=True), "window must be an int >= 1, got True"),
        (lambda: build_accelerated("sjd", window=0), "window must be an int >= 1, got 0"),
        (lambda: build_preset("sjdpp", threshold=-1.0), r"reuse threshold must be a finite number >= 0, got -1\.0"),
        (lambda: build_accelerated("sjdpp", threshold=float("inf")), "reuse threshold must be a finite number >= 0"),
    ],
)
def test_reference_and_accelerated_refuse_the_same_bad_parameters_with_one_message(build: Any, match: str) -> None:
    """Window and reuse-threshold checks have one home (spec/errors.py): both implementations
    raise the same typed error with the same words."""
    with pytest.raises(InvalidParameterError, match=match):
        build()
