"""Hugging Face adapters (models/hf.py) on tiny random configurations; skipped without `transformers`."""

from __future__ import annotations

from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the `hf` extra is not installed")

from jacobi_oracle.models.hf import HFImageModel, causal_lm_model, emu3_model, janus_model  # noqa: E402
from jacobi_oracle.spec.errors import QueryContextError  # noqa: E402
from jacobi_oracle.spec.layout import Layout  # noqa: E402
from jacobi_oracle.spec.model import Problem  # noqa: E402
from jacobi_oracle.spec.randomness import KeyedRandomness  # noqa: E402
from jacobi_oracle.spec.sampling import Sampling  # noqa: E402

TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=300,
    max_position_embeddings=128,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
VQ = dict(embed_dim=8, base_channels=32, channel_multiplier=[1, 1], num_res_blocks=1)
IMAGE_IDS = list(range(100, 140))  # 40 image codes inside the text vocabulary
END_OF_ROW = 250
PROMPTS = [[5, 6, 7], [8, 9]]
NULL = [3]


def seeded(build: Any) -> Any:
    torch.manual_seed(0)
    return build().eval()


def chameleon() -> HFImageModel:
    config = transformers.ChameleonConfig(
        **TEXT, vq_config=dict(VQ, num_embeddings=40, attn_resolutions=[]), vocabulary_map={"<image>": 299}
    )
    lm = seeded(lambda: transformers.ChameleonForConditionalGeneration(config))
    return causal_lm_model(lm, IMAGE_IDS, END_OF_ROW, PROMPTS, NULL, num_positions=12)


def emu3() -> HFImageModel:
    config = transformers.Emu3Config(
        text_config=TEXT, vq_config=dict(VQ, codebook_size=40, attn_resolutions=[]), vocabulary_map={}
    )
    lm = seeded(lambda: transformers.Emu3ForConditionalGeneration(config))
    return emu3_model(lm, IMAGE_IDS, END_OF_ROW, PROMPTS, NULL, num_positions=12)


def janus() -> HFImageModel:
    config = transformers.JanusConfig(
        text_config=dict(model_type="llama", **TEXT),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        vq_config=dict(
            VQ, num_embeddings=40, image_token_embed_dim=32, projection_dim=32, latent_channels=8, num_patches=16
        ),
    )
    lm = seeded(lambda: transformers.JanusForConditionalGeneration(config))
    return janus_model(lm, PROMPTS, NULL, num_positions=9)


ADAPTERS = {"chameleon": chameleon, "emu3": emu3, "janus": janus}


def layout_of(model: HFImageModel) -> Layout:
    return Layout(3, 3, model.end_of_row_token)


def full_sequence(model: HFImageModel, layout: Layout, cells: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys of every position: fixed end-of-row tokens and the image cells."""
    keys = dict(layout.fixed_keys())
    for cell, token in enumerate(cells):
        keys[layout.position(cell)] = token
    positions = torch.tensor(sorted(keys))
    return torch.tensor([keys[int(p)] for p in positions]), positions


@pytest.fixture(scope="module", params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> HFImageModel:
    return ADAPTERS[request.param]()


def test_causal_queries_in_one_pass_equal_one_query_per_pass(adapter: HFImageModel) -> None:
    layout = layout_of(adapter)
    tokens, positions = full_sequence(adapter, layout, [(7 * c) % 40 for c in range(9)])
    queries = torch.arange(layout.length)
    together = adapter.logits(0, tokens, positions, queries, positions[None, :] < queries[:, None])
    for t in range(layout.length):
        keep = positions < t
        alone = adapter.logits(
            0, tokens[keep], positions[keep], torch.tensor([t]), torch.ones(1, int(keep.sum()), dtype=torch.bool)
        )
        assert torch.allclose(together[t], alone[0], atol=1e-4), f"position {t}"


def test_a_hidden_key_changes_the_answer_like_removing_it(adapter: HFImageModel) -> None:
    layout = layout_of(adapter)
    tokens, positions = full_sequence(adapter, layout, [(5 * c + 1) % 40 for c in range(9)])
    t = int(positions[-1])
    visible = (positions < t)[None, :].clone()
    visible[0, 1] = False  # hide the key at position 1
    masked = adapter.logits(1, tokens, positions, torch.tensor([t]), visible)
    keep = visible[0]
    removed = adapter.logits(
        1, tokens[keep], positions[keep], torch.tensor([t]), torch.ones(1, int(keep.sum()), dtype=torch.bool)
    )
    full = adapter.logits(1, tokens, positions, torch.tensor([t]), (positions < t)[None, :])
    assert torch.allclose(masked, removed, atol=1e-4)
    assert not torch.allclose(masked, full, atol=1e-4)


def test_condition_selects_the_prompt_and_logits_are_image_codes(adapter: HFImageModel) -> None:
    tokens, positions = torch.tensor([3]), torch.tensor([0])
    query, visible = torch.tensor([1]), torch.ones(1, 1, dtype=torch.bool)
    outs = [adapter.logits(c, tokens, positions, query, visible) for c in (0, 1, None)]
    assert outs[0].shape == (1, adapter.vocab_size) and bool(torch.isfinite(outs[0]).all())
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])
    if adapter.end_of_row_token is not None:
        probs = Sampling().target_probs(outs[0])
        assert float(probs[0, adapter.end_of_row_token]) == 0.0


def test_reference_sjd_runs_on_the_adapter_with_cfg(adapter: HFImageModel) -> None:
    from jacobi_oracle.reference.presets import build_preset

    problem = Problem(adapter, 0, layout_of(adapter), Sampling(cfg_scale=2.0))
    decoded = build_preset("sjd", window=3).decode_problem(problem, KeyedRandomness(1))
    assert len(decoded.tokens) == 9 and all(0 <= t < 40 for t in decoded.tokens)


def test_a_query_without_its_previous_key_is_rejected(adapter: HFImageModel) -> None:
    with pytest.raises(QueryContextError):
        adapter.logits(0, torch.tensor([1]), torch.tensor([0]), torch.tensor([2]), torch.ones(1, 1, dtype=torch.bool))
