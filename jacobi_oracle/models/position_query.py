"""Position-query models (spec/position_query.py, spec/lpd.md): models LPD can decode.

* `JointTableModel`: an explicit joint law P over the whole grid (a tabled 2D Markov random
  field, one table per class and one for the null class). A query is answered by exact
  conditioning, P(x_t | visible real keys); query keys are accepted and ignored. It is the
  *perfect* position-query model: its AR law in every order is P itself, so LPD with groups
  of one cell is lossless in every order, and LPD with larger groups samples the product of
  exact marginals inside a group (the law spec/lpd.md derives).
* `PositionQueryTransformer`: the LPD architecture. Real tokens enter as tok_emb + pos_emb,
  queries as query_emb + pos_emb[target]; slot attention is spec.position_query's rule
  (queries see the condition, the context and each other; nothing attends to queries).
  Random float64 weights make an exact toy; `train_position_query_model` can fit it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..spec.errors import InvalidParameterError
from ..spec.position_query import QUERY_TOKEN, compute_slot_attention, split_query_keys

MAX_TABLE_ENTRIES = 1 << 16  # V ** (H * W) cap for the joint table


class JointTableModel:
    accepts_query_keys = True

    def __init__(
        self,
        vocab_size: int = 2,
        height: int = 2,
        width: int = 3,
        num_classes: int = 2,
        coupling: float = 1.5,
        seed: int = 0,
    ) -> None:
        cells = height * width
        # Verify the table is small enough to hold
        if vocab_size < 2 or cells < 1 or vocab_size**cells > MAX_TABLE_ENTRIES:
            raise InvalidParameterError(
                f"joint table needs vocab_size >= 2 and vocab_size ** cells <= {MAX_TABLE_ENTRIES}, "
                f"got vocab_size={vocab_size}, cells={cells}"
            )
        if num_classes < 0:
            raise InvalidParameterError(f"num_classes must be >= 0, got {num_classes!r}")
        self.vocab_size = vocab_size
        self.num_positions = cells
        self.num_classes = num_classes
        gen = torch.Generator().manual_seed(seed)
        # log P_c(x) = sum_t unary[c, t, x_t] + coupling * sum_{neighbours a~b} pair[a~b, x_a, x_b] + const
        unary = torch.randn(num_classes + 1, cells, vocab_size, generator=gen, dtype=torch.float64)
        edges = _neighbour_edges(height, width)
        pair = torch.randn(len(edges), vocab_size, vocab_size, generator=gen, dtype=torch.float64)
        grid = torch.cartesian_prod(*[torch.arange(vocab_size)] * cells).reshape(-1, cells)  # [V^L, L]
        score = unary[:, torch.arange(cells), grid].sum(-1)  # [C+1, V^L]
        for e, (a, b) in enumerate(edges):
            score = score + coupling * pair[e, grid[:, a], grid[:, b]]
        self.table = torch.softmax(score, dim=-1).reshape(num_classes + 1, *[vocab_size] * cells)

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        joint = self.table[self.num_classes if condition is None else condition]
        rows = []
        for q, position in enumerate(query_positions.tolist()):
            tokens, positions, _ = split_query_keys(key_tokens, key_positions, visible[q], position)
            context = dict(zip(positions.tolist(), tokens.tolist(), strict=True))
            rows.append(torch.log(self.conditional(joint, context, position)))
        return torch.stack(rows) if rows else torch.zeros(0, self.vocab_size, dtype=torch.float64)

    def conditional(self, joint: torch.Tensor, context: dict[int, int], position: int) -> torch.Tensor:
        """P(x_position | x_context): [V]."""
        context = {p: t for p, t in context.items() if p != position}
        index = tuple(context.get(p, slice(None)) for p in range(self.num_positions))
        free = [p for p in range(self.num_positions) if p not in context]
        others = tuple(i for i, p in enumerate(free) if p != position)
        marginal = joint[index].sum(dim=others) if others else joint[index]  # sum(dim=()) would sum all
        return marginal / marginal.sum()

    def law(self, condition: int | None) -> dict[tuple[int, ...], float]:
        """The joint law P_condition as sequence -> probability."""
        joint = self.table[self.num_classes if condition is None else condition]
        grid = torch.cartesian_prod(*[torch.arange(self.vocab_size)] * self.num_positions)
        grid = grid.reshape(-1, self.num_positions)
        return {tuple(x): float(p) for x, p in zip(grid.tolist(), joint.reshape(-1).tolist(), strict=True)}


def _neighbour_edges(height: int, width: int) -> list[tuple[int, int]]:
    """Right, down and both diagonal neighbour pairs (raster indices)."""
    edges = []
    for r in range(height):
        for c in range(width):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                if 0 <= r + dr < height and 0 <= c + dc < width:
                    edges.append((r * width + c, (r + dr) * width + c + dc))
    return edges


class PositionQueryTransformer(torch.nn.Module):
    accepts_query_keys = True

    def __init__(
        self,
        vocab_size: int = 2,
        num_positions: int = 6,
        num_classes: int = 2,
        dim: int = 32,
        layers: int = 2,
        heads: int = 2,
        logit_scale: float = 3.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if vocab_size < 2 or num_positions < 1 or num_classes < 0 or dim % heads:
            raise InvalidParameterError(
                f"need vocab_size >= 2, num_positions >= 1, num_classes >= 0, dim % heads == 0; got "
                f"{vocab_size}, {num_positions}, {num_classes}, {dim} % {heads}"
            )
        self.vocab_size = vocab_size
        self.num_positions = num_positions
        self.num_classes = num_classes
        self.heads = heads
        self.logit_scale = logit_scale
        gen = torch.Generator().manual_seed(seed)

        def param(*shape: int, scale: float) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.randn(*shape, generator=gen, dtype=dtype) * scale)

        s = 1.0 / math.sqrt(dim)
        self.tok_emb = param(vocab_size, dim, scale=1.0)
        self.pos_emb = param(num_positions, dim, scale=1.0)  # learned position embeddings
        self.cls_emb = param(num_classes + 1, dim, scale=1.0)  # last row: the null class
        self.query_emb = param(dim, scale=1.0)  # LPD's mask embedding
        self.qkv = torch.nn.ParameterList([param(dim, 3 * dim, scale=s) for _ in range(layers)])
        self.proj = torch.nn.ParameterList([param(dim, dim, scale=s) for _ in range(layers)])
        self.up = torch.nn.ParameterList([param(dim, 4 * dim, scale=s) for _ in range(layers)])
        self.down = torch.nn.ParameterList([param(4 * dim, dim, scale=s / 2) for _ in range(layers)])
        self.head = param(dim, vocab_size, scale=s)

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        # queries with the same context and the same query slots share one computation (row)
        rows: dict[tuple[tuple[bool, ...], tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}
        row_of: list[tuple[tuple[tuple[bool, ...], tuple[int, ...]], int]] = []
        for q, position in enumerate(query_positions.tolist()):
            tokens, positions, slots = split_query_keys(key_tokens, key_positions, visible[q], position)
            share = (tuple((visible[q] & (key_tokens != QUERY_TOKEN)).tolist()), tuple(sorted(slots)))
            rows.setdefault(share, (tokens, positions))
            row_of.append((share, share[1].index(position)))
        if not row_of:
            return torch.zeros(0, self.vocab_size, dtype=torch.float64)
        shares = list(rows)
        cls = torch.full((len(shares),), self.num_classes if condition is None else condition)
        batch = pad_rows([rows[sh] for sh in shares], [sh[1] for sh in shares])
        with torch.no_grad():
            answers = self.forward_slots(cls, *batch)  # [R, G, V]
        index = {sh: r for r, sh in enumerate(shares)}
        return torch.stack([answers[index[sh], slot] for sh, slot in row_of]).to(torch.float64)

    def forward_slots(
        self,
        cls: torch.Tensor,
        context_tokens: torch.Tensor,
        context_positions: torch.Tensor,
        query_positions: torch.Tensor,
        context_valid: torch.Tensor | None = None,
        query_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B], [B, N], [B, N], [B, G] (, [B, N], [B, G] padding masks) -> [B, G, V] logits per query slot."""
        b, n = context_tokens.shape
        g = query_positions.shape[1]
        context = self.tok_emb[context_tokens] + self.pos_emb[context_positions]  # [B, N, D]
        queries = self.query_emb + self.pos_emb[query_positions]  # [B, G, D]
        x = torch.cat([self.cls_emb[cls][:, None], context, queries], dim=1)  # [B, S, D]
        attend = compute_slot_attention(n, g).expand(b, -1, -1)  # [B, S, S]
        if context_valid is not None or query_valid is not None:
            ones = torch.ones(b, 1, dtype=torch.bool)
            c_ok = torch.ones(b, n, dtype=torch.bool) if context_valid is None else context_valid
            q_ok = torch.ones(b, g, dtype=torch.bool) if query_valid is None else query_valid
            attend = attend & torch.cat([ones, c_ok, q_ok], 1)[:, None, :]  # padding is read by no slot
        for qkv, proj, up, down in zip(self.qkv, self.proj, self.up, self.down, strict=True):
            x = x + self._attention(F.layer_norm(x, x.shape[-1:]), qkv, proj, attend)
            x = x + F.gelu(F.layer_norm(x, x.shape[-1:]) @ up) @ down
        out: torch.Tensor = F.layer_norm(x[:, 1 + n :], x.shape[-1:]) @ self.head
        return self.logit_scale * out

    def _attention(self, x: torch.Tensor, qkv: torch.Tensor, proj: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = torch.split(x @ qkv, d, dim=-1)
        q, k, v = (t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None])
        out: torch.Tensor = y.transpose(1, 2).reshape(b, s, d) @ proj
        return out


def pad_rows(
    contexts: list[tuple[torch.Tensor, torch.Tensor]], queries: list[tuple[int, ...]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of (context tokens, positions) and query positions -> padded batch tensors:
    context tokens, context positions, query positions [B, G], context valid, query valid."""
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
    return tokens, positions, query_positions, context_valid, query_valid
