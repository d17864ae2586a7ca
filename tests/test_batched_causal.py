"""Batched causal queries (spec/model.md): one call answers every raster-causal query of a batch,
and the decoders and the statistical engine that take the path get the per-query conditionals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobi_oracle.accelerated import build_accelerated
from jacobi_oracle.accelerated.jacobi import AcceleratedWindowDecoder, CausalBatchBackend
from jacobi_oracle.models.registry import build_model
from jacobi_oracle.models.toy import HashModel, MarkovGrid
from jacobi_oracle.models.transformer import TinyTransformer
from jacobi_oracle.oracle.exact import MemoModel
from jacobi_oracle.oracle.statistical.check import reference_sampler
from jacobi_oracle.oracle.statistical.counts import count_samples, teacher_forced_probs, teacher_forced_probs_batch
from jacobi_oracle.reference.ar import AutoRegressive
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import CausalBatchModel, ModelWrapper, Problem, causal_batch_model
from jacobi_oracle.spec.randomness import KeyedRandomness, Randomness
from jacobi_oracle.spec.sampling import Sampling

MODEL = TinyTransformer(vocab_size=8, num_positions=16, num_classes=2, seed=3)
TOLERANCE = 1e-12  # float64 logits of size ~3: a differently shaped computation rounds at ~1e-15


def per_query_logits(model: CausalBatchModel, class_row: int, tokens: torch.Tensor, t: int) -> torch.Tensor:
    """The spec contract's AR conditional at position t: keys tokens[:t] at 0 .. t - 1, all visible."""
    condition = None if class_row == model.num_classes else class_row
    visible = torch.ones(1, t, dtype=torch.bool)
    return model.logits(condition, tokens[:t], torch.arange(t), torch.tensor([t]), visible)[0]


TOYS: list[CausalBatchModel] = [
    HashModel(vocab_size=3, num_positions=9, row_stride=3),
    HashModel(vocab_size=5, num_positions=16, num_classes=3, row_stride=4, sharpness=2.0, seed=4),
    MarkovGrid(vocab_size=3, height=3, width=3),
    MarkovGrid(vocab_size=4, height=2, width=4, num_classes=3, seed=2),
]


@settings(max_examples=60, deadline=None)
@given(
    which=st.integers(0, len(TOYS)),
    seed=st.integers(0, 2**31),
    batch=st.integers(1, 4),
    keys=st.integers(0, 16),
    queries=st.integers(1, 5),
)
def test_batched_causal_queries_are_the_per_query_conditionals(
    which: int, seed: int, batch: int, keys: int, queries: int
) -> None:
    model = MODEL if which == len(TOYS) else TOYS[which]  # the TinyTransformer, or a toy
    keys = min(keys, model.num_positions)
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, model.vocab_size, (batch, keys), generator=gen)
    positions = torch.randint(0, min(keys, model.num_positions - 1) + 1, (batch, queries), generator=gen)
    classes = torch.randint(0, model.num_classes + 1, (batch,), generator=gen)  # the null class included
    out = model.causal_logits(classes, tokens, positions)
    assert out.shape == (batch, queries, model.vocab_size) and out.dtype == torch.float64
    for b in range(batch):
        for w in range(queries):
            expected = per_query_logits(model, int(classes[b]), tokens[b], int(positions[b, w]))
            if isinstance(model, MarkovGrid):  # table rows: the same values bit for bit
                assert torch.equal(out[b, w], expected)
            torch.testing.assert_close(out[b, w], expected, rtol=0.0, atol=TOLERANCE)


@pytest.mark.parametrize("model", [MODEL, *TOYS], ids=lambda m: type(m).__name__)
def test_a_query_reading_its_own_position_or_the_wrong_class_is_caught(model: CausalBatchModel) -> None:
    # negative controls for the comparison above: the conditional one key later, and the
    # conditional of the other class, differ from the batched answer far beyond the tolerance
    tokens = torch.arange(model.num_positions)[None] % model.vocab_size
    t = model.num_positions - 1  # its left and above neighbours both exist
    out = model.causal_logits(torch.tensor([0]), tokens[:, :-1], torch.tensor([[t - 1]]))
    assert float((out[0, 0] - per_query_logits(model, 0, tokens[0], t)).abs().max()) > 1e3 * TOLERANCE
    other = model.causal_logits(torch.tensor([1]), tokens, torch.tensor([[t]]))
    assert float((other[0, 0] - per_query_logits(model, 0, tokens[0], t)).abs().max()) > 1e3 * TOLERANCE


class Doubled(ModelWrapper):
    """A wrapper whose logits are not its model's."""

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        return 2.0 * self.model.logits(condition, key_tokens, key_positions, query_positions, visible)


def test_only_the_models_own_capability_opens_the_batched_path() -> None:
    plain = Layout(4, 4)
    assert causal_batch_model(MODEL, plain) is MODEL
    assert causal_batch_model(MODEL, Layout(3, 4, end_of_row_token=0)) is None  # positions are not cells
    lpd = TinyTransformer(vocab_size=8, num_positions=16, queries="lpd")
    assert causal_batch_model(lpd, plain) is None  # its queries are position queries
    # a wrapper delegates attributes to its model, but its own logits are what decoders must use
    assert causal_batch_model(Doubled(MODEL), plain) is None
    hash_model = build_model("hash").model
    assert causal_batch_model(hash_model, Layout(2, 3)) is hash_model
    assert causal_batch_model(Doubled(hash_model), Layout(2, 3)) is None


def test_the_memoised_model_answers_batched_queries_with_its_models_answers() -> None:
    # MemoModel only caches the model's own logits: its batched answers are the model's, and a
    # memoised model without the capability does not gain it
    memo = causal_batch_model(MemoModel(MODEL), Layout(4, 4))
    assert memo is not None
    tokens, queries, classes = torch.tensor([[1, 5, 2, 7]]), torch.tensor([[0, 2, 4]]), torch.tensor([1])
    assert torch.equal(memo.causal_logits(classes, tokens, queries), MODEL.causal_logits(classes, tokens, queries))
    assert causal_batch_model(MemoModel(Doubled(MODEL)), Layout(4, 4)) is None


@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.7, top_k=5, cfg_scale=2.0)])
def test_batched_teacher_forcing_is_the_per_sample_teacher_forcing(sampling: Sampling) -> None:
    problem = Problem(MODEL, 1, Layout(4, 4), sampling)
    gen = torch.Generator().manual_seed(0)
    samples = [tuple(torch.randint(0, 8, (16,), generator=gen).tolist()) for _ in range(5)]
    batched = teacher_forced_probs_batch(problem, samples)
    assert batched is not None
    for b, tokens in enumerate(samples):
        torch.testing.assert_close(batched[b], teacher_forced_probs(problem, tokens), rtol=0.0, atol=TOLERANCE)
    unbatchable = Problem(Doubled(build_model("hash").model), None, Layout(2, 3), Sampling())
    assert teacher_forced_probs_batch(unbatchable, [(0,) * 6]) is None


@pytest.mark.parametrize("model", ["transformer-16", "hash", "markov"])
@pytest.mark.parametrize(("strategy", "window"), [("ar", 1), ("sjd", 4)])
def test_the_twins_on_the_batched_path_draw_the_reference_tokens(model: str, strategy: str, window: int) -> None:
    # what lets the two-sample reference be drawn by accelerated AR: 300 samples, token for token
    # (equal unless a uniform lands within ~1e-15 of a CDF boundary: probability ~1e-11 here)
    case = build_model(model)
    params = {} if strategy == "ar" else {"window": window}
    accelerated, reference = build_accelerated(strategy, **params), build_preset(strategy, **params)
    assert isinstance(accelerated, AcceleratedWindowDecoder)
    backend, _ = accelerated._backend(case.model, [Problem(case.model, 1, case.layout, Sampling())])
    assert isinstance(backend, CausalBatchBackend)
    noise: list[Randomness] = [KeyedRandomness(11, i) for i in range(300)]
    fast = accelerated.decode_batch(case.model, [case.condition] * 300, case.layout, Sampling(), noise)
    for r, f in zip(noise, fast, strict=True):
        assert f.tokens == reference.decode(case.model, case.condition, case.layout, Sampling(), r).tokens
    problem = Problem(case.model, case.condition, case.layout, Sampling())
    assert reference_sampler(problem).name == "ar" and not isinstance(reference_sampler(problem), AutoRegressive)
    wrapped = Problem(Doubled(case.model), None, case.layout, Sampling())
    assert isinstance(reference_sampler(wrapped), AutoRegressive)  # no batched path: the reference AR


def decode_like_calls(model: TinyTransformer, trusted_extra: int) -> float:
    """The largest logit difference between the cached and the uncached path over a decode-like
    run of calls: windows of 3 drafts, a random number accepted, the next cell corrected; start
    = min(f - 1, the last call's highest query) + `trusted_extra` (0: the backend's rule)."""
    gen = torch.Generator().manual_seed(5)
    b, grid, w = 6, model.num_positions, 3
    tokens = torch.randint(0, model.vocab_size, (b, grid), generator=gen)
    frontier = torch.zeros(b, dtype=torch.long)
    computed = torch.zeros(b, dtype=torch.long)
    classes = torch.tensor([0, 1, 2, 0, 1, 2])
    cache: dict[str, torch.Tensor] = {}
    worst = 0.0
    while bool((frontier < grid).any()):
        queries = (frontier[:, None] + torch.arange(w)).clamp(max=grid - 1)
        tokens.scatter_(1, queries, torch.randint(0, model.vocab_size, queries.shape, generator=gen))  # new drafts
        start = (torch.minimum(frontier - 1, computed).clamp(min=0) + trusted_extra).clamp(max=grid)
        cached = model.causal_logits(classes, tokens, queries, cache, start)
        worst = max(worst, float((cached - model.causal_logits(classes, tokens, queries)).abs().max()))
        computed = queries.max(dim=1).values
        frontier = (frontier + torch.randint(1, w + 1, (b,), generator=gen)).clamp(max=grid)
        corrected = (frontier - 1).clamp(min=0)[:, None]  # the pass's correction: a token it did not see
        tokens.scatter_(1, corrected, torch.randint(0, model.vocab_size, (b, 1), generator=gen))
    return worst


def test_the_cached_path_answers_as_the_uncached_one_over_a_decode() -> None:
    assert decode_like_calls(MODEL, 0) < TOLERANCE


def test_a_cache_trusting_the_corrected_cell_is_caught() -> None:
    # negative control: one cell more trusted than the rule allows reads a key of a replaced token
    assert decode_like_calls(MODEL, 1) > 1e3 * TOLERANCE


def test_the_batched_statistics_are_the_one_by_one_statistics() -> None:
    # transformer-16 is not enumerable: the twin decodes, teacher-forces and hashes its PIT
    # uniforms a batch at a time, the reference sjd one sample at a time; the tables agree bit for
    # bit (the verifier's own included), up to a fixed-point rounding boundary (~1e-9 per term)
    case = build_model("transformer-16")
    problem = Problem(case.model, case.condition, case.layout, Sampling())
    reference = count_samples(build_preset("sjd", window=3), problem, range(300), seed=9)
    batched = count_samples(build_accelerated("sjd", window=3), problem, range(300), seed=9)
    for table, array in reference.arrays().items():
        assert np.array_equal(array, getattr(batched, table)), table
    assert reference.pit.sum() == 300 * 16 and reference.draft_pit.sum() > 0


@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.8, cfg_scale=2.0)])
def test_a_batch_of_different_classes_decodes_each_sample_as_the_reference(sampling: Sampling) -> None:
    # each row of the batched path carries its own class (and, with CFG, the null class column)
    case = build_model("transformer-16")
    conditions: list[int | None] = [0, 1, 1, 0, 1]
    noise: list[Randomness] = [KeyedRandomness(4, i) for i in range(len(conditions))]
    for name, params in (("ar", {}), ("mc-sjd", {"window": 4})):
        fast = build_accelerated(name, **params).decode_batch(case.model, conditions, case.layout, sampling, noise)
        reference = build_preset(name, **params)
        for c, r, f in zip(conditions, noise, fast, strict=True):
            assert f.tokens == reference.decode(case.model, c, case.layout, sampling, r).tokens
