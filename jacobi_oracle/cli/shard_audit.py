"""`jacobi-oracle shard-audit --strategy NAME [--model NAME] [--budget N] [--alpha A] [--seed S] [--json]`

The statistical lossless check with its samples sharded across processes:

    torchrun --nproc-per-node 4 -m jacobi_oracle.cli shard-audit --strategy sjd --budget 1000000

(gloo on CPU, nccl on GPU; across machines with torchrun's --nnodes / --rdzv-endpoint). Without
torchrun it runs in one process. Every rank reaches the same verdict; rank 0 prints it.
Exit 0 pass, 1 fail, 2 usage error."""

from __future__ import annotations

import argparse

from rich.progress import Progress

from ..oracle.distributed import distributed_check, init_from_environment
from ..oracle.statistical.check import StatisticalVerdict
from ..oracle.statistical.tests import format_p_value
from ..reference.presets import build_preset
from .common import Command, Subparsers, print_json, print_table, stderr_console
from .options import add_problem_options, problem_from_args, strategy_params

DEFAULT_BUDGET = 2000


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "shard-audit", help="statistical check sharded over torch.distributed ranks (launch with torchrun)"
    )
    parser.add_argument("--strategy", required=True, help="a preset name (see `strategies`)")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="samples in total, over all ranks")
    parser.add_argument("--alpha", type=float, default=1e-6, help="false-fail probability of the whole check")
    parser.add_argument("--seed", type=int, default=0, help="keyed-noise seed (sample i uses index i)")
    parser.add_argument("--counts", action="store_true", help="include the merged count tables in --json")
    parser.add_argument("--json", action="store_true", help="print one JSON object (rank 0)")
    add_problem_options(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    problem = problem_from_args(args)
    strategy = build_preset(args.strategy, **strategy_params(args))
    shard = init_from_environment()
    quiet = args.json or shard.rank != 0
    with Progress(console=stderr_console(), transient=True, disable=quiet) as bar:
        task = bar.add_task(f"rank 0 of {shard.world_size}: decoding its shard", total=None)
        verdict = distributed_check(
            strategy,
            problem,
            args.budget,
            args.alpha,
            args.seed,
            args.model,
            lambda done, total: bar.update(task, completed=done, total=total),
        )
    if shard.rank == 0:
        print_verdict(args, verdict, shard.world_size)
    return 0 if verdict.passed else 1


def print_verdict(args: argparse.Namespace, verdict: StatisticalVerdict, world_size: int) -> None:
    if args.json:
        out = verdict.to_json()
        out["world_size"] = world_size
        if args.counts and verdict.counts is not None:
            out["counts"] = verdict.counts.to_json()
        print_json(out)
        return
    rows = [(t.name, t.statistic, format_p_value(t.p_value), t.alpha, t.effect_size, t.passed) for t in verdict.tests]
    print_table(
        f"{verdict.strategy} on {verdict.model}: {verdict.budget} samples over {world_size} ranks",
        ["test", "statistic", "p-value", "alpha", "effect size", "passed"],
        rows,
    )
    print(
        f"{'PASS' if verdict.passed else 'FAIL'} at false-fail probability {verdict.alpha:g}; power: detects "
        f"w.p. >= 0.99 a per-cell TV >= {verdict.power:.3g}, "
        f"a surprise shift >= {verdict.power_surprise:.3g} nats/token"
    )


COMMAND = Command(add_parser)
