"""The mutant catalogue: SJD with one part swapped for a broken one (mutants/parts.py), each
with the model and sampling setting that exposes its bug. Every oracle engine must reject
every mutant (negative controls) while passing every lossless preset on the same settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..models.toy import HashModel
from ..reference.composed import ComposedStrategy
from ..reference.presets import gumbel_jacobi, sjd
from ..reference.verifiers import RuleVerifier
from ..spec.errors import InvalidParameterError
from ..spec.layout import Layout
from ..spec.model import Problem
from ..spec.sampling import Sampling
from .parts import (
    AcceptKeyReuseVerifier,
    AlwaysAcceptRule,
    BatchMinimumVerifier,
    DraftSamplingRefresher,
    EqualityRule,
    GreedyDraftRefresher,
    LeakyMask,
    OffByOneVerifier,
    OldQCouplingRefresher,
    RawLogitsQRefresher,
    ReprocessedResidualRule,
    StaleDraftFixedNoiseVerifier,
    StaleReuseRefresher,
    TargetSamplingVerifier,
    UnnormalisedResidualRule,
    WrongSignResidualRule,
    ZeroResidualFallbackRule,
)

MUTANT_WINDOW = 3  # SJD window of every mutant: two drafts and a bonus cell per pass
CASE_VOCAB, CASE_HEIGHT, CASE_WIDTH = 3, 2, 2  # 81 sequences: exact checks take seconds
CASE_SHARPNESS = 2.0  # peaked conditionals: drafts are often rejected, bugs show


DEFAULT_SAMPLING = Sampling()


def mutant_problem(
    sampling: Sampling = DEFAULT_SAMPLING,
    vocab_size: int = CASE_VOCAB,
    height: int = CASE_HEIGHT,
    width: int = CASE_WIDTH,
) -> Problem:
    """The tiny exact case every mutant runs on: a peaked hash model (default V=3 on a 2x2
    grid), class 0."""
    model = HashModel(vocab_size, height * width, row_stride=width, sharpness=CASE_SHARPNESS)
    return Problem(model, 0, Layout(height, width), sampling)


def without_temperature(sampling: Sampling) -> Sampling:
    return replace(sampling, temperature=1.0)


def without_top_k(sampling: Sampling) -> Sampling:
    return replace(sampling, top_k=None)


def without_top_p(sampling: Sampling) -> Sampling:
    return replace(sampling, top_p=None)


def without_cfg(sampling: Sampling) -> Sampling:
    return replace(sampling, cfg_scale=1.0)


def raw_logits(sampling: Sampling) -> Sampling:
    return replace(sampling, temperature=1.0, top_k=None, top_p=None)


@dataclass(frozen=True)
class Mutant:
    name: str
    parts: Callable[[], dict[str, Any]]  # the ONE part of SJD that is swapped
    sampling: Sampling  # the setting that exposes the bug

    def build(self) -> ComposedStrategy:
        return replace(sjd(MUTANT_WINDOW), name=f"mutant:{self.name}", **self.parts())

    def problem(self, vocab_size: int = CASE_VOCAB, height: int = CASE_HEIGHT, width: int = CASE_WIDTH) -> Problem:
        return mutant_problem(self.sampling, vocab_size, height, width)

    @property
    def bug_class(self) -> str:
        """The first line of the broken part's docstring."""
        (part,) = self.parts().values()
        doc = (getattr(part, "rule", part).__doc__ or "").strip()
        return " ".join(doc.split())


T_LOW = Sampling(temperature=0.5)  # sharp targets: a missing temperature moves a lot of mass
T_HIGH = Sampling(temperature=3.0)  # flat targets: drafts and their q differ most
T_TWO = Sampling(temperature=2.0)

MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        Mutant("temperature-draft-only", lambda: {"verifier": TargetSamplingVerifier(without_temperature)}, T_LOW),
        Mutant("temperature-target-only", lambda: {"refresher": DraftSamplingRefresher(without_temperature)}, T_HIGH),
        Mutant("top-k-draft-only", lambda: {"verifier": TargetSamplingVerifier(without_top_k)}, Sampling(top_k=1)),
        Mutant("top-p-draft-only", lambda: {"verifier": TargetSamplingVerifier(without_top_p)}, Sampling(top_p=0.5)),
        Mutant("cfg-target-only", lambda: {"refresher": DraftSamplingRefresher(without_cfg)}, Sampling(cfg_scale=3.0)),
        Mutant("greedy-draft-softmax-q", lambda: {"refresher": GreedyDraftRefresher()}, Sampling()),
        Mutant("raw-logits-q", lambda: {"refresher": RawLogitsQRefresher(raw_logits)}, T_HIGH),
        Mutant("stale-q-after-reuse", lambda: {"refresher": StaleReuseRefresher()}, T_HIGH),
        Mutant("coupled-old-q", lambda: {"refresher": OldQCouplingRefresher()}, T_HIGH),
        Mutant("accept-reads-draft-key", lambda: {"verifier": AcceptKeyReuseVerifier()}, Sampling()),
        Mutant("residual-unnormalised", lambda: {"verifier": RuleVerifier(UnnormalisedResidualRule())}, Sampling()),
        Mutant("residual-wrong-sign", lambda: {"verifier": RuleVerifier(WrongSignResidualRule())}, Sampling()),
        Mutant("residual-reprocessed", lambda: {"verifier": RuleVerifier(ReprocessedResidualRule())}, T_HIGH),
        Mutant("zero-residual-fixed-token", lambda: {"verifier": RuleVerifier(ZeroResidualFallbackRule())}, T_LOW),
        Mutant("always-accept", lambda: {"verifier": RuleVerifier(AlwaysAcceptRule())}, Sampling()),
        Mutant("equality-accept", lambda: {"verifier": RuleVerifier(EqualityRule())}, T_TWO),
        Mutant("off-by-one", lambda: {"verifier": OffByOneVerifier()}, Sampling()),
        Mutant("leaky-mask", lambda: {"mask": LeakyMask()}, Sampling()),
        Mutant("batch-minimum-accepted", lambda: {"verifier": BatchMinimumVerifier()}, Sampling()),
    )
}

# Settings on which every lossless preset must pass (one per distinct mutant setting).
PRESET_SETTINGS: tuple[Sampling, ...] = tuple(dict.fromkeys(m.sampling for m in MUTANTS.values()))


def get_mutant(name: str) -> Mutant:
    if name not in MUTANTS:
        raise InvalidParameterError(f"unknown mutant {name!r}; known: {', '.join(MUTANTS)}")
    return MUTANTS[name]


def gumbel_jacobi_wrong_cell(window: int = MUTANT_WINDOW) -> ComposedStrategy:
    """The pathwise engine's negative control: gumbel-jacobi committing one stale draft."""
    name = "mutant:gumbel-jacobi-wrong-cell"
    return replace(gumbel_jacobi(window), name=name, verifier=StaleDraftFixedNoiseVerifier())
