"""Position-query models (spec/position_query.py, spec/lpd.md): models LPD can decode.

* `JointTableModel`: an explicit joint law P over the whole grid (a tabled 2D Markov random
  field, one table per class and one for the null class). A query is answered by exact
  conditioning, P(x_t | visible real keys); query keys are accepted and ignored. It is the
  *perfect* position-query model: its AR law in every order is P itself, so LPD with groups
  of one cell is lossless in every order, and LPD with larger groups samples the product of
  exact marginals inside a group (the law spec/lpd.md derives).

The LPD transformer (real tokens as tok_emb + pos_emb, queries as query_emb + pos_emb[target],
spec.position_query's slot attention) is models/transformer.py's `TinyTransformer` with
queries="lpd".
"""

from __future__ import annotations

import torch

from ..spec.errors import InvalidParameterError
from ..spec.position_query import split_query_keys

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
