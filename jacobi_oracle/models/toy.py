"""Toy models with exact laws: their conditionals are cheap, deterministic and honour any mask.

* `HashModel`: the conditional at a query is a sum of pseudo-random contributions, one per
  visible (position, token) pair, so every change of visibility changes it. `locality`
  weights the left and above neighbours against the rest; `sharpness` scales the logits
  (low sharpness = high entropy).
* `MarkovGrid`: a 2D Markov field: the token at (r, c) depends only on the left and above
  tokens (each "absent" when not visible or off the grid) and the class.

The third toy, a seedable random transformer, is models/transformer.py's `TinyTransformer`.

All expose `token_embeddings` ([V, D]) so relaxed verifiers have latent neighbours. `HashModel`
and `MarkovGrid` also answer raster-causal queries for a whole batch in one call
(spec/model.md, "Batched causal queries"), so the accelerated decoders and the statistical
engine sample them in batches instead of one Python query at a time.
"""

from __future__ import annotations

import math

import torch

from ..spec.errors import InvalidParameterError

_M = 0x5851F42D4C957F2D  # a 63-bit odd multiplier (PCG's), wraps in int64 arithmetic
HASH_TABLE_ENTRIES = 1 << 21  # HashModel tabulates its key terms up to this many (16 MiB of float64)


def hash_normal(seed: int, *fields: torch.Tensor) -> torch.Tensor:
    """A deterministic pseudo-random ~N(0, 1) value per element of the broadcast fields."""
    h = torch.full((), seed * 2654435761 + 12345, dtype=torch.int64)
    for f in fields:
        h = (h ^ f.to(torch.int64)) * _M
        h = h ^ ((h >> 29) & ((1 << 35) - 1))
    h = h * _M
    h = h ^ ((h >> 32) & ((1 << 32) - 1))
    u = ((h & ((1 << 24) - 1)).to(torch.float64) + 0.5) / float(1 << 24)
    return math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)


def check_model_sizes(vocab_size: int, num_positions: int, num_classes: int) -> None:
    if vocab_size < 2:
        raise InvalidParameterError(f"vocab_size must be >= 2, got {vocab_size!r}")
    if num_positions < 1:
        raise InvalidParameterError(f"num_positions must be >= 1, got {num_positions!r}")
    if num_classes < 0:
        raise InvalidParameterError(f"num_classes must be >= 0, got {num_classes!r}")


class HashModel:
    def __init__(
        self,
        vocab_size: int = 3,
        num_positions: int = 6,
        num_classes: int = 2,
        row_stride: int = 3,
        locality: float = 3.0,
        sharpness: float = 1.0,
        seed: int = 0,
    ) -> None:
        check_model_sizes(vocab_size, num_positions, num_classes)
        if locality < 0 or sharpness < 0:
            raise InvalidParameterError(f"locality and sharpness must be >= 0, got {locality!r}, {sharpness!r}")
        self.vocab_size = vocab_size
        self.num_positions = num_positions
        self.num_classes = num_classes
        self.row_stride = row_stride
        self.locality = locality
        self.sharpness = sharpness
        self.seed = seed
        self.token_embeddings = hash_normal(seed + 7, torch.arange(vocab_size)[:, None], torch.arange(4)[None, :])
        self.answers_causal_batches = True  # spec.model.CausalBatchModel
        self._tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # built on first use

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        conditioned = torch.tensor(condition is not None)
        cls = torch.tensor(0 if condition is None else condition)
        return self._logits(
            conditioned, cls, query_positions[:, None], key_positions[None, :], key_tokens[None, :], visible
        )

    def causal_logits(
        self,
        classes: torch.Tensor,
        tokens: torch.Tensor,
        queries: torch.Tensor,
        cache: dict[str, torch.Tensor] | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """spec.model.CausalBatchModel: `logits` of every query t = queries[b, w] with the keys
        tokens[b, :t] at positions 0 .. t - 1, all visible: the same terms, the keys at or after t
        weighted 0 (their sum rounds differently from `logits`' shorter sum: ~1e-16 relative).
        Cheap enough to recompute: the cache is not used."""
        qp, kp = queries[:, :, None], torch.arange(tokens.shape[1])  # [B, W, 1], [N]
        conditioned = (classes != self.num_classes)[:, None, None]
        return self._logits(conditioned, classes[:, None, None], qp, kp, tokens[:, None, :], qp - kp > 0)

    def _logits(
        self,
        conditioned: torch.Tensor,
        cls: torch.Tensor,
        qp: torch.Tensor,
        kp: torch.Tensor,
        kt: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        """[..., V] logits at query positions qp ([..., 1]) from keys at positions kp with tokens kt
        ([..., N], broadcast against qp) under [..., N] `visible`; the class term where `conditioned`."""
        base, term, g = self._terms(cls, qp, kp, kt)  # [..., V], [..., V], [..., N, V]
        base = torch.where(conditioned, base + term, base)
        dist = qp - kp  # [..., N]
        neighbour = (dist == 1) | (dist == self.row_stride)
        weight = torch.where(neighbour, self.locality, 1.0).to(torch.float64) * visible
        return self.sharpness * (base + (weight[..., None] * g).sum(dim=-2))

    def _terms(
        self, cls: torch.Tensor, qp: torch.Tensor, kp: torch.Tensor, kt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The hashed terms of `_logits`: the query's base h(seed; q, v), the class term
        h(seed + 1; class, q, v) and each key's contribution g = h(seed + 2; pos_k, tok_k, q, v).
        Read from tables of the same values (hashed once, on first use) when every index is in
        range, which every call through the spec contract is; hashed directly otherwise."""
        tables = self._hash_tables()
        if tables is not None:
            base, term, g = tables
            try:  # a negative index counts from the end, as for any tensor; only a caller bug makes one
                return base[qp][..., 0, :], term[cls, qp][..., 0, :], g[kp, kt, qp]
            except IndexError:  # a position or token past the model's: hash it
                pass
        v = torch.arange(self.vocab_size)
        return (
            hash_normal(self.seed, qp, v),
            hash_normal(self.seed + 1, cls, qp, v),
            hash_normal(self.seed + 2, kp[..., None], kt[..., None], qp[..., None], v),
        )

    def _hash_tables(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """[P, V] base, [C + 1, P, V] class and [P, V, P, V] key terms at every position, class
        (the null class too) and token; None past HASH_TABLE_ENTRIES (then every call hashes)."""
        positions, vocab, classes = self.num_positions, self.vocab_size, self.num_classes + 1
        if self._tables is None and (positions * vocab) ** 2 <= HASH_TABLE_ENTRIES:
            p, v = torch.arange(positions), torch.arange(vocab)
            self._tables = (
                hash_normal(self.seed, p[:, None], v),
                hash_normal(self.seed + 1, torch.arange(classes)[:, None, None], p[None, :, None], v),
                hash_normal(self.seed + 2, p[:, None, None, None], v[None, :, None, None], p[None, None, :, None], v),
            )
        return self._tables


class MarkovGrid:
    def __init__(
        self,
        vocab_size: int = 3,
        height: int = 2,
        width: int = 3,
        num_classes: int = 2,
        sharpness: float = 2.0,
        seed: int = 0,
    ) -> None:
        check_model_sizes(vocab_size, height * width, num_classes)
        self.vocab_size = vocab_size
        self.width = width
        self.num_positions = height * width
        self.num_classes = num_classes
        self.sharpness = sharpness
        self.seed = seed
        states = torch.arange(vocab_size + 1)  # token ids, and vocab_size = "absent"
        # table[left_state, above_state, v]
        self.table = hash_normal(
            seed, states[:, None, None], states[None, :, None], torch.arange(vocab_size)[None, None, :]
        )
        self.class_bias = hash_normal(
            seed + 1, torch.arange(max(num_classes, 1))[:, None], torch.arange(vocab_size)[None, :]
        )
        self.token_embeddings = self.table[:vocab_size, vocab_size, :].clone()
        self.answers_causal_batches = True  # spec.model.CausalBatchModel

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        qp = query_positions[:, None]  # [Q, 1]
        left = self._visible_token(key_tokens, key_positions, visible, qp - 1)
        left = torch.where(qp[:, 0] % self.width != 0, left, self.vocab_size)
        above = self._visible_token(key_tokens, key_positions, visible, qp - self.width)
        rows = self.table[left, above]  # [Q, V]
        if condition is not None:
            rows = rows + self.class_bias[condition]
        return self.sharpness * rows

    def causal_logits(
        self,
        classes: torch.Tensor,
        tokens: torch.Tensor,
        queries: torch.Tensor,
        cache: dict[str, torch.Tensor] | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """spec.model.CausalBatchModel: `logits` of every query t = queries[b, w] with the keys
        tokens[b, :t] at positions 0 .. t - 1, all visible: the left and above tokens read from
        the sequence (the same table rows, so the same values bit for bit). No cache needed."""
        absent = self.vocab_size
        padded = torch.cat([tokens.long(), torch.full((tokens.shape[0], 1), absent)], dim=1)  # [B, N + 1]
        n = tokens.shape[1]

        def token_at(wanted: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
            return padded.gather(1, torch.where(present, wanted, n))  # the absent column where not present

        left = token_at(queries - 1, queries % self.width != 0)
        above = token_at(queries - self.width, queries >= self.width)
        rows = self.table[left, above]  # [B, W, V]
        conditioned = rows + self.class_bias[classes.clamp(max=self.class_bias.shape[0] - 1)][:, None, :]
        return self.sharpness * torch.where((classes == self.num_classes)[:, None, None], rows, conditioned)

    def _visible_token(
        self, key_tokens: torch.Tensor, key_positions: torch.Tensor, visible: torch.Tensor, wanted: torch.Tensor
    ) -> torch.Tensor:
        """Per query, the token of the last visible key at position `wanted` ([Q, 1]), else "absent"."""
        hit = visible & (key_positions[None, :] == wanted)  # [Q, N]
        if hit.shape[1] == 0:
            return torch.full((hit.shape[0],), self.vocab_size, dtype=torch.long)
        last = hit.shape[1] - 1 - hit.flip(1).to(torch.int8).argmax(dim=1)
        return torch.where(hit.any(dim=1), key_tokens[last].long(), self.vocab_size)
