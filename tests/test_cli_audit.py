"""`jacobi-oracle audit` on a small case: JSON shape, the lossless claims, exit codes, PNGs,
presets registered by anyone show up, and a too-slow preset is reported, not waited on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from jacobi_oracle.cli import main
from jacobi_oracle.models.registry import build_model
from jacobi_oracle.mutants.catalogue import gumbel_jacobi_wrong_cell
from jacobi_oracle.oracle.audit import Auditor, AuditRow, plot_file_name
from jacobi_oracle.reference.presets import PRESETS, Preset, sjdpp
from jacobi_oracle.spec.sampling import Sampling

SMALL = ["--model", "hash-tiny", "--time-limit", "60"]  # V=2, 2x2: each preset in about a second
KEYS = {"strategy", "total_variation", "lossless", "mean_forward_passes", "step_compression"}


def audit_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["audit", *SMALL, "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_audit_json_reports_every_key_and_the_spec_claims(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    names = ["ar", "jacobi", "sjd-sample-above", "sjdpp", "lantern"]
    code, out = audit_json(capsys, "--presets", ",".join(names), "--plot", str(tmp_path), "--runs", "3")
    assert code == 0, out
    rows = {row["strategy"]: row for row in out["presets"]}
    assert list(rows) == names
    for name, row in rows.items():
        assert set(row) >= KEYS, f"{name}: missing {KEYS - set(row)}"
        assert row["status"] == "ok", row
        assert row["lossless"] is PRESETS[name].lossless
        if row["lossless"]:
            assert row["total_variation"] <= 1e-12, row
        assert row["step_compression"] == pytest.approx(out["ar_forward_passes"] / row["mean_forward_passes"])
    assert rows["jacobi"]["sampling"] == "greedy"  # greedy_only presets are judged where their claim holds
    assert rows["lantern"]["total_variation"] > 1e-6  # lossy on this model
    assert rows["ar"]["step_compression"] == pytest.approx(1.0)
    expected = {"tv_vs_step_compression.png", *(plot_file_name(n) for n in names)}
    assert {Path(p).name for p in out["plots"]} == expected
    for name in expected:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 50


def test_audit_fails_when_a_lossless_claim_is_false(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control: sjdpp registered as if it were lossless must make the audit fail."""
    monkeypatch.setitem(PRESETS, "sjdpp-claimed", Preset("sjdpp-claimed", "broken claim", sjdpp, lossless=True))
    code, out = audit_json(capsys, "--presets", "sjdpp-claimed")
    assert code == 1
    row = out["presets"][0]
    assert row["lossless"] is True and row["measured_lossless"] is False and not out["passed"]


def test_audit_reports_a_too_slow_preset_instead_of_hanging(capsys: pytest.CaptureFixture[str]) -> None:
    """Every registered preset (including ones added later) appears; none may run past the limit."""
    code = main(["audit", "--model", "transformer-16", "--time-limit", "0.5", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert [row["strategy"] for row in out["presets"]] == list(PRESETS)
    for row in out["presets"]:
        assert row["status"] in ("timeout", "error"), row
        assert row["seconds"] < 30, row
        assert row["total_variation"] is None
        assert row["sampled_step_compression"] is None or row["sampled_step_compression"] >= 1.0
    assert any(row["status"] == "timeout" for row in out["presets"])
    assert code == (1 if any(row["status"] == "error" for row in out["presets"]) else 0)


def test_audit_table_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", *SMALL, "--presets", "ar"]) == 0
    assert "audit on hash-tiny" in capsys.readouterr().out
    assert main(["audit", *SMALL, "--presets", "no-such-preset"]) == 2
    assert "no-such-preset" in capsys.readouterr().err
    assert main(["audit", *SMALL, "--runs", "0"]) == 2


def test_fixed_noise_presets_are_judged_pathwise_and_a_broken_one_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """gumbel-jacobi reads G(cell) more often than the exact engine's joint law covers on
    `hash` (V = 3): the audit judges it token for token against Gumbel AR. Negative control: a
    fixed-noise decoder that commits one stale draft, registered as lossless, fails the audit."""
    broken = Preset(
        "gj-broken", "stale draft", lambda window=3: gumbel_jacobi_wrong_cell(window), True, reuses_noise=True
    )
    monkeypatch.setitem(PRESETS, "gj-broken", broken)
    code, out = audit_json(capsys, "--model", "hash", "--presets", "gumbel-jacobi,gumbel-jacobi-above,gj-broken")
    rows = {row["strategy"]: row for row in out["presets"]}
    for name in ("gumbel-jacobi", "gumbel-jacobi-above"):
        assert rows[name]["engine"] == "pathwise" and rows[name]["measured_lossless"] is True, rows[name]
        assert rows[name]["step_compression"] > 1.0
    assert rows["gj-broken"]["measured_lossless"] is False  # (it reads less noise: the exact engine judges it)
    assert code == 1 and not out["passed"]
    # the pathwise row itself rejects the broken decoder, naming the noise draw
    case = build_model("hash")
    auditor = Auditor(case, Sampling())
    problem = auditor.problem_for(broken)
    base = AuditRow("gj-broken", "ok", True, False, "T=1", None, None, None, None, 0.0)
    row = auditor.pathwise_row(base, gumbel_jacobi_wrong_cell(), problem, 32, 0, "test")
    assert row.engine == "pathwise" and row.measured_lossless is False and row.claim_violated
    assert "first mismatch KeyedRandomness(0, " in row.detail
