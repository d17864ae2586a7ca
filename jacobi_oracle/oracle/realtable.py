"""Presets on the model trained here: forward passes, step compression and a quality proxy.

    python -m jacobi_oracle.oracle.realtable --grid 16 --images 50 > table.md

For each preset, `--images` images with fixed seeds (image i: class i mod num_classes,
KeyedRandomness(seed, sample=i)), decoded with the real-model parameters below (the presets'
defaults are sized for the exact engine's toy grids). Reported per preset:
* forward passes per image: mean +- sd; step compression = cells / mean passes;
* quality proxy: the AR model's teacher-forced NLL (nats per token, class-conditional logits,
  no CFG, T = 1) of the produced tokens, mean +- sd over images. A lossless decoder has the
  AR row's law, so its NLL agrees with AR's up to sampling noise; a lossy one may drift.
AR and SJD run through accelerated/ (KV cache, batched; token-for-token equal to reference/
under the same keyed noise), every other preset through its reference decoder.
"""

from __future__ import annotations

import argparse
import inspect
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from ..models.llamagen import LlamaGen
from ..models.trained import load_trained
from ..reference.presets import PRESETS, build_preset
from ..spec.errors import JacobiOracleError
from ..spec.layout import Layout
from ..spec.randomness import KeyedRandomness
from ..spec.sampling import Sampling
from ..spec.strategy import Decoded

# Real-model parameters, published where there is one (SJD: W = 16; PJD: c = 8 image tokens,
# windows of 8; ZipAR on LlamaGen: w = 8). Passed only to builders that take them.
REAL_MODEL_PARAMS: dict[str, dict[str, Any]] = {
    "pjd": {"context": 8, "window": 8},
    "pjd-causal": {"context": 8, "window": 8},
    "pjd-exact": {"context": 8, "window": 8, "verify": 16},
    "zipar": {"window": 8},
}
DEFAULT_WINDOW = 16
NOT_ON_REAL_MODEL = {"lpd": "needs a position-query model (LPD's own training)"}
DEFAULT_SAMPLING = Sampling(temperature=1.0, cfg_scale=2.0)
DEFAULT_SEED = 2024


def real_params(name: str) -> dict[str, Any]:
    """Parameters for preset `name` on the real model."""
    if name in REAL_MODEL_PARAMS:
        return dict(REAL_MODEL_PARAMS[name])
    accepted = inspect.signature(PRESETS[name].build).parameters
    return {"window": DEFAULT_WINDOW} if "window" in accepted else {}


def real_model_presets() -> list[str]:
    """Registered presets that sample (not greedy-only) and run on a next-token LlamaGen."""
    return [n for n, p in PRESETS.items() if not p.greedy_only and n not in NOT_ON_REAL_MODEL]


def _accelerated(name: str, params: dict[str, Any]) -> Any | None:
    try:
        from ..accelerated.jacobi import accelerated_ar, accelerated_sjd
    except ImportError:  # pragma: no cover - accelerated/ is part of the package
        return None
    if name == "ar":
        return accelerated_ar()
    if name in ("sjd", "sjd-uniform"):
        return accelerated_sjd(params.get("window", DEFAULT_WINDOW), "one-hot" if name == "sjd" else "uniform")
    return None


def decode_images(
    name: str,
    model: LlamaGen,
    layout: Layout,
    sampling: Sampling,
    conditions: Sequence[int],
    seed: int,
    progress: Callable[[int], None] | None = None,
    accelerated: bool = True,
) -> list[Decoded]:
    """Image i: condition conditions[i], KeyedRandomness(seed, sample=i)."""
    params = real_params(name)
    noise = [KeyedRandomness(seed, i) for i in range(len(conditions))]
    fast = _accelerated(name, params) if accelerated else None
    if fast is not None:
        out: list[Decoded] = fast.decode_batch(model, list(conditions), layout, sampling, list(noise))
        if progress is not None:
            progress(len(out))
        return out
    strategy = build_preset(name, **params)
    results = []
    for condition, randomness in zip(conditions, noise, strict=True):
        results.append(strategy.decode(model, condition, layout, sampling, randomness))
        if progress is not None:
            progress(1)
    return results


def token_nll(model: LlamaGen, condition: int, tokens: Sequence[int]) -> float:
    """Teacher-forced NLL per token (nats) under the class-conditional model."""
    x = torch.tensor([list(tokens)], dtype=torch.long)
    with torch.no_grad():
        logits = model(x, torch.tensor([condition]))
        return float(torch.nn.functional.cross_entropy(logits[0].double(), x[0]))


@dataclass(frozen=True)
class Row:
    strategy: str
    lossless: bool
    params: dict[str, Any]
    images: int
    cells: int
    passes_mean: float
    passes_sd: float
    nll_mean: float
    nll_sd: float
    seconds: float

    @property
    def step_compression(self) -> float:
        return self.cells / self.passes_mean


def measure(
    name: str,
    model: LlamaGen,
    grid: int,
    images: int,
    sampling: Sampling = DEFAULT_SAMPLING,
    seed: int = DEFAULT_SEED,
    progress: Callable[[int], None] | None = None,
) -> Row:
    layout = Layout(grid, grid)
    conditions = [i % model.num_classes for i in range(images)]
    started = time.time()
    decoded = decode_images(name, model, layout, sampling, conditions, seed, progress)
    seconds = time.time() - started
    passes = [float(d.forward_passes) for d in decoded]
    nll = [token_nll(model, c, d.tokens) for c, d in zip(conditions, decoded, strict=True)]
    return Row(
        name,
        PRESETS[name].lossless,
        real_params(name),
        images,
        layout.num_cells,
        statistics.fmean(passes),
        statistics.stdev(passes) if images > 1 else 0.0,
        statistics.fmean(nll),
        statistics.stdev(nll) if images > 1 else 0.0,
        seconds,
    )


def markdown(rows: Sequence[Row], grid: int, sampling: Sampling, command: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ar = next((r for r in rows if r.strategy == "ar"), None)
    lines = [
        f"### {grid}x{grid} grid ({grid * grid} tokens), {rows[0].images} images per preset",
        "",
        f"`{command}` ({stamp}; sampling: T={sampling.temperature}, cfg={sampling.cfg_scale}, "
        f"top-k={sampling.top_k}, top-p={sampling.top_p})",
        "",
        "| strategy | claimed lossless | params | forward passes (mean +- sd) | step compression "
        "| NLL/token (mean +- sd) | NLL - AR (+- 2 s.e.) | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        delta = "" if ar is None else f"{r.nll_mean - ar.nll_mean:+.3f} +- {_two_se(r, ar):.3f}"
        params = ", ".join(f"{k}={v}" for k, v in r.params.items()) or "-"
        lines.append(
            f"| {r.strategy} | {'yes' if r.lossless else 'no'} | {params} | {r.passes_mean:.1f} +- {r.passes_sd:.1f} "
            f"| {r.step_compression:.2f}x | {r.nll_mean:.3f} +- {r.nll_sd:.3f} | {delta} | {r.seconds:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _two_se(row: Row, ar: Row) -> float:
    return 2 * math.sqrt(row.nll_sd**2 / row.images + ar.nll_sd**2 / ar.images)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jacobi_oracle.oracle.realtable", description=__doc__)
    parser.add_argument("--checkpoint", default=None, help="trained-model file (default: the committed one)")
    parser.add_argument("--grid", type=int, default=16, choices=[16, 24])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--strategies", default=None, help="comma-separated presets (default: all on real models)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--cfg", type=float, default=DEFAULT_SAMPLING.cfg_scale)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    trained = load_trained(args.checkpoint)
    model = trained.for_grid(args.grid)
    sampling = Sampling(temperature=1.0, cfg_scale=args.cfg)
    names = real_model_presets() if args.strategies is None else args.strategies.split(",")
    rows = []
    for name in names:
        try:
            rows.append(measure(name, model, args.grid, args.images, sampling, args.seed))
        except JacobiOracleError as error:
            print(f"{name}: skipped ({error})", file=sys.stderr)
            continue
        print(f"{name}: done in {rows[-1].seconds:.0f}s", file=sys.stderr)
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    print(markdown(rows, args.grid, sampling, f"python -m jacobi_oracle.oracle.realtable {argv_text}".strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
