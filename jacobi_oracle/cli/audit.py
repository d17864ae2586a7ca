"""`jacobi-oracle audit [--model NAME] [--json] [--plot DIR]`: every preset, exact verdict and
step compression on one toy model (jacobi_oracle/oracle/audit.py). Exit 1 when a preset that
claims losslessness is not lossless, or a preset fails; timeouts are reported, not failed."""

from __future__ import annotations

import argparse

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..models.registry import build_model
from ..oracle.audit import (
    DEFAULT_MAP_RUNS,
    DEFAULT_TIME_LIMIT,
    Auditor,
    AuditRow,
    select_presets,
    write_plots,
)
from ..spec.errors import InvalidParameterError
from ..testing.assertions import describe_reuse
from .common import Command, Subparsers, print_json, print_table, stderr_console
from .options import add_problem_options, sampling_from_args, strategy_params


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("audit", help="exact verdict and step compression of every preset")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--plot", metavar="DIR", default=None, help="write PNGs: TV vs step compression, acceptance maps"
    )
    parser.add_argument("--presets", default=None, help="comma-separated preset names (default: every registered one)")
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT, help="seconds of exact work per preset")
    parser.add_argument("--runs", type=int, default=DEFAULT_MAP_RUNS, help="sampled runs per acceptance map (--plot)")
    parser.add_argument("--seed", type=int, default=0, help="KeyedRandomness seed of the acceptance-map runs")
    add_problem_options(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    # Verify the counts are positive
    if args.runs < 1:
        raise InvalidParameterError(f"--runs must be >= 1, got {args.runs}")
    if not args.time_limit > 0:
        raise InvalidParameterError(f"--time-limit must be > 0, got {args.time_limit}")
    case = build_model(args.model)
    if args.condition is not None:
        case = case._replace(condition=args.condition)
    sampling = sampling_from_args(args)
    presets = select_presets(
        None if args.presets is None else [n.strip() for n in args.presets.split(",") if n.strip()]
    )
    auditor = Auditor(case, sampling, args.time_limit)
    map_runs = args.runs if args.plot else 0
    rows: list[AuditRow] = []
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeElapsedColumn(), console=stderr_console(), transient=True) as progress:
        task = progress.add_task(f"auditing on {args.model}", total=len(presets))
        for preset in presets:
            progress.update(task, description=f"auditing {preset.name} on {args.model}")
            rows.append(auditor.audit(preset, strategy_params(args), map_runs, args.seed))
            progress.advance(task)
    plots = write_plots(rows, args.plot, args.model) if args.plot else []
    failed = any(r.claim_violated or r.status == "error" for r in rows)
    if args.json:
        print_json(
            {
                "model": args.model,
                "ar_forward_passes": case.layout.num_cells,
                "passed": not failed,
                "presets": [r.to_json() for r in rows],
                "plots": plots,
            }
        )
    else:
        print_rows(rows, args.model, case.layout.num_cells)
    return 1 if failed else 0


def print_rows(rows: list[AuditRow], model: str, ar_passes: int) -> None:
    table = [
        (
            r.strategy,
            r.sampling,
            "-" if r.total_variation is None else r.total_variation,
            r.engine,
            r.lossless,
            "-" if r.measured_lossless is None else r.measured_lossless,
            "-" if r.mean_forward_passes is None else r.mean_forward_passes,
            compression_cell(r),
            describe_reuse(r.reused_keys, shown=2) if r.engine == "exact" and r.measured_lossless is not None else "-",
            round(r.seconds, 1),
            r.status if not r.detail else f"{r.status}: {r.detail}",
        )
        for r in rows
    ]
    columns = [
        "strategy",
        "sampling",
        "total variation",
        "engine",
        "lossless (claim)",
        "lossless (measured)",
        "mean passes",
        "step compression",
        "keys read twice",
        "seconds",
        "status",
    ]
    print_table(
        f"audit on {model} (exact engine, pathwise where noise is reused; AR = {ar_passes} passes)", columns, table
    )


def compression_cell(row: AuditRow) -> object:
    """The exact step compression, else the sampled one marked as such."""
    if row.step_compression is not None:
        return row.step_compression
    if row.sampled_step_compression is not None:
        return f"~{row.sampled_step_compression:.3g} (sampled)"
    return "-"


COMMAND = Command(add_parser)
