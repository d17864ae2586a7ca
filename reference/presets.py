"""Named strategies, each assembled from parts (spec/presets.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..spec.errors import InvalidParameterError
from ..spec.strategy import SteppedDecoder
from .ar import AutoRegressive
from .composed import ComposedStrategy
from .drafters import FreshSampleRefresher, RandomDrafter
from .lpd import lpd
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


@dataclass(frozen=True)
class Preset:
    """A named strategy: how to build it and what the spec claims about its law."""

    name: str
    summary: str
    build: Callable[..., SteppedDecoder[Any]]
    lossless: bool  # the spec's claim: its output law is exactly the AR law
    greedy_only: bool = False  # the claim holds for greedy sampling only (Jacobi)


PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    assert preset.name not in PRESETS, f"preset {preset.name!r} registered twice"
    PRESETS[preset.name] = preset
    return preset


register(Preset("ar", "vanilla autoregressive sampling, one cell per pass", ar, lossless=True))
register(Preset("sjd", "speculative Jacobi decoding, random drafts with one-hot q (official code)", sjd, True))
register(
    Preset(
        "sjd-uniform",
        "speculative Jacobi decoding, random drafts with their true uniform q",
        lambda window=DEFAULT_WINDOW: sjd(window, q="uniform"),
        lossless=True,
    )
)


def build_preset(name: str, **params: Any) -> SteppedDecoder[Any]:
    """The preset called `name`, with optional parameters (e.g. window=16)."""
    if name not in PRESETS:
        raise InvalidParameterError(f"unknown strategy {name!r}; built-in presets: {', '.join(PRESETS)}")
    try:
        return PRESETS[name].build(**params)
    except TypeError as error:
        raise InvalidParameterError(f"bad parameters {params} for strategy {name!r}: {error}") from error


# --- LPD (spec/lpd.md): needs a position-query model for its mutual query visibility ---
register(Preset("lpd", "locality-aware parallel decoding: seeded locality order, one cell group per pass", lpd, False))
