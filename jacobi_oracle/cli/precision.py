"""`jacobi-oracle precision`: how far bf16 / fp16 decoding moves the law (accelerated/precision.py)."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..accelerated.precision import PrecisionConfig, markdown, run_precision
from .common import Command, Subparsers, print_json, stderr_console


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "precision", help="judge low-precision accelerated decoders against the same weights in a wide dtype"
    )
    parser.add_argument("--model", default="llamagen-tiny", help="llamagen-{tiny,small,B,L,XL,XXL,3B}, or trained")
    parser.add_argument("--checkpoint", default=None, help="local official checkpoint (.pt / .safetensors)")
    parser.add_argument("--grid", type=int, default=4)
    parser.add_argument("--strategies", default="ar,sjd", help="comma-separated accelerated strategies")
    parser.add_argument("--dtype", default="bfloat16", help="the decoders' dtype")
    parser.add_argument("--judge-dtype", default="float64", help="the judging model's dtype (float32 on a GPU)")
    parser.add_argument("--images", type=int, default=50, help="images per strategy (>= 10)")
    parser.add_argument("--batch", type=int, default=10, help="images decoded together")
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--cfg", type=float, default=4.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    config = PrecisionConfig(
        model=args.model,
        grid=args.grid,
        strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
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
