"""`jacobi-oracle demo`: real pictures from the model trained here, one image grid per strategy
(captioned with its forward passes), side by side, plus the exact oracle's verdicts on a toy model.

    jacobi-oracle demo [--out DIR] [--strategies ar,sjd,...] [--images N] [--grid 16|24] [--json]

Writes DIR/<strategy>.png, DIR/demo.png (all strategies side by side), DIR/exact.md and
DIR/summary.json. Exit code 1 if a preset that claims losslessness fails the exact check.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from ..models.registry import MODELS, build_model
from ..models.tokenizer import PatchTokenizer
from ..models.trained import load_trained
from ..oracle.exact import ExactVerdict, check_exact
from ..oracle.realtable import DEFAULT_SEED, ROW_ENTRY_PRESETS, decode_images, real_model_presets
from ..reference.presets import PRESETS, build_preset
from ..spec.errors import InvalidParameterError, JacobiOracleError
from ..spec.layout import Layout
from ..spec.model import Problem
from ..spec.row_entry import RowEntryProxy
from ..spec.sampling import Sampling
from ..spec.strategy import Decoded
from .common import Command, Subparsers, print_json, print_table, stderr_console

DEFAULT_STRATEGIES = ("ar", "sjd", "sjd-sample-above", "sjdpp-exact", "lantern", "pjd", "zipar")
DEFAULT_CLASSES = ("chelsea", "hubble", "retina", "grass")
DEFAULT_TOY = "hash"  # V=3, 2x3: lossy presets show their real loss; default presets: 72-90 s CPU (2 busy cores)
SMALL_TOY = (2, 2)  # vocabulary size or grid width at or below which lossy presets can look lossless
SCALE = 2  # pixels are upscaled (nearest) for viewing
CAPTION = 30  # caption band height in pixels
MARGIN = 6
PANELS_PER_ROW = 4
MAX_GRID = 32


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("demo", help="pictures from the trained model, per strategy")
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder")
    parser.add_argument("--checkpoint", default=None, help="trained-model file (default: the committed one)")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES), help="comma list, or 'all'")
    parser.add_argument("--classes", default=",".join(DEFAULT_CLASSES), help="one image per class name, cycled")
    parser.add_argument("--images", type=int, default=4, help="images per strategy")
    parser.add_argument("--grid", type=int, default=16, help="tokens per side (trained on 16 and 24)")
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--toy-model",
        default=DEFAULT_TOY,
        help=f"exact-oracle model ({', '.join(MODELS)}); on hash the table of the default strategies takes ~1.5 min"
        " of CPU, with --strategies all several minutes; hash-tiny takes seconds but is too small to show loss",
    )
    parser.add_argument("--no-exact", action="store_true", help="skip the exact-oracle table")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)
    return parser


@dataclass(frozen=True)
class Panel:
    strategy: str
    decoded: tuple[Decoded, ...]
    image: Image.Image

    @property
    def mean_passes(self) -> float:
        return sum(d.forward_passes for d in self.decoded) / len(self.decoded)


def strategy_names(text: str) -> list[str]:
    names = real_model_presets() if text == "all" else [n for n in text.split(",") if n]
    # Verify every name is a preset
    unknown = [n for n in names if n not in PRESETS]
    if unknown or not names:
        raise InvalidParameterError(f"unknown strategies {unknown or text!r}; presets: {', '.join(PRESETS)}")
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


def to_pixels(tokenizer: PatchTokenizer, decoded: Sequence[Decoded], grid: int) -> torch.Tensor:
    """[n, 4*grid, 4*grid, 3] pixels of decoded token grids."""
    tokens = torch.tensor([list(d.tokens) for d in decoded], dtype=torch.long).reshape(-1, grid, grid)
    return tokenizer.decode(tokens)


def render_panel(pixels: torch.Tensor, caption: str, columns: int = 2) -> Image.Image:
    """Images tiled `columns` wide under a caption band."""
    n, height, width, _ = pixels.shape
    h, w = height * SCALE, width * SCALE
    rows = -(-n // columns)
    panel = Image.new("RGB", (columns * (w + MARGIN) + MARGIN, CAPTION + rows * (h + MARGIN) + MARGIN), "white")
    for i in range(n):
        array = (pixels[i].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        tile = Image.fromarray(array).resize((w, h), Image.Resampling.NEAREST)
        panel.paste(tile, (MARGIN + (i % columns) * (w + MARGIN), CAPTION + MARGIN + (i // columns) * (h + MARGIN)))
    draw = ImageDraw.Draw(panel)
    for line, text in enumerate(caption.split("\n")[:2]):
        draw.text((MARGIN, 2 + 13 * line), text, fill="black")
    return panel


def side_by_side(panels: Sequence[Image.Image]) -> Image.Image:
    width = max(p.width for p in panels)
    height = max(p.height for p in panels)
    rows = -(-len(panels) // PANELS_PER_ROW)
    sheet = Image.new("RGB", (min(len(panels), PANELS_PER_ROW) * width, rows * height), "white")
    for i, p in enumerate(panels):
        sheet.paste(p, ((i % PANELS_PER_ROW) * width, (i // PANELS_PER_ROW) * height))
    return sheet


def caption_of(name: str, decoded: Sequence[Decoded], cells: int) -> str:
    mean = sum(d.forward_passes for d in decoded) / len(decoded)
    claim = "lossless" if PRESETS[name].lossless else "lossy"
    claim += ", row-entry proxy" if name in ROW_ENTRY_PRESETS else ""
    return f"{name} ({claim})\n{mean:.1f} forward passes ({cells / mean:.2f}x fewer)"


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


def run(args: argparse.Namespace) -> int:
    names = strategy_names(args.strategies)
    # Verify the grid is one the model can place
    if not 1 <= args.grid <= MAX_GRID:
        raise InvalidParameterError(f"--grid must be in 1..{MAX_GRID}, got {args.grid!r}")
    trained = load_trained(args.checkpoint)
    conditions = class_ids(args.classes, trained.class_names, args.images)
    model = trained.for_grid(args.grid)
    layout = Layout(args.grid, args.grid)
    sampling = Sampling(temperature=args.temperature, cfg_scale=args.cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    panels = []
    skipped: dict[str, str] = {}
    console = stderr_console()
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("decoding", total=len(names) * len(conditions))
        for name in names:
            progress.update(task, description=f"decoding {name}")
            try:
                target = RowEntryProxy(model) if name in ROW_ENTRY_PRESETS else model  # spec/row_entry.md
                decoded = decode_images(
                    name, target, layout, sampling, conditions, args.seed, lambda k: progress.advance(task, k)
                )
            except JacobiOracleError as error:  # e.g. a mask that hides the slot a next-token model answers from
                skipped[name] = str(error)
                console.print(f"{name} skipped on the trained model: {error}")
                continue
            pixels = to_pixels(trained.tokenizer, decoded, args.grid)
            image = render_panel(pixels, caption_of(name, decoded, layout.num_cells))
            image.save(args.out / f"{name}.png")
            panels.append(Panel(name, tuple(decoded), image))
    # Verify at least one strategy ran
    if not panels:
        raise InvalidParameterError(f"none of {names} runs on the trained model: {skipped}")
    side_by_side([p.image for p in panels]).save(args.out / "demo.png")
    verdicts = [] if args.no_exact else exact_table(names, args.toy_model)
    caption = toy_caption(args.toy_model, verdicts)
    (args.out / "exact.md").write_text(exact_markdown(verdicts, caption))
    broken = [v.strategy for v in verdicts if PRESETS[v.strategy].lossless and not v.lossless]
    summary = {
        "out": str(args.out),
        "grid": args.grid,
        "classes": [trained.class_names[c] for c in conditions],
        "strategies": [
            {"strategy": p.strategy, "mean_forward_passes": p.mean_passes, "png": str(args.out / f"{p.strategy}.png")}
            for p in panels
        ],
        "skipped": skipped,
        "exact": [v.to_json() for v in verdicts],
        "exact_caption": caption,
        "claimed_lossless_but_not": broken,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    if args.json:
        print_json(summary)
    else:
        rows = [(p.strategy, PRESETS[p.strategy].lossless, p.mean_passes) for p in panels]
        print_table(
            f"trained model, {args.grid}x{args.grid}: {args.out / 'demo.png'}", ["strategy", "lossless", "passes"], rows
        )
        if verdicts:
            print_table(
                caption,
                ["strategy", "claimed lossless", "total variation", "lossless", "mean passes"],
                [
                    (v.strategy, PRESETS[v.strategy].lossless, v.total_variation, v.lossless, v.mean_forward_passes)
                    for v in verdicts
                ],
            )
    return 1 if broken else 0


COMMAND = Command(add_parser)
