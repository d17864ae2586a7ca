"""`jacobi-oracle falsefail [--seeds 200] [--alpha 0.01] [--budget 100] [--sequential [--workers W]] [--json]`:
how often does the statistical engine fail a lossless preset? Runs it over many seeds on the mutant
catalogue's tiny case and tests the failure count against Binomial(seeds, alpha). `--sequential`
runs the sequential check (looks up to --budget samples; a run fails when any look rejects)."""

from __future__ import annotations

import argparse

from ..accelerated import build_accelerated
from ..mutants import mutant_problem
from ..mutants.runner import lossless_presets
from ..oracle.statistical.falsefail import measure_false_fail_rate
from .check import sample_progress
from .common import Command, Subparsers, print_json, print_table


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("falsefail", help="measure the stat engine's false-fail rate")
    parser.add_argument("--seeds", type=int, default=200, help="runs (seed s checks preset s mod #presets)")
    parser.add_argument("--alpha", type=float, default=0.01, help="false-fail probability of each run")
    parser.add_argument("--budget", type=int, default=100, help="samples per run")
    parser.add_argument("--presets", nargs="*", default=None, help="lossless presets (default: all)")
    parser.add_argument("--sequential", action="store_true", help="sequential checks (looks up to --budget)")
    parser.add_argument("--workers", type=int, default=1, help="sampling processes per run (--sequential)")
    parser.add_argument(
        "--accelerated", action="store_true", help="judge the presets' accelerated twins (sampled in batches)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    presets = lossless_presets() if args.presets is None else args.presets
    build = build_accelerated if args.accelerated else None
    with sample_progress("false-fail runs") as advance:
        report = measure_false_fail_rate(
            mutant_problem(),
            presets,
            args.seeds,
            args.alpha,
            args.budget,
            advance,
            args.sequential,
            args.workers,
            build,
        )
    if args.json:
        print_json(report.to_json())
    else:
        print_table(
            f"false-fail rate over {report.runs} {'sequential ' if report.sequential else ''}runs "
            f"({'up to ' if report.sequential else ''}{report.budget} samples each)",
            ["failures", "rate", "alpha", "binomial p (two-sided)", "P(X >= failures)", "consistent"],
            [
                (
                    report.failures,
                    report.rate,
                    report.alpha,
                    report.p_value_two_sided,
                    report.p_value_excess,
                    report.consistent,
                )
            ],
        )
        for failed in report.failed_runs:
            print(f"  failed: {failed['preset']} seed {failed['seed']}: {', '.join(failed['failed_tests'])}")
    return 0 if report.consistent else 1


COMMAND = Command(add_parser)
