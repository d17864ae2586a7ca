"""`jacobi-oracle check --strategy NAME [--model NAME] --exact [--json]`: is it lossless?"""

from __future__ import annotations

import argparse

from ..oracle.exact import check_exact
from ..reference.presets import build_preset
from .common import Command, Subparsers, print_json, print_table
from .options import add_problem_options, problem_from_args, strategy_params


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("check", help="judge one strategy against AR sampling")
    parser.add_argument("--strategy", required=True, help="a preset name (see `strategies`)")
    parser.add_argument("--exact", action="store_const", const="exact", dest="engine", help="exact engine")
    parser.add_argument("--engine", choices=["exact"], default="exact")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_problem_options(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    problem = problem_from_args(args)
    strategy = build_preset(args.strategy, **strategy_params(args))
    verdict = check_exact(strategy, problem, model_name=args.model)
    if args.json:
        print_json(verdict.to_json())
    else:
        print_table(
            f"{verdict.strategy} on {verdict.model} (exact engine)",
            ["total variation", "max position deviation", "lossless", "mean passes", "seconds"],
            [
                (
                    verdict.total_variation,
                    verdict.max_position_deviation,
                    verdict.lossless,
                    verdict.mean_forward_passes,
                    verdict.seconds,
                )
            ],
        )
    return 0 if verdict.lossless else 1


COMMAND = Command(add_parser)
