"""Position-query models (LPD): the Model contract plus *query keys* (spec/lpd.md).

An LPD pass asks for a group of g cells at once; the group's position queries see the
condition, every earlier real token and *each other*; nothing attends to a query. The plain
Model contract already says "query q sees exactly its visible keys". A position-query model
adds one kind of key:

    a key whose token is QUERY_TOKEN is the position query of another cell, not a token.

So query q of a group sees its co-queries by having their query keys visible. A query key
carries a position and no content; a real key never reads a query key (nothing attends to
queries). A query whose own position appears as a visible query key is the same question as
without it (its own slot). A model that does not declare `accepts_query_keys = True` must not
be sent query keys.

Inside a position-query model the slots of one query's computation are

    [condition, context keys (real tokens) ..., query slots (own + visible co-queries) ...]

and `compute_slot_attention` is their attention rule.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .model import Model

QUERY_TOKEN = -1  # the token id of a query key: a position query, no content


@runtime_checkable
class PositionQueryModel(Model, Protocol):
    accepts_query_keys: bool  # True: keys with token QUERY_TOKEN are position queries


def is_position_query_model(model: object) -> bool:
    """True for a model that accepts query keys (wrappers such as the exact engine's memoising
    model copy the flag)."""
    return getattr(model, "accepts_query_keys", False) is True


def compute_slot_attention(num_context: int, num_queries: int) -> torch.Tensor:
    """[S, S] bool, S = 1 + num_context + num_queries: slot i may read slot j.

    Slot 0 is the condition, then the context keys, then the query slots.
    - every slot reads the condition;
    - a context key reads every context key (the context is a set; LPD's KV cache reads the
      keys of its own and earlier groups: the same keys once the group is committed);
    - a query slot reads every context key and every query slot (mutual visibility);
    - no context key and not the condition reads a query slot (nothing attends to queries).
    """
    size = 1 + num_context + num_queries
    first_query = 1 + num_context
    attend = torch.zeros(size, size, dtype=torch.bool)
    attend[:, 0] = True
    attend[1:first_query, 1:first_query] = True
    attend[first_query:, 1:] = True
    return attend


def split_query_keys(
    key_tokens: torch.Tensor, key_positions: torch.Tensor, visible_row: torch.Tensor, own_position: int
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """One query's view of a call: (context tokens, context positions, query slot positions).

    Query slot positions: the query's own position first, then its visible co-queries in
    increasing position order (so the same question always gets the same slots).
    """
    is_query = key_tokens == QUERY_TOKEN
    context = visible_row & ~is_query
    co_queries = sorted({int(p) for p in key_positions[visible_row & is_query].tolist()} - {own_position})
    return key_tokens[context], key_positions[context], (own_position, *co_queries)
