"""Hypothesis strategies shared by the property tests. Plural nouns that state their constraint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import hypothesis.strategies as st
import torch

from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.reference.keys import Key, committed_keys
from jacobi_oracle.reference.state import Draft, JacobiState
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.lpd_order import compute_group_sizes
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.sampling import Sampling

__all__ = [
    "OrderCase",
    "PassKeys",
    "Read",
    "cached_passes",
    "distributions",
    "distributions_with_zeros",
    "drafts",
    "jacobi_states",
    "layouts",
    "logit_matrices",
    "order_cases",
    "passes_with_row_windows",
    "probability_tensors",
    "proxy_passes",
    "reuse_programs",
    "samplings",
    "vocab_sizes",
]

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


# --- exact-engine merge keys (test_exact_keys.py) ---
MAX_CELLS = 6
TENSOR_FORMS = ("plain", "column-view", "float32", "requires-grad")  # the fast path and each fallback


@st.composite
def probability_tensors(draw: st.DrawFn, vocab: int) -> torch.Tensor:
    """A [V] distribution, as a plain float64 tensor or a form the fast path must fall back on."""
    weights = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.01, 1.0)), min_size=vocab, max_size=vocab))
    probs = torch.tensor(weights, dtype=torch.float64) + 1e-3
    probs = probs / probs.sum()
    form = draw(st.sampled_from(TENSOR_FORMS))
    if form == "column-view":
        return torch.stack([probs.flip(0), probs], dim=1)[:, 1]  # strided: not contiguous
    if form == "float32":
        return probs.float()
    if form == "requires-grad":
        return probs.clone().requires_grad_(True)
    return probs


@st.composite
def drafts(draw: st.DrawFn, vocab: int) -> Draft:
    last = draw(st.one_of(st.none(), probability_tensors(vocab)))
    return Draft(draw(st.integers(0, vocab - 1)), draw(probability_tensors(vocab)), last)


@st.composite
def jacobi_states(draw: st.DrawFn) -> JacobiState:
    """A JacobiState with every field populated in every way a decoder can populate it."""
    vocab = draw(st.integers(2, 4))
    cells = draw(st.integers(1, MAX_CELLS))
    committed = tuple(draw(st.one_of(st.none(), st.integers(0, vocab - 1))) for _ in range(cells))
    cell_drafts = tuple(None if c is not None else draw(st.one_of(st.none(), drafts(vocab))) for c in committed)
    targets = draw(st.one_of(st.none(), st.tuples(*[st.one_of(st.none(), probability_tensors(vocab))] * cells)))
    return JacobiState(committed, cell_drafts, draw(st.integers(0, cells)), targets)


# --- LPD generation orders (test_lpd_order.py) ---
MAX_ORDER_SIDE = 10  # keeps one order under ~10 ms


class OrderCase(NamedTuple):
    height: int
    width: int
    group_sizes: tuple[int, ...]
    repulsion: int
    seed: int


@st.composite
def order_cases(draw: st.DrawFn) -> OrderCase:
    height = draw(st.integers(1, MAX_ORDER_SIDE))
    width = draw(st.integers(1, MAX_ORDER_SIDE))
    steps = draw(st.integers(1, height * width))
    return OrderCase(
        height, width, compute_group_sizes(height * width, steps), draw(st.integers(0, 3)), draw(st.integers(0, 2**31))
    )


# --- one PJD pass (test_masks_and_schedules.py) ---
MAX_PASS_SIDE = 4  # grids up to 4x4 keep each example to milliseconds


class PassKeys(NamedTuple):
    keys: list[Key]
    key_window: list[int | None]
    queries: list[tuple[int, int]]  # (cell, window)
    layout: Layout


@st.composite
def passes_with_row_windows(draw: st.DrawFn) -> PassKeys:
    """A pass as PJD builds it: committed cells, one window of drafts per active row."""
    height = draw(st.integers(1, MAX_PASS_SIDE))
    width = draw(st.integers(1, MAX_PASS_SIDE))
    eor = draw(st.sampled_from([None, 0]))
    layout = Layout(height, width, eor)
    committed = {c: 0 for c in range(layout.num_cells) if draw(st.booleans())}
    model = HashModel(vocab_size=2, num_positions=layout.length, row_stride=layout.row_stride)
    problem = Problem(model, 0, layout, Sampling())
    keys = committed_keys(problem, committed)
    key_window: list[int | None] = [None] * len(keys)
    queries = []
    for row in range(height):
        for col in range(width):
            cell = layout.cell(row, col)
            if cell in committed:
                continue
            queries.append((cell, row))
            if draw(st.booleans()):
                keys.append(Key(layout.position(cell), 1, cell, True))
                key_window.append(row)
    return PassKeys(keys, key_window, queries, layout)


# --- passes over a prefix-cached model (test_prefix_cache.py) ---
@st.composite
def cached_passes(
    draw: st.DrawFn, vocab: int, length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A pass like the decoders build: a committed prefix every query sees, then keys past it
    that each query sees or not (at most one key per position per query; its t - 1 key seen)."""
    f = draw(st.integers(0, length - 1))
    tokens = draw(st.lists(st.integers(0, vocab - 1), min_size=length, max_size=length))
    copies = draw(st.lists(st.integers(0, vocab - 1), min_size=length, max_size=length))
    key_tokens = torch.tensor(tokens + copies[f:])  # a second key at each position past the prefix
    key_positions = torch.tensor(list(range(length)) + list(range(f, length)))
    queries = sorted(draw(st.sets(st.integers(f, length), min_size=1, max_size=5)))
    rows = []
    for t in queries:
        which = draw(st.lists(st.sampled_from([0, 1, None]), min_size=length - f, max_size=length - f))
        row = [p < f for p in range(length)] + [False] * (length - f)
        for i, w in enumerate(which):
            p = f + i
            if p == t - 1 and w is None:
                w = 0  # a next-token model needs the t - 1 key
            if w is not None and p < t:
                row[p if w == 0 else length + i] = True
        rows.append(row)
    return key_tokens, key_positions, torch.tensor(queries), torch.tensor(rows)


# --- passes for the row-entry proxy (test_row_entry.py) ---
@st.composite
def proxy_passes(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random pass: keys at distinct positions of an 8-position sequence, random visibility
    in which every query sees at least its first key (so a proxy always exists)."""
    positions = sorted(draw(st.sets(st.integers(0, 6), min_size=1, max_size=7)))
    tokens = draw(st.lists(st.integers(0, 2), min_size=len(positions), max_size=len(positions)))
    queries = draw(st.lists(st.integers(positions[0] + 2, 8), min_size=1, max_size=4))
    n = len(positions)
    visible = torch.tensor(
        draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=len(queries), max_size=len(queries)))
    )
    visible[:, 0] = True
    return torch.tensor(tokens), torch.tensor(positions), torch.tensor(queries), visible


# --- programs that read keys again (test_randomness_reuse.py) ---
@dataclass(frozen=True)
class Read:
    kind: str  # "bernoulli", "categorical" or "gumbel"
    key: int  # which of a few keys
    weights: tuple[float, ...]  # p (bernoulli: weights[0]) or a distribution; shifted by the last outcome


@st.composite
def reuse_programs(draw: st.DrawFn) -> tuple[Read, ...]:
    reads = []
    for _ in range(draw(st.integers(2, 4))):
        kind = draw(st.sampled_from(["bernoulli", "categorical", "gumbel"]))
        size = 3
        weights = tuple(draw(st.lists(st.floats(0.05, 1.0), min_size=size, max_size=size)))
        reads.append(Read(kind, draw(st.integers(0, 1)), weights))
    return tuple(reads)
