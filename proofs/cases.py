"""The grid of small cases on which the exact engine machine-checks lossless presets.

V in {2, 3}, L <= 6, W in {2, 3}, every toy model, plain sampling and each of temperature,
top-k, top-p and classifier-free guidance. Sizes are chosen so the whole grid runs in CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from jacobi_oracle.models.toy import HashModel, MarkovGrid
from jacobi_oracle.models.transformer import TinyTransformer
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Model, Problem
from jacobi_oracle.spec.sampling import Sampling

SAMPLINGS: dict[str, Sampling] = {
    "plain": Sampling(),
    "temperature": Sampling(temperature=0.6),
    "top-k": Sampling(top_k=2),
    "top-p": Sampling(top_p=0.7),
    "cfg": Sampling(cfg_scale=2.5, temperature=1.3),
}


class Case(NamedTuple):
    model: str
    vocab: int
    height: int
    width: int
    window: int
    sampling: str

    @property
    def id(self) -> str:
        return f"{self.model}-V{self.vocab}-{self.height}x{self.width}-W{self.window}-{self.sampling}"


def build_toy(name: str, vocab: int, height: int, width: int, seed: int = 0) -> Model:
    """One of the exact toy models at the given size."""
    if name == "hash":
        return HashModel(vocab, height * width, num_classes=2, row_stride=width, seed=seed)
    if name == "markov":
        return MarkovGrid(vocab, height, width, num_classes=2, seed=seed)
    if name == "transformer":
        return TinyTransformer(vocab, height * width, num_classes=2, seed=seed)
    raise ValueError(f"unknown toy model {name!r}")


def problem_for(case: Case) -> Problem:
    model = build_toy(case.model, case.vocab, case.height, case.width)
    return Problem(model, 1, Layout(case.height, case.width), SAMPLINGS[case.sampling])


def grid() -> Iterator[Case]:
    """V=2 on 2x3 grids (L=6) and V=3 on 2x2 grids (L=4), W in {2, 3}, every sampling rule."""
    for model in ("hash", "markov", "transformer"):
        for vocab, height, width in ((2, 2, 3), (3, 2, 2)):
            for window in (2, 3):
                for sampling in SAMPLINGS:
                    yield Case(model, vocab, height, width, window, sampling)
