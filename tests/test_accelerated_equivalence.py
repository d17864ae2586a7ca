"""accelerated/ equals reference/ token for token on keyed noise (CPU, float64).

The toy models go through their batched causal queries (spec/model.md; the hash model with
end-of-row tokens through the per-query contract, no cache); the tiny LlamaGen goes through the
static KV cache. Hypothesis picks the grid, window, sampling, batch size and CFG.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobi_oracle.accelerated import WINDOW_DECODERS, AcceleratedDecoder, build_accelerated
from jacobi_oracle.accelerated.jacobi import AcceleratedWindowDecoder, Parts, _static_caches
from jacobi_oracle.accelerated.noise import inverse_cdf as device_inverse_cdf
from jacobi_oracle.accelerated.noise import keyed_categorical, keyed_uniforms, sample_streams
from jacobi_oracle.models.llamagen import LlamaGen, llamagen_config
from jacobi_oracle.models.registry import ModelCase, build_model
from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.spec import randomness as spec_randomness
from jacobi_oracle.spec.errors import InvalidParameterError, UnsupportedStrategyError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Model
from jacobi_oracle.spec.randomness import EventKey, GeneratorRandomness, KeyedRandomness, Randomness
from jacobi_oracle.spec.randomness import inverse_cdf as spec_inverse_cdf
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Decoded

from .strategies import samplings

MAX_BATCH = 3


class Config(NamedTuple):
    strategy: str
    window: int
    sampling: Sampling
    seed: int
    batch: int


def configs(vocab: int) -> st.SearchStrategy[Config]:
    return st.builds(
        Config,
        strategy=st.sampled_from(sorted(WINDOW_DECODERS)),
        window=st.integers(1, 6),
        sampling=samplings(vocab),
        seed=st.integers(0, 2**40),
        batch=st.integers(1, MAX_BATCH),
    )


def tiny_llamagen(seed: int = 0) -> LlamaGen:
    torch.manual_seed(seed)
    model = LlamaGen(llamagen_config("tiny")).double()
    torch.nn.init.normal_(model.output.weight, std=1.0)  # the official init zeroes it (flat logits)
    return model.eval().requires_grad_(False)


LLAMAGEN = tiny_llamagen()
# end-of-row tokens (Lumina-mGPT layout): positions differ from cells, fixed keys in every pass
HASH_END_OF_ROW = ModelCase(HashModel(vocab_size=4, num_positions=8, row_stride=4), Layout(2, 3, 3), 1)


def decode_both(
    model: Model, conditions: list[int | None], layout: Layout, config: Config, accelerated: AcceleratedDecoder
) -> tuple[list[Decoded], list[Decoded]]:
    params = {} if config.strategy == "ar" else {"window": config.window}
    reference = build_preset(config.strategy, **params)
    noise: list[Randomness] = [KeyedRandomness(config.seed, b) for b in range(len(conditions))]
    fast = accelerated.decode_batch(model, conditions, layout, config.sampling, noise)
    slow = [reference.decode(model, c, layout, config.sampling, r) for c, r in zip(conditions, noise, strict=True)]
    return slow, fast


def assert_identical(slow: list[Decoded], fast: list[Decoded], config: Config) -> None:
    for b, (s, f) in enumerate(zip(slow, fast, strict=True)):
        assert f.tokens == s.tokens, f"sample {b}: tokens {f.tokens}, but should be {s.tokens}; repro: {config}"
        assert f.forward_passes == s.forward_passes, f"sample {b}: passes {f.forward_passes} != {s.forward_passes}"
        assert f.trace == s.trace, f"sample {b}: trace differs; repro: {config}"


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["hash", "hash-end-of-row", "markov", "transformer", "transformer-16"]), config=configs(8))
def test_accelerated_equals_reference_on_the_toy_models(name: str, config: Config) -> None:
    case = HASH_END_OF_ROW if name == "hash-end-of-row" else build_model(name)
    sampling = config.sampling
    if sampling.top_k is not None and sampling.top_k > case.model.vocab_size:
        sampling = Sampling(sampling.temperature, None, sampling.top_p, sampling.cfg_scale)
    config = config._replace(sampling=sampling)
    accelerated = build_accelerated(config.strategy, **({} if config.strategy == "ar" else {"window": config.window}))
    conditions: list[int | None] = [case.condition] * config.batch
    assert_identical(*decode_both(case.model, conditions, case.layout, config, accelerated), config)


@settings(max_examples=20, deadline=None)
@given(height=st.integers(1, 4), config=configs(LLAMAGEN.vocab_size), classes=st.lists(st.integers(0, 3), min_size=3))
def test_accelerated_kv_cache_equals_reference_on_tiny_llamagen(
    height: int, config: Config, classes: list[int]
) -> None:
    layout = Layout(height, LLAMAGEN.config.grid_size)
    params = {} if config.strategy == "ar" else {"window": config.window}
    accelerated = build_accelerated(config.strategy, **params)
    conditions: list[int | None] = list(classes[: config.batch])
    assert_identical(*decode_both(LLAMAGEN, conditions, layout, config, accelerated), config)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**70), sample=st.integers(0, 2**66), iteration=st.integers(0, 10**6))
def test_device_uniforms_equal_the_keyed_uniforms(seed: int, sample: int, iteration: int) -> None:
    # seeds and samples past 64 bits too: the spec hash reads their low 64 bits
    noise = KeyedRandomness(seed, sample)
    cells = torch.tensor([[0, 1, 7, 2**31 + 5]])
    streams = sample_streams([noise], torch.device("cpu"))
    fast = keyed_uniforms(streams, "accept", iteration, cells)[0].tolist()
    assert fast == [noise.uniform(EventKey("accept", iteration, int(c))) for c in cells[0]]
    probs = torch.tensor([0.25, 0.0, 0.5, 0.25, 0.0], dtype=torch.float64).expand(1, 4, 5)
    tokens = keyed_categorical(streams, "fresh", iteration, cells, probs)[0].tolist()
    assert tokens == [
        noise.categorical(probs[0, i], EventKey("fresh", iteration, int(c))) for i, c in enumerate(cells[0])
    ]


@settings(max_examples=60, deadline=None)
@given(
    masses=st.lists(st.sampled_from([0.0, 0.0, 1e-300, 1e-17, 0.1, 0.3, 1.0]), min_size=1, max_size=9),
    u=st.one_of(st.floats(0.0, 1.0, exclude_max=True), st.just(1.0 - 2.0**-53), st.just(0.0)),
)
def test_device_inverse_cdf_is_the_spec_rule_at_every_edge(masses: list[float], u: float) -> None:
    # zero-mass tokens anywhere, the last ones included, and uniforms at the very top of [0, 1)
    probs = torch.tensor(masses, dtype=torch.float64)
    if float(probs.sum()) == 0.0:
        probs[len(masses) // 2] = 1.0
    fast = int(device_inverse_cdf(probs[None, None], torch.tensor([[u]], dtype=torch.float64))[0, 0])
    assert fast == spec_inverse_cdf(probs, u) and float(probs[fast]) > 0.0


@settings(max_examples=300, deadline=None)
@given(
    masses=st.lists(
        st.one_of(st.sampled_from([0.0, 1e-300, 1e-17, 0.1, 1.0 / 3.0]), st.floats(0.0, 1.0)), min_size=1, max_size=64
    ),
    u=st.one_of(st.floats(0.0, 1.0, exclude_max=True), st.just(1.0 - 2.0**-53), st.just(0.0)),
    edge=st.one_of(st.none(), st.tuples(st.integers(0, 63), st.integers(-2, 2))),
)
def test_the_spec_inverse_cdf_on_floats_is_its_tensor_search(
    masses: list[float], u: float, edge: tuple[int, int] | None
) -> None:
    # a law of at most SMALL_LAW tokens is searched on Python floats: the same token as torch's
    # cumsum and searchsorted (the path every longer law takes), sums in any order of magnitude;
    # `edge`: u within two floats of a cumulative sum over the total, where rounding decides
    probs = torch.tensor(masses, dtype=torch.float64)
    if float(probs.sum()) == 0.0:
        probs[len(masses) // 2] = 1.0
    if edge is not None:
        cumulative = torch.cumsum(probs, dim=0)
        u = float(cumulative[edge[0] % len(masses)] / cumulative[-1])
        for _ in range(abs(edge[1])):
            u = math.nextafter(u, math.inf if edge[1] > 0 else -math.inf)
        u = min(max(u, 0.0), 1.0 - 2.0**-53)
    on_floats = spec_inverse_cdf(probs, u)
    with mock.patch.object(spec_randomness, "SMALL_LAW", 0):
        assert spec_inverse_cdf(probs, u) == on_floats


@settings(max_examples=300, deadline=None)
@given(
    total=st.one_of(
        st.floats(min_value=2.0**-1021, max_value=2.0**1000),
        st.integers(-1021, 1000).map(lambda e: 2.0**e),  # powers of two: where the spacing halves
    )
)
def test_the_top_uniform_times_a_normal_total_stays_below_it(total: float) -> None:
    # the precondition of the device inverse_cdf's proof: the search never runs past the end
    top = torch.tensor(1.0 - 2.0**-53, dtype=torch.float64)
    assert float(top * torch.tensor(total, dtype=torch.float64)) < total


def test_a_total_below_the_bound_is_outside_the_device_rule() -> None:
    # negative control for the bound above: at the smallest normal total and below, the product
    # of the top uniform rounds up to the total itself
    top = torch.tensor(1.0 - 2.0**-53, dtype=torch.float64)
    for total in (2.0**-1022, 2.0**-1070):
        assert float(top * torch.tensor(total, dtype=torch.float64)) == total


def test_a_decoder_drawing_on_other_keys_is_caught() -> None:
    # negative control: AR whose tokens come from the "fresh" events instead of "sample"
    broken = AcceleratedWindowDecoder("ar", 1, Parts(bonus_purpose="fresh"))
    config = Config("ar", 1, Sampling(), 0, MAX_BATCH)
    case = build_model("hash")
    slow, fast = decode_both(case.model, [case.condition] * MAX_BATCH, case.layout, config, broken)
    with pytest.raises(AssertionError, match="tokens"):
        assert_identical(slow, fast, config)


def test_a_batch_whose_samples_share_noise_is_caught() -> None:
    # negative control: every sample decoded with the first sample's noise (a seed ignored in batches)
    case = build_model("transformer-16")
    config = Config("sjd", 4, Sampling(), 3, MAX_BATCH)
    sjd = build_accelerated("sjd", window=4)
    same_noise: list[Randomness] = [KeyedRandomness(3, 0)] * MAX_BATCH
    broken = sjd.decode_batch(case.model, [case.condition] * MAX_BATCH, case.layout, Sampling(), same_noise)
    slow, fast = decode_both(case.model, [case.condition] * MAX_BATCH, case.layout, config, sjd)
    assert_identical(slow, fast, config)  # the V=8 4x4 model, batch 3: equal
    with pytest.raises(AssertionError):
        assert_identical(slow, broken, config)


COUPLED: tuple[str, ...] = ("mc-sjd", "mc-sjd-official", "scd-gumbel", "gumbel-jacobi", "gumbel-jacobi-above")
COUPLED += ("mc-sjd-above", "sjd-sample-above")  # and the spatial draft rule the -above presets share


@pytest.mark.parametrize("strategy", COUPLED)
@pytest.mark.parametrize("window", [2, 7])
def test_the_coupled_and_fixed_noise_twins_equal_reference_on_every_backend(strategy: str, window: int) -> None:
    # every coupled twin on both backends (Hypothesis above samples them among all presets)
    config = Config(strategy, window, Sampling(temperature=1.0, cfg_scale=2.0), 5, MAX_BATCH)
    accelerated = build_accelerated(strategy, window=window)
    case = build_model("transformer-16")
    assert_identical(*decode_both(case.model, [case.condition] * MAX_BATCH, case.layout, config, accelerated), config)
    layout = Layout(4, LLAMAGEN.config.grid_size)
    assert_identical(*decode_both(LLAMAGEN, [0, 1, 2], layout, config, accelerated), config)


def test_a_twin_with_the_wrong_first_drafts_is_caught_by_its_trace() -> None:
    # negative control: plain gumbel-jacobi against the spatial-draft reference. Both are
    # pathwise equal to Gumbel AR, so the tokens agree; the passes and the trace must not.
    config = Config("gumbel-jacobi-above", 3, Sampling(), 1, MAX_BATCH)
    case = build_model("transformer-16")
    plain = build_accelerated("gumbel-jacobi", window=3)
    slow, fast = decode_both(case.model, [case.condition] * MAX_BATCH, case.layout, config, plain)
    assert [f.tokens for f in fast] == [s.tokens for s in slow]
    with pytest.raises(AssertionError, match=r"passes|trace"):
        assert_identical(slow, fast, config)


def test_the_official_coupling_q_is_caught() -> None:
    # negative control: the official q rule (a kept draft keeps its old q) against mc-sjd
    config = Config("mc-sjd", 6, Sampling(), 2, MAX_BATCH)
    official = build_accelerated("mc-sjd-official", window=6)
    layout = Layout(4, LLAMAGEN.config.grid_size)
    slow, fast = decode_both(LLAMAGEN, [0, 1, 2], layout, config, official)
    with pytest.raises(AssertionError):
        assert_identical(slow, fast, config)


def test_call_order_noise_and_unknown_names_are_refused() -> None:
    case = build_model("hash")
    with pytest.raises(UnsupportedStrategyError, match="GeneratorRandomness"):
        build_accelerated("ar").decode(case.model, case.condition, case.layout, Sampling(), GeneratorRandomness(0))
    with pytest.raises(InvalidParameterError, match="nope"):
        build_accelerated("nope")
    with pytest.raises(InvalidParameterError, match="window"):
        build_accelerated("sjd", window=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("strategy", sorted(WINDOW_DECODERS))
def test_the_cuda_kv_cache_path_equals_the_cpu_reference_in_float64(strategy: str) -> None:
    model = tiny_llamagen().to("cuda")
    config = Config(strategy, 4, Sampling(temperature=0.9, top_k=8, cfg_scale=3.0), 11, MAX_BATCH)
    accelerated = build_accelerated(strategy, **({} if strategy == "ar" else {"window": config.window}))
    layout = Layout(4, LLAMAGEN.config.grid_size)
    noise: list[Randomness] = [KeyedRandomness(config.seed, b) for b in range(MAX_BATCH)]
    fast = accelerated.decode_batch(model, [0, 1, 2], layout, config.sampling, noise)
    slow, _ = decode_both(LLAMAGEN, [0, 1, 2], layout, config, accelerated)
    assert_identical(slow, fast, config)


@pytest.mark.parametrize(("strategy", "window"), [("ar", 1), ("sjd", 3)])
def test_the_compiled_static_step_decodes_the_reference_tokens(strategy: str, window: int) -> None:
    """`compiled=True` (torch.compile of the static-shape step, `bench --compile`): the same math
    as eager, in float64 here, so the same tokens, passes and traces as reference/. Twice: the
    second decode reuses the first one's KV caches (the CUDA-graph addresses), whose stale slots
    must never be read."""
    config = Config(strategy, window, Sampling(temperature=1.0, cfg_scale=2.0), 11, MAX_BATCH)
    eager = build_accelerated(strategy) if strategy == "ar" else build_accelerated(strategy, window=window)
    assert isinstance(eager, AcceleratedWindowDecoder)
    compiled = dataclasses.replace(eager, compiled=True)
    layout = Layout(3, LLAMAGEN.config.grid_size)
    assert_identical(*decode_both(LLAMAGEN, [0, 1, 2], layout, config, compiled), config)
    with torch.inference_mode():  # the decodes made them there
        for cache in _static_caches(LLAMAGEN, 2 * 3, window):  # CFG rows: what the first decode left, made loud
            cache.k.normal_(0.0, 100.0)
            cache.v.normal_(0.0, 100.0)
    again = config._replace(seed=config.seed + 1)
    assert_identical(*decode_both(LLAMAGEN, [2, 0, 1], layout, again, compiled), again)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("strategy", "window"), [("ar", 1), ("sjd", 3)])
def test_the_cuda_graph_step_decodes_the_cpu_reference_tokens(strategy: str, window: int) -> None:
    """On CUDA `compiled=True` captures the static step as a CUDA graph over caches every compiled
    decode reuses: float64, twice (the second decode replays over the first one's caches)."""
    model = tiny_llamagen().to("cuda")
    eager = build_accelerated(strategy) if strategy == "ar" else build_accelerated(strategy, window=window)
    assert isinstance(eager, AcceleratedWindowDecoder)
    compiled = dataclasses.replace(eager, compiled=True)
    layout = Layout(3, LLAMAGEN.config.grid_size)
    for seed, conditions in ((11, [0, 1, 2]), (12, [2, 0, 1])):
        config = Config(strategy, window, Sampling(temperature=1.0, cfg_scale=2.0), seed, MAX_BATCH)
        noise: list[Randomness] = [KeyedRandomness(seed, b) for b in range(MAX_BATCH)]
        fast = compiled.decode_batch(model, list(conditions), layout, config.sampling, noise)
        slow, _ = decode_both(LLAMAGEN, list(conditions), layout, config, eager)
        assert_identical(slow, fast, config)
