"""accelerated/prefix_cache.py: caching the committed raster prefix gives the reference answers
(spec/model.md, "Keys, caches and the law every implementation must match")."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobi_oracle.accelerated import PREFIX_CACHED, build_accelerated
from jacobi_oracle.accelerated.prefix_cache import PrefixCachedLlamaGen, with_prefix_cache
from jacobi_oracle.models.llamagen import LlamaGen, llamagen_config
from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.reference.presets import PRESETS, build_preset
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.randomness import KeyedRandomness
from jacobi_oracle.spec.row_entry import RowEntryProxy
from jacobi_oracle.spec.sampling import Sampling

from .strategies import cached_passes


def tiny_llamagen() -> LlamaGen:
    torch.manual_seed(1)
    model = LlamaGen(llamagen_config("tiny")).double()
    torch.nn.init.normal_(model.output.weight, std=1.0)  # the official init zeroes it (flat logits)
    return model.eval().requires_grad_(False)


LLAMAGEN = tiny_llamagen()
GRID = LLAMAGEN.config.grid_size


@settings(max_examples=40, deadline=None)
@given(
    calls=st.lists(cached_passes(LLAMAGEN.vocab_size, 2 * GRID), min_size=1, max_size=4),
    condition=st.sampled_from([0, 3, None]),
)
def test_cached_logits_equal_the_model_over_any_sequence_of_passes(
    calls: list[tuple[torch.Tensor, ...]], condition: int | None
) -> None:
    cached = PrefixCachedLlamaGen(LLAMAGEN)
    for keys, positions, queries, visible in calls:  # the prefix grows, shrinks (rollback) or changes
        expected = LLAMAGEN.logits(condition, keys, positions, queries, visible)
        got = cached.logits(condition, keys, positions, queries, visible)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


class StaleCache(PrefixCachedLlamaGen):
    """Negative control: trusts its cached entries without checking the new prefix's tokens."""

    @staticmethod
    def _reusable(cached: list[int], prefix: list[int]) -> int:
        return min(len(cached), len(prefix))


def test_a_cache_that_does_not_check_its_prefix_is_caught() -> None:
    length = 2 * GRID
    keys, positions = torch.arange(length) % 7, torch.arange(length)
    query, visible = torch.tensor([length]), torch.ones(1, length, dtype=torch.bool)
    stale = StaleCache(LLAMAGEN)
    stale.logits(0, keys, positions, query, visible)
    changed = keys.clone()
    changed[2] = 11  # the next image (or a rollback) differs at position 2
    with pytest.raises(AssertionError):
        torch.testing.assert_close(
            stale.logits(0, changed, positions, query, visible),
            LLAMAGEN.logits(0, changed, positions, query, visible),
            rtol=0,
            atol=1e-10,
        )


def small_params(name: str, data: st.DataObject) -> dict[str, Any]:
    accepted = inspect.signature(PRESETS[name].build).parameters
    params: dict[str, Any] = {}
    if "window" in accepted:
        params["window"] = data.draw(st.integers(1, 4), label="window")
    if "context" in accepted:
        params["context"] = data.draw(st.integers(1, GRID), label="context")
    return params


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(PREFIX_CACHED)),
    height=st.integers(1, 3),
    sampling=st.sampled_from([Sampling(), Sampling(temperature=0.7, top_k=8, cfg_scale=2.0), Sampling(top_p=0.9)]),
    seed=st.integers(0, 2**40),
    data=st.data(),
)
def test_prefix_cached_decoders_equal_the_reference_on_tiny_llamagen(
    name: str, height: int, sampling: Sampling, seed: int, data: st.DataObject
) -> None:
    params = small_params(name, data)
    layout = Layout(height, GRID)
    model = RowEntryProxy(LLAMAGEN)  # the 2D presets start rows early (spec/row_entry.md)
    slow = build_preset(name, **params).decode(model, 1, layout, sampling, KeyedRandomness(seed, 0))
    fast = build_accelerated(name, **params).decode(model, 1, layout, sampling, KeyedRandomness(seed, 0))
    assert fast.tokens == slow.tokens, f"{name} {params}: {fast.tokens} != {slow.tokens}"
    assert fast.forward_passes == slow.forward_passes and fast.trace == slow.trace


def test_only_llamagen_is_wrapped() -> None:
    toy = HashModel(vocab_size=3, num_positions=6, row_stride=3)
    assert with_prefix_cache(toy) is toy  # the exact toy models have nothing to cache
    assert isinstance(with_prefix_cache(LLAMAGEN), PrefixCachedLlamaGen)
    proxied = with_prefix_cache(RowEntryProxy(LLAMAGEN))
    assert isinstance(proxied, RowEntryProxy) and isinstance(proxied.model, PrefixCachedLlamaGen)


def test_a_pass_feeds_the_prefix_once_and_then_only_what_lies_past_it() -> None:
    cached = PrefixCachedLlamaGen(LLAMAGEN)
    layout = Layout(2, GRID)
    build_preset("ar").decode(cached, 0, layout, Sampling(), KeyedRandomness(0, 0))
    assert cached.stats.slots_fed == cached.stats.calls == layout.num_cells  # one slot per AR step


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["pjd", "pjd-exact", "zipar"])
def test_the_cuda_prefix_cache_equals_the_cpu_reference_in_float64(name: str) -> None:
    layout, sampling = Layout(3, GRID), Sampling(temperature=0.9, top_k=8, cfg_scale=3.0)
    params = {"context": 2, "window": 2} if name != "zipar" else {"window": 2}
    slow = build_preset(name, **params).decode(RowEntryProxy(LLAMAGEN), 1, layout, sampling, KeyedRandomness(5, 0))
    cuda = RowEntryProxy(tiny_llamagen().to("cuda"))
    fast = build_accelerated(name, **params).decode(cuda, 1, layout, sampling, KeyedRandomness(5, 0))
    assert fast.tokens == slow.tokens and fast.forward_passes == slow.forward_passes
