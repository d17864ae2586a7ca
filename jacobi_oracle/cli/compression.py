"""`jacobi-oracle compression [--json] [--runs N] [--grid N]`: step compression by sampling.

Every registered preset (or `--presets a,b`) decodes `--runs` samples on a GRID x GRID
MarkovGrid with strong locality; prints mean / sd / min / max forward passes and the step
compression (AR passes / mean passes). Exit 0 when every preset ran, 1 when one failed."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..oracle.compression import GRID, RUNS, SHARPNESS, VOCAB, CompressionSetup, format_markdown, measure_compression
from ..reference.presets import PRESETS
from .common import Command, Subparsers, print_json, print_table, stderr_console


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("compression", help="step compression by sampling (16x16 toy)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--markdown", action="store_true", help="print the benchmarks/ markdown table")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"samples per preset (default {RUNS})")
    parser.add_argument("--grid", type=int, default=GRID, help=f"grid side (default {GRID})")
    parser.add_argument("--vocab", type=int, default=VOCAB, help=f"vocabulary (default {VOCAB})")
    parser.add_argument("--sharpness", type=float, default=SHARPNESS, help=f"locality strength (default {SHARPNESS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--presets", default=None, help="comma-separated preset names (default: all registered)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    presets = tuple(PRESETS) if args.presets is None else tuple(n for n in args.presets.split(",") if n)
    setup = CompressionSetup(args.grid, args.vocab, args.sharpness, args.runs, args.seed, presets)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeElapsedColumn(), console=stderr_console(), transient=True) as progress:
        task = progress.add_task("step compression", total=len(presets))

        def advance(name: str, done: int, total: int) -> None:
            progress.update(task, completed=done, description=f"sampling {name} x{args.runs}")

        rows = measure_compression(setup, advance)
        progress.update(task, completed=len(presets))
    failed = any(row.status != "ok" for row in rows)
    model = f"MarkovGrid {setup.grid}x{setup.grid}, V={setup.vocab}, sharpness={setup.sharpness}"
    if args.json:
        print_json(
            {
                "model": model,
                "runs": setup.runs,
                "seed": setup.seed,
                "ar_forward_passes": setup.grid * setup.grid,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "presets": [row.to_json() for row in rows],
            }
        )
    elif args.markdown:
        print(format_markdown(rows))
    else:
        print_table(
            f"step compression on {model}, {setup.runs} runs",
            ["strategy", "mean passes", "sd", "min", "max", "step compression", "status"],
            [
                (
                    r.strategy,
                    r.mean_forward_passes,
                    r.sd_forward_passes,
                    r.min_forward_passes,
                    r.max_forward_passes,
                    r.step_compression,
                    r.status if r.status == "ok" else r.error,
                )
                for r in rows
            ],
        )
    return 1 if failed else 0


COMMAND = Command(add_parser)
