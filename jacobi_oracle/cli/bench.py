"""`jacobi-oracle bench`: time the accelerated decoders (logic in jacobi_oracle/experiments/bench.py)."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..experiments.bench import BenchConfig, run_bench
from .common import Command, Subparsers, print_json, print_table, stderr_console
from .options import add_llamagen_run_options, strategy_names


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("bench", help="benchmark accelerated decoders against AR")
    add_llamagen_run_options(parser)
    parser.add_argument("--images", type=int, default=10, help="timed images per strategy (>= 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed images first")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", default="float32", help="float32, float64, bfloat16, float16")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--reference-images", type=int, default=0, help="also time reference/ on N images")
    parser.add_argument("--peer", default=None, help="hf: also time transformers' Llama generate of the same size")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the raster-window decoders' static-shape step, a CUDA graph on CUDA "
        "(first image: compilation, reported)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    config = BenchConfig(
        model=args.model,
        grid=args.grid,
        strategies=strategy_names(args.strategies),
        window=args.window,
        images=args.images,
        warmup=args.warmup,
        batch=args.batch,
        cfg_scale=args.cfg,
        top_k=args.top_k,
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
        checkpoint=args.checkpoint,
        threads=args.threads,
        reference_images=args.reference_images,
        peer=args.peer,
        compile=args.compile,
    )
    command = "jacobi-oracle " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "jacobi-oracle bench"
    console = stderr_console()
    with console.status("benchmarking") as status:
        report = run_bench(config, command, lambda name: status.update(f"benchmarking {name}"))
    if args.json:
        print_json(report)
        return 0
    columns = ["strategy", "passes", "compression", "latency s", "tokens/s", "speed-up vs AR"]
    rows = [
        (
            r["strategy"],
            r["forward_passes_mean"],
            r["step_compression"],
            r["latency_s_median"],
            r["tokens_per_s"],
            r["speedup_over_ar"],
        )
        for r in report["results"]
    ]
    print_table(f"{config.model} {config.grid}x{config.grid} on {report['device']}", columns, rows)
    ar = report["results"][0]
    print(
        f"AR step {ar['time_per_pass_s']:.3g} s = {ar['step_over_floor']:.3g}x its floor "
        f"(weights {ar['bandwidth_floor_s']:.3g} s at measured bandwidth, empty launch {ar['empty_launch_s']:.3g} s)"
    )
    return 0


COMMAND = Command(add_parser)
