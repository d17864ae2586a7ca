"""`TinyTransformer`: the one small transformer of the package, over rows of slots

    [condition, context keys ..., query slots ...]

A context key is tok_emb[token] + pos_emb[position]; a query slot is query_emb + pos_emb[target]
(LPD's mask embedding at the target cell) and its output through `head` is the logits of the
token at the target. `queries` picks how a Model call (spec.model) becomes rows and attention:

* "causal" (the exact toy of registry.py and proofs/cases.py): one row per query holding every
  key and one query slot; a key reads the visible keys at positions <= its own (keys in position
  order), the query reads its visible keys and itself.
* "lpd" (spec/position_query.py, spec/lpd.md; the trained model of lpd_train.py): the context is
  the query's visible real keys, read as a set, and its query slots are its own and its visible
  co-queries' (query keys are accepted); `compute_slot_attention` is the rule. Queries that ask
  the same question share one row; rows are padded into one batch (`pad_rows`).

Random weights from `seed` (float64 by default) make an exact toy; `forward_slots` is also the
training forward pass.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from ..spec.errors import InvalidParameterError
from ..spec.position_query import QUERY_TOKEN, compute_slot_attention, split_query_keys
from .toy import check_model_sizes

QueryMode = Literal["causal", "lpd"]
QUERY_MODES: tuple[QueryMode, ...] = ("causal", "lpd")

# A batch of rows: context tokens [B, N], context positions [B, N], query positions [B, G],
# attend [B, S, S] (S = 1 + N + G), and which (row, slot) answers each query of the call: [Q], [Q].
SlotRows = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class TinyTransformer(torch.nn.Module):
    def __init__(
        self,
        vocab_size: int = 8,
        num_positions: int = 16,
        num_classes: int = 2,
        dim: int = 32,
        layers: int = 2,
        heads: int = 2,
        logit_scale: float = 3.0,
        seed: int = 0,
        *,
        queries: QueryMode = "causal",
        mlp_ratio: int = 2,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        check_model_sizes(vocab_size, num_positions, num_classes)
        if dim % heads:
            raise InvalidParameterError(f"dim {dim} is not divisible by heads {heads}")
        if queries not in QUERY_MODES:
            raise InvalidParameterError(f"queries must be one of {QUERY_MODES}, got {queries!r}")
        self.vocab_size = vocab_size
        self.num_positions = num_positions
        self.num_classes = num_classes
        self.heads = heads
        self.logit_scale = logit_scale
        self.queries = queries
        self.accepts_query_keys = queries == "lpd"  # spec.position_query.PositionQueryModel
        self.answers_causal_batches = queries == "causal"  # spec.model.CausalBatchModel
        gen = torch.Generator().manual_seed(seed)

        def param(*shape: int, scale: float) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.randn(*shape, generator=gen, dtype=dtype) * scale)

        s = 1.0 / math.sqrt(dim)
        self.tok_emb = param(vocab_size, dim, scale=1.0)
        self.pos_emb = param(num_positions, dim, scale=1.0)  # learned position embeddings
        self.cls_emb = param(num_classes + 1, dim, scale=1.0)  # last row: the null class
        self.query_emb = param(dim, scale=1.0)  # LPD's mask embedding
        hidden = mlp_ratio * dim
        self.qkv = torch.nn.ParameterList([param(dim, 3 * dim, scale=s) for _ in range(layers)])
        self.proj = torch.nn.ParameterList([param(dim, dim, scale=s) for _ in range(layers)])
        self.up = torch.nn.ParameterList([param(dim, hidden, scale=s) for _ in range(layers)])
        self.down = torch.nn.ParameterList([param(hidden, dim, scale=s / math.sqrt(mlp_ratio)) for _ in range(layers)])
        self.head = param(dim, vocab_size, scale=s)
        self.requires_grad_(False)

    @property
    def token_embeddings(self) -> torch.Tensor:
        return self.tok_emb.detach()

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        if query_positions.numel() == 0:
            return torch.zeros(0, self.vocab_size, dtype=torch.float64)
        compute_rows = compute_causal_rows if self.queries == "causal" else compute_lpd_rows
        tokens, positions, queries, attend, row, slot = compute_rows(
            key_tokens, key_positions, query_positions, visible
        )
        cls = torch.full((tokens.shape[0],), self.num_classes if condition is None else condition)
        with torch.no_grad():
            answers = self.forward_slots(cls, tokens, positions, queries, attend)  # [R, G, V]
        return answers[row, slot].to(torch.float64)

    def causal_logits(
        self,
        classes: torch.Tensor,
        tokens: torch.Tensor,
        queries: torch.Tensor,
        cache: dict[str, torch.Tensor] | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """spec.model.CausalBatchModel: one row per sequence, [class, tokens[b, 0 .. N - 1] at
        positions 0 .. N - 1, one query slot per queries[b, w]]; keys read the class and the keys
        at positions <= their own, a query slot the class, the keys before its position and
        itself: for every query the keys and reads of its `compute_causal_rows` row (later keys
        sit in the row unread), so the same answer up to rounding.

        With a `cache` (a dict this model fills), only the keys at cells start[b] .. max query - 1
        are computed; those before are read from what earlier calls with this cache stored
        (each layer's key / value per cell), which the caller vouches were computed from the
        same tokens as now (the committed prefix rule of spec/model.md)."""
        if cache is None or start is None:
            b, n = tokens.shape
            keys = torch.arange(n)
            attend = torch.zeros(b, 1 + n + queries.shape[1], 1 + n + queries.shape[1], dtype=torch.bool)
            attend[:, :, 0] = True
            attend[:, 1 : n + 1, 1 : n + 1] = keys[:, None] >= keys[None, :]
            attend[:, n + 1 :, 1 : n + 1] = keys[None, None, :] < queries[:, :, None]
            attend[:, n + 1 :, n + 1 :] = torch.eye(queries.shape[1], dtype=torch.bool)
            with torch.no_grad():
                return self.forward_slots(classes, tokens, keys.expand(b, n), queries, attend).to(torch.float64)
        return self._cached_causal_logits(classes, tokens, queries, cache, start)

    def _cached_causal_logits(
        self,
        classes: torch.Tensor,
        tokens: torch.Tensor,
        queries: torch.Tensor,
        cache: dict[str, torch.Tensor],
        start: torch.Tensor,
    ) -> torch.Tensor:
        """`causal_logits` over a cache of one key / value per cell and layer: the row is
        [class, keys at cells start[b] + j (j < J), queries]. Its slots write their keys /
        values first (a key at its cell, cells past the grid at one scratch slot, the class and
        the queries after it), then read the cache: a key at cell c the cells <= c (the cached
        ones below start[b], this call's from there), a query at t the cells < t and itself."""
        b, w, grid = tokens.shape[0], queries.shape[1], self.num_positions
        dim = self.tok_emb.shape[1]
        size = grid + 2 + w  # cells, scratch, class, queries
        if "k" in cache and tuple(cache["k"].shape[1:4:2]) != (b, size):
            raise InvalidParameterError(f"this cache serves batches of {cache['k'].shape[1]} with its query count")
        if "k" not in cache:
            shape = (len(self.qkv), b, self.heads, size, dim // self.heads)
            cache["k"] = torch.zeros(shape, dtype=self.tok_emb.dtype)
            cache["v"] = torch.zeros(shape, dtype=self.tok_emb.dtype)
        need = int((queries.max(dim=1).values - start).clamp(min=0).max())  # J: new keys per row
        cells = start[:, None] + torch.arange(need)  # [B, J]
        new_tokens = tokens.gather(1, cells.clamp(max=tokens.shape[1] - 1))  # past a row's queries: unread
        own = torch.arange(grid + 1, size).expand(b, w + 1)  # the class and the queries
        slots = torch.cat([own[:, :1], torch.where(cells < grid, cells, grid), own[:, 1:]], dim=1)  # [B, S]
        grid_cells = torch.arange(grid)
        attend = torch.zeros(b, 1 + need + w, size, dtype=torch.bool)
        attend[:, :, grid + 1] = True  # every slot reads the class
        attend[:, 1 : need + 1, :grid] = grid_cells[None, None, :] <= cells[:, :, None]
        attend[:, need + 1 :, :grid] = grid_cells[None, None, :] < queries[:, :, None]
        attend[:, need + 1 :, grid + 2 :] = torch.eye(w, dtype=torch.bool)
        layers = list(zip(cache["k"].unbind(0), cache["v"].unbind(0), strict=True))
        with torch.no_grad():
            out = self.forward_slots(classes, new_tokens, cells.clamp(max=grid - 1), queries, attend, layers, slots)
        return out.to(torch.float64)

    def forward_slots(
        self,
        cls: torch.Tensor,
        context_tokens: torch.Tensor,
        context_positions: torch.Tensor,
        query_positions: torch.Tensor,
        attend: torch.Tensor,
        cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B], [B, N], [B, N], [B, G], [B, S, S] (slot i may read slot j) -> [B, G, V] logits per query slot.
        With a `cache` (per layer keys and values [B, heads, C, head dim]) each slot's key and
        value are written at its cache slot `slots` [B, S] first, and `attend` [B, S, C] says
        which cache slots each slot reads."""
        n = context_tokens.shape[1]
        context = self.tok_emb[context_tokens] + self.pos_emb[context_positions]  # [B, N, D]
        queries = self.query_emb + self.pos_emb[query_positions]  # [B, G, D]
        x = torch.cat([self.cls_emb[cls][:, None], context, queries], dim=1)  # [B, S, D]
        for layer, (qkv, proj, up, down) in enumerate(zip(self.qkv, self.proj, self.up, self.down, strict=True)):
            stored = None if cache is None or slots is None else (*cache[layer], slots)
            x = x + self._attention(F.layer_norm(x, x.shape[-1:]), qkv, proj, attend, stored)
            x = x + F.gelu(F.layer_norm(x, x.shape[-1:]) @ up) @ down
        out: torch.Tensor = F.layer_norm(x[:, 1 + n :], x.shape[-1:]) @ self.head
        return self.logit_scale * out

    def _attention(
        self,
        x: torch.Tensor,
        qkv: torch.Tensor,
        proj: torch.Tensor,
        attend: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = torch.split(x @ qkv, d, dim=-1)
        q, k, v = (t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        if cache is not None:  # write this row's keys / values at their slots, then read the cache
            keys, values, slots = cache
            index = slots[:, None, :, None].expand_as(k)
            k, v = keys.scatter_(2, index, k), values.scatter_(2, index, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None])
        out: torch.Tensor = y.transpose(1, 2).reshape(b, s, d) @ proj
        return out


def compute_causal_rows(
    key_tokens: torch.Tensor, key_positions: torch.Tensor, query_positions: torch.Tensor, visible: torch.Tensor
) -> SlotRows:
    """One row per query: [condition, every key, the query]; keys read visible keys in position order."""
    num_q, n = visible.shape
    order = key_positions[:, None] >= key_positions[None, :]  # [N, N]
    attend = torch.zeros(num_q, n + 2, n + 2, dtype=torch.bool)  # [Q, S, S]
    attend[:, :, 0] = True
    attend[:, 1 : n + 1, 1 : n + 1] = visible[:, None, :] & visible[:, :, None] & order[None]
    attend[:, n + 1, 1 : n + 1] = visible
    attend[:, n + 1, n + 1] = True
    keys = (key_tokens.expand(num_q, n), key_positions.expand(num_q, n))
    return *keys, query_positions[:, None], attend, torch.arange(num_q), torch.zeros(num_q, dtype=torch.long)


def compute_lpd_rows(
    key_tokens: torch.Tensor, key_positions: torch.Tensor, query_positions: torch.Tensor, visible: torch.Tensor
) -> SlotRows:
    """One row per distinct (visible real keys, query slots): queries of one group share a row."""
    rows: dict[tuple[tuple[bool, ...], tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}
    row_of: list[tuple[tuple[tuple[bool, ...], tuple[int, ...]], int]] = []
    for q, position in enumerate(query_positions.tolist()):
        tokens, positions, slots = split_query_keys(key_tokens, key_positions, visible[q], position)
        share = (tuple((visible[q] & (key_tokens != QUERY_TOKEN)).tolist()), tuple(sorted(slots)))
        rows.setdefault(share, (tokens, positions))
        row_of.append((share, share[1].index(position)))
    shares = list(rows)
    batch = pad_rows([rows[sh] for sh in shares], [sh[1] for sh in shares])
    index = {sh: r for r, sh in enumerate(shares)}
    row = torch.tensor([index[sh] for sh, _ in row_of])
    slot = torch.tensor([s for _, s in row_of])
    return *batch.slot_inputs(), row, slot


def compute_padded_slot_attention(context_valid: torch.Tensor, query_valid: torch.Tensor) -> torch.Tensor:
    """[B, N], [B, G] -> [B, S, S]: `compute_slot_attention`, and no slot reads padding."""
    b, n = context_valid.shape
    real = torch.cat([torch.ones(b, 1, dtype=torch.bool), context_valid, query_valid], 1)  # [B, S]
    return compute_slot_attention(n, query_valid.shape[1]) & real[:, None, :]


class PaddedRows(NamedTuple):
    context_tokens: torch.Tensor  # [B, N]
    context_positions: torch.Tensor  # [B, N]
    query_positions: torch.Tensor  # [B, G]
    context_valid: torch.Tensor  # [B, N] bool: False on padding
    query_valid: torch.Tensor  # [B, G] bool: False on padding

    def slot_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`forward_slots`' inputs after the class: tokens, positions, query positions, attend."""
        attend = compute_padded_slot_attention(self.context_valid, self.query_valid)
        return self.context_tokens, self.context_positions, self.query_positions, attend


def pad_rows(contexts: list[tuple[torch.Tensor, torch.Tensor]], queries: list[tuple[int, ...]]) -> PaddedRows:
    """Rows of (context tokens, positions) and query positions -> one padded batch."""
    b = len(contexts)
    n = max((len(t) for t, _ in contexts), default=0)
    g = max(len(q) for q in queries)
    tokens = torch.zeros(b, n, dtype=torch.long)
    positions = torch.zeros(b, n, dtype=torch.long)
    query_positions = torch.zeros(b, g, dtype=torch.long)
    context_valid = torch.zeros(b, n, dtype=torch.bool)
    query_valid = torch.zeros(b, g, dtype=torch.bool)
    for r, ((tok, pos), qs) in enumerate(zip(contexts, queries, strict=True)):
        tokens[r, : len(tok)] = tok
        positions[r, : len(pos)] = pos
        context_valid[r, : len(tok)] = True
        query_positions[r, : len(qs)] = torch.tensor(qs, dtype=torch.long)
        query_valid[r, : len(qs)] = True
    return PaddedRows(tokens, positions, query_positions, context_valid, query_valid)
