"""Options shared by subcommands: the model, the sampling rule and strategy parameters."""

from __future__ import annotations

import argparse
from typing import Any

from ..models.registry import CLI_MODEL, MODELS, build_model
from ..spec.model import Problem
from ..spec.sampling import Sampling


def add_problem_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=CLI_MODEL, help=f"built-in model ({', '.join(MODELS)})")
    parser.add_argument("--condition", type=int, default=None, help="class id (default: the model's case)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale")
    parser.add_argument("--greedy", action="store_true", help="argmax sampling")
    parser.add_argument("--window", type=int, default=None, help="strategy window (preset default if omitted)")


def sampling_from_args(args: argparse.Namespace) -> Sampling:
    return Sampling(args.temperature, args.top_k, args.top_p, args.cfg, args.greedy)


def problem_from_args(args: argparse.Namespace) -> Problem:
    case = build_model(args.model)
    sampling = sampling_from_args(args)
    condition = case.condition if args.condition is None else args.condition
    return Problem(case.model, condition, case.layout, sampling)


def strategy_params(args: argparse.Namespace) -> dict[str, Any]:
    return {} if args.window is None else {"window": args.window}


def add_llamagen_run_options(parser: argparse.ArgumentParser) -> None:
    """Model, grid, strategies and sampling of the commands that run decoders on a LlamaGen
    (bench, precision)."""
    parser.add_argument(
        "--model", default="llamagen-tiny", help="llamagen-{tiny,small,B,L,XL,XXL,3B} (random weights), or trained"
    )
    parser.add_argument("--checkpoint", default=None, help="local official checkpoint (.pt / .safetensors)")
    parser.add_argument("--grid", type=int, default=4, help="grid side (16: 256 px, 24: 384 px)")
    parser.add_argument("--strategies", default="ar,sjd", help="comma-separated accelerated strategies")
    parser.add_argument("--window", type=int, default=16, help="Jacobi window (official SJD: 16)")
    parser.add_argument("--cfg", type=float, default=4.0, help="CFG scale (1 = off)")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def strategy_names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())
