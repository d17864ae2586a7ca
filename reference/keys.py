"""Building a forward pass's keys and visibility from committed cells and drafts.

Keys are (position, token) pairs: the layout's fixed end-of-row tokens, every committed
cell, and the draft cells a strategy puts in the pass. `visible[q, k]` says whether query q
may attend key k; a mask (reference/masks.py) decides it from the keys' *kinds*.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from jacobi_oracle.spec.model import Problem, forward_pass


@dataclass(frozen=True)
class Key:
    position: int
    token: int
    cell: int | None  # None for an end-of-row token
    is_draft: bool


def committed_keys(problem: Problem, committed: dict[int, int]) -> list[Key]:
    """Fixed end-of-row keys and one key per committed cell."""
    layout = problem.layout
    keys = [Key(pos, tok, None, False) for pos, tok in layout.fixed_keys()]
    keys += [Key(layout.position(c), tok, c, False) for c, tok in sorted(committed.items())]
    return keys


def run_queries(problem: Problem, keys: list[Key], query_cells: list[int], visible: list[list[bool]]) -> torch.Tensor:
    """One forward pass over `keys` answering `query_cells`: [Q, V] target probabilities."""
    layout = problem.layout
    n = len(keys)
    key_tokens = torch.tensor([k.token for k in keys], dtype=torch.long).reshape(n)
    key_positions = torch.tensor([k.position for k in keys], dtype=torch.long).reshape(n)
    query_positions = torch.tensor([layout.position(c) for c in query_cells], dtype=torch.long)
    mask = torch.tensor(visible, dtype=torch.bool).reshape(len(query_cells), n)
    return forward_pass(problem, key_tokens, key_positions, query_positions, mask)


def causal_query(problem: Problem, prefix: tuple[int, ...]) -> torch.Tensor:
    """p for the cell right after a committed raster prefix: the AR conditional."""
    keys = committed_keys(problem, dict(enumerate(prefix)))
    t = len(prefix)
    position = problem.layout.position(t)
    visible = [[k.position < position for k in keys]]
    return run_queries(problem, keys, [t], visible)[0]
