"""`jacobi-oracle mutants [--engine exact|stat] [--budget N] [--json]`: run the mutant catalogue.
Exit 0 only when every mutant is caught and every lossless preset passes."""

from __future__ import annotations

import argparse

from ..mutants import MUTANTS, get_mutant
from ..mutants.runner import (
    DEFAULT_ALPHA,
    DEFAULT_BUDGET,
    ENGINES,
    Judgement,
    lossless_presets,
    preset_settings,
    run_catalogue,
)
from ..oracle.statistical.tests import format_p_value
from ..reference.presets import PRESETS
from ..spec.errors import InvalidParameterError
from .check import sample_progress
from .common import Command, Subparsers, print_json, print_table


def add_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser("mutants", help="run the catalogue of broken decoders")
    parser.add_argument("--engine", choices=ENGINES, default="exact")
    parser.add_argument(
        "--budget",
        type=int,
        default=None,
        help=f"most samples per run (stat engine; default {DEFAULT_BUDGET}, none with --seconds)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="time budget per run (stat engine, sequential)")
    parser.add_argument("--workers", type=int, default=1, help="sampling processes (stat engine, sequential)")
    parser.add_argument("--case", type=parse_case, default=None, help="hash model VxHxW (default 3x2x2)")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="false-fail probability (stat engine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="mutant names (default: all)")
    parser.add_argument("--presets", nargs="*", default=None, help="lossless presets to check (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)
    return parser


def parse_case(text: str) -> tuple[int, int, int]:
    """`VxHxW`, e.g. `3x2x3`: vocabulary, grid height, grid width of the hash model."""
    parts = text.lower().split("x")
    # Verify three positive integers
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"--case wants VxHxW with positive integers, e.g. 3x2x3; got {text!r}")
    vocab, height, width = (int(p) for p in parts)
    return vocab, height, width


def run(args: argparse.Namespace) -> int:
    mutants = [get_mutant(n) for n in args.only] if args.only is not None else list(MUTANTS.values())
    presets = lossless_presets() if args.presets is None else args.presets
    for name in presets:
        # Verify each preset exists and claims losslessness
        if name not in PRESETS or not PRESETS[name].lossless:
            raise InvalidParameterError(f"{name!r} is not a lossless preset; lossless: {', '.join(lossless_presets())}")
    results: list[Judgement] = []
    with sample_progress(f"mutants ({args.engine} engine)") as advance:

        def record(judgement: Judgement) -> None:
            results.append(judgement)
            advance(len(results), total)

        total = len(mutants) + len(presets) * len(preset_settings(args.engine))
        budget = args.budget if args.budget is not None or args.seconds is not None else DEFAULT_BUDGET
        run_catalogue(
            args.engine,
            mutants,
            presets,
            budget=budget,
            alpha=args.alpha,
            seed=args.seed,
            on_result=record,
            seconds=args.seconds,
            workers=args.workers,
            case=args.case,
        )
    caught = sum(j.ok for j in results if j.kind == "mutant")
    passed = sum(j.ok for j in results if j.kind == "preset")
    ok = all(j.ok for j in results)
    if args.json:
        print_json(
            {
                "engine": args.engine,
                "budget": budget if args.engine == "stat" else None,
                "seconds": args.seconds if args.engine == "stat" else None,
                "case": list(args.case) if args.case is not None else None,
                "alpha": args.alpha if args.engine == "stat" else None,
                "mutants": len(mutants),
                "caught": caught,
                "presets_checked": len(results) - len(mutants),
                "presets_passed": passed,
                "ok": ok,
                "results": [j.to_json() for j in results],
            }
        )
    else:
        print_results(args.engine, results)
        print(f"{caught}/{len(mutants)} mutants caught, {passed}/{len(results) - len(mutants)} preset runs passed")
    return 0 if ok else 1


def print_results(engine: str, results: list[Judgement]) -> None:
    rows = []
    for j in results:
        if j.kind == "mutant":
            verdict = "caught" if j.ok else "MISSED"
        else:
            verdict = "pass" if j.ok else "FALSE FAIL"
            verdict += f" (power: TV {j.power:.3g})" if j.power is not None and j.ok else ""
        p = format_p_value(j.p_value) if isinstance(j.p_value, float) else j.p_value
        rows.append((j.kind, j.name, j.setting, verdict, j.evidence, j.effect, p, j.samples, j.seconds))
    print_table(
        f"mutant catalogue ({engine} engine)",
        ["kind", "name", "setting", "verdict", "evidence", "effect size", "p-value", "samples", "seconds"],
        rows,
    )


COMMAND = Command(add_parser)
