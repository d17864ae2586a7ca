"""Model: logits for query slots, given visible keys.

A forward pass answers Q *queries* at once. Query q asks for the distribution of the token at
`query_positions[q]`, given exactly the keys (position, token) with `visible[q, key] == True`
(and the condition). Nothing else may influence it; that is what lets a mask (causal,
row-causal, ...) change a conditional, and what the exact toy models honour to the letter.

    logits(condition, key_tokens[N], key_positions[N], query_positions[Q], visible[Q, N]) -> [Q, V]

`condition` is a class id in 0 .. num_classes-1, or None for the unconditional / null class
used by classifier-free guidance. A transformer realises a query for position t either as the
output of the slot holding position t-1 (next-token models) or as a position-query slot
(LPD-style); the contract is the same.

`forward_pass` is the one place that calls a model: it validates the answer and turns it into
target probabilities with `Sampling.target_probs`. With CFG on it asks for conditional and
unconditional logits; that is one forward pass of a batch-doubled model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch

from .errors import ConditionError, InvalidLogitsError, ShapeMismatchError
from .layout import Layout
from .sampling import Sampling


class Model(Protocol):
    @property
    def vocab_size(self) -> int: ...

    @property
    def num_classes(self) -> int:
        """Number of class conditions; 0 for an unconditional-only model (no CFG)."""
        ...

    @property
    def num_positions(self) -> int: ...

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor: ...


def check_index_range(what: str, values: torch.Tensor, size: int) -> None:
    """Verify every entry of `values` is in 0 .. size - 1 (ShapeMismatchError naming the first bad one)."""
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= size):
        bad = values[(values < 0) | (values >= size)][0]
        raise ShapeMismatchError(f"{what} {int(bad)} is outside 0..{size - 1}")


def check_query_ranges(
    model: Model, key_tokens: torch.Tensor, key_positions: torch.Tensor, query_positions: torch.Tensor
) -> None:
    """Verify a call's tokens and positions fit the model (models call this in `logits`)."""
    check_index_range("key token", key_tokens, model.vocab_size)
    check_index_range("key position", key_positions, model.num_positions)
    check_index_range("query position", query_positions, model.num_positions)


class CausalBatchModel(Model, Protocol):
    """A Model that also answers raster-causal queries for a whole batch of sequences in one call
    (spec/model.md, "Batched causal queries"): for every b and query position t = queries[b, w]
    (t <= N), causal_logits(...)[b, w] is logits(class b, tokens[b, :t], positions 0 .. t - 1,
    [t], all visible), the AR conditional, up to floating-point rounding."""

    @property
    def answers_causal_batches(self) -> bool:
        """Whether `causal_logits` is the rule above for this instance (a model whose queries
        mean something else, e.g. LPD's position queries, says False)."""
        ...

    def causal_logits(
        self,
        classes: torch.Tensor,
        tokens: torch.Tensor,
        queries: torch.Tensor,
        cache: dict[str, torch.Tensor] | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B] class rows (num_classes = the null class), [B, N] tokens at positions 0 .. N - 1,
        [B, W] query positions -> [B, W, V] float64 logits. With a `cache` (a dict the model
        fills, one per class column of a decode) the caller vouches that the tokens at cells
        < start[b] are those of the earlier calls with that cache, so the model may reuse what
        it computed for them; a model may ignore the cache (and compute everything)."""
        ...


def causal_batch_model(model: Model, layout: Layout) -> CausalBatchModel | None:
    """`model` as a CausalBatchModel for decoding `layout`, or None where the batched path would
    not be the contract: a layout with end-of-row tokens (positions are not cells), or a model
    without the capability. The capability must be the model's own (its class's): a ModelWrapper
    delegates unknown attributes to the model it wraps, whose batched answers would bypass the
    wrapper's `logits`."""
    if layout.end_of_row_token is not None or not offers_causal_batches(model):
        return None
    return cast(CausalBatchModel, model)


def offers_causal_batches(model: Model) -> bool:
    """Whether `model` answers batched causal queries itself: its class defines `causal_logits`
    and the instance says the rule holds for it (`answers_causal_batches`)."""
    return callable(getattr(type(model), "causal_logits", None)) and bool(
        getattr(model, "answers_causal_batches", False)
    )


class ModelWrapper:
    """Base of models that wrap another (row-entry proxy, prefix cache, audit deadline): the
    wrapped model's sizes, and its optional capabilities (token_embeddings, ...) by delegation.
    Subclasses define `logits`."""

    def __init__(self, model: Model) -> None:
        self.model = model

    @property
    def vocab_size(self) -> int:
        return self.model.vocab_size

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def num_positions(self) -> int:
        return self.model.num_positions

    def __getattr__(self, name: str) -> Any:
        if name == "model":  # not set yet (copy / unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)


@dataclass(frozen=True)
class Problem:
    """What to decode: a model, a condition, a grid and a sampling rule."""

    model: Model
    condition: int | None
    layout: Layout
    sampling: Sampling

    def __post_init__(self) -> None:
        # Verify the grid fits the model's positions
        if self.layout.length > self.model.num_positions:
            raise ShapeMismatchError(
                f"layout needs {self.layout.length} positions, the model has {self.model.num_positions}"
            )
        # Verify the end-of-row token is in the vocabulary
        eor = self.layout.end_of_row_token
        if eor is not None and eor >= self.model.vocab_size:
            raise ShapeMismatchError(
                f"end_of_row_token {eor} is outside the model's vocabulary of {self.model.vocab_size}"
            )
        # Verify the condition is a class of the model
        classes = self.model.num_classes
        if self.condition is not None and not (0 <= self.condition < classes):
            raise ConditionError(
                f"condition {self.condition!r} is not a class of this model (0..{classes - 1})"
                if classes
                else f"condition {self.condition!r} given to an unconditional model"
            )
        # Verify CFG has a null class to guide against
        if self.sampling.uses_cfg and (classes == 0 or self.condition is None):
            raise ConditionError(
                f"cfg_scale={self.sampling.cfg_scale} needs a class-conditional model and a "
                f"condition, got num_classes={classes}, condition={self.condition!r}"
            )
        self.sampling.check_vocab(self.model.vocab_size)


def forward_pass(
    problem: Problem,
    key_tokens: torch.Tensor,
    key_positions: torch.Tensor,
    query_positions: torch.Tensor,
    visible: torch.Tensor,
) -> torch.Tensor:
    """One forward pass: [Q, V] float64 target probabilities for the queries."""
    shape = (query_positions.numel(), problem.model.vocab_size)
    cond = _checked_call(problem, problem.condition, key_tokens, key_positions, query_positions, visible)
    uncond = None
    if problem.sampling.uses_cfg:
        uncond = _checked_call(problem, None, key_tokens, key_positions, query_positions, visible)
    assert cond.shape == shape
    return problem.sampling.target_probs(cond, uncond)


def _checked_call(
    problem: Problem,
    condition: int | None,
    key_tokens: torch.Tensor,
    key_positions: torch.Tensor,
    query_positions: torch.Tensor,
    visible: torch.Tensor,
) -> torch.Tensor:
    expected = (query_positions.numel(), problem.model.vocab_size)
    assert visible.shape == (query_positions.numel(), key_tokens.numel()), "decoder built a bad mask"
    out = problem.model.logits(condition, key_tokens, key_positions, query_positions, visible)
    if tuple(out.shape) != expected:
        raise InvalidLogitsError(f"model returned logits of shape {tuple(out.shape)}, expected {expected}")
    if not bool(torch.isfinite(out).all()):
        raise InvalidLogitsError(
            f"model returned NaN or inf logits for condition {condition!r} (query positions {query_positions.tolist()})"
        )
    return out
