"""The digits model: data (jacobi_oracle/data/digits.py), the grey-level tokenizer, the committed
file (jacobi_oracle/assets/digits-llamagen.safetensors), its training recipe and its use by name."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jacobi_oracle.models.tokenizer import PatchTokenizer, grey_codebook, grey_tokenizer
from jacobi_oracle.models.trained import ASSETS, TRAINED_MODELS, load_named, load_trained
from jacobi_oracle.spec.errors import InvalidParameterError

MAX_ASSET_BYTES = 16 * 1024 * 1024  # every committed model together
CLASS_ACCURACY = 0.3  # 3x chance: a model that ignores its class label scores ~0.1


def needs_digits() -> None:
    pytest.importorskip("sklearn", reason="the digits ship with the `train` extra")


# -- data ------------------------------------------------------------------------------------
def test_digits_load_from_the_installed_wheel_without_download() -> None:
    needs_digits()
    from jacobi_oracle.data.digits import load_digit_rows

    ink, labels = load_digit_rows()
    assert ink.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert float(ink.min()) >= 0.0 and float(ink.max()) <= 1.0
    assert set(np.unique(labels).tolist()) == set(range(10))
    assert np.bincount(labels).min() > 150, "every class is well represented"


def test_train_and_heldout_digits_partition_the_rows() -> None:
    needs_digits()
    from jacobi_oracle.data.digits import HOLDOUT_FRACTION, load_digit_rows, split_rows

    train, heldout = split_rows("train"), split_rows("heldout")
    count = load_digit_rows()[1].shape[0]
    assert not set(train.tolist()) & set(heldout.tolist())
    assert sorted([*train.tolist(), *heldout.tolist()]) == list(range(count))
    assert abs(len(heldout) - HOLDOUT_FRACTION * count) <= 1
    with pytest.raises(InvalidParameterError):
        split_rows("test")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [16, 24])
def test_rendered_digits_are_dark_strokes_on_white_where_the_ink_is(size: int) -> None:
    from jacobi_oracle.data.digits import render

    ink = np.zeros((2, 8, 8), np.float32)
    ink[1, 2, 5] = 1.0  # one inked cell
    pixels = render(ink, size)
    assert pixels.shape == (2, size, size, 3)
    assert np.allclose(pixels[0], 1.0), "no ink renders white"
    assert np.allclose(pixels[..., 0], pixels[..., 2]), "grey: the channels agree"
    darkest = int(pixels[1, ..., 0].argmin())
    scale = size // 8
    assert (darkest // size // scale, darkest % size // scale) == (2, 5), "the darkest pixel lies under the ink"
    with pytest.raises(InvalidParameterError):
        render(ink, 4)


def test_shift_translates_and_fills_the_border_white() -> None:
    from jacobi_oracle.data.digits import shift

    pixels = np.random.default_rng(0).random((5, 5, 3)).astype(np.float32)
    moved = shift(pixels, 1, -2)
    assert np.array_equal(moved[1:, :3], pixels[:4, 2:])
    assert np.all(moved[0] == 1.0) and np.all(moved[:, 3:] == 1.0)
    assert np.array_equal(shift(pixels, 0, 0), pixels)


def test_augmented_copies_are_translations_of_the_first_and_heldout_is_never_augmented() -> None:
    needs_digits()
    from jacobi_oracle.data.digits import digit_images, shift

    plain = digit_images("train", 16)
    twice = digit_images("train", 16, copies=2, max_shift=1, seed=5)
    n = plain.labels.shape[0]
    assert twice.images.shape[0] == 2 * n and np.array_equal(twice.labels, np.tile(plain.labels, 2))
    assert np.array_equal(twice.images[:n], plain.images)
    for i in range(0, n, 97):
        moves = [shift(plain.images[i], r, c) for r in (-1, 0, 1) for c in (-1, 0, 1)]
        assert any(np.array_equal(twice.images[n + i], m) for m in moves), f"copy of image {i} is no translation"
    with pytest.raises(InvalidParameterError):
        digit_images("heldout", 16, copies=2, max_shift=1)


# -- tokenizer -------------------------------------------------------------------------------
@given(st.integers(2, 32), st.integers(0, 2**31))
def test_grey_tokenizer_decodes_to_within_half_a_level(levels: int, seed: int) -> None:
    tokenizer = grey_tokenizer(levels)
    values = torch.rand(3, 4, 5, 1, generator=torch.Generator().manual_seed(seed)).expand(-1, -1, -1, 3)
    ids = tokenizer.encode(values)
    assert ids.shape == (3, 4, 5) and int(ids.max()) < levels
    error = float((tokenizer.decode(ids) - values).abs().max())
    assert error <= 0.5 / (levels - 1) + 1e-6
    assert torch.equal(tokenizer.encode(tokenizer.decode(ids)), ids), "a decoded grey encodes to its own id"


def test_grey_tokenizer_id_zero_is_white_and_it_survives_the_file_format() -> None:
    codebook = grey_codebook(16)
    assert torch.equal(codebook[0], torch.ones(3)) and torch.equal(codebook[-1], torch.zeros(3))
    again = PatchTokenizer.from_tensors(grey_tokenizer(16).tensors())
    assert again.patch == 1 and torch.equal(again.codebook, codebook)
    with pytest.raises(InvalidParameterError):
        grey_codebook(1)


# -- the committed model ---------------------------------------------------------------------
def test_committed_models_fit_the_size_budget_and_are_loadable_by_name() -> None:
    assert sum(p.stat().st_size for p in ASSETS.glob("*.safetensors")) <= MAX_ASSET_BYTES
    digits = load_named("digits")
    assert digits.class_names == tuple(str(d) for d in range(10))
    assert digits.model.vocab_size == digits.tokenizer.vocab_size and digits.tokenizer.patch == 1
    photos = load_named("trained")
    assert torch.equal(photos.tokenizer.codebook, load_trained().tokenizer.codebook), "trained stays the photo model"
    with pytest.raises(InvalidParameterError, match="digits"):
        load_named("mnist")


def test_committed_digits_file_carries_its_command_and_curve() -> None:
    metadata = load_named("digits").metadata
    assert metadata["command"].startswith(
        ("python -m jacobi_oracle.train --data digits", "python -m jacobi_oracle.experiments.train --data digits")
    )
    curve = json.loads(metadata["curve"])
    assert len(curve) >= 2 and [p["step"] for p in curve] == sorted(p["step"] for p in curve)
    from jacobi_oracle.experiments.train import MIN_IMPROVEMENT

    nll = json.loads(metadata["heldout_nll"])
    best = next(p for p in curve if p["step"] == int(metadata["best_step"]))
    assert nll == {"16": best["heldout_16"], "24": best["heldout_24"]}, "the file keeps the best evaluated weights"
    score = (best["heldout_16"] + best["heldout_24"]) / 2
    assert all((p["heldout_16"] + p["heldout_24"]) / 2 > score - MIN_IMPROVEMENT - 1e-4 for p in curve)


def test_digits_heldout_nll_in_the_file_is_what_the_model_scores() -> None:
    needs_digits()
    from jacobi_oracle.experiments.train import digit_sequences, nll_per_token

    trained = load_named("digits")
    claimed = json.loads(trained.metadata["heldout_nll"])["16"]
    tokens, labels = digit_sequences(trained.tokenizer, "heldout", 16)
    model = trained.for_grid(16)
    assert nll_per_token(model, tokens, labels) == pytest.approx(claimed, abs=2e-3)
    assert claimed < 0.5 * math.log(trained.tokenizer.vocab_size), "far below a uniform guess"
    wrong = nll_per_token(model, tokens, (labels + 1) % 10)
    assert wrong > claimed + 0.01, "the class label carries information about the digit"


def test_digits_model_samples_are_recognised_as_their_class() -> None:
    # nearest class-mean of the held-out digits: a person-free stand-in for 'recognisable'
    needs_digits()
    from jacobi_oracle.data.digits import digit_images
    from jacobi_oracle.experiments.realtable import decode_images
    from jacobi_oracle.spec.layout import Layout
    from jacobi_oracle.spec.sampling import Sampling

    trained = load_named("digits")
    heldout = digit_images("heldout", 16)
    centres = np.stack([heldout.images[heldout.labels == c, ..., 0].mean(axis=0) for c in range(10)])
    conditions = [i % 10 for i in range(30)]
    layout = Layout(16, 16)
    decoded = decode_images("ar", trained.for_grid(16), layout, Sampling(cfg_scale=2.0), conditions, seed=3)
    tokens = torch.tensor([list(d.tokens) for d in decoded]).reshape(-1, 16, 16)
    pixels = trained.tokenizer.decode(tokens)[..., 0].numpy()
    guess = ((pixels[:, None] - centres[None]) ** 2).sum(axis=(2, 3)).argmin(axis=1)
    accuracy = float((guess == np.array(conditions)).mean())
    shuffled = float((guess == (np.array(conditions) + 5) % 10).mean())  # negative control: wrong labels
    # chance is 10 %; the held-out digits themselves score ~87 % with this classifier
    assert accuracy >= CLASS_ACCURACY and accuracy > 2 * shuffled, f"{accuracy:.0%} (wrong labels: {shuffled:.0%})"


# -- training --------------------------------------------------------------------------------
TINY = ["--data", "digits", "--dim", "16", "--layers", "1", "--heads", "2", "--batch-16", "4", "--threads", "1"]


def test_training_stops_when_the_heldout_nll_stops_improving(tmp_path: Path) -> None:
    needs_digits()
    from jacobi_oracle.experiments.train import main

    out = tmp_path / "d.safetensors"
    # lr 0: the weights never move, so the second evaluation cannot improve on the first
    assert main([*TINY, "--steps", "50", "--eval-every", "1", "--patience", "1", "--lr", "0", "--out", str(out)]) == 0
    metadata = load_trained(out).metadata
    assert metadata["stopped"] == "patience" and metadata["steps_run"] == "2" and metadata["best_step"] == "1"
    assert [p["step"] for p in json.loads(metadata["curve"])] == [1, 2]


def test_a_warm_start_continues_from_the_file_and_the_time_limit_stops_it(tmp_path: Path) -> None:
    needs_digits()
    from jacobi_oracle.experiments.train import main

    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert main([*TINY, "--steps", "2", "--eval-every", "2", "--lr", "0.01", "--out", str(first)]) == 0
    # lr 0 after a warm start: the held-out NLL is the first file's, so its weights were loaded
    again = ["--steps", "50", "--eval-every", "10", "--lr", "0", "--max-minutes", "1e-9", "--init", str(first)]
    assert main([*TINY, *again, "--out", str(second)]) == 0
    trained = load_trained(second)
    a, b = load_trained(first).metadata, trained.metadata
    assert b["heldout_nll"] == a["heldout_nll"] and json.loads(b["init"])["command"] == a["command"]
    assert b["stopped"] == "time" and b["steps_run"] == "1", "the time limit stops after the first step"
    assert [p["step"] for p in json.loads(b["curve"])] == [1], "evaluated before stopping"
    assert trained.class_names[3] == "3" and trained.tokenizer.patch == 1
    assert "crops_16" not in json.loads(b["recipe"]), "photo-only options stay out of the recipe"
    with pytest.raises(InvalidParameterError, match="config"):
        main([*TINY, "--dim", "8", "--steps", "1", "--init", str(first), "--out", str(second)])


def test_photo_defaults_still_match_the_committed_photo_recipe() -> None:
    from jacobi_oracle.experiments.train import parse_args

    committed = json.loads(load_named("trained").metadata["recipe"])
    defaults = vars(parse_args([]))
    assert defaults["out"] == TRAINED_MODELS["trained"]
    assert {k: defaults[k] for k in committed} == committed
