"""Real photographs shipped inside scikit-image and scikit-learn, as class-labelled crops.

Nothing is downloaded: the files are read straight from the installed wheels' package folders
(the packages are not even imported, so no data fetcher can run). Class = source photograph.

Each photo is resized so that its shorter side is `SHORT_SIDE` pixels, then split by columns:
the right-most `holdout_width(W)` columns are the held-out region, the rest the training region.
A crop lies entirely inside one region, so training and held-out crops never share a pixel.
Augmentation (training split only): uniform crop position inside the region, horizontal flip
with probability 1/2.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from ..spec.errors import InvalidParameterError, JacobiOracleError

SHORT_SIDE = 224  # pixels after resizing: a 64 px crop sees ~1/3.5 of the shorter side
HOLDOUT_FRACTION = 0.25  # share of each photo's width kept for the held-out split
MIN_HOLDOUT = 96  # the held-out region must fit the largest crop we take (96 px)

Split = Literal["train", "heldout"]


class DataUnavailableError(JacobiOracleError):
    """The package that ships a photograph is not installed (install the `train` extra)."""


@dataclass(frozen=True)
class Photo:
    name: str  # class name
    package: str  # the installed package that ships the file
    relative_path: str  # path inside that package


# Class id = index in this tuple. Grey-level photos are replicated to RGB.
PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "skimage", "data/astronaut.png"),
    Photo("chelsea", "skimage", "data/chelsea.png"),
    Photo("coffee", "skimage", "data/coffee.png"),
    Photo("rocket", "skimage", "data/rocket.jpg"),
    Photo("motorcycle", "skimage", "data/motorcycle_left.png"),
    Photo("hubble", "skimage", "data/hubble_deep_field.jpg"),
    Photo("ihc", "skimage", "data/ihc.png"),
    Photo("retina", "skimage", "data/retina.jpg"),
    Photo("brick", "skimage", "data/brick.png"),
    Photo("grass", "skimage", "data/grass.png"),
    Photo("china", "sklearn", "datasets/images/china.jpg"),
    Photo("flower", "sklearn", "datasets/images/flower.jpg"),
)

CLASS_NAMES: tuple[str, ...] = tuple(p.name for p in PHOTOS)


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError(
            f"package {package!r} is not installed; `pip install jacobi-oracle[train]` ships the photos"
        )
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def load_photo(class_id: int) -> np.ndarray:
    """[H, W, 3] uint8: photo `class_id`, resized so that min(H, W) == SHORT_SIDE."""
    if not 0 <= class_id < len(PHOTOS):
        raise InvalidParameterError(f"class id {class_id!r} is outside 0..{len(PHOTOS) - 1}")
    photo = PHOTOS[class_id]
    path = package_dir(photo.package) / photo.relative_path
    if not path.is_file():
        raise DataUnavailableError(f"{photo.package} is installed but {path} is missing")
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        scale = SHORT_SIDE / min(rgb.size)
        size = (max(SHORT_SIDE, round(rgb.size[0] * scale)), max(SHORT_SIDE, round(rgb.size[1] * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    array = np.asarray(rgb, dtype=np.uint8)
    array.setflags(write=False)
    return array


def holdout_width(width: int) -> int:
    """Columns of a `width`-wide photo that belong to the held-out region."""
    return max(MIN_HOLDOUT, round(HOLDOUT_FRACTION * width))


def region_columns(width: int, split: Split) -> tuple[int, int]:
    """[start, stop) columns of a split's region."""
    boundary = width - holdout_width(width)
    if split == "train":
        return 0, boundary
    if split == "heldout":
        return boundary, width
    raise InvalidParameterError(f"split must be 'train' or 'heldout', got {split!r}")


@dataclass(frozen=True)
class CropBox:
    class_id: int
    top: int
    left: int
    size: int
    flipped: bool


@dataclass(frozen=True)
class Crops:
    images: np.ndarray  # [n, size, size, 3] float32 in [0, 1]
    labels: np.ndarray  # [n] int64 class ids
    boxes: tuple[CropBox, ...]


def sample_boxes(
    split: Split, size: int, count: int, seed: int, classes: tuple[int, ...] | None = None
) -> list[CropBox]:
    """`count` crop boxes, classes cycling in order, positions (and flips for train) seeded."""
    # Verify the crop size fits every region
    if not 1 <= size <= MIN_HOLDOUT:
        raise InvalidParameterError(f"crop size must be in 1..{MIN_HOLDOUT}, got {size!r}")
    if count < 0:
        raise InvalidParameterError(f"count must be >= 0, got {count!r}")
    classes = tuple(range(len(PHOTOS))) if classes is None else classes
    rng = np.random.default_rng([seed, size, 0 if split == "train" else 1])
    boxes = []
    for i in range(count):
        class_id = classes[i % len(classes)]
        height, width = load_photo(class_id).shape[:2]
        start, stop = region_columns(width, split)
        left = int(rng.integers(start, stop - size + 1))
        top = int(rng.integers(0, height - size + 1))
        flipped = split == "train" and bool(rng.integers(0, 2))
        boxes.append(CropBox(class_id, top, left, size, flipped))
    return boxes


def cut(box: CropBox) -> np.ndarray:
    """[size, size, 3] float32 pixels of one box."""
    pixels = load_photo(box.class_id)[box.top : box.top + box.size, box.left : box.left + box.size]
    if box.flipped:
        pixels = pixels[:, ::-1]
    return pixels.astype(np.float32) / 255.0


def sample_crops(split: Split, size: int, count: int, seed: int, classes: tuple[int, ...] | None = None) -> Crops:
    """`count` crops of `size` x `size` pixels from one split (see module docstring)."""
    boxes = sample_boxes(split, size, count, seed, classes)
    images = np.stack([cut(b) for b in boxes]) if boxes else np.zeros((0, size, size, 3), np.float32)
    labels = np.array([b.class_id for b in boxes], dtype=np.int64)
    return Crops(images, labels, tuple(boxes))
