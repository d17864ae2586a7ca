"""How far a low-precision decoder moves the law: the statistical oracle on bf16 / fp16 output.

    jacobi-oracle precision --model llamagen-XL --grid 24 --strategies ar,sjd,sjdpp-exact \
        --dtype bfloat16 --images 50 --cfg 4 --json

Per strategy: decode `images` images with the accelerated decoder on the model cast to `dtype`,
then judge the produced tokens with the SAME weights in `judge_dtype` (float64 on CPU; float32
is the widest fast type on a GPU) by the teacher-forced calibration tests of the statistical
oracle (randomised PIT chi-square and KS, surprise martingale; experiments/realtable.py's judge).
Reported: the verdict at a family false-fail probability of 1e-6 (Bonferroni over the three
sub-tests of every strategy), the smallest p-value, the surprise deficit in nats/token +- its
standard error (how far the low-precision law is from the wide one; > 0: its tokens are likelier than
the wide law draws them), and the smallest deficit the run detects with probability 0.99.

An exact preset in float64 must pass; in bf16 the verdict measures bf16 itself, and AR (one
pass per token, no verification) gives the baseline that a Jacobi preset should match: a
preset whose deficit differs from AR's is moved by its own arithmetic, not only by bf16.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from jacobi_oracle.accelerated import build_accelerated
from jacobi_oracle.experiments.realtable import FAMILY_ALPHA, calibration_counts, judge_calibration
from jacobi_oracle.models.llamagen import LlamaGen
from jacobi_oracle.oracle.statistical.power import CALIBRATION_TESTS
from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.randomness import KeyedRandomness, Randomness
from jacobi_oracle.spec.sampling import Sampling

from .bench import (
    BenchConfig,
    build_bench_model,
    decoding_model,
    pick_device,
    run_record,
    strategy_params,
)

MIN_IMAGES = 10


@dataclass(frozen=True)
class PrecisionConfig:
    model: str = "llamagen-tiny"
    grid: int = 4
    strategies: tuple[str, ...] = ("ar", "sjd")
    dtype: str = "bfloat16"  # the decoders' arithmetic
    judge_dtype: str = "float64"  # the law they are judged against (same weights)
    images: int = 50
    batch: int = 10
    window: int = 16
    cfg_scale: float = 4.0
    top_k: int | None = None
    seed: int = 0
    device: str = "auto"
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        # Verify the image budget and the batch; the model and dtypes are checked by BenchConfig
        if self.images < MIN_IMAGES or self.batch < 1:
            raise InvalidParameterError(
                f"images >= {MIN_IMAGES} and batch >= 1 needed, got {self.images}, {self.batch}"
            )
        for dtype in (self.dtype, self.judge_dtype):
            BenchConfig(model=self.model, grid=self.grid, dtype=dtype, checkpoint=self.checkpoint)


@dataclass(frozen=True)
class PrecisionRow:
    strategy: str
    passed: bool
    smallest_p: float
    smallest_test: str
    alpha: float  # per sub-test
    deficit: float  # nats/token
    deficit_se: float
    min_detectable_shift: float
    mean_passes: float


def judge_strategy(
    name: str,
    decoder_model: LlamaGen,
    judge_model: LlamaGen,
    layout: Layout,
    sampling: Sampling,
    config: PrecisionConfig,
    family: int,
) -> PrecisionRow:
    """Decode with `decoder_model`, judge with `judge_model` (image i: class i mod classes,
    KeyedRandomness(seed, i))."""
    decoder = build_accelerated(name, **strategy_params(name, config.window))
    target = decoding_model(name, decoder_model)
    conditions = [i % judge_model.num_classes for i in range(config.images)]
    decoded = []
    for start in range(0, config.images, config.batch):
        batch: list[int | None] = list(conditions[start : start + config.batch])
        noise: list[Randomness] = [KeyedRandomness(config.seed, start + b) for b in range(len(batch))]
        with torch.no_grad():
            decoded += decoder.decode_batch(target, batch, layout, sampling, noise)
    tables = calibration_counts(judge_model, layout, sampling, conditions, decoded, config.seed)
    verdict = judge_calibration([int(v) for v in tables.surprise], [int(v) for v in tables.pit], family)
    return PrecisionRow(
        name,
        verdict.passed,
        verdict.smallest.p_value,
        verdict.smallest.name,
        verdict.alpha,
        verdict.deficit,
        verdict.deficit_se,
        verdict.min_detectable_shift,
        sum(d.forward_passes for d in decoded) / len(decoded),
    )


def run_precision(
    config: PrecisionConfig, command: str, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    device = pick_device(config.device)
    bench = BenchConfig(
        model=config.model, grid=config.grid, dtype=config.judge_dtype, checkpoint=config.checkpoint, seed=config.seed
    )
    judge = build_bench_model(bench, device)
    fast = build_bench_model(replace(bench, dtype=config.dtype), device)  # same weights, narrower
    layout = Layout(config.grid, config.grid)
    sampling = Sampling(top_k=config.top_k, cfg_scale=config.cfg_scale)
    family = CALIBRATION_TESTS * len(config.strategies)
    rows: list[PrecisionRow] = []
    for name in config.strategies:
        if progress is not None:
            progress(name)
        rows.append(judge_strategy(name, fast, judge, layout, sampling, config, family))
    return run_record(config, device, command) | {
        "family_false_fail": FAMILY_ALPHA,
        "passed": all(r.passed for r in rows),
        "results": [r.__dict__ for r in rows],
    }


def markdown(report: dict[str, Any]) -> str:
    rows: Sequence[dict[str, Any]] = report["results"]
    lines = [
        f"`{report['command']}` on {report['device']}, torch {report['torch']}, {report['date']}",
        "",
        "| strategy | verdict | smallest p (test) | surprise deficit nats/token | detectable | passes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "pass" if r["passed"] else "FAIL"
        lines.append(
            f"| {r['strategy']} | {verdict} | {r['smallest_p']:.2g} ({r['smallest_test']}) | "
            f"{r['deficit']:+.4f} +- {2 * r['deficit_se']:.4f} | {r['min_detectable_shift']:.4f} | "
            f"{r['mean_passes']:.1f} |"
        )
    return "\n".join(lines)


__all__ = ["PrecisionConfig", "PrecisionRow", "judge_strategy", "markdown", "run_precision"]
