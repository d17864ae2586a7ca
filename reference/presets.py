"""Named strategies, each assembled from parts (spec/presets.md)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.spec.strategy import SteppedDecoder

from .ar import AutoRegressive, GumbelAR
from .composed import ComposedStrategy
from .drafters import (
    ArgmaxRefresher,
    CellNoiseDrafter,
    ConfidentReuseRefresher,
    FreshSampleRefresher,
    GumbelCouplingRefresher,
    InitialDrafter,
    MaximalCouplingRefresher,
    RandomDrafter,
    Refresher,
    ReuseRefresher,
    SpatialDrafter,
)
from .lpd import lpd
from .masks import CausalMask, Mask, RowCausalMask
from .pjd_exact import pjd_exact
from .schedules import ParallelRows, RasterWindow, StaggeredRows
from .verifiers import (
    FixedNoiseVerifier,
    GreedyRule,
    GroupedRule,
    LatentNeighbourRule,
    NoVerifier,
    RowLagVerifier,
    RuleVerifier,
    SpeculativeVerifier,
    Verifier,
)

DEFAULT_WINDOW = 3  # small enough for the exact engine on the toy models; the official SJD uses 16


def sjd(window: int = DEFAULT_WINDOW, recorded_law: Literal["uniform", "one-hot"] = "one-hot") -> ComposedStrategy:
    """Speculative Jacobi decoding (spec/sjd.md): random initial drafts, exact verification,
    refinement of the unaccepted tail from this pass's fresh samples."""
    name = "sjd" if recorded_law == "one-hot" else "sjd-uniform"
    return ComposedStrategy(
        name=name,
        schedule=RasterWindow(window),
        initial_drafter=RandomDrafter(recorded_law),
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
    reuses_noise: bool = False  # reads a key again on purpose (coupled / fixed-noise decoders)


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
        lambda window=DEFAULT_WINDOW: sjd(window, recorded_law="uniform"),
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


# --- the raster-window family (spec/jacobi.md, sjd-spatial.md, sjdpp.md, gsd.md, lantern.md) ---


def raster_window_strategy(
    name: str,
    window: int,
    verifier: Verifier,
    initial_drafter: InitialDrafter | None = None,
    refresher: Refresher | None = None,
) -> ComposedStrategy:
    """One raster window under the causal mask; random one-hot drafts and SJD refinement unless
    a part is given."""
    return ComposedStrategy(
        name=name,
        schedule=RasterWindow(window),
        initial_drafter=RandomDrafter() if initial_drafter is None else initial_drafter,
        verifier=verifier,
        refresher=FreshSampleRefresher() if refresher is None else refresher,
        mask=CausalMask(),
    )


def jacobi(window: int = DEFAULT_WINDOW) -> ComposedStrategy:
    """Greedy Jacobi fixed-point iteration: argmax drafts, a draft stands iff it is argmax p."""
    return raster_window_strategy("jacobi", window, RuleVerifier(GreedyRule()), refresher=ArgmaxRefresher())


def sjd_spatial(
    neighbour: Literal["left", "above"], mode: Literal["repeat", "sample"], window: int = DEFAULT_WINDOW
) -> ComposedStrategy:
    """SJD with an SJD++ 4.2 spatial initialisation of new drafts."""
    drafter = SpatialDrafter(neighbour, mode)
    name = f"sjd-{mode}-{neighbour}"
    return raster_window_strategy(name, window, SpeculativeVerifier(), drafter)


def sjdpp(window: int = DEFAULT_WINDOW, threshold: float = 1.0, exact: bool = False) -> ComposedStrategy:
    """SJD++ token reuse; `exact` verifies reused drafts with their keep-or-resample law."""
    refresher = ReuseRefresher(threshold, kept_law="mixture" if exact else "stale")
    return raster_window_strategy(
        "sjdpp-exact" if exact else "sjdpp", window, SpeculativeVerifier(), refresher=refresher
    )


def mc_sjd(window: int = DEFAULT_WINDOW, official: bool = False, above: bool = False) -> ComposedStrategy:
    """SJD with SCD's maximal-coupling refresh (spec/coupling.md); `official` records a kept
    draft's old q, as the official sampler does; `above` draws first drafts from the cell
    above's remembered p (SJD++ 4.2's spatial initialisation, q = that p)."""
    refresher = MaximalCouplingRefresher(official)
    name = "mc-sjd-official" if official else "mc-sjd"
    if not above:
        return raster_window_strategy(name, window, SpeculativeVerifier(), refresher=refresher)
    return raster_window_strategy(
        f"{name}-above", window, SpeculativeVerifier(), SpatialDrafter("above", "sample"), refresher
    )


def scd_gumbel(window: int = DEFAULT_WINDOW) -> ComposedStrategy:
    """SJD with SCD's Gumbel coupling (spec/coupling.md): redrafts follow the cell's own noise
    vector, q = p, independent verification draws."""
    return raster_window_strategy("scd-gumbel", window, SpeculativeVerifier(), refresher=GumbelCouplingRefresher())


def gumbel_jacobi(window: int = DEFAULT_WINDOW, above: bool = False) -> ComposedStrategy:
    """Fixed-noise Jacobi (spec/gumbel_jacobi.md): every decision at a cell is the argmax of
    log p + its own noise vector; token for token the Gumbel AR sample. `above`: first drafts
    argmax(log p_above + G(cell)) from the cell above's remembered p (a spatial draft)."""
    drafter = CellNoiseDrafter(above)
    return raster_window_strategy(
        "gumbel-jacobi-above" if above else "gumbel-jacobi",
        window,
        FixedNoiseVerifier(),
        drafter,
        GumbelCouplingRefresher(),
    )


def gsd(
    window: int = DEFAULT_WINDOW, rank_window: int = 1, prob_window: float = 0.15, embedding_radius: float = 1.5
) -> ComposedStrategy:
    """SJD with GSD's grouped acceptance (toy-scaled defaults, spec/gsd.md)."""
    return raster_window_strategy("gsd", window, RuleVerifier(GroupedRule(rank_window, prob_window, embedding_radius)))


def lantern(window: int = DEFAULT_WINDOW, neighbours: int = 1, delta: float = 0.1) -> ComposedStrategy:
    """SJD with LANTERN's relaxed acceptance over latent neighbours (toy-scaled k, spec/lantern.md)."""
    return raster_window_strategy("lantern", window, RuleVerifier(LatentNeighbourRule(neighbours, delta)))


def _spatial_builder(neighbour: Literal["left", "above"], mode: Literal["repeat", "sample"]) -> Callable[..., Any]:
    def build(window: int = DEFAULT_WINDOW) -> ComposedStrategy:
        return sjd_spatial(neighbour, mode, window)

    return build


register(Preset("jacobi", "greedy Jacobi fixed-point iteration (exact for greedy sampling only)", jacobi, True, True))
SPATIAL_INITIALISATIONS: tuple[tuple[Literal["repeat", "sample"], Literal["left", "above"]], ...] = (
    ("repeat", "left"),
    ("repeat", "above"),
    ("sample", "left"),
    ("sample", "above"),
)
for _mode, _neighbour in SPATIAL_INITIALISATIONS:
    register(
        Preset(
            f"sjd-{_mode}-{_neighbour}",
            f"SJD, new drafts {_mode} the {_neighbour} cell's {'token' if _mode == 'repeat' else 'p'} (SJD++ 4.2)",
            _spatial_builder(_neighbour, _mode),
            lossless=True,
        )
    )
register(Preset("sjdpp", "SJD++ token reuse as published: kept drafts verified with their stale q", sjdpp, False))
register(
    Preset(
        "sjdpp-exact",
        "SJD++ token reuse, drafts verified with their true keep-or-resample law",
        lambda window=DEFAULT_WINDOW, threshold=1.0: sjdpp(window, threshold, exact=True),
        lossless=True,
    )
)
register(Preset("mc-sjd", "SJD with SCD's maximal-coupling refresh, coupled drafts recorded with q = p", mc_sjd, True))
register(
    Preset(
        "mc-sjd-above",
        "mc-sjd whose first drafts are sampled from the cell above's p (q = that p): coupling + spatial drafts",
        lambda window=DEFAULT_WINDOW: mc_sjd(window, above=True),
        lossless=True,
    )
)
register(
    Preset(
        "mc-sjd-official",
        "SCD's maximal coupling as the official sampler: a kept draft keeps its old q (lossy)",
        lambda window=DEFAULT_WINDOW: mc_sjd(window, official=True),
        lossless=False,  # the paper claims lossless; the exact oracle refutes it (proofs/coupling.md)
    )
)
register(
    Preset(
        "scd-gumbel",
        "SJD with SCD's Gumbel coupling: redrafts argmax(log p + G(cell)) with the cell's fixed noise, q = p",
        scd_gumbel,
        lossless=True,
        reuses_noise=True,
    )
)
register(Preset("ar-gumbel", "AR under each cell's fixed Gumbel noise (the pathwise reference)", GumbelAR, True))
register(
    Preset(
        "gumbel-jacobi",
        "fixed-noise Jacobi: drafts and commits argmax(log p + G(cell)); pathwise equal to ar-gumbel",
        gumbel_jacobi,
        lossless=True,
        reuses_noise=True,
    )
)
register(
    Preset(
        "gumbel-jacobi-above",
        "gumbel-jacobi whose first drafts are argmax(log p_above + G(cell)): the spatial draft of fixed noise",
        lambda window=DEFAULT_WINDOW: gumbel_jacobi(window, above=True),
        lossless=True,
        reuses_noise=True,
    )
)
register(Preset("gsd", "SJD with grouped speculative acceptance (GSD), toy-scaled groups", gsd, False))
register(Preset("lantern", "SJD with relaxed acceptance over latent neighbours (LANTERN)", lantern, False))


# --- the 2D family (spec/pjd.md, spec/pjd_exact.md, spec/zipar.md) ---

DEFAULT_CONTEXT = 2  # PJD's c on the toy grids (official code: 8 image tokens + the row's leading token)
PJD_REUSE_THRESHOLD = 0.5  # PJD keeps an unresolved draft when min(1, p/q) exceeds this


def pjd(
    context: int = DEFAULT_CONTEXT,
    window: int = DEFAULT_WINDOW,
    mask: Literal["row-causal", "causal"] = "row-causal",
    reuse_threshold: float = PJD_REUSE_THRESHOLD,
) -> ComposedStrategy:
    """Parallel Jacobi decoding as published: a window per active row, all rows in one pass
    under the Row-Causal Mask, lower rows verified against partial context one column behind
    the row above, PJD's post-rejection reuse rule. `mask="causal"` is the ablation."""
    masks: dict[str, Mask] = {"row-causal": RowCausalMask(), "causal": CausalMask()}
    if mask not in masks:
        raise InvalidParameterError(f"pjd mask must be 'row-causal' or 'causal', got {mask!r}")
    return ComposedStrategy(
        name="pjd" if mask == "row-causal" else "pjd-causal",
        schedule=ParallelRows(context, window),
        initial_drafter=RandomDrafter(),
        verifier=RowLagVerifier(SpeculativeVerifier()),
        refresher=ConfidentReuseRefresher(reuse_threshold),
        mask=masks[mask],
    )


def zipar(window: int = DEFAULT_CONTEXT) -> ComposedStrategy:
    """ZipAR: row r+1 starts once row r has `window` tokens; one sample per active row per
    pass, no drafts, no verification."""
    return ComposedStrategy(
        name="zipar",
        schedule=StaggeredRows(window),
        initial_drafter=None,  # ZipAR windows carry no drafts
        verifier=NoVerifier(),
        refresher=None,  # nothing is left unresolved
        mask=CausalMask(),
    )


def _pjd_causal(
    context: int = DEFAULT_CONTEXT, window: int = DEFAULT_WINDOW, reuse_threshold: float = PJD_REUSE_THRESHOLD
) -> ComposedStrategy:
    return pjd(context, window, "causal", reuse_threshold)


register(Preset("pjd", "parallel Jacobi decoding (PJD) as published: rows in parallel, Row-Causal Mask", pjd, False))
register(Preset("pjd-causal", "PJD ablation: the plain causal mask instead of the Row-Causal Mask", _pjd_causal, False))
register(
    Preset("pjd-exact", "PJD's 2D drafting as a shadow, commits by exact raster verification (ours)", pjd_exact, True)
)
register(Preset("zipar", "ZipAR: staggered rows, one sample per active row per pass, no verification", zipar, False))

# --- LPD (spec/lpd.md): needs a position-query model for its mutual query visibility ---
register(Preset("lpd", "locality-aware parallel decoding: seeded locality order, one cell group per pass", lpd, False))


# --- on a real model (a trained LlamaGen; experiments/realtable.py, bench.py, cli/demo.py) ---
# Published parameters where there is one (SJD: W = 16; PJD: c = 8 image tokens, windows of 8;
# ZipAR on LlamaGen: w = 8). Passed only to builders that take them.
REAL_MODEL_PARAMS: dict[str, dict[str, Any]] = {
    "pjd": {"context": 8, "window": 8},
    "pjd-causal": {"context": 8, "window": 8},
    "pjd-exact": {"context": 8, "window": 8, "verify": 16},
    "zipar": {"window": 8},
    # fixed-noise Jacobi gains from long windows (drafts far ahead converge while they wait);
    # 128 is the fastest on one CPU thread at 24x24 (benchmarks/REAL_MODEL.md, the window sweep)
    "gumbel-jacobi-above": {"window": 128},
}
REAL_MODEL_WINDOW = 16  # every other windowed preset (SJD's published W)
# Presets that start a row before the row above is finished: decoded through RowEntryProxy
ROW_ENTRY_PRESETS = frozenset({"pjd", "pjd-causal", "pjd-exact", "zipar"})


def real_params(name: str) -> dict[str, Any]:
    """Parameters for preset `name` on a real model."""
    if name in REAL_MODEL_PARAMS:
        return dict(REAL_MODEL_PARAMS[name])
    accepted = inspect.signature(PRESETS[name].build).parameters
    return {"window": REAL_MODEL_WINDOW} if "window" in accepted else {}
