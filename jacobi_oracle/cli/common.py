"""Shared pieces of the subcommands: the command record, JSON / table output, progress."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

Subparsers = Any  # argparse's _SubParsersAction is private


@dataclass(frozen=True)
class Command:
    add_parser: Callable[[Subparsers], argparse.ArgumentParser]


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False, default=float))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(format_cell(v) for v in row))
    Console().print(table)


def format_cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def stderr_console() -> Console:
    """Progress and status lines go to stderr so that --json output stays parseable."""
    return Console(stderr=True)
