"""Step compression by sampling (jacobi_oracle/oracle/compression.py, `jacobi-oracle compression`)."""

from __future__ import annotations

import json

import pytest

from jacobi_oracle.cli import main
from jacobi_oracle.oracle.compression import CompressionSetup, compute_default_params, measure_compression
from jacobi_oracle.spec import InvalidParameterError


def test_zipar_and_ar_pass_counts_follow_their_schedules() -> None:
    """Deterministic schedules: AR takes H*W passes; ZipAR's staircase W + (H-1) * w."""
    setup = CompressionSetup(grid=4, runs=3, presets=("ar", "zipar"))
    rows = {row.strategy: row for row in measure_compression(setup)}
    w = compute_default_params("zipar", 4)["window"]
    assert rows["ar"].mean_forward_passes == 16 and rows["ar"].step_compression == 1.0
    assert rows["zipar"].mean_forward_passes == 4 + 3 * w and rows["zipar"].sd_forward_passes == 0.0


def test_compression_json_reports_mean_and_spread_per_preset(capsys: pytest.CaptureFixture[str]) -> None:
    names = ["ar", "sjd", "pjd", "pjd-exact", "zipar"]
    code = main(["compression", "--json", "--runs", "4", "--grid", "4", "--presets", ",".join(names)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [row["strategy"] for row in out["presets"]] == names
    for row in out["presets"]:
        assert row["status"] == "ok" and row["runs"] == 4
        assert 1 <= row["min_forward_passes"] <= row["mean_forward_passes"] <= row["max_forward_passes"] <= 16
        assert row["sd_forward_passes"] >= 0
        assert row["step_compression"] == pytest.approx(16 / row["mean_forward_passes"])
    assert out["presets"][2]["params"] == {"context": 2, "window": 2}


@pytest.mark.parametrize("argv", [["--runs", "0"], ["--grid", "0"], ["--presets", "nope"], ["--vocab", "1"]])
def test_compression_rejects_bad_input_with_exit_code_2(argv: list[str]) -> None:
    assert main(["compression", "--json", *argv]) == 2


def test_compression_setup_names_the_bad_value() -> None:
    with pytest.raises(InvalidParameterError, match="runs"):
        CompressionSetup(runs=-3)
