"""Built-in models by name, each with the grid and condition it is exercised on."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ..spec.errors import InvalidParameterError
from ..spec.layout import Layout
from ..spec.model import Model
from .toy import HashModel, MarkovGrid
from .transformer import TinyTransformer


class ModelCase(NamedTuple):
    model: Model
    layout: Layout
    condition: int | None


def _hash() -> ModelCase:
    return ModelCase(HashModel(vocab_size=3, num_positions=6, row_stride=3), Layout(2, 3), 0)


def _hash_tiny() -> ModelCase:
    return ModelCase(HashModel(vocab_size=2, num_positions=4, row_stride=2), Layout(2, 2), 0)


def _markov() -> ModelCase:
    return ModelCase(MarkovGrid(vocab_size=3, height=2, width=3), Layout(2, 3), 0)


def _transformer() -> ModelCase:
    return ModelCase(TinyTransformer(vocab_size=3, num_positions=6), Layout(2, 3), 0)


def _transformer_16() -> ModelCase:
    return ModelCase(TinyTransformer(vocab_size=8, num_positions=16), Layout(4, 4), 1)


MODELS: dict[str, Callable[[], ModelCase]] = {
    "hash": _hash,  # V=3, 2x3 grid: 729 sequences, the default for exact checks
    "hash-tiny": _hash_tiny,  # V=2, 2x2 grid: 16 sequences, exact checks in about a second
    "markov": _markov,  # V=3, 2x3 2D Markov grid
    "transformer": _transformer,  # V=3, 2x3, random tiny transformer
    "transformer-16": _transformer_16,  # V=8, 4x4: too large to enumerate; statistical checks
}

CLI_MODEL = "hash"  # the command line's --model default (V=3, 2x3: lossy presets show their loss)


def build_model(name: str) -> ModelCase:
    if name not in MODELS:
        raise InvalidParameterError(f"unknown model {name!r}; built-in models: {', '.join(MODELS)}")
    return MODELS[name]()
