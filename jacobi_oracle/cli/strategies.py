"""`jacobi-oracle strategies`: list the built-in presets."""

from __future__ import annotations

import argparse

from ..reference.presets import PRESETS
from .common import Command, Subparsers, print_json, print_table


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("strategies", help="list the built-in presets")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    rows = [(p.name, p.lossless, p.greedy_only, p.summary) for p in PRESETS.values()]
    if args.json:
        print_json([{"strategy": n, "lossless": x, "greedy_only": g, "summary": s} for n, x, g, s in rows])
    else:
        print_table("built-in strategies", ["strategy", "lossless", "greedy only", "summary"], rows)
    return 0


COMMAND = Command(add_parser)
