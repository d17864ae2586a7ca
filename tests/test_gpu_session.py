"""benchmarks/gpu_session.sh at toy size on CPU: the owed GPU steps run and write their reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"


def test_the_2d_bench_step_reports_every_strategy(tmp_path: Path) -> None:
    # (bench-raster runs the same command with other strategies; tests/test_bench.py covers those)
    env = os.environ | {"SMOKE": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    subprocess.run(["bash", str(SCRIPT), "bench-2d"], cwd=ROOT, env=env, check=True, capture_output=True)
    report = json.loads((tmp_path / "bench-2d.json").read_text())
    assert {r["strategy"] for r in report["results"]} == {"ar", "pjd", "pjd-exact", "zipar"}
    assert all(r["speedup_over_reference"] > 0 for r in report["results"])


def test_the_precision_step_reports_a_verdict(tmp_path: Path) -> None:
    env = os.environ | {"SMOKE": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    subprocess.run(["bash", str(SCRIPT), "precision"], cwd=ROOT, env=env, check=True, capture_output=True)
    report = json.loads((tmp_path / "precision.json").read_text())
    assert report["passed"]  # float32 decoders judged in float64 at family false-fail 1e-6
    assert {r["strategy"] for r in report["results"]} == {"ar", "sjd", "sjdpp-exact", "pjd-exact"}


def test_the_coupled_bench_step_sweeps_the_fixed_noise_window(tmp_path: Path) -> None:
    env = os.environ | {"SMOKE": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    subprocess.run(["bash", str(SCRIPT), "bench-coupled"], cwd=ROOT, env=env, check=True, capture_output=True)
    rows = {r["strategy"]: r for r in json.loads((tmp_path / "bench-coupled.json").read_text())["results"]}
    sweep = {"gumbel-jacobi-above:4", "gumbel-jacobi-above:16"}
    assert set(rows) == {"ar", "sjd", "mc-sjd", "scd-gumbel", "gumbel-jacobi"} | sweep
    assert rows["ar"]["forward_passes_mean"] == 16  # trained model, 4x4 smoke grid
    assert all(1 <= r["forward_passes_mean"] <= 16 for r in rows.values())


def test_the_lean_bench_step_times_the_window_pass_and_the_peer(tmp_path: Path) -> None:
    env = os.environ | {"SMOKE": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    subprocess.run(["bash", str(SCRIPT), "bench-lean"], cwd=ROOT, env=env, check=True, capture_output=True)
    rows = {r["strategy"]: r for r in json.loads((tmp_path / "bench-lean.json").read_text())["results"]}
    assert set(rows) == {"ar", "sjd", "mc-sjd-above", "gumbel-jacobi-above:16", "pjd-exact", "pjd"}
    assert all(r["time_per_pass_s"] > 0 for r in rows.values())
    peer = {r["strategy"] for r in json.loads((tmp_path / "bench-lean-peer.json").read_text())["results"]}
    assert peer == {"ar", "hf-generate (peer)"}


def test_an_unknown_step_is_refused(tmp_path: Path) -> None:
    env = os.environ | {"SMOKE": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(SCRIPT), "nope"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown step" in done.stderr
