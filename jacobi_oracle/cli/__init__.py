"""The `jacobi-oracle` command. Each subcommand lives in its own module and registers itself
with `add_parser(subparsers)` + `run(args) -> int`. Exit codes: 0 pass, 1 fail, 2 usage error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..spec.errors import JacobiOracleError
from . import (
    audit,
    bench,
    check,
    compression,
    demo,
    falsefail,
    mutants,
    precision,
    realtable,
    shard_audit,
    strategies,
    vectors,
)
from .common import Command

COMMANDS: list[Command] = [
    strategies.COMMAND,
    check.COMMAND,
    vectors.COMMAND,
    shard_audit.COMMAND,
    mutants.COMMAND,
    falsefail.COMMAND,
    audit.COMMAND,
    bench.COMMAND,
    precision.COMMAND,
    realtable.COMMAND,
    demo.COMMAND,
    compression.COMMAND,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jacobi-oracle", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits with 2 on a usage error
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the words given, for commands that record them
    try:
        code: int = args.run(args)
    except JacobiOracleError as error:
        print(f"jacobi-oracle: error: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
