"""LlamaGen architecture: query contract, training forward, CFG dropout, official checkpoint layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobi_oracle.models.llamagen import (
    CONFIGS,
    LlamaGen,
    count_parameters,
    llamagen_config,
    load_llamagen,
    save_llamagen,
)
from jacobi_oracle.spec.errors import InvalidParameterError, QueryContextError, ShapeMismatchError

TOL = 1e-10  # float64 agreement between two computations of the same logits


def random_model(seed: int = 0, **overrides: object) -> LlamaGen:
    torch.manual_seed(seed)
    model = LlamaGen(llamagen_config("tiny", **overrides)).double()
    torch.nn.init.normal_(model.output.weight, std=0.3)  # the official init zeroes it: logits would be flat
    for name, param in model.named_parameters():  # non-trivial norm weights, so a wrong key mapping shows
        if name.endswith("norm.weight"):
            torch.nn.init.normal_(param, mean=1.0, std=0.2)
    return model.eval().requires_grad_(False)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    err = float((actual - expected).abs().max()) if actual.numel() else 0.0
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)}, but should be {tuple(expected.shape)}"
    assert err < TOL, f"{what}: max abs difference {err}"


def test_published_sizes_have_their_parameter_counts() -> None:
    # their comments: B 111M, L 343M, XL 775M, XXL 1.4B, 3B 3.1B (vocab 16384, 1000 classes)
    millions = {name: count_parameters(CONFIGS[name]) / 1e6 for name in ("B", "L", "XL", "XXL", "3B")}
    for name, published in {"B": 111, "L": 343, "XL": 775, "XXL": 1400, "3B": 3100}.items():
        assert abs(millions[name] - published) / published < 0.03, f"{name}: {millions[name]:.0f}M"
    tiny = random_model()
    assert count_parameters(tiny.config) == sum(p.numel() for p in tiny.parameters())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), length=st.integers(1, 16), condition=st.sampled_from([None, 0, 3]))
def test_causal_queries_equal_the_plain_causal_forward(seed: int, length: int, condition: int | None) -> None:
    model = random_model(seed % 3)
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, model.vocab_size, (length,), generator=gen)
    cls = model.class_index(condition)
    plain = model(tokens[None], torch.tensor([cls]))[0]  # [L, V]
    positions = torch.arange(length)
    visible = positions[None, :] < positions[:, None]  # causal: query t sees keys < t
    via_contract = model.logits(condition, tokens, positions, positions, visible)
    assert_close(via_contract, plain, "contract vs plain forward")


def _single_query(
    model: LlamaGen, cond: int, keys: torch.Tensor, pos: torch.Tensor, t: int, row: torch.Tensor
) -> torch.Tensor:
    return model.logits(cond, keys, pos, torch.tensor([t]), row[None])[0]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), num_keys=st.integers(2, 10), num_queries=st.integers(1, 6))
def test_each_query_sees_exactly_its_visible_keys(seed: int, num_keys: int, num_queries: int) -> None:
    model = random_model(1)
    gen = torch.Generator().manual_seed(seed)
    positions = torch.randperm(16, generator=gen)[:num_keys]
    tokens = torch.randint(0, model.vocab_size, (num_keys,), generator=gen)
    # each query: a random visible subset that includes the key right before it
    anchors = torch.randint(0, num_keys, (num_queries,), generator=gen)
    queries = positions[anchors] + 1
    keep = queries < 16
    queries, anchors = queries[keep], anchors[keep]
    visible = torch.rand(queries.numel(), num_keys, generator=gen) < 0.5
    visible[torch.arange(queries.numel()), anchors] = True
    together = model.logits(2, tokens, positions, queries, visible)
    for q in range(queries.numel()):
        # the same query alone, with its context given as the only keys in position order
        ctx = visible[q] & (positions < queries[q])
        order = positions[ctx].argsort()
        alone = _single_query(
            model,
            2,
            tokens[ctx][order],
            positions[ctx][order],
            int(queries[q]),
            torch.ones(int(ctx.sum()), dtype=torch.bool),
        )
        assert_close(together[q], alone, f"query {q}")
        # hiding a visible key other than the anchor changes the answer
        others = (ctx & (torch.arange(num_keys) != anchors[q])).nonzero()
        if others.numel():
            hidden = visible[q].clone()
            hidden[others[0, 0]] = False
            changed = _single_query(model, 2, tokens, positions, int(queries[q]), hidden)
            assert float((changed - together[q]).abs().max()) > TOL, "a visible key had no influence"


def test_a_query_without_its_previous_key_is_refused() -> None:
    model = random_model()
    tokens, positions = torch.tensor([1, 2, 3]), torch.tensor([0, 1, 2])
    visible = torch.tensor([[True, False, True]])
    with pytest.raises(QueryContextError, match="position 2"):
        model.logits(0, tokens, positions, torch.tensor([2]), visible)


def test_a_query_seeing_two_keys_at_one_position_is_refused() -> None:
    model = random_model()
    tokens, positions = torch.tensor([1, 2, 3]), torch.tensor([0, 0, 1])
    with pytest.raises(QueryContextError):
        model.logits(0, tokens, positions, torch.tensor([2]), torch.ones(1, 3, dtype=torch.bool))


def test_out_of_range_inputs_are_refused() -> None:
    model = random_model()
    with pytest.raises(ShapeMismatchError, match="16"):
        model.logits(0, torch.tensor([1]), torch.tensor([16]), torch.tensor([0]), torch.ones(1, 1, dtype=torch.bool))
    with pytest.raises(ShapeMismatchError, match="99"):
        model(torch.tensor([[99]]), torch.tensor([0]))
    with pytest.raises(InvalidParameterError, match="nope"):
        llamagen_config("nope")


def test_cfg_dropout_replaces_the_class_by_the_null_class() -> None:
    model = random_model()
    tokens = torch.randint(0, model.vocab_size, (3, 16), generator=torch.Generator().manual_seed(0))
    classes = torch.tensor([0, 1, 2])
    null = torch.full((3,), model.num_classes)
    assert_close(model(tokens, classes, cfg_dropout=1.0), model(tokens, null), "all dropped")
    assert_close(model(tokens, classes, cfg_dropout=0.0), model(tokens, classes), "none dropped")
    assert float((model(tokens, classes) - model(tokens, null)).abs().max()) > TOL, "the class had no influence"


def test_training_forward_learns() -> None:
    torch.manual_seed(0)
    model = LlamaGen(llamagen_config("tiny"))
    tokens = torch.randint(0, model.vocab_size, (4, 16))
    classes = torch.arange(4)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-2)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(tokens, classes).flatten(0, 1), tokens.flatten())
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_checkpoint_in_the_official_layout_loads_back_with_equal_logits(tmp_path: Path, suffix: str) -> None:
    model = random_model(5, n_kv_head=1)
    path = tmp_path / f"c2i_tiny{suffix}"
    save_llamagen(model, path)
    loaded = load_llamagen(path, model.config, dtype=torch.float64)
    tokens = torch.randint(0, model.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    assert_close(loaded(tokens, torch.tensor([1, 4])), model(tokens, torch.tensor([1, 4])), "round trip")
    # their key names, as written by their training script
    keys = set(model.state_dict())
    assert {"cls_embedding.embedding_table.weight", "tok_embeddings.weight", "norm.weight", "output.weight"} <= keys
    assert {f"layers.1.{k}.weight" for k in ("attention.wqkv", "attention.wo", "feed_forward.w1", "ffn_norm")} <= keys


def test_a_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    model = random_model()
    path = tmp_path / "c2i.pt"
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    assert load_llamagen(path, model.config).config == model.config  # DDP prefixes are stripped
    with pytest.raises(ShapeMismatchError, match=r"layers\.2"):
        load_llamagen(path, llamagen_config("tiny", n_layer=3))
    with pytest.raises(ShapeMismatchError, match="tok_embeddings"):
        load_llamagen(path, llamagen_config("tiny", vocab_size=32))
