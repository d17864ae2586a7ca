"""Named strategies, each assembled from parts (spec/presets.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from ..spec.errors import InvalidParameterError
from ..spec.strategy import SteppedDecoder
from .ar import AutoRegressive
from .composed import ComposedStrategy
from .drafters import FreshSampleRefresher, RandomDrafter
from .masks import CausalMask
from .schedules import RasterWindow
from .verifiers import SpeculativeVerifier

DEFAULT_WINDOW = 3  # small enough for the exact engine on the toy models; the official SJD uses 16


def sjd(window: int = DEFAULT_WINDOW, q: Literal["uniform", "one-hot"] = "one-hot") -> ComposedStrategy:
    """Speculative Jacobi decoding (spec/sjd.md): random initial drafts, exact verification,
    refinement of the unaccepted tail from this pass's fresh samples."""
    name = "sjd" if q == "one-hot" else "sjd-uniform"
    return ComposedStrategy(
        name=name,
        schedule=RasterWindow(window),
        initial_drafter=RandomDrafter(q),
        verifier=SpeculativeVerifier(),
        refresher=FreshSampleRefresher(),
        mask=CausalMask(),
    )


def ar() -> AutoRegressive:
    return AutoRegressive()


PRESETS: dict[str, Callable[..., SteppedDecoder[Any]]] = {
    "ar": ar,
    "sjd": sjd,
    "sjd-uniform": lambda window=DEFAULT_WINDOW: sjd(window, q="uniform"),
}


def build_preset(name: str, **params: Any) -> SteppedDecoder[Any]:
    """The preset called `name`, with optional parameters (e.g. window=16)."""
    if name not in PRESETS:
        raise InvalidParameterError(f"unknown strategy {name!r}; built-in presets: {', '.join(PRESETS)}")
    return PRESETS[name](**params)
