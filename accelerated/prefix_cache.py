"""LlamaGen behind the spec Model contract with a KV cache of the committed raster prefix.

    model = PrefixCachedLlamaGen(llamagen)
    build_preset("pjd", context=8, window=8).decode(RowEntryProxy(model), ...)   # same tokens as
    build_preset("pjd", context=8, window=8).decode(RowEntryProxy(llamagen), ...) # without the cache

The rule (spec/model.md, "Keys, caches and the law every implementation must match"): only the
committed raster prefix is cached; every other key is fed again in every pass, so any preset
(PJD and ZipAR included, whose lower rows commit cells ahead of the frontier) gets exactly the
reference answers. One call = one forward pass for one condition:

1. context[q] = the keys query q sees before its position; the prefix = positions 0 .. f - 1,
   each held by one key that every query sees;
2. slots: the prefix from the first entry not in the cache (or whose output answers a query)
   to f - 1, then every other key of every query's context, one slot per (key, keys it reads):
   a cell committed ahead of the frontier, read alike by several rows, is fed once;
3. one run over these slots: each reads the cached prefix below it and the slots of the keys
   it reads; prefix slots write their cache entries, the others write scratch entries;
4. query q is answered by the slot of its t - 1 key (the class slot for t = 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from jacobi_oracle.models.llamagen import KVCache, LlamaGen
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Model, ModelWrapper, check_query_ranges
from jacobi_oracle.spec.randomness import Randomness
from jacobi_oracle.spec.row_entry import RowEntryProxy
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Decoded

from .jacobi import check_batch


@dataclass
class _Prefix:
    caches: list[KVCache]
    scratch: int  # scratch entries after the 1 + num_positions prefix entries
    tokens: list[int] = field(default_factory=list)  # cached positions 0 .. len - 1
    has_class: bool = False


@dataclass
class CacheStats:
    calls: int = 0
    slots_fed: int = 0  # slots run, summed over calls
    ahead_slots_fed: int = 0  # of which past the committed prefix (drafts, cells committed ahead, proxies)


@dataclass
class _Slot:
    token: int
    rope: int  # 0 = class, 1 + position
    write: int  # cache entry written
    reads_prefix_below: int  # reads entries 0 .. this - 1: class + prefix before it (+ itself, for a prefix slot)
    reads: list[int]  # indices of earlier ahead slots it reads


class PrefixCachedLlamaGen(ModelWrapper):
    """spec Model over a LlamaGen; one prefix cache per condition (CFG asks for two)."""

    def __init__(self, model: LlamaGen) -> None:
        super().__init__(model)
        self.llamagen = model
        self.stats = CacheStats()
        self._prefixes: dict[int | None, _Prefix] = {}

    @torch.no_grad()
    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        m = self.llamagen
        dev = m.output.weight.device
        check_query_ranges(m, key_tokens, key_positions, query_positions)
        tokens, positions = key_tokens.tolist(), key_positions.tolist()
        context = visible.to(torch.bool) & (key_positions[None, :] < query_positions[:, None])  # [Q, N]
        answer = m.answer_slots(context, key_positions, query_positions).tolist()  # 0 class, 1 + key
        rows, row_of = m.shared_rows(context, key_positions, query_positions)  # [R, N], [Q]
        prefix_key = self._prefix_keys(context, positions)  # key index of each prefix position
        f = len(prefix_key)
        state = self._prefix_state(condition)
        prefix_tokens = [tokens[k] for k in prefix_key]
        # 1. the first prefix entry to feed: not cached, or its output answers a query
        start = 1 + self._reusable(state.tokens, prefix_tokens) if state.has_class else 0
        prefix_of_key = {k: p for p, k in enumerate(prefix_key)}
        for a in answer:
            start = min(start, 0 if a == 0 else 1 + prefix_of_key.get(a - 1, f))
        # 2. slots: the prefix from `start`, then one slot per (ahead key, ahead keys it reads)
        slots = [_Slot(0 if e == 0 else prefix_tokens[e - 1], e, e, e + 1, []) for e in range(start, f + 1)]
        # a row's ahead keys in position order: each reads the ones before it in that row
        ahead: dict[tuple[int, tuple[int, ...]], int] = {}  # (key, ahead keys it reads) -> slot index
        slot_in_row: list[dict[int, int]] = []
        for row in rows.tolist():
            chain: list[int] = []  # the row's ahead keys so far
            slot_in_row.append({})
            for k in sorted(
                (k for k, seen in enumerate(row) if seen and k not in prefix_of_key), key=positions.__getitem__
            ):
                name = (k, tuple(chain))
                if name not in ahead:
                    entry = 1 + m.num_positions + len(ahead)
                    below = [slot_in_row[-1][j] for j in chain]
                    ahead[name] = len(slots)
                    slots.append(_Slot(tokens[k], 1 + positions[k], entry, 1 + min(positions[k], f), below))
                slot_in_row[-1][k] = ahead[name]
                chain.append(k)
        answer_slot = [
            0
            if a == 0
            else 1 + prefix_of_key[a - 1] - start
            if (a - 1) in prefix_of_key
            else slot_in_row[int(row_of[q])][a - 1]
            for q, a in enumerate(answer)
        ]
        # 3. one run; prefix slots become the cache, ahead slots write scratch entries
        caches = self._caches_for(state, len(ahead))
        size = caches[0].k.shape[2]
        prefix_below = torch.tensor([s.reads_prefix_below for s in slots])
        mask = torch.arange(size)[None, :] < prefix_below[:, None]  # [S, size]: the prefix below each slot
        reader = [i for i, s in enumerate(slots) for _ in range(len(s.reads) + 1)]
        read = [slots[j].write for i, s in enumerate(slots) for j in [*s.reads, i]]
        mask[reader, read] = True  # itself and the ahead slots it reads

        def as_tensor(values: list[int]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.long, device=dev)[None]

        rope = as_tensor([s.rope for s in slots])
        class_ids = torch.tensor([m.class_index(condition)], device=dev)
        x = m.embed(as_tensor([s.token for s in slots]), rope, class_ids)
        h = m.run(x, rope, mask.to(dev)[None, None], caches, as_tensor([s.write for s in slots]))
        state.tokens, state.has_class = prefix_tokens, True
        self.stats.calls += 1
        self.stats.slots_fed += len(slots)
        self.stats.ahead_slots_fed += len(ahead)
        return m.head(h[0, answer_slot]).to(key_tokens.device)  # the engine stays on the host

    @staticmethod
    def _reusable(cached: list[int], prefix: list[int]) -> int:
        """Cached entries still valid: the common prefix of the cached and the new tokens."""
        n = 0
        while n < min(len(cached), len(prefix)) and cached[n] == prefix[n]:
            n += 1
        return n

    @staticmethod
    def _prefix_keys(context: torch.Tensor, positions: list[int]) -> list[int]:
        """Key index at positions 0 .. f - 1: the longest run of positions from 0 each held by a
        key that every query sees."""
        if context.shape[0] == 0:
            return []
        seen_by_all = {positions[k]: k for k in context.all(dim=0).nonzero()[:, 0].tolist()}
        keys: list[int] = []
        while len(keys) in seen_by_all:
            keys.append(seen_by_all[len(keys)])
        return keys

    def _prefix_state(self, condition: int | None) -> _Prefix:
        if condition not in self._prefixes:
            self._prefixes[condition] = _Prefix(self.llamagen.new_caches(1, scratch=0), scratch=0)
        return self._prefixes[condition]

    def _caches_for(self, state: _Prefix, scratch: int) -> list[KVCache]:
        """The state's caches with room for `scratch` entries (grown by doubling, prefix kept)."""
        if scratch > state.scratch:
            grown = self.llamagen.new_caches(1, scratch=max(scratch, 2 * state.scratch))
            keep = 1 + len(state.tokens) if state.has_class else 0
            for new, old in zip(grown, state.caches, strict=True):
                new.k[:, :, :keep] = old.k[:, :, :keep]
                new.v[:, :, :keep] = old.v[:, :, :keep]
            state.caches, state.scratch = grown, max(scratch, 2 * state.scratch)
        return state.caches


def with_prefix_cache(model: Model) -> Model:
    """`model` with its LlamaGen (bare or under a RowEntryProxy) behind a prefix cache; other
    models (the exact toy models) have nothing to cache and are returned as they are."""
    if isinstance(model, LlamaGen):
        return PrefixCachedLlamaGen(model)
    if isinstance(model, RowEntryProxy) and isinstance(model.model, LlamaGen):
        return RowEntryProxy(PrefixCachedLlamaGen(model.model))
    return model


class PrefixCachedDecoder:
    """Reference preset `name` on the prefix-cached model: the reference engine's steps (host-side
    verification), one cached forward pass per step, the reference's tokens."""

    def __init__(self, name: str, **params: Any) -> None:
        try:
            self.strategy = build_preset(name, **params)
        except TypeError as error:
            raise InvalidParameterError(f"bad parameters {params} for {name!r}: {error}") from error
        self.name = name

    def decode(
        self, model: Model, condition: int | None, layout: Layout, sampling: Sampling, randomness: Randomness
    ) -> Decoded:
        return self.decode_batch(model, [condition], layout, sampling, [randomness])[0]

    @torch.no_grad()
    def decode_batch(
        self,
        model: Model,
        conditions: list[int | None],
        layout: Layout,
        sampling: Sampling,
        randomness: list[Randomness],
    ) -> list[Decoded]:
        """One image per (condition, randomness) pair, one after the other (a reused cache
        entry is always checked against the new image's tokens)."""
        check_batch(conditions, randomness)
        cached = with_prefix_cache(model)
        return [
            self.strategy.decode(cached, c, layout, sampling, r) for c, r in zip(conditions, randomness, strict=True)
        ]


__all__ = ["CacheStats", "PrefixCachedDecoder", "PrefixCachedLlamaGen", "with_prefix_cache"]
