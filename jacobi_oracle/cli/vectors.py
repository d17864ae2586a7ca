"""`jacobi-oracle vectors DIR [--check] [--json]`: write (or check) JSON test vectors for
implementations in other languages (spec/vectors.md). Exit 1 when --check finds differences."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.progress import Progress

from ..oracle.vectors import check_directory, check_vectors, generate_vectors, write_vectors
from .common import Command, Subparsers, print_json, print_table, stderr_console


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "vectors", help="write JSON test vectors for other implementations"
    )
    parser.add_argument("directory", type=Path, help="where the vector files go (created if missing)")
    parser.add_argument("--check", action="store_true", help="compare DIR's vectors with fresh ones instead of writing")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    check_directory(args.directory, must_exist=args.check)
    with Progress(console=stderr_console(), transient=True, disable=args.json) as bar:
        task = bar.add_task("decoding the vector runs", total=None)
        vectors = generate_vectors(lambda done, total: bar.update(task, completed=done, total=total))
    if args.check:
        differences = check_vectors(args.directory, vectors)
        return report_check(args, differences)
    paths = write_vectors(args.directory, vectors)
    if args.json:
        print_json({"directory": str(args.directory), "files": [str(p) for p in paths], "passed": True})
    else:
        print_table(f"test vectors in {args.directory}", ["file", "bytes"], [(p.name, p.stat().st_size) for p in paths])
    return 0


def report_check(args: argparse.Namespace, differences: dict[str, list[str]]) -> int:
    passed = not any(differences.values())
    if args.json:
        print_json({"directory": str(args.directory), "passed": passed, "differences": differences})
    else:
        rows = [(name, len(diff), "; ".join(diff[:3])) for name, diff in differences.items()]
        print_table(f"vectors in {args.directory} vs the reference", ["file", "differences", "first"], rows)
    return 0 if passed else 1


COMMAND = Command(add_parser)
