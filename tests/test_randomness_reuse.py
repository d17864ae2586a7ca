"""Randomness that is read twice: the exact engine enumerates the program that runs
(spec/randomness.md, "Reading a key twice").

False-fail probabilities: exact checks are deterministic. `test_the_interval_exact_law_is_the_law_
keyed_randomness_samples` runs a chi-square test at ALPHA = 1e-6 per example over at most
MAX_EXAMPLES = 12 examples (family false-fail <= 1.2e-5); its negative control (the old
every-read-independent law, on a program where the reuse matters) must be rejected at the same
ALPHA. The Gumbel joint law is checked against Monte Carlo at ALPHA = 1e-6 with the same kind of
control.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from scipy import stats

from jacobi_oracle.mutants.catalogue import PRESET_SETTINGS, get_mutant, mutant_problem
from jacobi_oracle.oracle.exact import (
    BranchingRandomness,
    NoiseReuseError,
    check_exact,
    enumerate_outcomes,
    exact_ar_law,
    exact_output_law,
    gumbel_joint_probability,
)
from jacobi_oracle.reference.presets import PRESETS, build_preset, sjd
from jacobi_oracle.reference.state import Draft, JacobiState
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.randomness import EventKey, KeyedRandomness, Randomness
from jacobi_oracle.spec.sampling import Sampling

from .strategies import Read, reuse_programs

ALPHA = 1e-6
MAX_EXAMPLES = 12
SAMPLES = 3000

Law = dict[tuple[int, ...], float]


def chi_square_p(counts: Counter[tuple[int, ...]], law: Law, samples: int) -> float:
    """Goodness of fit of the counts to `law` (outcomes outside the law's support: p = 0)."""
    if any(outcome not in law for outcome in counts):
        return 0.0
    support = sorted(law)
    observed = [counts.get(x, 0) for x in support]
    expected = [law[x] * samples for x in support]
    if len(support) == 1:
        return 1.0
    return float(stats.chisquare(observed, expected).pvalue)


# --- small random programs that reuse keys ------------------------------------------------------


def run_program(program: tuple[Read, ...], randomness: Randomness) -> tuple[int, ...]:
    """Each read's law depends on the previous outcome (a rotation of its weights), so the
    reads interact through both the keys and the values."""
    outcomes: list[int] = []
    for read in program:
        shift = outcomes[-1] if outcomes else 0
        key = EventKey(read.kind if read.kind == "gumbel" else "u", 0, read.key)
        if read.kind == "bernoulli":
            p = read.weights[shift % len(read.weights)]
            outcomes.append(int(randomness.bernoulli(p, key)))
            continue
        w = torch.tensor(read.weights, dtype=torch.float64).roll(shift)
        probs = w / w.sum()
        draw = randomness.gumbel_argmax if read.kind == "gumbel" else randomness.categorical
        outcomes.append(draw(probs, key))
    return tuple(outcomes)


def exact_program_law(program: tuple[Read, ...]) -> Law:
    law: Law = {}
    for prob, outcome in enumerate_outcomes(lambda r: run_program(program, r)):
        law[outcome] = law.get(outcome, 0.0) + prob
    return law


def sampled(program: tuple[Read, ...], seed: int) -> Counter[tuple[int, ...]]:
    return Counter(run_program(program, KeyedRandomness(seed, s)) for s in range(SAMPLES))


@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reuse_programs(), st.integers(0, 2**20))
def test_the_interval_exact_law_is_the_law_keyed_randomness_samples(program: tuple[Read, ...], seed: int) -> None:
    try:
        law = exact_program_law(program)
    except NoiseReuseError:
        assume(False)  # a third distinct Gumbel argmax: refused by design, tested below
        return
    assert abs(sum(law.values()) - 1.0) < 1e-12
    assert chi_square_p(sampled(program, seed), law, SAMPLES) > ALPHA


def independent_law(program: tuple[Read, ...]) -> Law:
    """The old enumerator's law: every read a fresh draw (keys renamed apart)."""
    renamed = tuple(Read(r.kind, 100 + i, r.weights) for i, r in enumerate(program))
    return exact_program_law(renamed)


def test_negative_control_the_every_read_independent_law_is_rejected() -> None:
    program: tuple[Read, ...] = (Read("bernoulli", 0, (0.5, 0.5)), Read("categorical", 0, (1.0, 1.0, 1.0)))
    program += (Read("gumbel", 1, (1.0, 2.0, 3.0)), Read("gumbel", 1, (3.0, 1.0, 2.0)))
    counts = sampled(program, 11)
    assert chi_square_p(counts, exact_program_law(program), SAMPLES) > ALPHA
    assert chi_square_p(counts, independent_law(program), SAMPLES) < ALPHA


def test_a_second_read_of_the_same_uniform_is_the_same_decision() -> None:
    program = (Read("bernoulli", 0, (0.3, 0.3)), Read("bernoulli", 0, (0.3, 0.3)))
    law = exact_program_law(program)
    assert law == pytest.approx({(1, 1): 0.3, (0, 0): 0.7}, abs=1e-15)


# --- the Gumbel argmax read twice ----------------------------------------------------------------


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(
    st.lists(st.floats(0.05, 1.0), min_size=4, max_size=4),
    st.lists(st.floats(0.05, 1.0), min_size=4, max_size=4),
    st.integers(0, 2**20),
)
def test_gumbel_joint_law_of_two_reads_matches_monte_carlo(a: list[float], b: list[float], seed: int) -> None:
    p = torch.tensor(a, dtype=torch.float64) / sum(a)
    q = torch.tensor(b, dtype=torch.float64) / sum(b)
    law: Law = {}
    for i in range(4):
        for j in range(4):
            joint = gumbel_joint_probability(((tuple(p.tolist()), i), (tuple(q.tolist()), j)))
            assert joint is not None and joint >= -1e-15
            law[(i, j)] = joint
    assert sum(law.values()) == pytest.approx(1.0, abs=1e-12)
    for i in range(4):  # the marginals are the two laws
        assert sum(law[(i, j)] for j in range(4)) == pytest.approx(float(p[i]), abs=1e-12)
        assert sum(law[(j, i)] for j in range(4)) == pytest.approx(float(q[i]), abs=1e-12)
    key = EventKey("gumbel", 0, 0)
    counts: Counter[tuple[int, ...]] = Counter()
    for s in range(SAMPLES):
        r = KeyedRandomness(seed, s)
        counts[(r.gumbel_argmax(p, key), r.gumbel_argmax(q, key))] += 1
    law = {x: w for x, w in law.items() if w > 0}
    assert chi_square_p(counts, law, SAMPLES) > ALPHA


def test_a_third_distinct_gumbel_argmax_is_a_typed_error_naming_the_key() -> None:
    key = EventKey("gumbel", 4, 2)

    def three_reads(r: BranchingRandomness) -> tuple[int, ...]:
        laws = ([0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6])
        return tuple(r.gumbel_argmax(torch.tensor(w, dtype=torch.float64), key) for w in laws)

    with pytest.raises(NoiseReuseError, match=r"gumbel', iteration=4, cell=2"):
        list(enumerate_outcomes(three_reads))


def test_reading_the_same_law_again_gives_the_same_argmax() -> None:
    key = EventKey("gumbel", 0, 0)
    probs = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    law: Law = {}
    for prob, out in enumerate_outcomes(lambda r: (r.gumbel_argmax(probs, key), r.gumbel_argmax(probs, key))):
        law[out] = law.get(out, 0.0) + prob
    assert law == pytest.approx({(0, 0): 0.2, (1, 1): 0.3, (2, 2): 0.5}, abs=1e-15)


# --- decoders ------------------------------------------------------------------------------------


def test_the_key_reuse_mutant_is_rejected_and_its_reused_keys_named() -> None:
    mutant = get_mutant("accept-reads-draft-key")
    verdict = check_exact(mutant.build(), mutant.problem())
    assert not verdict.lossless and verdict.total_variation > 0.01
    assert any(key.startswith("u:fresh/") for key in verdict.reused_keys)


@dataclass(frozen=True)
class _CellKeyedRefresh:
    """SJD's refresh with a key naming the cell but not the pass: every redraw of a cell reads
    the same uniform. Reuse, but harmless: a refreshed cell's earlier drafts were never tested
    and, under the causal mask, nothing committed depends on them."""

    def refresh(
        self, problem: Problem, state: JacobiState, cell: int, target_probs: torch.Tensor, randomness: Randomness
    ) -> Draft | None:
        token = randomness.categorical(target_probs, EventKey("fresh", 0, cell))
        return Draft(token, target_probs, last_target=target_probs)


def test_harmless_reuse_is_reported_and_judged_exactly() -> None:
    strategy = replace(sjd(3), name="sjd-cell-keyed-refresh", refresher=_CellKeyedRefresh())
    verdict = check_exact(strategy, mutant_problem(PRESET_SETTINGS[-1]))
    assert verdict.reused_keys and verdict.lossless, (verdict.reused_keys, verdict.total_variation)


LOSSLESS = [name for name, p in PRESETS.items() if p.lossless and not p.greedy_only and not p.reuses_noise]


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_presets_read_no_key_twice_and_keep_the_ar_law(name: str) -> None:
    problem = mutant_problem()
    result = exact_output_law(build_preset(name), problem)
    assert result.reused_keys == ()
    reference = exact_ar_law(problem)
    assert set(result.law) <= set(reference)
    assert max(abs(result.law.get(x, 0.0) - w) for x, w in reference.items()) <= 1e-15


@pytest.mark.parametrize("sampling", PRESET_SETTINGS[:3], ids=str)
def test_scd_gumbel_reuses_its_cells_noise_and_is_exactly_lossless(sampling: Sampling) -> None:
    """SCD's Gumbel coupling reads G(cell) again at every redraft: judged by the joint law of
    the argmaxes (at most two distinct on this case), not as independent draws."""
    assert PRESETS["scd-gumbel"].reuses_noise
    verdict = check_exact(build_preset("scd-gumbel"), mutant_problem(sampling))
    assert verdict.lossless, verdict.total_variation
    assert verdict.reused_keys and all(key.startswith("g:gumbel/") for key in verdict.reused_keys)
