"""`jacobi-oracle bench`: time the accelerated decoders (logic in accelerated/bench.py)."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..accelerated.bench import BenchConfig, run_bench
from .common import Command, Subparsers, print_json, print_table, stderr_console


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("bench", help="benchmark accelerated decoders against AR")
    parser.add_argument(
        "--model", default="llamagen-tiny", help="llamagen-{tiny,small,B,L,XL,XXL,3B} (random weights), or trained"
    )
    parser.add_argument("--checkpoint", default=None, help="local official checkpoint (.pt / .safetensors)")
    parser.add_argument("--grid", type=int, default=4, help="grid side (16: 256 px, 24: 384 px)")
    parser.add_argument("--strategies", default="ar,sjd", help="comma-separated accelerated strategies")
    parser.add_argument("--window", type=int, default=16, help="Jacobi window (official SJD: 16)")
    parser.add_argument("--images", type=int, default=10, help="timed images per strategy (>= 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed images first")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--cfg", type=float, default=4.0, help="CFG scale (1 = off)")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", help="float32, float64, bfloat16, float16")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--reference-images", type=int, default=0, help="also time reference/ on N images")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    config = BenchConfig(
        model=args.model,
        grid=args.grid,
        strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
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
