"""`jacobi-oracle precision`: how far bf16 / fp16 decoding moves the law (jacobi_oracle/experiments/precision.py)."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..experiments.precision import PrecisionConfig, markdown, run_precision
from .common import Command, Subparsers, print_json, stderr_console
from .options import add_llamagen_run_options, strategy_names


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "precision", help="judge low-precision accelerated decoders against the same weights in a wide dtype"
    )
    add_llamagen_run_options(parser)
    parser.add_argument("--dtype", default="bfloat16", help="the decoders' dtype")
    parser.add_argument("--judge-dtype", default="float64", help="the judging model's dtype (float32 on a GPU)")
    parser.add_argument("--images", type=int, default=50, help="images per strategy (>= 10)")
    parser.add_argument("--batch", type=int, default=10, help="images decoded together")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    config = PrecisionConfig(
        model=args.model,
        grid=args.grid,
        strategies=strategy_names(args.strategies),
        dtype=args.dtype,
        judge_dtype=args.judge_dtype,
        images=args.images,
        batch=args.batch,
        window=args.window,
        cfg_scale=args.cfg,
        top_k=args.top_k,
        seed=args.seed,
        device=args.device,
        checkpoint=args.checkpoint,
    )
    command = (
        "jacobi-oracle " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["precision"] else "jacobi-oracle precision"
    )
    with stderr_console().status("decoding") as status:
        report = run_precision(config, command, lambda name: status.update(f"decoding and judging {name}"))
    if args.json:
        print_json(report)
    else:
        print(markdown(report))
    return 0 if report["passed"] else 1


COMMAND = Command(add_parser)
