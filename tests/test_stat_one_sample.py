"""One-sample tests against the exact AR law (the `sequence` and `conditional[t]` sub-tests), the
memoised toy sampling and the forked workers behind them.

False-fail probabilities: every check of a decoder here runs at ALPHA = 1e-6; every Monte Carlo
assertion on synthetic counts states its own bound next to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacobi_oracle.accelerated import WINDOW_DECODERS, build_accelerated
from jacobi_oracle.accelerated.noise import sample_streams
from jacobi_oracle.mutants import get_mutant, mutant_problem
from jacobi_oracle.oracle.statistical import count_samples, statistical_check
from jacobi_oracle.oracle.statistical.check import compute_conditionals, compute_exact_marginals, prefix_table
from jacobi_oracle.oracle.statistical.counts import (
    ACCEPTED,
    BONUS,
    NONE,
    REJECTED,
    Calibration,
    CountTables,
    VerifierRecord,
    compute_calibration,
    decode_sample,
    is_speculative,
    memoised,
    record_calibration,
    record_verified,
    sequence_index,
    to_fixed,
)
from jacobi_oracle.oracle.statistical.planted import compute_sequence, compute_tilt, plant
from jacobi_oracle.oracle.statistical.sampler import sampler
from jacobi_oracle.oracle.statistical.tests import conditional_fit
from jacobi_oracle.reference.presets import ar, build_preset, gumbel_jacobi, sjd
from jacobi_oracle.spec.randomness import KeyedRandomness, Randomness

ALPHA = 1e-6


def exact_sequence_law(problem: object) -> np.ndarray:
    law = compute_exact_marginals(problem, CountTables.empty(problem)).sequences  # type: ignore[arg-type]
    assert law is not None
    return law


def test_sequence_index_and_compute_sequence_are_inverse() -> None:
    for index in range(81):
        tokens = compute_sequence(index, 3, 4)
        assert sequence_index(tokens, 3) == index
    assert compute_sequence(sequence_index((2, 0, 1, 1), 3), 3, 4) == (2, 0, 1, 1)


def test_count_tables_count_every_whole_sequence() -> None:
    problem = mutant_problem()
    tables = count_samples(sjd(3), problem, range(40), seed=3, calibration=False)
    assert tables.sequences.shape == (81,)
    assert int(tables.sequences.sum()) == 40
    # the per-cell counts are the sequence counts' marginals
    marginal = tables.sequences.reshape(3, 3, 3, 3).sum(axis=(1, 2, 3))
    assert (marginal == tables.position[0]).all()


def test_memoised_model_decodes_the_same_tokens_and_calibration() -> None:
    problem = mutant_problem()
    cached = memoised(problem)
    strategy = get_mutant("stale-q-after-reuse").build()
    for i in range(30):
        plain = decode_sample(strategy, problem, KeyedRandomness(5, sample=i))
        assert decode_sample(strategy, cached, KeyedRandomness(5, sample=i)) == plain
    tokens = (0, 1, 2, 1)
    fresh, cache = CountTables.empty(problem), CountTables.empty(problem)
    memo: dict[tuple[int, ...], Calibration] = {}
    for _ in range(2):  # the second call reads the cache
        record_calibration(fresh, problem, tokens, KeyedRandomness(1))
        record_calibration(cache, problem, tokens, KeyedRandomness(1), memo)
    assert (fresh.pit == cache.pit).all() and (fresh.surprise == cache.surprise).all()
    assert memo[tokens] == compute_calibration(problem, tokens)


def test_forked_workers_give_the_single_process_tables_bit_for_bit() -> None:
    problem = mutant_problem()
    serial = count_samples(sjd(3), problem, range(300), seed=9)
    with sampler(sjd(3), problem, 9, True, workers=2) as parallel:
        forked = parallel.count(range(300))
    for name, array in serial.arrays().items():
        assert (array == forked.arrays()[name]).all(), name


def test_conditional_fit_holds_its_level_and_rejects_a_shifted_conditional() -> None:
    rng = np.random.default_rng(0)
    conditionals = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0]])
    sizes = np.array([300, 200, 50])

    def counts(law: np.ndarray) -> np.ndarray:
        return np.stack([rng.multinomial(n, row) for n, row in zip(sizes, law, strict=True)])

    rejected = sum(not conditional_fit("c", counts(conditionals), conditionals, 0.01).passed for _ in range(400))
    # under H0 the rejection rate at 0.01 is ~1%; P(>= 15 of 400 | rate 0.01) < 1e-3
    assert rejected < 15
    shifted = conditionals.copy()
    shifted[1] = [0.35, 0.2, 0.45]
    assert not conditional_fit("c", counts(shifted), conditionals, ALPHA).passed
    impossible = counts(conditionals)
    impossible[2, 1] += 1  # a token of conditional probability 0
    assert conditional_fit("c", impossible, conditionals, ALPHA).p_value == 0.0


def test_prefix_tables_give_the_ar_conditionals() -> None:
    problem = mutant_problem()
    law = exact_sequence_law(problem)
    conditional = compute_conditionals(prefix_table(law, 2, 3, 4), 3)
    assert conditional.shape == (9, 3)
    assert np.allclose(conditional.sum(axis=1), 1.0)
    first = compute_conditionals(prefix_table(law, 0, 3, 4), 3)[0]
    assert np.allclose(first, law.reshape(3, 27).sum(axis=1))


def test_lossless_sjd_passes_the_one_sample_tests() -> None:
    verdict = statistical_check(sjd(3), mutant_problem(), 1000, ALPHA, seed=21)
    names = {t.name for t in verdict.tests}
    assert {"sequence", "conditional[1]", "conditional[3]"} <= names
    assert verdict.passed, verdict.failed_tests()
    assert verdict.power_sequence is not None and 0.0 < verdict.power_sequence < 1.0


@pytest.mark.parametrize("tv", [0.15])
def test_a_planted_worst_case_departure_fails_the_sequence_test_negative_control(tv: float) -> None:
    """Tilt direction (chi2 ~ 4 TV^2): at 2000 samples lambda ~ 2000 * 4 * 0.15^2 = 180."""
    problem = mutant_problem()
    law = exact_sequence_law(problem)
    planted = plant(ar(), law, compute_tilt(law, seed=4), tv, 3, 4)
    verdict = statistical_check(planted, problem, 2000, ALPHA, seed=21)
    failed = {t.name for t in verdict.failed_tests()}
    assert "sequence" in failed or any(name.startswith("conditional") for name in failed), failed


def test_fixed_noise_decoders_are_judged_on_their_output_law_only() -> None:
    """gumbel-jacobi's verifier is not speculative sampling (its acceptance reuses the draft's
    noise): the verifier tests would false-fail it, so they are not run; its output still is."""
    problem = mutant_problem()
    verdict = statistical_check(gumbel_jacobi(3), problem, 1000, ALPHA, seed=2)
    names = {t.name for t in verdict.tests}
    assert not names & {"accept-hazard", "residual-pit", "bonus-pit", "draft-pit"}
    assert {"sequence", "surprise"} <= names
    assert verdict.passed, verdict.failed_tests()
    assert is_speculative(sjd(3)) and not is_speculative(gumbel_jacobi(3)) and not is_speculative(ar())


@pytest.mark.parametrize("name", ["sjd", "mc-sjd", "sjdpp-exact", "sjd-repeat-left"])
def test_an_accelerated_twin_is_counted_with_the_reference_tables_verifier_tables_included(name: str) -> None:
    """The accelerated twin, sampled BATCH at a time (sjd, mc-sjd, sjdpp-exact: window decoders
    whose passes are recorded through `pass_recorder`; sjd-repeat-left: prefix-cached, its
    reference strategy recorded), gives the reference's tables bit for bit, the verifier's own
    (acceptance hazard, residual, bonus and draft PIT) included: the same tests judge both."""
    problem = mutant_problem()
    reference = count_samples(build_preset(name, window=3), problem, range(300), seed=9)
    batched = count_samples(build_accelerated(name, window=3), problem, range(300), seed=9)
    for table, array in reference.arrays().items():
        assert np.array_equal(array, getattr(batched, table)), table
    assert reference.draft_pit.sum() > 0 and reference.residual_pit.sum() > 0 and reference.bonus_pit.sum() > 0


@pytest.mark.parametrize("name", sorted(WINDOW_DECODERS))
@pytest.mark.parametrize("window", [1, 3])
def test_every_window_twin_is_counted_with_the_reference_tables(name: str, window: int) -> None:
    """Each raster-window twin hands over exactly the passes its reference's verifier is recorded
    for (exact and greedy verification; SJD at window 1 through the AR step included; not AR,
    which verifies nothing, nor fixed noise): every table equals the reference's."""
    problem = mutant_problem()
    params = {} if name == "ar" else {"window": window}
    reference = count_samples(build_preset(name, **params), problem, range(100), seed=9)
    batched = count_samples(build_accelerated(name, **params), problem, range(100), seed=9)
    for table, array in reference.arrays().items():
        assert np.array_equal(array, getattr(batched, table)), table
    assert (reference.bonus_pit.sum() > 0) == is_speculative(build_preset(name, **params))


def test_a_planted_batch_is_the_planted_samples_one_by_one() -> None:
    problem = mutant_problem()
    law = exact_sequence_law(problem)
    noises: list[Randomness] = [KeyedRandomness(3, i) for i in range(200)]
    for base in (sjd(3), build_accelerated("sjd", window=3)):
        planted = plant(base, law, compute_tilt(law, seed=4), 0.1, 3, 4)  # weight ~0.4
        batch = planted.decode_batch(problem.model, [problem.condition] * 200, problem.layout, problem.sampling, noises)
        one = [planted.decode(problem.model, problem.condition, problem.layout, problem.sampling, r) for r in noises]
        assert [d.tokens for d in batch] == [d.tokens for d in one]
        assert 10 < sum(d.forward_passes == 0 for d in batch) < 190  # planted and base samples both occur


def test_an_accelerated_planted_departure_is_rejected_negative_control() -> None:
    problem = mutant_problem()
    law = exact_sequence_law(problem)
    planted = plant(build_accelerated("sjd", window=3), law, compute_tilt(law, seed=4), 0.15, 3, 4)
    verdict = statistical_check(planted, problem, 2000, ALPHA, seed=21)
    assert not verdict.passed
    lossless = statistical_check(build_accelerated("sjd", window=3), problem, 2000, ALPHA, seed=21)
    assert lossless.passed, lossless.failed_tests()


def test_the_verifier_recorder_counts_each_role_once() -> None:
    # two windows of one sample, by hand: drafts at depth 0 (stood) and 1 (rejected, its
    # correction committed), then a window whose one draft stood and whose bonus was committed
    empty = count_samples(sjd(3), mutant_problem(), range(0), seed=0)
    record = VerifierRecord(empty.hazard, empty.residual_pit, empty.bonus_pit, empty.draft_pit, KeyedRandomness(0))
    p = torch.tensor([[[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]]], dtype=torch.float64)
    q = torch.tensor([[[0.2, 0.6, 0.2], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]]], dtype=torch.float64)
    streams = sample_streams([KeyedRandomness(0)], torch.device("cpu"))
    cells, depth = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 2]])
    tokens = torch.tensor([[1, 0, 0]])
    record_verified(record, streams, 0, cells, torch.tensor([[ACCEPTED, REJECTED, NONE]]), depth, tokens, tokens, p, q)
    record_verified(record, streams, 1, cells, torch.tensor([[ACCEPTED, BONUS, NONE]]), depth, tokens, tokens, p, q)
    alpha = torch.minimum(p, q).sum(dim=-1)[0]
    assert record.hazard[0, 0] == 2 and record.hazard[0, 1] == 2  # depth 0: two drafts, both stood
    assert record.hazard[1, 0] == 1 and record.hazard[1, 1] == 0  # depth 1: one draft, rejected
    assert record.hazard[1, 2] == to_fixed(float(alpha[1])) and record.hazard[2, 0] == 0
    assert record.draft_pit.sum() == 3 and record.residual_pit.sum() == 1 and record.bonus_pit.sum() == 1
