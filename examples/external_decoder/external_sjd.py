"""An "external" speculative Jacobi decoder, written only against jacobi_oracle's public
testing API (the `target(tokens)` forward pass and an `rng`), the way another project would
plug its own decoder into the oracle. Not the project's reference: its own code, its own
bookkeeping.

decode(target, rng) -> tokens
    target(tokens) -> [min(n + 1, L), V] probs, row j = p(x_j | tokens[:j]); one forward pass
    rng.bernoulli(p, key) / rng.categorical(probs, key), key = (purpose, iteration, cell)
"""

from __future__ import annotations

from typing import Any

import torch

WINDOW = 3


def speculative_jacobi(target: Any, rng: Any, window: int = WINDOW) -> list[int]:
    """SJD: uniform random drafts, min(1, p/q) acceptance, residual on rejection, the
    rejected window's later drafts refreshed from this pass's p."""
    return _jacobi(target, rng, window, _acceptance, _residual)


def broken_speculative_jacobi(target: Any, rng: Any, window: int = WINDOW) -> list[int]:
    """A classic bug: after a rejection, resample from p instead of norm(max(0, p - q))."""
    return _jacobi(target, rng, window, _acceptance, lambda p, q: p)


def broken_speculative_jacobi_torch(target: Any, generator: torch.Generator) -> list[int]:
    """Another bug class, drawing from a torch.Generator: every draft is accepted."""
    return _jacobi(target, TorchDraws(generator), WINDOW, lambda p, q, token: 1.0, _residual)


def speculative_jacobi_torch(target: Any, generator: torch.Generator) -> list[int]:
    """The same decoder drawing from its own torch.Generator (statistical engine only)."""
    return speculative_jacobi(target, TorchDraws(generator))


class TorchDraws:
    """bernoulli / categorical from a torch.Generator; keys are ignored."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def bernoulli(self, p: float, key: Any = None) -> bool:
        return bool(torch.rand((), generator=self.generator, dtype=torch.float64) < p)

    def categorical(self, probs: torch.Tensor, key: Any = None) -> int:
        return int(torch.multinomial(probs, 1, generator=self.generator))


def _acceptance(p: torch.Tensor, q: torch.Tensor, token: int) -> float:
    return min(1.0, float(p[token] / q[token]))


def _residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    excess = torch.clamp(p - q, min=0.0)
    return excess / excess.sum() if float(excess.sum()) > 0 else p


State = tuple[tuple[int, ...], tuple[tuple[int, tuple[float, ...]], ...], int]  # committed, (draft, q)s, iteration


def sjd_start(target: Any) -> State:
    return ((), (), 0)


def sjd_step(
    target: Any, rng: Any, state: State, window: int = WINDOW, acceptance_fn: Any = None, residual_fn: Any = None
) -> State:
    """One iteration (one forward pass) of SJD. The state is plain tuples, so the stepped
    adapter (`wrap_stepped_decoder`) can merge equal states: drafts keep their q as a tuple."""
    acceptance_fn = acceptance_fn or _acceptance
    residual_fn = residual_fn or _residual
    committed, drafts, iteration = list(state[0]), list(state[1]), state[2]
    length, vocab = target.num_cells, target.vocab_size
    uniform = (1.0 / vocab,) * vocab
    base = len(committed)
    wanted = min(window, length - base) - 1  # the window's last slot is the bonus
    while len(drafts) < wanted:
        drafts.append(
            (
                rng.categorical(torch.tensor(uniform, dtype=torch.float64), ("init", iteration, base + len(drafts))),
                uniform,
            )
        )
    drafts = drafts[:wanted]
    probs = target(committed + [token for token, _ in drafts])  # [base + wanted + 1, V]
    refreshed: list[tuple[int, tuple[float, ...]]] = []
    for j, (token, q) in enumerate(drafts):
        p = probs[base + j]
        q_tensor = torch.tensor(q, dtype=torch.float64)
        if rng.bernoulli(acceptance_fn(p, q_tensor, token), ("accept", iteration, base + j)):
            committed.append(token)
            continue
        committed.append(rng.categorical(residual_fn(p, q_tensor), ("residual", iteration, base + j)))
        for k in range(j + 1, len(drafts)):
            p_k = probs[base + k]
            refreshed.append((rng.categorical(p_k, ("fresh", iteration, base + k)), tuple(p_k.tolist())))
        break
    else:
        committed.append(rng.categorical(probs[base + wanted], ("fresh", iteration, base + wanted)))
    return (tuple(committed), tuple(refreshed), iteration + 1)


def sjd_output(target: Any, state: State) -> list[int] | None:
    """The tokens once every cell is committed, else None."""
    return list(state[0]) if len(state[0]) == target.num_cells else None


def broken_sjd_step(target: Any, rng: Any, state: State) -> State:
    """The wrong-residual bug of `broken_speculative_jacobi`, as a step."""
    return sjd_step(target, rng, state, residual_fn=lambda p, q: p)


def _jacobi(target: Any, rng: Any, window: int, acceptance_fn: Any, residual_fn: Any) -> list[int]:
    """The whole-run form: the stepped form's loop."""
    state = sjd_start(target)
    while (tokens := sjd_output(target, state)) is None:
        state = sjd_step(target, rng, state, window, acceptance_fn, residual_fn)
    return tokens
