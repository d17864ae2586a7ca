"""`statistical_check`: is a strategy's output law the AR law? Judged from samples.

The family of sub-tests (spec/statistical_oracle.md):
    support             no token impossible under AR            (false-fail probability 0)
    position[t]         per-cell law: exact (enumerated) or two-sample against AR samples
    pair[a,b]           adjacent-pair joint laws, the same way
    sequence            the law of whole sequences against the exact AR law      (enumerable problems)
    conditional[t]      the token at cell t given its prefix, against p(x_t | x_<t)  (enumerable problems)
    pit-chi2, pit-ks    teacher-forced randomised PIT ~ Uniform(0, 1)
    surprise            the surprise martingale z-test
    accept-hazard       verifier: acceptance counts vs alpha = sum min(p, q)   (ComposedStrategy)
    residual-pit        verifier: residual tokens ~ norm(max(0, p - q))
    bonus-pit           verifier: bonus tokens ~ p
    draft-pit           verifier: every verified draft ~ its stored q (the precondition)
Each is judged at alpha / (family size) (Bonferroni), so the whole check fails a lossless
strategy with probability <= alpha.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ...accelerated.jacobi import accelerated_ar
from ...reference.ar import AutoRegressive
from ...spec.model import Problem, causal_batch_model
from ...spec.strategy import Strategy
from ..exact import exact_ar_law
from .counts import (
    ENUMERATION_LIMIT,
    CountTables,
    adjacent_pairs,
    bucket_of,
    count_samples,
    from_fixed,
    is_enumerable,
    sequence_index,
)
from .power import (
    CALIBRATION_TESTS,
    VERIFIER_TESTS,
    bonferroni_level,
    check_budget,
    compute_family_size,
    compute_min_detectable_shift,
    compute_min_detectable_tv,
)
from .tests import (
    FloatArray,
    TestResult,
    acceptance_hazard,
    conditional_fit,
    finite_or_none,
    goodness_of_fit,
    homogeneity,
    pit_ks,
    pit_uniformity,
    pool_small,
    surprise_martingale,
)

__all__ = ["ENUMERATION_LIMIT", "is_enumerable"]  # re-exported from counts.py (older imports)
REFERENCE_OFFSET = 1 << 40  # AR reference samples use sample indices from here (disjoint noise)


@dataclass(frozen=True)
class ReferenceLaw:
    """What the token tables are compared with: exact marginals, or AR sample counts."""

    position: FloatArray | None  # [L, Bp] exact per-cell law (bucketed)
    pairs: FloatArray | None  # [P, Bq, Bq] exact pair laws
    samples: CountTables | None  # AR reference counts (two-sample mode)
    sequences: FloatArray | None = None  # [V^L] the exact AR law of whole sequences (rank `sequence_index`)

    @property
    def mode(self) -> str:
        return "exact" if self.samples is None else "two-sample"


def compute_exact_marginals(problem: Problem, tables: CountTables) -> ReferenceLaw:
    """Per-cell and adjacent-pair laws of AR sampling, from the exact law by enumeration."""
    vocab = problem.model.vocab_size
    bp, bq = tables.position.shape[1], tables.pairs.shape[1]
    position = np.zeros(tables.position.shape)
    pairs = np.zeros(tables.pairs.shape)
    sequences = np.zeros(vocab**problem.layout.num_cells)
    pair_cells = adjacent_pairs(problem)
    for sequence, weight in exact_ar_law(problem).items():
        sequences[sequence_index(sequence, vocab)] += weight
        for cell, token in enumerate(sequence):
            position[cell, bucket_of(token, vocab, bp)] += weight
        for i, (a, b) in enumerate(pair_cells):
            pairs[i, bucket_of(sequence[a], vocab, bq), bucket_of(sequence[b], vocab, bq)] += weight
    return ReferenceLaw(position, pairs, None, sequences)


def reference_sampler(problem: Problem) -> Strategy:
    """The AR sampler of the two-sample reference: the reference AutoRegressive, or, where the
    model answers batched causal queries (spec/model.md), its accelerated twin, which draws the
    same tokens on the same keyed noise (tests/test_accelerated_equivalence.py), a batch per call."""
    return accelerated_ar() if causal_batch_model(problem.model, problem.layout) is not None else AutoRegressive()


def reference_law(
    problem: Problem, tables: CountTables, budget: int, seed: int, progress: Callable[[int], None] | None
) -> ReferenceLaw:
    if is_enumerable(problem):
        return compute_exact_marginals(problem, tables)
    indices = range(REFERENCE_OFFSET, REFERENCE_OFFSET + budget)
    reference = count_samples(reference_sampler(problem), problem, indices, seed, False, progress)
    return ReferenceLaw(None, None, reference)


@dataclass(frozen=True)
class Look:
    """One interim verdict of a sequential check: after `samples` samples, the family judged
    at false-fail probability `alpha` (this look's share of the check's alpha)."""

    samples: int
    alpha: float
    seconds: float  # since the check started
    passed: bool
    smallest_p: float
    worst_test: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StatisticalVerdict:
    strategy: str
    model: str
    passed: bool
    tests: list[TestResult]
    budget: int
    alpha: float
    power: float  # smallest per-position TV detected with probability >= 0.99
    power_pair: float  # the same for an adjacent-pair joint law
    power_surprise: float  # smallest surprise shift (nats / token) detected w.p. >= 0.99
    reference: str  # "exact" marginals or "two-sample" against AR
    seconds: float
    engine: str = "stat"
    counts: CountTables | None = field(default=None, repr=False)
    power_sequence: float | None = None  # smallest TV of the WHOLE law detected w.p. >= 0.99 (exact mode)
    looks: tuple[Look, ...] = ()  # sequential checks: every interim verdict, in order

    def failed_tests(self) -> list[TestResult]:
        return [t for t in self.tests if not t.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "model": self.model,
            "engine": self.engine,
            "total_variation": None,
            "lossless": self.passed,
            "passed": self.passed,
            "budget": self.budget,
            "alpha": self.alpha,
            "power": self.power,
            "power_pair": self.power_pair,
            "power_surprise": self.power_surprise,
            "power_sequence": self.power_sequence,
            "reference": self.reference,
            "samples": self.budget,
            "looks": [look.to_json() for look in self.looks],
            "seconds": self.seconds,
            "p_values": {t.name: t.p_value for t in self.tests},
            "effect_sizes": {t.name: finite_or_none(t.effect_size) for t in self.tests},
            "tests": [t.to_json() for t in self.tests],
        }


def token_tests(problem: Problem, tables: CountTables, law: ReferenceLaw, alpha: float) -> list[TestResult]:
    results = []
    pairs = adjacent_pairs(problem)
    for cell in range(problem.layout.num_cells):
        name = f"position[{cell}]"
        if law.samples is None:
            assert law.position is not None
            results.append(goodness_of_fit(name, tables.position[cell], law.position[cell], alpha))
        else:
            results.append(homogeneity(name, tables.position[cell], law.samples.position[cell], alpha))
    for i, (a, b) in enumerate(pairs):
        name = f"pair[{a},{b}]"
        if law.samples is None:
            assert law.pairs is not None
            results.append(goodness_of_fit(name, tables.pairs[i].ravel(), law.pairs[i].ravel(), alpha))
        else:
            results.append(homogeneity(name, tables.pairs[i], law.samples.pairs[i], alpha))
    if has_sequence_law(tables, law):
        results += sequence_tests(problem, tables, law, alpha)
    return results


def has_sequence_law(tables: CountTables, law: ReferenceLaw) -> bool:
    return law.sequences is not None and tables.sequences.size == law.sequences.size > 0


def compute_conditionals(joint: FloatArray, vocab: int) -> FloatArray:
    """[G, V] joint law of (prefix, token) -> the token's law given each prefix (0 rows stay 0)."""
    mass = joint.sum(axis=1, keepdims=True)
    conditional: FloatArray = np.divide(joint, mass, out=np.zeros_like(joint), where=mass > 0)
    return conditional


def prefix_table(flat: npt.NDArray[Any], cell: int, vocab: int, cells: int) -> npt.NDArray[Any]:
    """A [V^L] table over sequences -> [V^cell, V] over (x_<cell, x_cell), later cells summed."""
    table: npt.NDArray[Any] = flat.reshape(vocab ** (cell + 1), vocab ** (cells - cell - 1)).sum(axis=1)
    return table.reshape(-1, vocab)


def sequence_tests(problem: Problem, tables: CountTables, law: ReferenceLaw, alpha: float) -> list[TestResult]:
    """One-sample tests against the exact AR law: whole sequences, and the chain of conditionals
    (cell 0's conditional is position[0]'s law, so the chain starts at cell 1)."""
    assert law.sequences is not None
    vocab, cells = problem.model.vocab_size, problem.layout.num_cells
    results = [goodness_of_fit("sequence", tables.sequences, law.sequences, alpha)]
    for cell in range(1, cells):
        observed = prefix_table(tables.sequences, cell, vocab, cells)
        conditionals = compute_conditionals(prefix_table(law.sequences, cell, vocab, cells), vocab)
        results.append(conditional_fit(f"conditional[{cell}]", observed, conditionals, alpha))
    return results


def calibration_tests(tables: CountTables, alpha: float) -> list[TestResult]:
    tests = [
        pit_uniformity("pit-chi2", tables.pit, alpha),
        pit_ks("pit-ks", tables.pit, alpha),
        surprise_martingale("surprise", tables.surprise, alpha),
    ]
    assert len(tests) == CALIBRATION_TESTS
    return tests


def verifier_tests(tables: CountTables, alpha: float) -> list[TestResult]:
    """Only the parts of the verifier law the samples exercised."""
    results = []
    if tables.hazard[:, 0].sum():
        results.append(acceptance_hazard("accept-hazard", tables.hazard, alpha))
    if tables.residual_pit.sum():
        results.append(pit_uniformity("residual-pit", tables.residual_pit, alpha))
    if tables.bonus_pit.sum():
        results.append(pit_uniformity("bonus-pit", tables.bonus_pit, alpha))
    if tables.draft_pit.sum():
        results.append(pit_uniformity("draft-pit", tables.draft_pit, alpha))
    assert len(results) <= VERIFIER_TESTS
    return results


def support_test(tables: CountTables) -> TestResult:
    """Tokens the AR conditional gives probability 0 cannot occur: one is a certain failure."""
    impossible = int(tables.surprise[1])
    tokens = max(int(tables.surprise[0]), 1)
    return TestResult("support", float(impossible), 0.0 if impossible else 1.0, 0.0, impossible / tokens)


def family_size(problem: Problem, tables: CountTables, sequence: int = 0) -> int:
    verifier = int(bool(tables.hazard[:, 0].sum())) + int(bool(tables.residual_pit.sum()))
    verifier += int(bool(tables.bonus_pit.sum())) + int(bool(tables.draft_pit.sum()))
    return compute_family_size(problem.layout, verifier, sequence)


def sequence_family(problem: Problem, tables: CountTables, law: ReferenceLaw) -> int:
    """`sequence` and `conditional[1..L-1]`, when the whole-sequence law is tested."""
    return problem.layout.num_cells if has_sequence_law(tables, law) else 0


def judge(
    strategy_name: str,
    model_name: str,
    problem: Problem,
    tables: CountTables,
    law: ReferenceLaw,
    alpha: float,
    seconds: float = 0.0,
) -> StatisticalVerdict:
    """The verdict from count tables (also used after merging sharded tables)."""
    family = family_size(problem, tables, sequence_family(problem, tables, law))
    each = bonferroni_level(alpha, family)
    tests = [support_test(tables)]
    tests += token_tests(problem, tables, law, each)
    tests += calibration_tests(tables, each)
    tests += verifier_tests(tables, each)
    assert len(tests) == family + 1
    budget = tables.num_samples
    reference_budget = None if law.samples is None else law.samples.num_samples
    tokens = int(tables.surprise[0])
    mean_variance = from_fixed(tables.surprise[3]) / max(tokens, 1)
    return StatisticalVerdict(
        strategy=strategy_name,
        model=model_name,
        passed=all(t.passed for t in tests),
        tests=tests,
        budget=budget,
        alpha=alpha,
        power=compute_min_detectable_tv(budget, alpha, tables.position.shape[1], family, reference_budget),
        power_pair=compute_min_detectable_tv(budget, alpha, tables.pairs.shape[1] ** 2, family, reference_budget),
        power_surprise=compute_min_detectable_shift(tokens, alpha, mean_variance, family),
        reference=law.mode,
        seconds=seconds,
        counts=tables,
        power_sequence=sequence_power(tables, law, budget, alpha, family),
    )


def sequence_power(tables: CountTables, law: ReferenceLaw, budget: int, alpha: float, family: int) -> float | None:
    """Smallest TV of the whole sequence law that the `sequence` test detects w.p. >= 0.99, worst
    case over the departure's direction. The test pools the sequences expected < 10 times into
    one category; a departure inside that pool is unseen, but it moves at most P(pool) of TV
    (TV <= TV of the pooled laws + P(pool)), so the bound is the pooled one plus P(pool)."""
    if not has_sequence_law(tables, law) or budget < 1:
        return None
    assert law.sequences is not None
    support = law.sequences[law.sequences > 0]
    pooled, _ = pool_small(budget * support)
    pool_mass = float(pooled[-1]) / budget if pooled.size < support.size else 0.0  # the pool is the last category
    if pooled.size < 2:
        return min(1.0, pool_mass) if pool_mass > 0 else 1.0
    bound = compute_min_detectable_tv(budget, alpha, pooled.size, family) + pool_mass
    return min(1.0, bound)


def statistical_check(
    strategy: Strategy,
    problem: Problem,
    budget: int,
    alpha: float = 1e-6,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    model_name: str = "custom",
) -> StatisticalVerdict:
    """Decode `budget` samples (noise KeyedRandomness(seed, sample=i)) and test their law
    against AR sampling. Fails a lossless strategy with probability <= alpha.
    `progress(done, total)` is called after every sample (reference samples included)."""
    check_budget(budget, alpha)
    started = time.perf_counter()
    total = budget if is_enumerable(problem) else 2 * budget

    def report(offset: int) -> Callable[[int], None] | None:
        if progress is None:
            return None
        callback = progress
        return lambda done: callback(offset + done, total)

    tables = count_samples(strategy, problem, range(budget), seed, True, report(0))
    law = reference_law(problem, tables, budget, seed, report(budget))
    name = getattr(strategy, "name", type(strategy).__name__)
    return judge(name, model_name, problem, tables, law, alpha, time.perf_counter() - started)
