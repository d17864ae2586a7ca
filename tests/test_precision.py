"""jacobi_oracle/experiments/precision.py: the statistical oracle on low-precision decoders (CPU smoke runs)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from jacobi_oracle.cli import main
from jacobi_oracle.experiments.bench import BenchConfig, build_bench_model
from jacobi_oracle.experiments.precision import PrecisionConfig, judge_strategy
from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.sampling import Sampling

# Every verdict below is judged at a family false-fail probability of 1e-6 (Bonferroni over
# the 3 calibration sub-tests per strategy), so a correct decoder fails with probability <= 1e-6.


def test_float64_decoders_pass_against_their_own_weights(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["precision", "--grid", "4", "--strategies", "ar,sjd", "--images", "30", "--dtype", "float64", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["family_false_fail"] == 1e-6
    assert {r["strategy"] for r in report["results"]} == {"ar", "sjd"}
    assert all(abs(r["deficit"]) < 6 * r["deficit_se"] for r in report["results"])


def test_a_decoder_on_other_weights_is_rejected() -> None:
    """Negative control: the decoder's model has its output head doubled (temperature 1/2)."""
    config = PrecisionConfig(grid=4, strategies=("ar",), images=30, dtype="float64")
    judge = build_bench_model(BenchConfig(grid=4, dtype="float64"), torch.device("cpu"))
    sharper = copy.deepcopy(judge)
    sharper.output.weight.mul_(2.0)
    row = judge_strategy("ar", sharper, judge, Layout(4, 4), Sampling(cfg_scale=4.0), config, family=3)
    assert not row.passed and row.deficit > 0  # sharper output: tokens likelier than the law draws them


def test_bad_budgets_and_dtypes_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="images"):
        PrecisionConfig(images=3)
    with pytest.raises(InvalidParameterError, match="float8"):
        PrecisionConfig(dtype="float8")
