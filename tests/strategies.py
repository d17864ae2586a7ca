"""Hypothesis strategies shared by the property tests. Plural nouns that state their constraint."""

from __future__ import annotations

import hypothesis.strategies as st
import torch

from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.sampling import Sampling

__all__ = ["distributions", "distributions_with_zeros", "layouts", "logit_matrices", "samplings", "vocab_sizes"]

MAX_VOCAB = 12  # size caps keep shrinking fast
MAX_QUERIES = 4


def vocab_sizes() -> st.SearchStrategy[int]:
    return st.integers(2, MAX_VOCAB)


@st.composite
def logit_matrices(draw: st.DrawFn, vocab: int | None = None) -> torch.Tensor:
    """[Q, V] finite float64 logits with entries in [-8, 8]."""
    v = draw(vocab_sizes()) if vocab is None else vocab
    q = draw(st.integers(1, MAX_QUERIES))
    values = draw(st.lists(st.floats(-8, 8), min_size=q * v, max_size=q * v))
    return torch.tensor(values, dtype=torch.float64).reshape(q, v)


@st.composite
def distributions(draw: st.DrawFn, vocab: int, allow_zeros: bool = True) -> torch.Tensor:
    """A [V] float64 probability vector (entries may be 0 when `allow_zeros`; none below 0.01 / sum
    otherwise), total weight bounded away from 0 before normalising."""
    low = 0.0 if allow_zeros else 0.01
    weights = draw(st.lists(st.floats(low, 1.0), min_size=vocab, max_size=vocab).filter(lambda w: sum(w) > 0.05))
    probs = torch.tensor(weights, dtype=torch.float64)
    return probs / probs.sum()


@st.composite
def distributions_with_zeros(draw: st.DrawFn, vocab: int) -> torch.Tensor:
    """A [V] distribution in float64 where some (not all) entries are exactly zero."""
    weights = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.01, 1.0)), min_size=vocab, max_size=vocab))
    if sum(weights) == 0.0:
        weights[draw(st.integers(0, vocab - 1))] = 1.0
    w = torch.tensor(weights, dtype=torch.float64)
    return w / w.sum()


@st.composite
def samplings(draw: st.DrawFn, vocab: int) -> Sampling:
    """A valid Sampling for a vocabulary of `vocab` tokens (no greedy mode)."""
    return Sampling(
        temperature=draw(st.floats(0.2, 3.0)),
        top_k=draw(st.one_of(st.none(), st.integers(1, vocab))),
        top_p=draw(st.one_of(st.none(), st.floats(0.05, 1.0))),
        cfg_scale=draw(st.one_of(st.just(1.0), st.floats(0.0, 6.0))),
    )


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    eor = draw(st.one_of(st.none(), st.integers(0, 20)))
    return Layout(draw(st.integers(1, 9)), draw(st.integers(1, 9)), eor)
