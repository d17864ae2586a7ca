"""Presets on the model trained here: forward passes, step compression, the statistical
oracle's verdict and a quality proxy.

    python -m jacobi_oracle.experiments.realtable --grid 16 --images 50 > table.md
    python -m jacobi_oracle.experiments.realtable --grid 16 --strategies pjd --save pjd.json
    python -m jacobi_oracle.experiments.realtable --render ar.json pjd.json > table.md

For each preset, `--images` images with fixed seeds (image i: class i mod num_classes,
KeyedRandomness(seed, sample=i)), decoded with the real-model parameters below (the presets'
defaults are sized for the exact engine's toy grids). Reported per preset:
* forward passes per image: mean +- sd; step compression = cells / mean passes;
* quality proxy: the AR model's teacher-forced NLL (nats per token, class-conditional logits,
  no CFG, T = 1) of the produced tokens, mean +- sd over images. A lossless decoder has the
  AR row's law, so its NLL agrees with AR's up to sampling noise; a lossy one may drift.
* the statistical oracle's teacher-forced calibration (oracle/statistical/, the same functions
  `statistical_check` uses): every produced token is scored under the PLAIN model's target law
  (the Problem with the table's Sampling, CFG included: the law AR samples) by the randomised
  PIT (chi-square and KS against Uniform(0, 1)) and the surprise martingale z-test
  (sum_t -log p_t(x_t) - H(p_t), mean 0 under losslessness). Verdict: each of the 3 sub-tests
  at FAMILY_ALPHA / (3 * rows of the full table) (Bonferroni over sub-tests and rows), so a
  table of lossless rows fails somewhere with probability <= FAMILY_ALPHA. Effect size: the
  mean surprise deficit in nats/token (> 0: tokens likelier than AR draws them) +- 2 s.e.
* the 2D presets (ROW_ENTRY_PRESETS) start a row before the row above is finished, which a
  next-token model cannot answer exactly; they decode through spec/row_entry.py's
  RowEntryProxy and are judged against the plain model (spec/row_entry.md).
Presets run through their accelerated/ twins (token-for-token equal to reference/ under the
same keyed noise), except the row-entry presets, which run their reference decoders.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from jacobi_oracle.models.llamagen import LlamaGen
from jacobi_oracle.models.trained import load_named, load_trained
from jacobi_oracle.oracle.statistical.check import calibration_tests
from jacobi_oracle.oracle.statistical.counts import CountTables, from_fixed, record_calibration
from jacobi_oracle.oracle.statistical.power import CALIBRATION_TESTS, bonferroni_level, compute_min_detectable_shift
from jacobi_oracle.oracle.statistical.tests import TestResult, format_p_value
from jacobi_oracle.reference.presets import PRESETS, ROW_ENTRY_PRESETS, build_preset, real_params
from jacobi_oracle.spec.errors import InvalidParameterError, JacobiOracleError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Model, Problem
from jacobi_oracle.spec.randomness import KeyedRandomness
from jacobi_oracle.spec.row_entry import RowEntryProxy
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Decoded, Strategy

NOT_ON_REAL_MODEL = {"lpd": "needs a position-query model (LPD's own training)"}
DEFAULT_SAMPLING = Sampling(temperature=1.0, cfg_scale=2.0)
DEFAULT_SEED = 2024
FAMILY_ALPHA = 1e-6  # false-fail probability of a whole table of lossless rows


def real_model_presets() -> list[str]:
    """Registered presets that sample (not greedy-only) and run on a next-token LlamaGen."""
    return [n for n, p in PRESETS.items() if not p.greedy_only and n not in NOT_ON_REAL_MODEL]


def _accelerated(name: str, params: dict[str, Any]) -> Any | None:
    """The accelerated twin of preset `name` (same tokens as reference/ under the same keyed
    noise: tests/test_accelerated_equivalence.py, tests/test_prefix_cache.py), or None for the
    row-entry presets, which keep the reference path so RowEntryProxy sees every query."""
    from jacobi_oracle.accelerated import ACCELERATED, build_accelerated

    if name not in ACCELERATED or name in ROW_ENTRY_PRESETS:
        return None
    return build_accelerated(name, **params)


def decode_images(
    name: str,
    model: Model,
    layout: Layout,
    sampling: Sampling,
    conditions: Sequence[int],
    seed: int,
    progress: Callable[[int], None] | None = None,
    accelerated: bool = True,
    strategy: Strategy | None = None,
) -> list[Decoded]:
    """Image i: condition conditions[i], KeyedRandomness(seed, sample=i). `strategy` replaces
    the preset's reference decoder (e.g. a broken one, for negative controls)."""
    params = real_params(name)
    noise = [KeyedRandomness(seed, i) for i in range(len(conditions))]
    fast = _accelerated(name, params) if accelerated and strategy is None else None
    if fast is not None:
        out: list[Decoded] = fast.decode_batch(model, list(conditions), layout, sampling, list(noise))
        if progress is not None:
            progress(len(out))
        return out
    decoder = build_preset(name, **params) if strategy is None else strategy
    results = []
    for condition, randomness in zip(conditions, noise, strict=True):
        results.append(decoder.decode(model, condition, layout, sampling, randomness))
        if progress is not None:
            progress(1)
    return results


def token_nll(model: LlamaGen, condition: int, tokens: Sequence[int]) -> float:
    """Teacher-forced NLL per token (nats) under the class-conditional model."""
    x = torch.tensor([list(tokens)], dtype=torch.long)
    with torch.no_grad():
        logits = model(x, torch.tensor([condition]))
        return float(torch.nn.functional.cross_entropy(logits[0].double(), x[0]))


def calibration_counts(
    model: Model,
    layout: Layout,
    sampling: Sampling,
    conditions: Sequence[int],
    decoded: Sequence[Decoded],
    seed: int,
) -> CountTables:
    """Teacher-forced calibration counts of the produced images under the PLAIN model's
    target law (image i: Problem(model, conditions[i], layout, sampling), PIT uniforms from
    KeyedRandomness(seed, sample=i) under the oracle's own event purpose)."""
    tables = CountTables.empty(Problem(model, conditions[0], layout, sampling))
    with torch.no_grad():
        for i, (condition, image) in enumerate(zip(conditions, decoded, strict=True)):
            problem = Problem(model, condition, layout, sampling)
            record_calibration(tables, problem, tuple(image.tokens), KeyedRandomness(seed, i))
    return tables


@dataclass(frozen=True)
class Calibration:
    """The calibration sub-tests of one row, judged at `alpha` each, with the surprise power."""

    tests: list[TestResult]
    alpha: float  # per sub-test (after Bonferroni)
    deficit: float  # mean surprise deficit, nats/token
    deficit_se: float  # its standard error under losslessness
    min_detectable_shift: float  # nats/token detected with probability >= 0.99

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tests)

    @property
    def smallest(self) -> TestResult:
        return min(self.tests, key=lambda t: t.p_value)


def judge_calibration(surprise: Sequence[int], pit: Sequence[int], family: int) -> Calibration:
    """statistical.check.calibration_tests at FAMILY_ALPHA / family each."""
    alpha = bonferroni_level(FAMILY_ALPHA, family)
    counts = np.asarray(surprise, dtype=np.int64)
    flat, square, cube = (np.zeros((0,) * d, np.int64) for d in (1, 2, 3))  # tables not used here
    pit_counts = np.asarray(pit, np.int64)
    tables = CountTables(np.zeros(1, np.int64), square, cube, pit_counts, counts, square, flat, flat, flat)
    tests = calibration_tests(tables, alpha)
    tokens = max(int(counts[0]), 1)
    variance = from_fixed(counts[3])
    return Calibration(
        tests,
        alpha,
        tests[2].effect_size,
        math.sqrt(variance) / tokens,
        compute_min_detectable_shift(tokens, FAMILY_ALPHA, variance / tokens, family),
    )


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
    surprise: list[int]  # CountTables.surprise of the produced images (plain model)
    pit: list[int]  # CountTables.pit
    proxied_queries: float | None = None  # per image, when decoded through RowEntryProxy

    @property
    def step_compression(self) -> float:
        return self.cells / self.passes_mean

    def calibration(self, family: int) -> Calibration:
        return judge_calibration(self.surprise, self.pit, family)


def measure(
    name: str,
    model: LlamaGen,
    grid: int,
    images: int,
    sampling: Sampling = DEFAULT_SAMPLING,
    seed: int = DEFAULT_SEED,
    progress: Callable[[int], None] | None = None,
    tokens_out: list[list[int]] | None = None,
) -> Row:
    """Decode `images` images with preset `name` (2D presets through RowEntryProxy) and
    judge them with the plain model. `tokens_out`, when given, receives the produced tokens."""
    layout = Layout(grid, grid)
    conditions = [i % model.num_classes for i in range(images)]
    proxy = RowEntryProxy(model) if name in ROW_ENTRY_PRESETS else None
    started = time.time()
    decoded = decode_images(name, model if proxy is None else proxy, layout, sampling, conditions, seed, progress)
    seconds = time.time() - started
    passes = [float(d.forward_passes) for d in decoded]
    nll = [token_nll(model, c, d.tokens) for c, d in zip(conditions, decoded, strict=True)]
    tables = calibration_counts(model, layout, sampling, conditions, decoded, seed)
    if tokens_out is not None:
        tokens_out.extend(list(d.tokens) for d in decoded)
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
        [int(v) for v in tables.surprise],
        [int(v) for v in tables.pit],
        None if proxy is None else proxy.proxied_queries / images,
    )


def family_size() -> int:
    """Bonferroni family of a table: 3 calibration sub-tests per row of the full table."""
    return CALIBRATION_TESTS * len(real_model_presets())


def markdown(
    rows: Sequence[Row], grid: int, sampling: Sampling, command: str | Sequence[str], stamp: str | None = None
) -> str:
    """The table; `command` is the run's command line, or the commands of merged runs."""
    commands = [command] if isinstance(command, str) else list(command)
    shown = f"`{commands[0]}`" if len(commands) == 1 else f"{len(commands)} runs merged with `--render`"
    stamp = stamp or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ar = next((r for r in rows if r.strategy == "ar"), None)
    family = family_size()
    judged = [r.calibration(family) for r in rows]
    shifts = [c.min_detectable_shift for c in judged]
    lines = [
        f"### {grid}x{grid} grid ({grid * grid} tokens), {rows[0].images} images per preset",
        "",
        f"{shown} ({stamp}; sampling: T={sampling.temperature}, cfg={sampling.cfg_scale}, "
        f"top-k={sampling.top_k}, top-p={sampling.top_p})",
        "",
        "| strategy | claimed lossless | params | forward passes (mean +- sd) | step compression "
        "| verdict | smallest p (sub-test) | surprise deficit, nats/token (+- 2 s.e.) "
        "| NLL/token (mean +- sd) | NLL - AR (+- 2 s.e.) | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r, c in zip(rows, judged, strict=True):
        delta = "" if ar is None else f"{r.nll_mean - ar.nll_mean:+.3f} +- {_two_se(r, ar):.3f}"
        params = ", ".join(f"{k}={v}" for k, v in r.params.items()) or "-"
        marker = "" if r.proxied_queries is None else " [P]"
        lines.append(
            f"| {r.strategy}{marker} | {'yes' if r.lossless else 'no'} | {params} "
            f"| {r.passes_mean:.1f} +- {r.passes_sd:.1f} | {r.step_compression:.2f}x "
            f"| {'pass' if c.passed else '**FAIL**'} | {format_p_value(c.smallest.p_value, 2)} ({c.smallest.name}) "
            f"| {c.deficit:+.4f} +- {2 * c.deficit_se:.4f} "
            f"| {r.nll_mean:.3f} +- {r.nll_sd:.3f} | {delta} | {r.seconds:.0f} |"
        )
    proxied = [f"{r.strategy} {r.proxied_queries:.0f}" for r in rows if r.proxied_queries is not None]
    lines += [
        "",
        f"Verdict: teacher-forced calibration under the plain model's target law (T, cfg as above): "
        f"randomised-PIT chi-square and KS, surprise martingale z-test, each judged at "
        f"{FAMILY_ALPHA:g} / ({CALIBRATION_TESTS} sub-tests x {len(real_model_presets())} rows) = "
        f"{FAMILY_ALPHA / family:.2g} (Bonferroni), so a table of lossless rows fails somewhere "
        f"with probability <= {FAMILY_ALPHA:g}. Power: a surprise shift of "
        f"{min(shifts):.4f}-{max(shifts):.4f} nats/token is detected with probability >= 0.99 "
        f"(power.compute_min_detectable_shift at this budget).",
    ]
    if proxied:
        lines.append(
            "[P]: decoded through `RowEntryProxy` (spec/row_entry.md), judged against the plain model; "
            "proxy-answered queries per image: " + ", ".join(proxied) + "."
        )
    if len(commands) > 1:
        lines += ["", "<details><summary>commands</summary>", "", *[f"    {c}" for c in commands], "", "</details>"]
    return "\n".join(lines) + "\n"


def _two_se(row: Row, ar: Row) -> float:
    return 2 * math.sqrt(row.nll_sd**2 / row.images + ar.nll_sd**2 / ar.images)


def save_rows(
    path: Path, rows: Sequence[Row], grid: int, sampling: Sampling, command: str, tokens: dict[str, Any]
) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    obj = {"grid": grid, "sampling": asdict(sampling), "command": command, "stamp": stamp}
    path.write_text(json.dumps({**obj, "rows": [asdict(r) for r in rows], "tokens": tokens}))


def render(paths: Sequence[Path]) -> str:
    """One table from `--save` files of one grid and sampling, rows in registry order."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    # Verify the runs belong in one table
    if len({(r["grid"], json.dumps(r["sampling"], sort_keys=True)) for r in runs}) != 1:
        raise InvalidParameterError(f"--render files mix grids or sampling: {[str(p) for p in paths]}")
    rows = {row["strategy"]: Row(**row) for run in runs for row in run["rows"]}
    order = [n for n in real_model_presets() if n in rows] + [n for n in rows if n not in real_model_presets()]
    commands = list(dict.fromkeys(r["command"] for r in runs))
    stamps = sorted(r["stamp"] for r in runs)
    stamp = "finished " + (stamps[0] if stamps[0] == stamps[-1] else f"{stamps[0]} to {stamps[-1]}")
    sampling = Sampling(**runs[0]["sampling"])
    return markdown([rows[n] for n in order], runs[0]["grid"], sampling, commands, stamp)


def advancer(bar: Progress, task: TaskID) -> Callable[[int], None]:
    return lambda done: bar.advance(task, done)


def run_table(args: Any, command: str) -> int:
    """The table for parsed arguments (cli/realtable.py): decode, judge, print the markdown."""
    if args.render is not None:
        print(render(args.render))
        return 0
    torch.set_num_threads(args.threads)
    trained = load_named(args.model) if args.checkpoint is None else load_trained(args.checkpoint)
    model = trained.for_grid(args.grid)
    sampling = Sampling(temperature=1.0, cfg_scale=args.cfg)
    names = real_model_presets() if args.strategies is None else args.strategies.split(",")
    rows: list[Row] = []
    tokens: dict[str, list[list[int]]] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        for name in names:
            task = bar.add_task(f"{name} {args.grid}x{args.grid}", total=args.images)
            tokens[name] = []
            try:
                row = measure(
                    name,
                    model,
                    args.grid,
                    args.images,
                    sampling,
                    args.seed,
                    advancer(bar, task),
                    tokens[name],
                )
            except JacobiOracleError as error:
                bar.console.print(f"{name}: skipped ({error})")
                continue
            rows.append(row)
            bar.console.print(f"{name}: done in {row.seconds:.0f}s")
    if args.save is not None:
        save_rows(args.save, rows, args.grid, sampling, command, tokens)
    if rows:
        print(markdown(rows, args.grid, sampling, command))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m jacobi_oracle.experiments.realtable ...` (the command older tables record) is
    `jacobi-oracle realtable ...`."""
    from jacobi_oracle.cli import main as cli_main

    return cli_main(["realtable", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
