"""`jacobi-oracle demo`: real pictures from the models trained here, one sheet per model (a row
of samples per strategy, captioned with its forward passes and the statistical verdict), a law
sheet for the digits model (per-class mean image and pixel-wise variance of many samples per
strategy, beside AR's), plus the exact oracle's verdicts on a toy model.

    jacobi-oracle demo [--out DIR] [--models digits,trained] [--strategies ar,sjd,...|all]
                       [--classes auto|a,b,...] [--images N] [--grid 16|24] [--law-samples N] [--json]

Writes, per model, <strategy>.png (one row of samples) and demo.png (the rows stacked) into
DIR for the photo model `trained` (where they always were) and into DIR/<model>/ for the
others, DIR/digits/law.png (the law sheet), DIR/exact.md and DIR/summary.json. Exit code 1 if
a preset that claims losslessness fails the exact check or the calibration check.

Verdict: the statistical oracle's teacher-forced calibration of the decoded tokens under the
plain model's target law (experiments/realtable.py: randomised PIT chi-square and KS, surprise
martingale), each sub-test at 1e-6 / (3 x presets on the sheet); it is judged on the law
sheet's samples where there is one (more samples, more power) and on the row's otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from ..experiments.realtable import (
    DEFAULT_SEED,
    FAMILY_ALPHA,
    Calibration,
    advancer,
    calibration_counts,
    decode_images,
    judge_calibration,
    real_model_presets,
)
from ..models.registry import MODELS, build_model
from ..models.tokenizer import PatchTokenizer
from ..models.trained import TRAINED_MODELS, TrainedModel, load_named, load_trained
from ..oracle.exact import ExactVerdict, check_exact
from ..oracle.pathwise import PathwiseVerdict, check_pathwise
from ..oracle.statistical.tests import format_p_value
from ..reference.presets import PRESETS, ROW_ENTRY_PRESETS, build_preset
from ..spec.errors import InvalidParameterError, JacobiOracleError
from ..spec.layout import Layout
from ..spec.model import Problem
from ..spec.row_entry import RowEntryProxy
from ..spec.sampling import Sampling
from ..spec.strategy import Decoded
from .common import Command, Subparsers, print_json, print_table, stderr_console

# AR, the best lossless preset of the coupling work (gumbel-jacobi: 2.7x on the photo model),
# plain SJD, and the three lossy ones whose loss a picture can show
DEFAULT_STRATEGIES = ("ar", "gumbel-jacobi", "sjd", "pjd", "zipar", "lantern")
DEFAULT_MODELS = ("digits", "trained")
MODEL_CLASSES = {"trained": ("chelsea", "hubble", "retina", "grass")}  # otherwise: every class, in order
DEFAULT_CLASSES = MODEL_CLASSES["trained"]
LAW_SHEET_MODELS = frozenset({"digits"})  # a class mean of texture crops is a blur a person cannot read
DEFAULT_LAW_SAMPLES = 0  # off by default: 200 per preset (docs/demo) took 27 min of one CPU core
DEFAULT_TOY = "hash"  # V=3, 2x3: lossy presets show their real loss; default presets: 72-90 s CPU (2 busy cores)
PATHWISE_DRAWS = 200  # noise draws for a preset the exact engine refuses (seconds on a toy)
SMALL_TOY = (2, 2)  # vocabulary size or grid width at or below which lossy presets can look lossless
TILE = 96  # target tile side in pixels on the sample sheets (nearest upscaling by an integer)
LAW_TILE = 48  # on the law sheet
LINE = 13  # caption line height in pixels
MARGIN = 6
MAX_GRID = 32
LAW_PANELS_PER_ROW = 2
MAX_VARIANCE = 0.25  # of a value in [0, 1]: the top of the variance colour scale
MAX_DIFFERENCE = 0.5  # of a mean ink difference: the top of the difference colour scale


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("demo", help="pictures from the trained models, per strategy")
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder")
    parser.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help=f"comma list of trained models ({', '.join(TRAINED_MODELS)})"
    )
    parser.add_argument("--checkpoint", default=None, help="trained-model file (with exactly one of --models)")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES), help="comma list, or 'all'")
    parser.add_argument(
        "--classes", default="auto", help="one image per class name, cycled (auto: each model's default classes)"
    )
    parser.add_argument("--images", type=int, default=None, help="images per strategy (default: one per class)")
    parser.add_argument("--grid", type=int, default=16, help="tokens per side (trained on 16 and 24)")
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--law-samples",
        type=int,
        default=DEFAULT_LAW_SAMPLES,
        help="samples per preset on the digits law sheet (0: no law sheet; else >= 2 per class). LANTERN, PJD and"
        " ZipAR take ~4-5 s per 16x16 digit on one CPU core (PJD and ZipAR run their reference decoders)",
    )
    parser.add_argument(
        "--toy-model",
        default=DEFAULT_TOY,
        help=f"exact-oracle model ({', '.join(MODELS)}); on hash the table of the default strategies takes ~1.5 min"
        " of CPU, with --strategies all several minutes; hash-tiny takes seconds but is too small to show loss",
    )
    parser.add_argument("--no-exact", action="store_true", help="skip the exact-oracle table")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (0: torch's default); tiny models gain nothing from more"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)
    return parser


@dataclass(frozen=True)
class Panel:
    strategy: str
    decoded: tuple[Decoded, ...]  # the sample row
    image: Image.Image
    verdict: Calibration
    judged: int  # images the verdict was judged on

    @property
    def mean_passes(self) -> float:
        return sum(d.forward_passes for d in self.decoded) / len(self.decoded)


@dataclass(frozen=True)
class Law:
    """Per-class pixel statistics of one preset's samples: [C, H, W] grey values in [0, 1]."""

    strategy: str
    mean: torch.Tensor
    variance: torch.Tensor
    counts: torch.Tensor  # [C] samples per class
    mean_passes: float


def strategy_names(text: str) -> list[str]:
    names = real_model_presets() if text == "all" else [n for n in text.split(",") if n]
    # Verify every name is a preset
    unknown = [n for n in names if n not in PRESETS]
    if unknown or not names:
        raise InvalidParameterError(f"unknown strategies {unknown or text!r}; presets: {', '.join(PRESETS)}")
    return names


def model_names(text: str, checkpoint: str | None) -> list[str]:
    names = [n for n in text.split(",") if n]
    # Verify every name is a committed model and a --checkpoint has one model to replace
    unknown = [n for n in names if n not in TRAINED_MODELS]
    if unknown or not names:
        raise InvalidParameterError(f"unknown models {unknown or text!r}; trained models: {', '.join(TRAINED_MODELS)}")
    if checkpoint is not None and len(names) != 1:
        raise InvalidParameterError(f"--checkpoint replaces one model; --models names {len(names)}: {text!r}")
    return names


def class_ids(text: str, class_names: Sequence[str], images: int) -> list[int]:
    names = [n for n in text.split(",") if n]
    # Verify the classes exist and there is at least one image
    unknown = [n for n in names if n not in class_names]
    if unknown or not names:
        raise InvalidParameterError(f"unknown classes {unknown or text!r}; the model knows {', '.join(class_names)}")
    if images < 1:
        raise InvalidParameterError(f"--images must be >= 1, got {images!r}")
    return [class_names.index(names[i % len(names)]) for i in range(images)]


def default_classes(model: str, class_names: Sequence[str]) -> tuple[str, ...]:
    return MODEL_CLASSES.get(model, tuple(class_names))


def to_pixels(tokenizer: PatchTokenizer, decoded: Sequence[Decoded], grid: int) -> torch.Tensor:
    """[n, 4*grid, 4*grid, 3] (patch tokenizer) or [n, grid, grid, 3] (grey levels) pixels."""
    tokens = torch.tensor([list(d.tokens) for d in decoded], dtype=torch.long).reshape(-1, grid, grid)
    return tokenizer.decode(tokens)


def compute_class_laws(
    pixels: torch.Tensor, labels: Sequence[int], classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class mean and unbiased pixel-wise variance of [n, H, W] values: [C, H, W] each, and
    [C] counts. A class with fewer than 2 samples has variance NaN (and mean NaN with none)."""
    label = torch.tensor(list(labels), dtype=torch.long)
    values = pixels.to(torch.float64)
    counts = torch.bincount(label, minlength=classes).to(torch.float64)
    sums = torch.zeros((classes, *values.shape[1:]), dtype=torch.float64).index_add_(0, label, values)
    mean = sums / counts[:, None, None]
    squares = torch.zeros_like(sums).index_add_(0, label, (values - mean[label]) ** 2)
    variance = squares / (counts - 1)[:, None, None]
    return mean, variance, counts


def compute_law_distance(law: Law, ar: Law) -> tuple[float, float]:
    """RMS over pixels and classes of (mean - AR mean), and what it is expected to be when both
    sample the same law: sqrt(mean over pixels of var / n + var_AR / n_AR)."""
    difference = (law.mean - ar.mean) ** 2
    noise = law.variance / law.counts[:, None, None] + ar.variance / ar.counts[:, None, None]
    return math.sqrt(float(difference.mean())), math.sqrt(float(noise.mean()))


def tile(image: torch.Tensor, side: int) -> Image.Image:
    """[H, W, 3] values in [0, 1] -> a PIL tile upscaled (nearest) by round(side / W)."""
    scale = max(1, round(side / image.shape[1]))
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(array).resize((image.shape[1] * scale, image.shape[0] * scale), Image.Resampling.NEAREST)


def render_rows(rows: Sequence[torch.Tensor], caption: str, side: int = TILE) -> Image.Image:
    """Rows of [n, H, W, 3] images (each row one line of tiles) under a caption band."""
    tiles = [[tile(image, side) for image in row] for row in rows]
    w, h = tiles[0][0].size
    lines = caption.split("\n")
    band = LINE * len(lines) + 4
    width = max(len(r) for r in tiles) * (w + MARGIN) + MARGIN
    panel = Image.new("RGB", (width, band + len(tiles) * (h + MARGIN) + MARGIN), "white")
    for r, row in enumerate(tiles):
        for c, t in enumerate(row):
            panel.paste(t, (MARGIN + c * (w + MARGIN), band + MARGIN + r * (h + MARGIN)))
    draw = ImageDraw.Draw(panel)
    for i, text in enumerate(lines):
        draw.text((MARGIN, 2 + LINE * i), text, fill="black")
    return panel


def stack(panels: Sequence[Image.Image], per_row: int = 1, header: str = "") -> Image.Image:
    """Panels in a grid, `per_row` wide, under an optional header line."""
    width = max(p.width for p in panels)
    height = max(p.height for p in panels)
    rows = -(-len(panels) // per_row)
    band = LINE * len(header.split("\n")) + 6 if header else 0
    sheet = Image.new("RGB", (min(len(panels), per_row) * width, band + rows * height), "white")
    for i, p in enumerate(panels):
        sheet.paste(p, ((i % per_row) * width, band + (i // per_row) * height))
    draw = ImageDraw.Draw(sheet)
    for i, text in enumerate(header.split("\n") if header else []):
        draw.text((MARGIN, 3 + LINE * i), text, fill="black")
    return sheet


def describe_verdict(verdict: Calibration, judged: int) -> str:
    word = "pass" if verdict.passed else "FAIL"
    shown = format_p_value(verdict.smallest.p_value, 2)
    return f"calibration {word} (p{'' if shown.startswith('<') else '='}{shown}, {judged} images)"


def caption_of(name: str, decoded: Sequence[Decoded], cells: int, verdict: str = "") -> str:
    mean = sum(d.forward_passes for d in decoded) / len(decoded)
    claim = "lossless" if PRESETS[name].lossless else "lossy"
    claim += ", row-entry proxy" if name in ROW_ENTRY_PRESETS else ""
    second = f"{mean:.1f} forward passes ({cells / mean:.2f}x fewer)"
    return f"{name} ({claim})\n{second}" + (f", {verdict}" if verdict else "")


def heat(values: torch.Tensor, top: float) -> torch.Tensor:
    """[H, W] values in [0, top] -> [H, W, 3]: white (0) to dark red (top); NaN grey."""
    v = (values / top).clamp(0, 1).nan_to_num(0.5).to(torch.float32)
    return torch.stack([1 - 0.45 * v, 1 - v, 1 - v], dim=-1)


def diverging(values: torch.Tensor, top: float) -> torch.Tensor:
    """[H, W] values in [-top, top] -> [H, W, 3]: blue (< 0), white (0), red (> 0)."""
    v = (values / top).clamp(-1, 1).nan_to_num(0.0).to(torch.float32)
    red, blue = v.clamp(min=0), (-v).clamp(min=0)
    return torch.stack([1 - blue, 1 - red - blue, 1 - red], dim=-1)


def grey(values: torch.Tensor) -> torch.Tensor:
    return values.nan_to_num(0.5).to(torch.float32)[..., None].expand(*values.shape, 3)


def law_panel(law: Law, ar: Law, ar_halves: tuple[Law, Law] | None, verdict: str) -> Image.Image:
    """Three rows of one tile per class: mean, variance, mean ink minus AR's (for AR itself:
    its first half minus its second half, what sampling noise alone looks like)."""
    if law is ar and ar_halves is not None:
        first, second = ar_halves
        difference, label = second.mean - first.mean, "its first half - second half (noise alone)"
    else:
        difference, label = ar.mean - law.mean, "mean ink - AR's"
    rms, noise = compute_law_distance(law, ar) if law is not ar else (0.0, 0.0)
    distance = f"RMS(mean - AR) {rms:.3f}, sampling noise alone {noise:.3f}" if law is not ar else "the reference"
    rows = [
        torch.stack([grey(m) for m in law.mean]),
        torch.stack([heat(v, MAX_VARIANCE) for v in law.variance]),
        torch.stack([diverging(d, MAX_DIFFERENCE) for d in difference]),
    ]
    n = int(law.counts.sum())
    caption = (
        f"{law.strategy} ({'lossless' if PRESETS[law.strategy].lossless else 'lossy'}), {n} samples, "
        f"{law.mean_passes:.1f} passes\n{distance}\n{verdict}; rows: mean, variance, {label}"
    )
    return render_rows(rows, caption, LAW_TILE)


def exact_table(names: Sequence[str], toy: str) -> list[ExactVerdict]:
    case = build_model(toy)
    problem = Problem(case.model, case.condition, case.layout, Sampling())
    verdicts = []
    console = stderr_console()
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("exact oracle", total=len(names))
        for name in names:
            progress.update(task, description=f"exact oracle: {name} on {toy}")
            try:
                verdicts.append(check_exact(build_preset(name), problem, model_name=toy))
            except JacobiOracleError as error:  # e.g. a preset the exact engine cannot step
                console.print(f"exact check of {name} skipped: {error}")
            progress.advance(task)
    return verdicts


def toy_caption(toy: str, verdicts: Sequence[ExactVerdict]) -> str:
    """What the exact table is about; on a toy too small to show loss, says so."""
    if not verdicts:
        return "Exact oracle not run (--no-exact, or no preset could be stepped)."
    case = build_model(toy)
    vocab, layout = case.model.vocab_size, case.layout
    seconds = sum(v.seconds for v in verdicts)
    caption = (
        f"Exact oracle on toy model {toy!r} (V={vocab}, {layout.height}x{layout.width} grid, "
        f"{vocab**layout.num_cells} sequences), presets {', '.join(v.strategy for v in verdicts)}: {seconds:.0f} s."
    )
    if vocab <= SMALL_TOY[0] or layout.width <= SMALL_TOY[1]:
        caption += (
            " This toy is too small to show every lossy preset's loss (on hash-tiny gsd, pjd and zipar"
            " show TV ~ 0): `jacobi-oracle audit` runs every preset on 'hash' (V=3, 2x3)."
        )
    return caption


def pathwise_table(names: Sequence[str], toy: str, draws: int = PATHWISE_DRAWS) -> list[PathwiseVerdict]:
    """The presets the exact engine refused (fixed-noise decoders that read a Gumbel vector a
    third time), judged token for token against Gumbel AR on `draws` keyed noise draws."""
    case = build_model(toy)
    problem = Problem(case.model, case.condition, case.layout, Sampling())
    verdicts = []
    for name in names:
        try:
            verdicts.append(check_pathwise(build_preset(name), problem, draws, model_name=toy))
        except JacobiOracleError as error:
            stderr_console().print(f"pathwise check of {name} skipped: {error}")
    return verdicts


def pathwise_markdown(verdicts: Sequence[PathwiseVerdict]) -> str:
    lines = [
        "",
        "Refused by the exact engine, judged by the pathwise engine (token for token against Gumbel AR"
        " under the same keyed noise, spec/gumbel_jacobi.md):",
        "",
        "| strategy | claimed lossless | noise draws equal to Gumbel AR | mean passes | step compression |",
        "|---|---|---|---|---|",
    ]
    for v in verdicts:
        lines.append(
            f"| {v.strategy} | {PRESETS[v.strategy].lossless} | {v.samples - v.mismatches}/{v.samples} "
            f"| {v.mean_forward_passes:.3f} | {v.step_compression:.2f}x |"
        )
    return "\n".join(lines) + "\n" if verdicts else ""


def exact_markdown(verdicts: Sequence[ExactVerdict], caption: str) -> str:
    lines = [
        caption,
        "",
        "| strategy | claimed lossless | exact TV to AR | lossless | mean passes | step compression |",
        "|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        lines.append(
            f"| {v.strategy} | {PRESETS[v.strategy].lossless if v.strategy in PRESETS else '?'} "
            f"| {v.total_variation:.3g} | {v.lossless} | {v.mean_forward_passes:.3f} | {v.step_compression:.2f}x |"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ModelRun:
    """Everything `run` needs to decode one trained model."""

    name: str
    trained: TrainedModel
    out: Path
    grid: int
    sampling: Sampling
    seed: int
    row_conditions: list[int]
    law_conditions: list[int]  # empty: no law sheet

    @property
    def layout(self) -> Layout:
        return Layout(self.grid, self.grid)


def plan_model(name: str, args: argparse.Namespace) -> ModelRun:
    trained = load_named(name) if args.checkpoint is None else load_trained(args.checkpoint)
    classes = default_classes(name, trained.class_names) if args.classes == "auto" else args.classes.split(",")
    images = len(classes) if args.images is None else args.images
    row = class_ids(",".join(classes), trained.class_names, images)
    law: list[int] = []
    if name in LAW_SHEET_MODELS and args.law_samples:
        count = len(trained.class_names)
        # Verify every class gets at least two samples (a variance needs two)
        if args.law_samples < 2 * count:
            raise InvalidParameterError(f"--law-samples must be 0 or >= {2 * count} on {name}, got {args.law_samples}")
        law = [i % count for i in range(args.law_samples)]
    out = args.out if name == "trained" else args.out / name
    sampling = Sampling(temperature=args.temperature, cfg_scale=args.cfg)
    return ModelRun(name, trained, out, args.grid, sampling, args.seed, row, law)


def decode_preset(name: str, plan: ModelRun, conditions: list[int], advance: Callable[[int], None]) -> list[Decoded]:
    model = plan.trained.for_grid(plan.grid)
    target = RowEntryProxy(model) if name in ROW_ENTRY_PRESETS else model  # spec/row_entry.md
    return decode_images(name, target, plan.layout, plan.sampling, conditions, plan.seed, advance)


def judge(plan: ModelRun, conditions: list[int], decoded: Sequence[Decoded], family: int) -> Calibration:
    """Calibration of the decoded tokens under the plain model's target law."""
    model = plan.trained.for_grid(plan.grid)
    tables = calibration_counts(model, plan.layout, plan.sampling, conditions, decoded, plan.seed)
    return judge_calibration([int(v) for v in tables.surprise], [int(v) for v in tables.pit], family)


def law_of(name: str, plan: ModelRun, decoded: Sequence[Decoded], conditions: Sequence[int]) -> Law:
    pixels = to_pixels(plan.trained.tokenizer, decoded, plan.grid).mean(dim=-1)
    mean, variance, counts = compute_class_laws(pixels, conditions, len(plan.trained.class_names))
    passes = sum(d.forward_passes for d in decoded) / len(decoded)
    return Law(name, mean, variance, counts, passes)


def run_model(plan: ModelRun, names: Sequence[str], progress: Any) -> dict[str, Any]:
    """Sample sheet (and law sheet) of one model; its summary."""
    plan.out.mkdir(parents=True, exist_ok=True)
    shared = plan.law_conditions[: len(plan.row_conditions)] == plan.row_conditions
    per_preset = len(plan.law_conditions) + (0 if shared else len(plan.row_conditions))
    task = progress.add_task(f"{plan.name}", total=len(names) * per_preset)
    panels, laws, skipped = [], [], {}
    halves: tuple[Law, Law] | None = None
    advance = advancer(progress, task)
    for name in names:
        progress.update(task, description=f"{plan.name}: decoding {name}")
        try:
            law_set = decode_preset(name, plan, plan.law_conditions, advance) if plan.law_conditions else []
            row = law_set[: len(plan.row_conditions)] if shared else []
            row = row or decode_preset(name, plan, plan.row_conditions, advance)
        except JacobiOracleError as error:  # e.g. a mask that hides the slot a next-token model answers from
            skipped[name] = str(error)
            progress.console.print(f"{name} skipped on {plan.name}: {error}")
            continue
        judged, conditions = (law_set, plan.law_conditions) if law_set else (row, plan.row_conditions)
        verdict = judge(plan, conditions, judged, 3 * len(names))
        caption = caption_of(name, row, plan.layout.num_cells, describe_verdict(verdict, len(judged)))
        image = render_rows([to_pixels(plan.trained.tokenizer, row, plan.grid)], caption)
        image.save(plan.out / f"{name}.png")
        panels.append(Panel(name, tuple(row), image, verdict, len(judged)))
        if law_set:
            laws.append((law_of(name, plan, law_set, plan.law_conditions), verdict, len(law_set)))
        if law_set and name == "ar":
            half = len(law_set) // 2
            parts = (slice(0, half), slice(half, None))
            first, second = (law_of(name, plan, law_set[p], plan.law_conditions[p]) for p in parts)
            halves = (first, second)
    # Verify at least one strategy ran
    if not panels:
        raise InvalidParameterError(f"none of {list(names)} runs on {plan.name}: {skipped}")
    header = (
        f"{plan.name} model, {plan.grid}x{plan.grid} tokens, cfg {plan.sampling.cfg_scale}, "
        f"T {plan.sampling.temperature}: one row of samples per strategy (image i: class i, noise key i)"
    )
    stack([p.image for p in panels], header=header).save(plan.out / "demo.png")
    summary: dict[str, Any] = {
        "grid": plan.grid,
        "classes": [plan.trained.class_names[c] for c in plan.row_conditions],
        "sheet": str(plan.out / "demo.png"),
        "skipped": skipped,
        "strategies": [
            {
                "model": plan.name,
                "strategy": p.strategy,
                "mean_forward_passes": p.mean_passes,
                "png": str(plan.out / f"{p.strategy}.png"),
                "calibration_passed": p.verdict.passed,
                "calibration_p": p.verdict.smallest.p_value,
                "calibration_images": p.judged,
            }
            for p in panels
        ],
    }
    if laws:
        summary["law"] = write_law_sheet(plan, laws, halves)
    return summary


def write_law_sheet(
    plan: ModelRun, laws: Sequence[tuple[Law, Calibration, int]], halves: tuple[Law, Law] | None
) -> dict[str, Any]:
    """DIR/<model>/law.png: each preset's laws beside AR's (the first preset's when AR did not
    run); `halves`: AR's laws on the two halves of its samples."""
    ar = next((law for law, _, _ in laws if law.strategy == "ar"), laws[0][0])
    panels = [law_panel(law, ar, halves, describe_verdict(v, n)) for law, v, n in laws]
    per_class = len(plan.law_conditions) // len(plan.trained.class_names)
    header = (
        f"{plan.name} model, {plan.grid}x{plan.grid}: the law of each strategy's samples, {per_class} per class "
        f"(classes left to right {', '.join(plan.trained.class_names)}). Row 1: per-class mean image. Row 2: "
        f"pixel-wise variance (white 0 .. red {MAX_VARIANCE}).\nRow 3: mean ink minus AR's mean ink (red: more "
        f"ink than AR, blue: less, full colour at {MAX_DIFFERENCE}). A lossless decoder differs from AR by "
        "sampling noise only (compare AR's own two halves); a lossy one may differ where you can see it."
    )
    stack(panels, LAW_PANELS_PER_ROW, header).save(plan.out / "law.png")
    distances = {law.strategy: compute_law_distance(law, ar) for law, _, _ in laws if law is not ar}
    return {
        "png": str(plan.out / "law.png"),
        "samples_per_preset": len(plan.law_conditions),
        "reference": ar.strategy,
        "rms_mean_difference": {k: {"rms": d[0], "sampling_noise": d[1]} for k, d in distances.items()},
    }


def run(args: argparse.Namespace) -> int:
    names = strategy_names(args.strategies)
    models = model_names(args.models, args.checkpoint)
    # Verify the grid is one the model can place and the law sheet has samples to show
    if not 1 <= args.grid <= MAX_GRID:
        raise InvalidParameterError(f"--grid must be in 1..{MAX_GRID}, got {args.grid!r}")
    if args.law_samples < 0:
        raise InvalidParameterError(f"--law-samples must be >= 0, got {args.law_samples!r}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    plans = [plan_model(name, args) for name in models]
    args.out.mkdir(parents=True, exist_ok=True)
    console = stderr_console()
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        results = {plan.name: run_model(plan, names, progress) for plan in plans}
    verdicts = [] if args.no_exact else exact_table(names, args.toy_model)
    refused = [n for n in names if not args.no_exact and n not in {v.strategy for v in verdicts}]
    pathwise = pathwise_table(refused, args.toy_model)
    caption = toy_caption(args.toy_model, verdicts)
    (args.out / "exact.md").write_text(exact_markdown(verdicts, caption) + pathwise_markdown(pathwise))
    broken = [v.strategy for v in verdicts if PRESETS[v.strategy].lossless and not v.lossless]
    broken += [v.strategy for v in pathwise if PRESETS[v.strategy].lossless and not v.equal]
    miscalibrated = [
        f"{s['model']}:{s['strategy']}"
        for r in results.values()
        for s in r["strategies"]
        if PRESETS[s["strategy"]].lossless and not s["calibration_passed"]
    ]
    summary = {
        "out": str(args.out),
        "grid": args.grid,
        "models": results,
        "strategies": [s for r in results.values() for s in r["strategies"]],
        "calibration_alpha": FAMILY_ALPHA / (3 * len(names)),
        "exact": [v.to_json() for v in verdicts],
        "exact_caption": caption,
        "pathwise": [v.to_json() for v in pathwise],
        "claimed_lossless_but_not": broken,
        "claimed_lossless_but_miscalibrated": miscalibrated,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    if args.json:
        print_json(summary)
    else:
        print_tables(results, verdicts, caption, pathwise)
    return 1 if broken or miscalibrated else 0


def print_tables(
    results: dict[str, dict[str, Any]],
    verdicts: Sequence[ExactVerdict],
    caption: str,
    pathwise: Sequence[PathwiseVerdict],
) -> None:
    for model, result in results.items():
        rows = [
            (s["strategy"], PRESETS[s["strategy"]].lossless, s["mean_forward_passes"], s["calibration_passed"])
            for s in result["strategies"]
        ]
        title = f"{model} model, {result['grid']}x{result['grid']}: {result['sheet']}"
        print_table(title, ["strategy", "lossless", "passes", "calibration pass"], rows)
    if verdicts:
        print_table(
            caption,
            ["strategy", "claimed lossless", "total variation", "lossless", "mean passes"],
            [
                (v.strategy, PRESETS[v.strategy].lossless, v.total_variation, v.lossless, v.mean_forward_passes)
                for v in verdicts
            ],
        )
    if pathwise:
        print_table(
            "refused by the exact engine; pathwise against Gumbel AR",
            ["strategy", "claimed lossless", "draws", "equal", "mean passes"],
            [(v.strategy, PRESETS[v.strategy].lossless, v.samples, v.equal, v.mean_forward_passes) for v in pathwise],
        )


COMMAND = Command(add_parser)
