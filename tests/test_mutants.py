"""The mutant catalogue: every broken decoder is caught by the exact engine on a tiny case, a
sample of them by the statistical engine, and the lossless presets pass on the same settings.

False-fail probabilities: the exact engine's verdicts are deterministic (total variation above
1e-12 or not); every statistical check here runs at ALPHA = 1e-6.
"""

from __future__ import annotations

import json

import pytest

from jacobi_oracle.cli import main
from jacobi_oracle.mutants import MUTANTS, PRESET_SETTINGS, get_mutant, mutant_problem
from jacobi_oracle.mutants.runner import judge_strategy
from jacobi_oracle.oracle.exact import check_exact
from jacobi_oracle.oracle.statistical import statistical_check
from jacobi_oracle.reference.composed import ComposedStrategy
from jacobi_oracle.reference.presets import sjd
from jacobi_oracle.spec.errors import InvalidParameterError

ALPHA = 1e-6  # false-fail probability of each statistical check
STAT_BUDGET = 300  # samples per statistical check (V=3, 2x2 case)
NEEDS_THREE_TOKENS = {"residual-reprocessed"}  # with V=2 a residual is a point mass: nothing to re-temper


def small_vocab(name: str) -> int:
    """V=2 (16 sequences) keeps exact checks to about a second, unless the bug needs V=3."""
    return 3 if name in NEEDS_THREE_TOKENS else 2


def test_catalogue_has_at_least_twelve_mutants_each_naming_its_bug_class() -> None:
    assert len(MUTANTS) >= 12
    for mutant in MUTANTS.values():
        assert mutant.bug_class.startswith("Bug class:"), (mutant.name, mutant.bug_class)


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_mutant_swaps_exactly_one_part_of_sjd(name: str) -> None:
    built, reference = MUTANTS[name].build(), sjd(3)
    assert isinstance(built, ComposedStrategy)
    parts = ("schedule", "initial_drafter", "verifier", "refresher", "mask")
    changed = [p for p in parts if type(getattr(built, p)) is not type(getattr(reference, p))]
    assert len(changed) == 1, changed


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_mutant_is_caught_by_the_exact_engine(name: str) -> None:
    mutant = MUTANTS[name]
    verdict = check_exact(mutant.build(), mutant.problem(vocab_size=small_vocab(name)))
    assert not verdict.lossless, f"{name}: total variation {verdict.total_variation}"


def test_sjd_passes_the_exact_engine_on_every_mutant_setting() -> None:
    for sampling in PRESET_SETTINGS:
        verdict = check_exact(sjd(3), mutant_problem(sampling, vocab_size=2))
        assert verdict.lossless, (sampling, verdict.total_variation)


@pytest.mark.parametrize("name", ["always-accept", "off-by-one", "residual-wrong-sign"])
def test_a_sample_of_mutants_is_caught_by_the_stat_engine(name: str) -> None:
    mutant = get_mutant(name)
    verdict = statistical_check(mutant.build(), mutant.problem(), STAT_BUDGET, ALPHA, seed=7)
    assert not verdict.passed, [(t.name, t.p_value) for t in verdict.tests]


def test_a_judged_preset_passes_and_reports_its_power() -> None:
    judgement = judge_strategy("sjd", "preset", sjd(3), mutant_problem(), "stat", STAT_BUDGET, ALPHA, seed=7)
    assert judgement.ok and judgement.power is not None and 0 < judgement.power < 1


def test_mutants_cli_reports_caught_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["mutants", "--only", "always-accept", "off-by-one", "--presets", "sjd", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["caught"] == 2 and report["ok"]
    assert all(r["caught"] for r in report["results"] if r["kind"] == "mutant")


def test_unknown_mutant_is_a_usage_error() -> None:
    with pytest.raises(InvalidParameterError, match="no-such-bug"):
        get_mutant("no-such-bug")
    assert main(["mutants", "--only", "no-such-bug"]) == 2


def test_mutants_cli_stat_engine_with_a_time_budget_stops_at_the_first_rejecting_look(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Sequential stat checks at alpha 1e-6 (each run's false-fail probability): always-accept
    (exact TV 0.66) is rejected at the first look (250 samples); sjd must pass its 3 s budget."""
    argv = ["mutants", "--engine", "stat", "--seconds", "3", "--only", "always-accept", "--presets", "sjd"]
    code = main([*argv, "--case", "3x2x2", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"] and report["seconds"] == 3 and report["case"] == [3, 2, 2]
    mutant, preset = report["results"]
    assert mutant["caught"] and mutant["samples"] == 250
    assert preset["passed"] and preset["samples"] >= 250


def test_mutants_cli_refuses_a_malformed_case() -> None:
    with pytest.raises(SystemExit):
        main(["mutants", "--case", "3x2"])
