"""`jacobi-oracle check --strategy NAME [--model NAME | --model trained|digits --grid G] [--exact | --engine stat
--budget N --alpha A | --engine pathwise --samples/--seeds N] [--json]`: is it lossless (or, pathwise, token for
token Gumbel AR under the same noise)?"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import Progress

from ..accelerated import build_accelerated
from ..models.trained import TRAINED_MODELS, load_named
from ..oracle.exact import check_exact
from ..oracle.pathwise import check_pathwise
from ..oracle.statistical import StatisticalVerdict, statistical_check
from ..oracle.statistical.sequential import sequential_check
from ..oracle.statistical.tests import format_p_value
from ..reference.presets import build_preset
from ..spec.errors import InvalidParameterError
from ..spec.layout import Layout
from ..spec.model import Problem
from ..spec.strategy import Strategy
from ..testing.assertions import describe_reuse
from .common import Command, Subparsers, print_json, print_table, stderr_console
from .options import add_problem_options, problem_from_args, sampling_from_args, strategy_params


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("check", help="judge one strategy against AR sampling")
    parser.add_argument("--strategy", required=True, help="a preset name (see `strategies`)")
    parser.add_argument("--exact", action="store_const", const="exact", dest="engine", help="exact engine")
    parser.add_argument("--engine", choices=["exact", "stat", "pathwise"], default="exact")
    parser.add_argument(
        "--samples", "--seeds", type=int, default=100, dest="samples", help="noise draws (pathwise engine)"
    )
    parser.add_argument(
        "--budget",
        type=int,
        default=None,
        help=f"most samples (stat engine; default {DEFAULT_BUDGET}, none with --seconds)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="time budget (stat engine, sequential)")
    parser.add_argument("--workers", type=int, default=1, help="sampling processes (stat engine)")
    parser.add_argument(
        "--fixed", action="store_true", help="one look of exactly --budget samples (stat engine; default: sequential)"
    )
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="false-fail probability (stat engine)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (stat and pathwise engines)")
    parser.add_argument(
        "--accelerated",
        action="store_true",
        help="judge the preset's accelerated twin (stat and pathwise engines; the stat engine samples it in batches)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_problem_options(parser)
    parser.add_argument("--grid", type=int, default=TRAINED_GRID, help="grid side for --model trained / digits")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    problem = trained_problem(args) if args.model in TRAINED_MODELS else problem_from_args(args)
    strategy = build_strategy(args)
    if args.engine == "stat":
        return run_statistical(args, strategy, problem)
    if args.engine == "pathwise":
        return run_pathwise(args, strategy, problem)
    verdict = check_exact(strategy, problem, model_name=args.model)
    if args.json:
        print_json(verdict.to_json())
    else:
        print_table(
            f"{verdict.strategy} on {verdict.model} (exact engine)",
            ["total variation", "max position deviation", "lossless", "mean passes", "keys read twice", "seconds"],
            [
                (
                    verdict.total_variation,
                    verdict.max_position_deviation,
                    verdict.lossless,
                    verdict.mean_forward_passes,
                    describe_reuse(verdict.reused_keys, shown=3),
                    verdict.seconds,
                )
            ],
        )
    return 0 if verdict.lossless else 1


DEFAULT_BUDGET = 2000
DEFAULT_ALPHA = 1e-6


def build_strategy(args: argparse.Namespace) -> Strategy:
    """The reference preset, or with --accelerated its accelerated twin (the program judged)."""
    if not args.accelerated:
        return build_preset(args.strategy, **strategy_params(args))
    # Verify the engine can run an accelerated decoder (it draws through keyed noise, not per event)
    if args.engine in (None, "exact"):
        raise InvalidParameterError(
            "--accelerated decoders draw from keyed noise streams the exact engine cannot branch on; "
            "use --engine stat or pathwise"
        )
    return build_accelerated(args.strategy, **strategy_params(args))


def run_statistical(args: argparse.Namespace, strategy: Strategy, problem: Problem) -> int:
    budget = args.budget if args.budget is not None or args.seconds is not None else DEFAULT_BUDGET
    with sample_progress(f"{args.strategy}: sampling") as advance:
        if args.fixed:
            # Verify a fixed-sample check has its sample count
            if args.seconds is not None:
                raise InvalidParameterError("--fixed runs exactly --budget samples; it takes no --seconds")
            verdict = statistical_check(strategy, problem, budget, args.alpha, args.seed, advance, args.model)
        else:
            verdict = sequential_check(
                strategy,
                problem,
                args.alpha,
                budget,
                args.seconds,
                args.seed,
                args.workers,
                progress=advance,
                model_name=args.model,
            )
    if args.json:
        print_json(verdict.to_json())
    else:
        print_statistical(verdict)
    return 0 if verdict.passed else 1


TRAINED_GRID = 8  # --model trained / digits (models/trained.py TRAINED_MODELS): pathwise and stat engines only


def trained_problem(args: argparse.Namespace) -> Problem:
    """The trained model on a --grid x --grid layout, class --condition (default 0)."""
    # Verify the engine can run a real model and the grid is usable
    if args.engine in (None, "exact"):
        raise InvalidParameterError(
            f"--model {args.model} is too large for the exact engine; use --engine pathwise or stat"
        )
    if args.grid < 1:
        raise InvalidParameterError(f"--grid must be >= 1, got {args.grid!r}")
    sampling = sampling_from_args(args)
    condition = 0 if args.condition is None else args.condition
    return Problem(load_named(args.model).for_grid(args.grid), condition, Layout(args.grid, args.grid), sampling)


def run_pathwise(args: argparse.Namespace, strategy: Strategy, problem: Problem) -> int:
    with sample_progress(f"{args.strategy}: decoding under fixed noise") as advance:
        verdict = check_pathwise(strategy, problem, args.samples, args.seed, args.model, advance)
    if args.json:
        print_json(verdict.to_json())
    else:
        example = verdict.counterexample
        print_table(
            f"{verdict.strategy} on {verdict.model} (pathwise engine: token for token vs Gumbel AR)",
            ["noise draws", "mismatches", "mean passes", "step compression", "first counterexample"],
            [
                (
                    verdict.samples,
                    verdict.mismatches,
                    verdict.mean_forward_passes,
                    verdict.step_compression,
                    "-" if example is None else example.describe(),
                )
            ],
        )
    return 0 if verdict.equal else 1


def print_statistical(verdict: StatisticalVerdict) -> None:
    """One row per sub-test, the power next to every pass."""
    rows = [
        (t.name, t.statistic, format_p_value(t.p_value), t.alpha, t.effect_size, "pass" if t.passed else "FAIL")
        for t in verdict.tests
    ]
    print_table(
        f"{verdict.strategy} on {verdict.model} (stat engine, {verdict.budget} samples, {verdict.seconds:.3g} s, "
        f"{len(verdict.looks) or 1} look(s), {verdict.reference} reference)",
        ["sub-test", "statistic", "p-value", "alpha", "effect size", "result"],
        rows,
    )
    status = "PASS" if verdict.passed else "FAIL"
    print(
        f"{status} at false-fail probability {verdict.alpha:.3g}; power: detects w.p. >= 0.99 a per-position TV >= "
        f"{verdict.power:.3g}, a pair TV >= {verdict.power_pair:.3g}, a surprise shift >= "
        f"{verdict.power_surprise:.3g} nats/token"
        + (f"; the whole law: TV >= {verdict.power_sequence:.3g}" if verdict.power_sequence is not None else "")
    )


@contextmanager
def sample_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, advanced by `(done, total)` callbacks."""
    with Progress(console=stderr_console(), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


COMMAND = Command(add_parser)
