"""The state of a Jacobi-family decoder between forward passes (spec/composition.md)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import torch


def tensor_key(tensor: torch.Tensor) -> Hashable:
    """`spec.strategy.freeze` of a tensor (dtype, shape, exact bytes), without its detour
    through detach / cpu when the tensor is already a plain CPU tensor. A decoder's p is the
    q of many drafts on many paths: the key is kept on the tensor with its version (a change
    in place makes it anew)."""
    kept = tensor.__dict__.get("_exact_key")
    if kept is not None and kept[0] == tensor._version:
        return kept[1]  # type: ignore[no-any-return]
    try:
        data = tensor.numpy().tobytes()
    except (RuntimeError, TypeError):  # needs grad, lives on a device, or has a lazy conj / neg bit
        data = tensor.detach().cpu().numpy().tobytes()
    key = (tensor.dtype, tuple(tensor.shape), data)
    tensor.__dict__["_exact_key"] = (tensor._version, key)
    return key


@dataclass(frozen=True, eq=False)
class Draft:
    """A draft token at a cell and the law it was actually drawn from (the precondition)."""

    token: int
    draft_probs: torch.Tensor  # q: [V] float64, the distribution `token` was sampled from
    last_target: torch.Tensor | None = None  # p at this cell in the pass that produced the draft

    def exact_key(self) -> Hashable:
        """Equal to `freeze(self)` (every field; tensors by their exact bytes), built directly."""
        last = self.last_target
        return ("Draft", self.token, tensor_key(self.draft_probs), None if last is None else tensor_key(last))


@dataclass(frozen=True, eq=False)
class JacobiState:
    committed: tuple[int | None, ...]  # per cell: the committed token, or None
    drafts: tuple[Draft | None, ...]  # per cell: the current draft, or None
    iteration: int  # forward passes done so far
    # per cell: p at that cell in the latest pass that queried it (None: never queried, or
    # not remembered). Only strategies whose drafters read it keep it (spec/sjd-spatial.md).
    targets: tuple[torch.Tensor | None, ...] | None = None

    def exact_key(self) -> Hashable:
        """Equal to `freeze(self)`, built directly: the exact engine merges states by it
        (two states share it only if every field is equal, tensors byte for byte)."""
        drafts = tuple(None if draft is None else draft.exact_key() for draft in self.drafts)
        targets = None if self.targets is None else tuple(None if p is None else tensor_key(p) for p in self.targets)
        return ("JacobiState", self.committed, drafts, self.iteration, targets)

    @staticmethod
    def empty(num_cells: int) -> JacobiState:
        return JacobiState((None,) * num_cells, (None,) * num_cells, 0)

    def first_uncommitted(self) -> int:
        """The raster frontier: the first cell without a committed token (num_cells if none)."""
        for cell, token in enumerate(self.committed):
            if token is None:
                return cell
        return len(self.committed)

    def token_at(self, cell: int) -> int | None:
        """The committed token at `cell`, else its current draft's token, else None."""
        committed = self.committed[cell]
        if committed is not None:
            return committed
        draft = self.drafts[cell]
        return None if draft is None else draft.token

    def target_at(self, cell: int) -> torch.Tensor | None:
        """The remembered p at `cell` (None when not remembered)."""
        return None if self.targets is None else self.targets[cell]

    def with_drafts(self, new: dict[int, Draft | None]) -> JacobiState:
        drafts = list(self.drafts)
        for cell, draft in new.items():
            drafts[cell] = draft
        return JacobiState(self.committed, tuple(drafts), self.iteration, self.targets)  # `replace`, cheaper


@dataclass(frozen=True)
class Window:
    """A run of uncommitted cells queried in one pass and verified left to right.

    Every cell but the last carries a draft. With `bonus`, the last cell has no draft: its
    fresh sample is committed when every draft before it is accepted (one bonus token).
    Without `bonus`, the last cell carries a draft too and nothing follows it.
    """

    cells: tuple[int, ...]
    bonus: bool = True

    def drafted_cells(self) -> tuple[int, ...]:
        return self.cells[:-1] if self.bonus else self.cells
