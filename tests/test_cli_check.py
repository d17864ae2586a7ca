"""The CLI contract of `jacobi-oracle check` and `strategies` (exit codes, JSON keys)."""

from __future__ import annotations

import json

import pytest

from jacobi_oracle.cli import main
from jacobi_oracle.reference.presets import PRESETS

REQUIRED_KEYS = {"strategy", "model", "engine", "total_variation", "max_position_deviation", "lossless"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_check_sjd_exact_json_says_lossless(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "check", "--strategy", "sjd", "--model", "hash-tiny", "--exact", "--json")
    verdict = json.loads(out)
    assert set(verdict) >= REQUIRED_KEYS
    assert verdict["engine"] == "exact"
    assert verdict["lossless"] is True
    assert verdict["total_variation"] <= 1e-12
    assert code == 0


def test_check_exits_1_for_a_lossy_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    lossy = next(name for name, preset in PRESETS.items() if not preset.lossless and not preset.greedy_only)
    code, out = run(capsys, "check", "--strategy", lossy, "--model", "hash-tiny", "--exact", "--json")
    verdict = json.loads(out)
    assert verdict["lossless"] is False
    assert verdict["total_variation"] > 1e-6
    assert code == 1


def test_check_exits_2_on_an_unknown_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--strategy", "no-such-thing", "--exact"])
    assert code == 2
    assert "unknown strategy 'no-such-thing'" in capsys.readouterr().err


def test_check_exits_2_on_bad_sampling(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--strategy", "ar", "--top-p", "1.5", "--exact"])
    assert code == 2
    assert "top_p must be in (0, 1], got 1.5" in capsys.readouterr().err


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check"])  # --strategy is required
    assert exit_info.value.code == 2


def test_strategies_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "strategies", "--json")
    assert code == 0
    assert {row["strategy"] for row in json.loads(out)} == set(PRESETS)
