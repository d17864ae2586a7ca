"""The handwritten digits shipped inside scikit-learn (`load_digits`: 1,797 images of 8 x 8 cells,
ink 0..16, 10 classes), rendered as grey pictures on a 16 x 16 or 24 x 24 grid.

Nothing is downloaded and scikit-learn is not imported: the rows are read straight from the
installed wheel's `datasets/data/digits.csv.gz` (64 ink values then the label per row).

Rendering: ink / 16 in [0, 1], bicubic upsampling (align_corners=False) of the 8 x 8 image to
`size` x `size`, clamped to [0, 1], then pixel = 1 - ink (dark strokes on white), replicated to
RGB so that the pictures go through the same tokenizer interface as the photos
(models/tokenizer.py: `grey_tokenizer` quantises each pixel to one of V grey levels).

Split: the last `HOLDOUT_FRACTION` of the file's rows (270 images, 26-29 per class) are held
out, a fixed contiguous block that no seed moves; the first 1,527 rows are training data.
Augmentation (training split only, `max_shift` > 0): copies translated by a seeded uniform
offset in -max_shift..max_shift cells per axis, the uncovered border filled with white.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from ..spec.errors import InvalidParameterError
from .photos import DataUnavailableError, Split, package_dir

CSV = "datasets/data/digits.csv.gz"  # inside the scikit-learn package folder
SIDE = 8  # cells per side of a source image
MAX_INK = 16.0  # ink values are counts of set pixels in 4 x 4 blocks of a 32 x 32 bitmap
HOLDOUT_FRACTION = 0.15  # share of rows (the last ones) kept for the held-out split
CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class Digits:
    images: np.ndarray  # [n, size, size, 3] float32 in [0, 1], white background
    labels: np.ndarray  # [n] int64 digit = class id


@cache
def load_digit_rows() -> tuple[np.ndarray, np.ndarray]:
    """[1797, 8, 8] float32 ink in [0, 1] and [1797] int64 labels, in file order."""
    path = package_dir("sklearn") / CSV
    if not path.is_file():
        raise DataUnavailableError(f"scikit-learn is installed but {path} is missing")
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
    ink = (rows[:, :-1] / MAX_INK).reshape(-1, SIDE, SIDE)
    labels = rows[:, -1].astype(np.int64)
    ink.setflags(write=False)
    labels.setflags(write=False)
    return ink, labels


def split_rows(split: Split) -> np.ndarray:
    """Row indices of one split (see module docstring)."""
    count = load_digit_rows()[1].shape[0]
    boundary = count - round(HOLDOUT_FRACTION * count)
    if split == "train":
        return np.arange(boundary)
    if split == "heldout":
        return np.arange(boundary, count)
    raise InvalidParameterError(f"split must be 'train' or 'heldout', got {split!r}")


def render(ink: np.ndarray, size: int) -> np.ndarray:
    """[n, 8, 8] ink -> [n, size, size, 3] float32 pixels (bicubic, dark strokes on white)."""
    # Verify the size is a grid the pictures can be drawn on
    if size < SIDE:
        raise InvalidParameterError(f"size must be >= {SIDE} (the source resolution), got {size!r}")
    x = torch.from_numpy(np.ascontiguousarray(ink, dtype=np.float32))[:, None]
    up = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)[:, 0]
    pixels = (1.0 - up)[..., None].expand(-1, -1, -1, 3)
    return pixels.contiguous().numpy()


def shift(pixels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """[size, size, 3] translated by (rows, cols) cells; the uncovered border is white."""
    out = np.ones_like(pixels)
    size = pixels.shape[0]
    src = pixels[max(0, -rows) : size - max(0, rows), max(0, -cols) : size - max(0, cols)]
    out[max(0, rows) : max(0, rows) + src.shape[0], max(0, cols) : max(0, cols) + src.shape[1]] = src
    return out


def digit_images(split: Split, size: int, copies: int = 1, max_shift: int = 0, seed: int = 0) -> Digits:
    """Every image of `split` rendered at `size`, `copies` times (copy 0 untranslated, the others
    translated by seeded offsets up to `max_shift`; training split only)."""
    # Verify the augmentation is possible on this split
    if copies < 1 or max_shift < 0:
        raise InvalidParameterError(f"need copies >= 1 and max_shift >= 0, got {copies!r}, {max_shift!r}")
    if split == "heldout" and (copies, max_shift) != (1, 0):
        raise InvalidParameterError("the held-out split is never augmented (copies=1, max_shift=0)")
    ink, labels = load_digit_rows()
    rows = split_rows(split)
    rendered = render(ink[rows], size)
    rng = np.random.default_rng([seed, size])
    images = [rendered]
    for _ in range(1, copies):
        offsets = rng.integers(-max_shift, max_shift + 1, size=(len(rows), 2))
        images.append(np.stack([shift(p, int(r), int(c)) for p, (r, c) in zip(rendered, offsets, strict=True)]))
    return Digits(np.concatenate(images), np.tile(labels[rows], copies))
