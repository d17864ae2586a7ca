"""SCD / MC-SJD maximal coupling (spec/coupling.md, proofs/coupling.md): the coupled draft's law
is exactly p, it is kept with probability 1 - TV(p, q_old); mc-sjd has the AR law on every
mutant setting; mc-sjd-official (a kept draft keeps its old q) does not (the counterexample)."""

from __future__ import annotations

import json

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from jacobi_oracle.cli import main
from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.mutants.catalogue import PRESET_SETTINGS, mutant_problem
from jacobi_oracle.oracle.exact import LOSSLESS_TOLERANCE, check_exact, enumerate_outcomes
from jacobi_oracle.reference.drafters import MaximalCouplingRefresher, point_mass
from jacobi_oracle.reference.presets import PRESETS, build_preset
from jacobi_oracle.reference.state import Draft, JacobiState
from jacobi_oracle.spec import Layout, Problem, Sampling
from jacobi_oracle.spec.randomness import EventKey, Randomness

from .strategies import distributions

VOCAB = 4
PROBLEM = Problem(HashModel(vocab_size=VOCAB, num_positions=6, row_stride=3), 0, Layout(2, 3), Sampling())
LAW_TOLERANCE = 1e-12
LOSSY_TV_FLOOR = 1e-6
CELL = 1


def state_with_draft(draft: Draft | None) -> JacobiState:
    return JacobiState.empty(PROBLEM.layout.num_cells).with_drafts({CELL: draft})


def coupled_outcomes(
    q_old: torch.Tensor, target: torch.Tensor, official: bool = False, old_token: int | None = None
) -> list[tuple[float, int, int, torch.Tensor]]:
    """Every outcome (probability, old token, new token, recorded q) of one refresh, the old
    draft drawn from q_old (or fixed to `old_token`)."""
    refresher = MaximalCouplingRefresher(official)

    def run(randomness: Randomness) -> tuple[int, int, torch.Tensor]:
        old = old_token if old_token is not None else randomness.categorical(q_old, EventKey("init", 0, CELL))
        new = refresher.refresh(PROBLEM, state_with_draft(Draft(old, q_old)), CELL, target, randomness)
        assert new is not None
        return old, new.token, new.draft_probs

    return [(prob, old, new, q) for prob, (old, new, q) in enumerate_outcomes(run)]


def token_law(outcomes: list[tuple[float, int, int, torch.Tensor]]) -> torch.Tensor:
    law = torch.zeros(VOCAB, dtype=torch.float64)
    for prob, _, new, _ in outcomes:
        law[new] += prob
    return law


@settings(max_examples=80, deadline=None)
@given(distributions(VOCAB, allow_zeros=False), distributions(VOCAB))
def test_the_coupled_draft_has_law_p_and_records_q_equals_p(q_old: torch.Tensor, target: torch.Tensor) -> None:
    outcomes = coupled_outcomes(q_old, target)
    law = token_law(outcomes)
    assert torch.allclose(law, target, atol=LAW_TOLERANCE, rtol=0), (law, target)
    for _, _, _, recorded in outcomes:
        assert torch.equal(recorded, target)
    kept = sum(prob for prob, old, new, _ in outcomes if old == new)
    total_variation = 0.5 * float((target - q_old).abs().sum())
    assert kept == pytest.approx(1.0 - total_variation, abs=LAW_TOLERANCE)  # the maximal coupling


@settings(max_examples=40, deadline=None)
@given(distributions(VOCAB), st.integers(0, VOCAB - 1))
def test_a_point_mass_draft_couples_to_p_for_every_value(target: torch.Tensor, token: int) -> None:
    """SJD's one-hot initial drafts: q_old = delta_x, the coupling's law is p whatever x is."""
    outcomes = coupled_outcomes(point_mass(token, VOCAB), target, old_token=token)
    assert torch.allclose(token_law(outcomes), target, atol=LAW_TOLERANCE, rtol=0)


@settings(max_examples=40, deadline=None)
@given(distributions(VOCAB, allow_zeros=False), distributions(VOCAB))
def test_official_rule_keeps_the_old_q_on_a_kept_draft(q_old: torch.Tensor, target: torch.Tensor) -> None:
    """Same tokens as mc-sjd (same law p), only the recorded q differs: old q when kept."""
    outcomes = coupled_outcomes(q_old, target, official=True)
    assert torch.allclose(token_law(outcomes), target, atol=LAW_TOLERANCE, rtol=0)
    for _, old, new, recorded in outcomes:  # a redraw never returns the old token (its residual mass is 0)
        assert torch.equal(recorded, q_old if old == new else target)


def test_official_recorded_q_is_not_the_draft_law_given_what_it_reveals() -> None:
    """Negative control: a one-hot old draft on V=2, redrawn, is the other token for sure,
    yet it is recorded with q = p: its q reveals the branch, and given it, q is wrong."""
    target = torch.tensor([0.3, 0.7], dtype=torch.float64)
    old_q = point_mass(0, 2)
    refresher = MaximalCouplingRefresher(official=True)
    state = JacobiState.empty(PROBLEM.layout.num_cells).with_drafts({CELL: Draft(0, old_q)})
    redrawn = [
        (prob, draft)
        for prob, draft in enumerate_outcomes(lambda r: refresher.refresh(PROBLEM, state, CELL, target, r))
        if draft is not None and draft.token != 0
    ]
    assert len(redrawn) == 1
    prob, draft = redrawn[0]
    assert prob == pytest.approx(0.7) and torch.equal(draft.draft_probs, target)  # law given the branch: delta_1


def test_a_cell_without_an_old_draft_gets_the_fresh_sample() -> None:
    target = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    refresher = MaximalCouplingRefresher()
    outcomes = list(enumerate_outcomes(lambda r: refresher.refresh(PROBLEM, state_with_draft(None), CELL, target, r)))
    law = torch.zeros(VOCAB, dtype=torch.float64)
    for prob, draft in outcomes:
        assert draft is not None and torch.equal(draft.draft_probs, target)
        law[draft.token] += prob
    assert torch.allclose(law, target, atol=LAW_TOLERANCE, rtol=0)


@pytest.mark.parametrize("sampling", PRESET_SETTINGS, ids=lambda s: repr(s))
def test_mc_sjd_has_exactly_the_ar_law_on_every_mutant_setting(sampling: Sampling) -> None:
    assert PRESETS["mc-sjd"].lossless
    verdict = check_exact(build_preset("mc-sjd", window=3), mutant_problem(sampling))
    assert verdict.total_variation <= LOSSLESS_TOLERANCE, verdict
    assert verdict.reused_keys == ()


def counterexample_problem() -> Problem:
    """The smallest case found (proofs/coupling.md): 1x3 grid, V=2, sharpness 1, window 3."""
    return Problem(HashModel(vocab_size=2, num_positions=3, row_stride=3, sharpness=1.0), 0, Layout(1, 3), Sampling())


def test_mc_sjd_official_is_lossy_on_the_smallest_counterexample() -> None:
    assert not PRESETS["mc-sjd-official"].lossless  # the oracle's verdict; the paper claims lossless
    problem = counterexample_problem()
    official = check_exact(build_preset("mc-sjd-official", window=3), problem)
    assert official.total_variation > LOSSY_TV_FLOOR, official
    assert official.total_variation == pytest.approx(6.881e-3, rel=1e-3)
    control = check_exact(build_preset("mc-sjd", window=3), problem)
    assert control.total_variation <= LOSSLESS_TOLERANCE, control


def test_window_two_never_couples() -> None:
    """With one draft and a bonus cell nothing is left to couple: both variants are lossless."""
    verdict = check_exact(build_preset("mc-sjd-official", window=2), counterexample_problem())
    assert verdict.total_variation <= LOSSLESS_TOLERANCE


@pytest.mark.parametrize(("name", "lossless"), [("mc-sjd", True), ("mc-sjd-official", False)])
def test_check_cli_gives_the_verdict(capsys: pytest.CaptureFixture[str], name: str, lossless: bool) -> None:
    code = main(["check", "--strategy", name, "--model", "hash-tiny", "--exact", "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["lossless"] is lossless and code == (0 if lossless else 1)
    if not lossless:
        assert verdict["total_variation"] > LOSSY_TV_FLOOR


def test_strategies_and_audit_include_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies", "--json"]) == 0
    listed = {row["strategy"] for row in json.loads(capsys.readouterr().out)}
    assert {"mc-sjd", "mc-sjd-official"} <= listed
    code = main(["audit", "--model", "hash-tiny", "--json", "--runs", "2", "--presets", "mc-sjd,mc-sjd-official"])
    out = json.loads(capsys.readouterr().out)
    rows = {row["strategy"]: row for row in out["presets"]}
    assert rows["mc-sjd"]["measured_lossless"] is True
    assert rows["mc-sjd-official"]["measured_lossless"] is False
    assert code == 0  # no claim is violated: mc-sjd-official is registered lossy
