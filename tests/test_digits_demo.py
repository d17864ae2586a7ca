"""`jacobi-oracle demo` on the digits model (sample sheet, law sheet) and `--model digits` in
`check` and the real-model table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jacobi_oracle.cli import main
from jacobi_oracle.cli.demo import Law, compute_class_laws, compute_law_distance


def law_of(pixels: torch.Tensor, labels: list[int], classes: int) -> Law:
    mean, variance, counts = compute_class_laws(pixels, labels, classes)
    return Law("ar", mean, variance, counts, 1.0)


def test_class_laws_are_the_per_class_mean_and_unbiased_variance() -> None:
    pixels = torch.tensor([[[0.0]], [[1.0]], [[0.25]], [[0.25]], [[0.75]]])
    mean, variance, counts = compute_class_laws(pixels, [0, 0, 1, 1, 1], 3)
    assert counts.tolist() == [2, 3, 0]
    assert mean[0, 0, 0] == pytest.approx(0.5) and mean[1, 0, 0] == pytest.approx(5 / 12)
    assert variance[0, 0, 0] == pytest.approx(0.5)  # ((0.5)^2 + (0.5)^2) / (2 - 1)
    assert variance[1, 0, 0] == pytest.approx(float(np.var([0.25, 0.25, 0.75], ddof=1)))
    assert bool(torch.isnan(mean[2]).all()), "a class without samples has no mean"


def test_law_distance_is_at_the_noise_level_for_one_law_and_above_it_for_another() -> None:
    # two independent halves of the same law differ by sampling noise; a shifted law does not
    generator = torch.Generator().manual_seed(0)
    labels = [i % 4 for i in range(400)]
    base = torch.rand(4, 6, 6, generator=generator)

    def draws(offset: float) -> torch.Tensor:
        noise = 0.2 * torch.randn(400, 6, 6, generator=generator)
        return base[torch.tensor(labels)] + noise + offset

    same = compute_law_distance(law_of(draws(0.0), labels, 4), law_of(draws(0.0), labels, 4))
    shifted = compute_law_distance(law_of(draws(0.1), labels, 4), law_of(draws(0.0), labels, 4))
    assert 0.7 < same[0] / same[1] < 1.3, same
    assert shifted[0] > 3 * shifted[1], shifted


def test_demo_on_the_digits_model_writes_the_sample_and_law_sheets(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--models", "digits", "--grid", "4", "--strategies", "ar,sjd"]
    assert main([*args, "--law-samples", "20", "--no-exact", "--json"]) == 0
    for name in ("ar", "sjd", "demo", "law"):
        with Image.open(out / "digits" / f"{name}.png") as image:
            assert image.width > 10 * 16 and image.height > 16, f"{name}.png is {image.size}"
    summary = json.loads((out / "summary.json").read_text())
    digits = summary["models"]["digits"]
    assert digits["classes"] == [str(d) for d in range(10)], "one sample per digit by default"
    assert {s["strategy"] for s in digits["strategies"]} == {"ar", "sjd"}
    assert all(s["calibration_images"] == 20 for s in digits["strategies"]), "judged on the law sheet's samples"
    law = digits["law"]
    assert law["samples_per_preset"] == 20 and law["reference"] == "ar" and set(law["rms_mean_difference"]) == {"sjd"}
    assert not (out / "ar.png").exists(), "only the photo model writes into the top folder"


def test_demo_rejects_bad_models_and_law_sample_counts(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path), "--models", "mnist"]) == 2
    assert main(["demo", "--out", str(tmp_path), "--models", "digits", "--law-samples", "5", "--grid", "4"]) == 2
    assert main(["demo", "--out", str(tmp_path), "--models", "digits,trained", "--checkpoint", "x.safetensors"]) == 2
    assert main(["demo", "--out", str(tmp_path), "--models", "digits", "--classes", "chelsea", "--grid", "4"]) == 2


def test_check_cli_runs_the_digits_model_pathwise(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", "--strategy", "gumbel-jacobi", "--engine", "pathwise", "--model", "digits", "--grid", "4"]
    assert main([*args, "--seeds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["equal"] and out["model"] == "digits" and out["ar_forward_passes"] == 16
    assert main(["check", "--strategy", "gumbel-jacobi", "--model", "digits"]) == 2  # exact engine: too large
    capsys.readouterr()


def test_real_model_table_takes_the_digits_model(capsys: pytest.CaptureFixture[str]) -> None:
    from jacobi_oracle.experiments.realtable import main as realtable

    args = ["--model", "digits", "--grid", "16", "--images", "2", "--strategies", "ar", "--threads", "1"]
    assert realtable(args) == 0
    table = capsys.readouterr().out
    assert "| ar |" in table and "--model digits" in table
    with pytest.raises(SystemExit):
        realtable(["--model", "mnist"])


def test_presets_the_exact_engine_refuses_are_judged_pathwise_and_a_mismatch_shows() -> None:
    from jacobi_oracle.cli.demo import pathwise_markdown, pathwise_table

    fixed, plain = pathwise_table(["gumbel-jacobi", "sjd"], "hash-tiny", draws=20)
    assert fixed.equal and fixed.samples == 20
    assert not plain.equal, "negative control: SJD samples the AR law but not Gumbel AR's tokens"
    assert "| gumbel-jacobi | True | 20/20 |" in pathwise_markdown([fixed])
