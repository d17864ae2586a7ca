"""The photo crops (jacobi_oracle/data) and the patch k-means tokenizer (models/tokenizer.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jacobi_oracle.models.tokenizer import PatchTokenizer, fit_codebook, from_patches, to_patches
from jacobi_oracle.spec.errors import InvalidParameterError, ShapeMismatchError


def needs_photos() -> None:
    pytest.importorskip("skimage", reason="the photos ship with the `train` extra")
    pytest.importorskip("sklearn", reason="the photos ship with the `train` extra")


def small_tokenizer(k: int = 24, seed: int = 0) -> PatchTokenizer:
    from jacobi_oracle.data import sample_crops

    crops = sample_crops("train", 64, 48, seed=11)
    return PatchTokenizer.fit(torch.from_numpy(crops.images), k, seed, iterations=8, max_points=6000)


# -- data ------------------------------------------------------------------------------------
def test_every_photo_loads_from_the_installed_wheels_without_download() -> None:
    needs_photos()
    from jacobi_oracle.data import PHOTOS, load_photo
    from jacobi_oracle.data.photos import SHORT_SIDE

    for class_id in range(len(PHOTOS)):
        photo = load_photo(class_id)
        assert photo.dtype == np.uint8 and photo.shape[2] == 3, f"{PHOTOS[class_id].name}: {photo.shape}"
        assert min(photo.shape[:2]) == SHORT_SIDE


def test_train_and_heldout_crops_never_share_a_pixel() -> None:
    needs_photos()
    from jacobi_oracle.data.photos import Split, load_photo, region_columns, sample_boxes

    splits: tuple[Split, Split] = ("train", "heldout")
    for size in (64, 96):
        train = sample_boxes("train", size, 240, seed=3)
        heldout = sample_boxes("heldout", size, 240, seed=3)
        for split, boxes in zip(splits, (train, heldout), strict=True):
            for box in boxes:
                start, stop = region_columns(load_photo(box.class_id).shape[1], split)
                assert start <= box.left and box.left + size <= stop, f"{split} {box} leaves columns {start}..{stop}"
        for a in train:
            for b in heldout:
                if a.class_id == b.class_id:
                    assert a.left + size <= b.left or b.left + size <= a.left, f"{a} overlaps {b}"


def test_crops_are_seeded_labelled_and_augmented() -> None:
    needs_photos()
    from jacobi_oracle.data import PHOTOS, sample_crops

    a = sample_crops("train", 64, 36, seed=5)
    b = sample_crops("train", 64, 36, seed=5)
    c = sample_crops("train", 64, 36, seed=6)
    assert np.array_equal(a.images, b.images) and a.boxes == b.boxes
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (36, 64, 64, 3) and a.images.min() >= 0 and a.images.max() <= 1
    assert a.labels.tolist() == [i % len(PHOTOS) for i in range(36)]
    assert any(box.flipped for box in a.boxes) and not all(box.flipped for box in a.boxes)
    assert not any(box.flipped for box in sample_crops("heldout", 64, 36, seed=5).boxes)


def test_invalid_crop_size_is_rejected() -> None:
    needs_photos()
    from jacobi_oracle.data import sample_crops

    with pytest.raises(InvalidParameterError, match="crop size"):
        sample_crops("train", 97, 1, seed=0)


# -- tokenizer -------------------------------------------------------------------------------
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.sampled_from([2, 4]))
def test_patches_round_trip_exactly(n: int, rows: int, cols: int, patch: int) -> None:
    images = torch.rand(n, rows * patch, cols * patch, 3)
    patches = to_patches(images, patch)
    assert patches.shape == (n, rows, cols, patch * patch * 3)
    assert torch.equal(from_patches(patches, patch), images)


def test_encode_decode_shapes_for_both_grids() -> None:
    tokenizer = PatchTokenizer(torch.rand(32, 48), patch=4)
    for pixels, grid in ((64, 16), (96, 24)):
        tokens = tokenizer.encode(torch.rand(2, pixels, pixels, 3))
        assert tokens.shape == (2, grid, grid) and tokens.dtype == torch.long
        assert tokenizer.decode(tokens).shape == (2, pixels, pixels, 3)


def test_codebook_entries_encode_to_themselves() -> None:
    codebook = torch.rand(16, 48, generator=torch.Generator().manual_seed(0))
    tokenizer = PatchTokenizer(codebook, patch=4)
    tokens = torch.arange(16).reshape(1, 4, 4)
    assert torch.equal(tokenizer.encode(tokenizer.decode(tokens)), tokens)


def test_kmeans_is_deterministic_and_beats_its_start() -> None:
    points = torch.rand(3000, 6, generator=torch.Generator().manual_seed(1))
    a, b = fit_codebook(points, 8, seed=4, iterations=6), fit_codebook(points, 8, seed=4, iterations=6)
    assert torch.equal(a, b)
    start = fit_codebook(points, 8, seed=4, iterations=0)

    def error(codebook: torch.Tensor) -> float:
        return float(torch.cdist(points, codebook).min(dim=1).values.pow(2).mean())

    assert error(a) < error(start)


def test_invalid_tokens_and_codebooks_are_rejected() -> None:
    tokenizer = PatchTokenizer(torch.rand(8, 48), patch=4)
    with pytest.raises(InvalidParameterError, match="token ids"):
        tokenizer.decode(torch.full((1, 2, 2), 8))
    with pytest.raises(ShapeMismatchError, match="multiples of 4"):
        tokenizer.encode(torch.rand(1, 10, 12, 3))
    with pytest.raises(ShapeMismatchError, match="codebook"):
        PatchTokenizer(torch.rand(8, 47), patch=4)


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean())


def mean_colour(images: torch.Tensor) -> torch.Tensor:
    return images.mean(dim=(1, 2), keepdim=True).expand_as(images)


def test_committed_tokenizer_reconstructs_heldout_crops_far_better_than_mean_colour() -> None:
    needs_photos()
    from jacobi_oracle.data import sample_crops
    from jacobi_oracle.models.trained import load_trained

    tokenizer = load_trained().tokenizer
    for size in (64, 96):
        heldout = torch.from_numpy(sample_crops("heldout", size, 48, seed=7).images)
        error = mse(tokenizer.decode(tokenizer.encode(heldout)), heldout)
        baseline = mse(mean_colour(heldout), heldout)
        assert error < 0.3 * baseline, f"held-out {size}px MSE {error:.4f} vs mean-colour {baseline:.4f}"


def test_reconstruction_bound_rejects_a_broken_tokenizer() -> None:
    # negative control: a codebook of random patches must fail the bound used above
    needs_photos()
    from jacobi_oracle.data import sample_crops

    broken = PatchTokenizer(torch.rand(256, 48, generator=torch.Generator().manual_seed(0)), patch=4)
    heldout = torch.from_numpy(sample_crops("heldout", 64, 48, seed=7).images)
    assert mse(broken.decode(broken.encode(heldout)), heldout) >= 0.3 * mse(mean_colour(heldout), heldout)


def test_a_small_fitted_tokenizer_is_seeded() -> None:
    needs_photos()
    a, b = small_tokenizer(seed=2), small_tokenizer(seed=2)
    assert torch.equal(a.codebook, b.codebook)
    assert not torch.equal(a.codebook, small_tokenizer(seed=3).codebook)
