"""Patch k-means tokenizer: pixels <-> a grid of codebook ids.

An image of H x W pixels (H, W multiples of the patch size P) is cut into P x P patches;
each patch (P * P * 3 values in [0, 1]) is replaced by the id of its nearest codebook entry
(squared Euclidean distance, lowest id on ties). Decoding tiles the codebook entries back.
With P = 4, 64 x 64 crops become 16 x 16 grids and 96 x 96 crops 24 x 24 grids.

The codebook is fitted by Lloyd's k-means from a k-means++ start, all draws from one seeded
torch.Generator, so `fit_codebook(patches, k, seed)` is deterministic on a given machine.

Grey levels (the digits model) are the special case P = 1 with a fixed codebook:
`grey_tokenizer(V)` maps each pixel to the nearest of V evenly spaced greys, id k = ink
k / (V - 1), i.e. pixel value 1 - k / (V - 1) (id 0 is white, the background), and decodes
an id back to that grey. The file format is the same (`tokenizer.codebook`, [V, 3]).
"""

from __future__ import annotations

import torch

from ..spec.errors import InvalidParameterError, ShapeMismatchError

CODEBOOK_KEY = "tokenizer.codebook"
CHANNELS = 3


def to_patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[n, H, W, 3] -> [n, H/P, W/P, P*P*3] (row-major inside a patch)."""
    n, height, width, channels = images.shape
    if channels != CHANNELS or height % patch or width % patch:
        raise ShapeMismatchError(
            f"images must be [n, H, W, 3] with H, W multiples of {patch}, got {tuple(images.shape)}"
        )
    grid = images.reshape(n, height // patch, patch, width // patch, patch, channels)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(n, height // patch, width // patch, patch * patch * channels)


def from_patches(patches: torch.Tensor, patch: int) -> torch.Tensor:
    """[n, h, w, P*P*3] -> [n, h*P, w*P, 3]; inverse of `to_patches`."""
    n, rows, cols, _ = patches.shape
    grid = patches.reshape(n, rows, cols, patch, patch, CHANNELS).permute(0, 1, 3, 2, 4, 5)
    return grid.reshape(n, rows * patch, cols * patch, CHANNELS)


def nearest(points: torch.Tensor, codebook: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """[N, D], [K, D] -> [N] id of the nearest codebook row (lowest id on ties)."""
    ids = [torch.cdist(points[i : i + chunk], codebook).argmin(dim=1) for i in range(0, points.shape[0], chunk)]
    return torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long)


def kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): [k, D] initial centres."""
    first = int(torch.randint(points.shape[0], (1,), generator=generator))
    centres = [points[first]]
    closest = ((points - points[first]) ** 2).sum(dim=1)
    for _ in range(1, k):
        weights = closest if float(closest.sum()) > 0 else torch.ones_like(closest)
        pick = int(torch.multinomial(weights, 1, generator=generator))
        centres.append(points[pick])
        closest = torch.minimum(closest, ((points - points[pick]) ** 2).sum(dim=1))
    return torch.stack(centres)


def fit_codebook(
    patches: torch.Tensor, k: int, seed: int, iterations: int = 15, seeding_points: int = 20000
) -> torch.Tensor:
    """Lloyd's k-means on [N, D] float32 patches: [k, D] codebook. k-means++ seeds from a seeded
    subset of `seeding_points` patches; empty clusters are re-seeded at the worst-fit points."""
    # Verify there are at least k points
    if patches.dim() != 2 or patches.shape[0] < k:
        raise InvalidParameterError(f"need a [N, D] tensor with N >= k={k}, got {tuple(patches.shape)}")
    generator = torch.Generator().manual_seed(seed)
    subset = torch.randperm(patches.shape[0], generator=generator)[:seeding_points]
    centres = kmeans_plus_plus(patches[subset], k, generator)
    for _ in range(iterations):
        ids = nearest(patches, centres)
        counts = torch.bincount(ids, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, ids, patches)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centres)
        empty = (counts == 0).nonzero().flatten()
        if empty.numel():
            error = ((patches - centres[ids]) ** 2).sum(dim=1)
            centres[empty] = patches[error.topk(empty.numel()).indices]
    return centres


def grey_codebook(levels: int) -> torch.Tensor:
    """[levels, 3] evenly spaced greys from white (id 0) to black (id levels - 1)."""
    # Verify there are at least two levels
    if levels < 2:
        raise InvalidParameterError(f"need at least 2 grey levels, got {levels!r}")
    grey = 1.0 - torch.arange(levels, dtype=torch.float32) / (levels - 1)
    return grey[:, None].expand(levels, CHANNELS).contiguous()


def grey_tokenizer(levels: int) -> PatchTokenizer:
    """One token per pixel: the nearest of `levels` greys (see module docstring)."""
    return PatchTokenizer(grey_codebook(levels), patch=1)


class PatchTokenizer:
    def __init__(self, codebook: torch.Tensor, patch: int = 4) -> None:
        # Verify the codebook holds P*P*3-dimensional patches
        if codebook.dim() != 2 or codebook.shape[1] != patch * patch * CHANNELS:
            raise ShapeMismatchError(
                f"codebook must be [K, {patch * patch * CHANNELS}] for patch {patch}, got {tuple(codebook.shape)}"
            )
        self.codebook = codebook.to(torch.float32)
        self.patch = patch

    @property
    def vocab_size(self) -> int:
        return int(self.codebook.shape[0])

    @classmethod
    def fit(
        cls, images: torch.Tensor, k: int, seed: int, patch: int = 4, iterations: int = 15, max_points: int = 60000
    ) -> PatchTokenizer:
        """Fit a k-entry codebook on (a seeded subset of at most `max_points` of) the patches of
        [n, H, W, 3] images."""
        points = to_patches(images.to(torch.float32), patch).reshape(-1, patch * patch * CHANNELS)
        generator = torch.Generator().manual_seed(seed)
        points = points[torch.randperm(points.shape[0], generator=generator)[:max_points]]
        return cls(fit_codebook(points, k, seed, iterations), patch)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """[n, H, W, 3] pixels in [0, 1] -> [n, H/P, W/P] token ids."""
        patches = to_patches(images.to(torch.float32), self.patch)
        n, rows, cols, dim = patches.shape
        return nearest(patches.reshape(-1, dim), self.codebook).reshape(n, rows, cols)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """[n, h, w] token ids -> [n, h*P, w*P, 3] pixels in [0, 1]."""
        # Verify every id is in the codebook
        if tokens.numel() and not (int(tokens.min()) >= 0 and int(tokens.max()) < self.vocab_size):
            raise InvalidParameterError(
                f"token ids must be in 0..{self.vocab_size - 1}, got {int(tokens.min())}..{int(tokens.max())}"
            )
        if tokens.dim() != 3:
            raise ShapeMismatchError(f"tokens must be [n, h, w], got {tuple(tokens.shape)}")
        return from_patches(self.codebook[tokens.long()], self.patch)

    def tensors(self) -> dict[str, torch.Tensor]:
        """What a safetensors checkpoint stores for this tokenizer."""
        return {CODEBOOK_KEY: self.codebook.contiguous()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> PatchTokenizer:
        if CODEBOOK_KEY not in tensors:
            raise ShapeMismatchError(f"checkpoint has no {CODEBOOK_KEY!r} tensor (keys: {sorted(tensors)[:5]}...)")
        codebook = tensors[CODEBOOK_KEY]
        patch = round((codebook.shape[1] / CHANNELS) ** 0.5)
        return cls(codebook, patch)
