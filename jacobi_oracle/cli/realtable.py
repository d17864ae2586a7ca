"""`jacobi-oracle realtable`: every preset on a trained model: forward passes, step compression,
NLL and the calibration verdicts (jacobi_oracle/experiments/realtable.py; benchmarks/REAL_MODEL.md)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..experiments.realtable import DEFAULT_SAMPLING, DEFAULT_SEED, run_table
from ..models.trained import TRAINED_MODELS
from .common import Command, Subparsers


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "realtable", help="every preset on a trained model (markdown table)"
    )
    parser.add_argument("--model", default="trained", choices=sorted(TRAINED_MODELS), help="committed trained model")
    parser.add_argument("--checkpoint", default=None, help="trained-model file (default: the committed --model)")
    parser.add_argument("--grid", type=int, default=16, choices=[16, 24])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--strategies", default=None, help="comma-separated presets (default: all on real models)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--cfg", type=float, default=DEFAULT_SAMPLING.cfg_scale)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", type=Path, default=None, help="also write rows and tokens to this JSON file")
    parser.add_argument("--render", type=Path, nargs="+", default=None, help="print one table from --save files")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    return run_table(args, "jacobi-oracle " + shlex.join(args.argv))


COMMAND = Command(add_parser)
