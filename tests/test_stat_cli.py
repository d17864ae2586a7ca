"""`jacobi-oracle check --engine stat` is sequential: --seconds / --budget / --workers / --fixed.
Every check here runs at the CLI's default false-fail probability 1e-6."""

from __future__ import annotations

import json

import pytest

from jacobi_oracle.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_check_stat_with_a_time_budget_reports_samples_seconds_and_looks(capsys: pytest.CaptureFixture[str]) -> None:
    code, verdict = run(capsys, "check", "--strategy", "sjd", "--model", "hash-tiny", "--engine", "stat",
                        "--seconds", "3", "--json")  # fmt: skip
    assert code == 0 and verdict["passed"] is True
    looks = verdict["looks"]
    assert isinstance(looks, list) and looks and looks[-1]["samples"] == verdict["samples"]
    assert verdict["power_sequence"] is not None


def test_check_stat_stops_early_on_a_lossy_preset_negative_control(capsys: pytest.CaptureFixture[str]) -> None:
    code, verdict = run(capsys, "check", "--strategy", "pjd", "--model", "hash", "--engine", "stat",
                        "--budget", "64000", "--json")  # fmt: skip
    assert code == 1 and verdict["passed"] is False
    assert isinstance(verdict["samples"], int) and verdict["samples"] < 64000


def test_check_fixed_is_one_look_of_the_budget(capsys: pytest.CaptureFixture[str]) -> None:
    code, verdict = run(capsys, "check", "--strategy", "sjd", "--model", "hash-tiny", "--engine", "stat",
                        "--budget", "300", "--fixed", "--json")  # fmt: skip
    assert code == 0 and verdict["samples"] == 300 and verdict["looks"] == []


def test_check_fixed_with_seconds_is_a_usage_error() -> None:
    argv = ["check", "--strategy", "sjd", "--model", "hash-tiny", "--engine", "stat", "--fixed", "--seconds", "3"]
    assert main(argv) == 2


def test_check_accelerated_judges_the_twin_in_batches(capsys: pytest.CaptureFixture[str]) -> None:
    code, verdict = run(capsys, "check", "--strategy", "sjd", "--model", "hash", "--engine", "stat",
                        "--accelerated", "--budget", "4000", "--fixed", "--json")  # fmt: skip
    assert code == 0 and verdict["samples"] == 4000
    names = {test["name"] for test in verdict["tests"]}  # type: ignore[attr-defined]
    assert {"sequence", "draft-pit", "accept-hazard"} <= names  # the twin's passes feed the verifier tests


def test_check_accelerated_lossy_twin_is_rejected_negative_control(capsys: pytest.CaptureFixture[str]) -> None:
    code, verdict = run(capsys, "check", "--strategy", "pjd", "--model", "hash", "--engine", "stat",
                        "--accelerated", "--budget", "64000", "--json")  # fmt: skip
    assert code == 1 and verdict["passed"] is False


def test_check_accelerated_with_the_exact_engine_is_a_usage_error() -> None:
    assert main(["check", "--strategy", "sjd", "--accelerated"]) == 2
