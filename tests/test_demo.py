"""The committed trained model (jacobi_oracle/assets) and `jacobi-oracle demo`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from jacobi_oracle.cli import main
from jacobi_oracle.models.trained import DEFAULT_CHECKPOINT, load_trained, regrid, save_trained
from jacobi_oracle.spec.errors import InvalidParameterError

MAX_CHECKPOINT_BYTES = 16 * 1024 * 1024


def test_committed_checkpoint_is_small_and_carries_its_recipe() -> None:
    assert DEFAULT_CHECKPOINT.stat().st_size <= MAX_CHECKPOINT_BYTES
    trained = load_trained()
    assert trained.model.vocab_size == trained.tokenizer.vocab_size
    assert trained.model.num_classes == len(trained.class_names)
    assert trained.metadata["command"].startswith(
        ("python -m jacobi_oracle.train ", "python -m jacobi_oracle.experiments.train ")
    )
    assert set(json.loads(trained.metadata["heldout_nll"])) == {"16", "24"}


@pytest.mark.parametrize("grid", [16, 24])
def test_checkpoint_gives_finite_logits_that_depend_on_the_class(grid: int) -> None:
    trained = load_trained()
    model = trained.for_grid(grid)
    assert model.num_positions == grid * grid
    keys = torch.arange(5) % model.vocab_size
    positions = torch.arange(5)
    queries = torch.tensor([0, 3, 5])
    visible = positions[None, :] < queries[:, None]
    logits = [model.logits(c, keys, positions, queries, visible) for c in (0, 1, None)]
    for out in logits:
        assert out.shape == (3, model.vocab_size) and bool(torch.isfinite(out).all())
    assert not torch.allclose(logits[0], logits[1]), "class conditioning has no effect"


def test_trained_model_round_trips_through_its_file(tmp_path: Path) -> None:
    trained = load_trained()
    save_trained(trained, tmp_path / "copy.safetensors")
    again = load_trained(tmp_path / "copy.safetensors")
    tokens = torch.randint(0, trained.model.vocab_size, (2, 16))
    labels = torch.tensor([0, 1])
    assert torch.equal(trained.model(tokens, labels), again.model(tokens, labels))
    assert torch.equal(trained.tokenizer.codebook, again.tokenizer.codebook)
    assert again.metadata == trained.metadata


def test_regrid_keeps_the_weights_and_changes_only_positions() -> None:
    model = load_trained().model
    other = regrid(model, 24)
    tokens = torch.randint(0, model.vocab_size, (1, 16))
    # the first row is laid out identically on both grids (rows are at least 16 wide)
    assert torch.allclose(model(tokens, torch.tensor([2])), other(tokens, torch.tensor([2])), atol=1e-5)
    tokens = torch.randint(0, model.vocab_size, (1, 40))
    with pytest.raises(ValueError):
        model(torch.randint(0, model.vocab_size, (1, 257)), torch.tensor([2]))
    assert other(tokens, torch.tensor([2])).shape == (1, 40, model.vocab_size)


def test_demo_smoke_run_writes_a_png_per_strategy(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--grid", "4", "--images", "2", "--strategies", "ar,sjd,zipar"]
    code = main([*args, "--toy-model", "hash-tiny", "--json"])
    assert code == 0
    for name in ("ar", "sjd", "zipar", "demo"):
        with Image.open(out / f"{name}.png") as image:
            assert image.width > 2 * 16 and image.height > 16, f"{name}.png is {image.size}"
    summary = json.loads((out / "summary.json").read_text())
    passes = {s["strategy"]: s["mean_forward_passes"] for s in summary["strategies"]}
    assert passes["ar"] == 16 and 1 <= passes["sjd"] <= 16
    assert {v["strategy"] for v in summary["exact"]} == {"ar", "sjd", "zipar"}
    assert all(v["lossless"] for v in summary["exact"] if v["strategy"] in ("ar", "sjd"))
    assert "| sjd |" in (out / "exact.md").read_text()


def test_demo_rejects_unknown_strategies_and_classes(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path), "--strategies", "no-such-decoder"]) == 2
    assert main(["demo", "--out", str(tmp_path), "--classes", "unicorn", "--grid", "4"]) == 2
    assert main(["demo", "--out", str(tmp_path), "--grid", "0"]) == 2


def test_demo_rejects_a_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_trained(tmp_path / "missing.safetensors")


def test_demo_decoders_match_the_reference_on_the_trained_model() -> None:
    # the demo and realtable take AR / SJD from accelerated/; on float64 they must equal reference/
    from jacobi_oracle.experiments.realtable import decode_images
    from jacobi_oracle.spec.layout import Layout
    from jacobi_oracle.spec.sampling import Sampling

    model = regrid(load_trained().model, 4).double()
    layout, sampling = Layout(4, 4), Sampling(cfg_scale=2.0)
    for name in ("ar", "sjd"):
        fast = decode_images(name, model, layout, sampling, [0, 5], seed=9)
        slow = decode_images(name, model, layout, sampling, [0, 5], seed=9, accelerated=False)
        assert [d.tokens for d in fast] == [d.tokens for d in slow], name
        assert [d.forward_passes for d in fast] == [d.forward_passes for d in slow], name
