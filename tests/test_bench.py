"""A tiny CPU smoke run of `jacobi-oracle bench` (the benchmark itself is not a timed test)."""

from __future__ import annotations

import json

import pytest

from jacobi_oracle.cli import main
from jacobi_oracle.experiments.bench import BenchConfig
from jacobi_oracle.spec.errors import InvalidParameterError


def test_bench_reports_every_strategy_against_accelerated_ar(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--model", "llamagen-tiny", "--grid", "3", "--strategies", "sjd,zipar", "--window", "4"]
    assert main([*argv, "--images", "10", "--warmup", "1", "--threads", "1", "--reference-images", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"device", "torch", "date", "command", "results"} <= set(report)
    rows = {r["strategy"]: r for r in report["results"]}
    assert set(rows) == {"ar", "sjd", "zipar"}  # zipar: prefix-cached, rows started through the proxy
    assert rows["ar"]["forward_passes_mean"] == 9  # one pass per cell
    assert 1 <= rows["sjd"]["forward_passes_mean"] <= 9
    assert rows["zipar"]["forward_passes_mean"] == 9  # w = 8 >= the 3-cell rows: ZipAR is AR here
    assert rows["ar"]["speedup_over_ar"] == 1.0
    sjd = rows["sjd"]  # each reported ratio is the ratio of the reported timings
    assert sjd["speedup_over_reference"] == sjd["reference_latency_s_median"] / sjd["latency_s_median"]
    ar = rows["ar"]
    assert ar["step_over_floor"] == ar["time_per_pass_s"] / max(ar["bandwidth_floor_s"], ar["empty_launch_s"])
    assert ar["bandwidth_floor_s"] == ar["weight_bytes"] / ar["bandwidth_bytes_per_s"]
    assert ar["time_per_pass_s"] == ar["latency_s_median"] / ar["forward_passes_mean"]  # batch 1
    assert ar["empty_launch_s"] > 0
    assert ar["compiled"] is False and ar["first_image_s"] > 0  # the untimed first image, reported


def test_bench_runs_the_trained_model(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--model", "trained", "--grid", "2", "--strategies", "pjd", "--images", "10", "--warmup", "0"]
    assert main([*argv, "--threads", "1", "--json"]) == 0
    rows = {r["strategy"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert rows["ar"]["forward_passes_mean"] == 4 and 1 <= rows["pjd"]["forward_passes_mean"] <= 4


def test_bench_refuses_too_few_images_and_unknown_models() -> None:
    with pytest.raises(InvalidParameterError, match="images"):
        BenchConfig(images=3)
    with pytest.raises(InvalidParameterError, match="llamagen-huge"):
        BenchConfig(model="llamagen-huge")
    with pytest.raises(InvalidParameterError, match="warmup >= 1"):
        BenchConfig(compile=True, warmup=0)  # the first image pays the compilation: it must not be timed
    assert main(["bench", "--model", "nope"]) == 2


def test_bench_sets_one_strategy_window_with_a_colon(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--model", "llamagen-tiny", "--grid", "3", "--strategies", "sjd:1,gumbel-jacobi-above:9"]
    assert main([*argv, "--window", "4", "--images", "10", "--warmup", "0", "--threads", "1", "--json"]) == 0
    rows = {r["strategy"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert rows["sjd:1"]["forward_passes_mean"] == 9  # window 1: the bonus cell only, one cell per pass
    assert 1 <= rows["gumbel-jacobi-above:9"]["forward_passes_mean"] <= 9
    for row in rows.values():  # the reported ratio is the ratio of the reported latencies
        assert row["speedup_over_ar"] == rows["ar"]["latency_s_median"] / row["latency_s_median"]
    for bad, message in [("sjd:0", "int >= 1"), ("sjd:x", "int >= 1"), ("ar:4", "no window"), ("nope", "nope")]:
        with pytest.raises(InvalidParameterError, match=message):
            BenchConfig(strategies=(bad,))


def test_bench_times_the_hf_generate_peer_in_the_same_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--model", "llamagen-tiny", "--grid", "3", "--strategies", "ar", "--peer", "hf", "--cfg", "2"]
    assert main([*argv, "--images", "10", "--warmup", "0", "--threads", "1", "--json"]) == 0
    rows = {r["strategy"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    peer = rows["hf-generate (peer)"]
    assert peer["forward_passes_mean"] == 9 and peer["step_compression"] == 1.0  # one token per step, every cell
    assert peer["speedup_over_ar"] == rows["ar"]["latency_s_median"] / peer["latency_s_median"]
    with pytest.raises(InvalidParameterError, match="peer"):
        BenchConfig(peer="vllm")
