"""Row entry for next-token models without row delimiters (spec/row_entry.md).

    model = RowEntryProxy(llamagen)   # lets PJD / ZipAR start a row before the row above ends

A query at t > 0 that sees no key at t - 1 gets one proxy key, visible to it only, at
position t - 1 with the token of its nearest visible key before t - 1. Every other query is
passed through unchanged. A named approximation: judge its output against the plain model.
"""

from __future__ import annotations

import torch

from .errors import QueryContextError
from .model import Model, ModelWrapper


def add_entry_proxies(
    key_tokens: torch.Tensor, key_positions: torch.Tensor, query_positions: torch.Tensor, visible: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keys, positions and visibility with one proxy key per query that lacks its t - 1 key."""
    tokens, positions, columns = [key_tokens], [key_positions], [visible]
    for q, t in enumerate(query_positions.tolist()):
        seen = visible[q] & (key_positions < t)
        if t == 0 or bool((seen & (key_positions == t - 1)).any()):
            continue
        earlier = seen & (key_positions < t - 1)
        # Verify something before t - 1 is visible to stand in for the missing key
        if not bool(earlier.any()):
            raise QueryContextError(
                f"query {q} for position {t} sees no key at {t - 1} and none before it; no row-entry proxy exists"
            )
        nearest = int(torch.where(earlier, key_positions, -1).argmax())
        tokens.append(key_tokens[nearest : nearest + 1])
        positions.append(key_positions.new_tensor([t - 1]))
        column = torch.zeros(visible.shape[0], 1, dtype=torch.bool, device=visible.device)
        column[q] = True
        columns.append(column)
    return torch.cat(tokens), torch.cat(positions), torch.cat(columns, dim=1)


class RowEntryProxy(ModelWrapper):
    """A Model that answers row-entry queries through a proxy key (spec/row_entry.md).
    `proxied_queries` counts the conditional queries answered through a proxy (CFG asks
    twice per pass; the unconditional call is not counted)."""

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        self.proxied_queries = 0

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        tokens, positions, mask = add_entry_proxies(key_tokens, key_positions, query_positions, visible)
        if condition is not None:
            self.proxied_queries += tokens.numel() - key_tokens.numel()
        return self.model.logits(condition, tokens, positions, query_positions, mask)


__all__ = ["RowEntryProxy", "add_entry_proxies"]
