"""The exact engine's reach (benchmarks/EXACT_ENGINE.md): seconds and merged states for SJD on
hash models of growing size, and a third-party decoder through the whole-run and the stepped
adapter, on one core.

    python benchmarks/exact_engine.py --limit 600 --out benchmarks/exact-engine.json

A case that has not finished after `--limit` seconds is stopped between two steps and reported
with the steps it finished and each step's frontier (merged states), so a slow case still says
how far it got and why (the frontier's growth is the engine's cost).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import torch

from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.oracle.exact import exact_output_law
from jacobi_oracle.reference.presets import sjd
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Strategy
from jacobi_oracle.testing import wrap_decoder, wrap_stepped_decoder

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "external_decoder"
SJD_CASES = ((3, 2, 3, 4), (4, 2, 3, 3), (3, 2, 4, 4), (3, 3, 3, 4))  # V, H, W, window


class OutOfTime(Exception):
    pass


def hash_problem(vocab: int, height: int, width: int) -> Problem:
    model = HashModel(vocab_size=vocab, num_positions=height * width, row_stride=width)
    return Problem(model, 0, Layout(height, width), Sampling())


def timed(strategy: Strategy, problem: Problem, limit: float) -> dict[str, Any]:
    """Seconds, states and the frontier after every step; stopped after `limit` seconds."""
    frontier: list[int] = []
    started = time.perf_counter()

    def progress(depth: int, size: int) -> None:
        frontier.append(size)
        print(f"  step {depth}: {size} states, {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        if time.perf_counter() - started > limit:
            raise OutOfTime

    try:
        law = exact_output_law(strategy, problem, progress)
    except OutOfTime:
        return {"finished": False, "seconds": round(time.perf_counter() - started, 1), "frontier": frontier}
    return {
        "finished": True,
        "seconds": round(law.seconds, 2),
        "states": law.states_explored,
        "model_calls": law.model_calls,
        "frontier": frontier,
    }


def external_decoders() -> dict[str, Callable[[], Strategy]]:
    sys.path.insert(0, str(EXAMPLE))
    import external_sjd  # type: ignore[import-not-found]  # the example is not a package: found through sys.path

    return {
        "whole-run (wrap_decoder)": lambda: wrap_decoder(external_sjd.speculative_jacobi),
        "stepped (wrap_stepped_decoder)": lambda: wrap_stepped_decoder(
            external_sjd.sjd_start, external_sjd.sjd_step, external_sjd.sjd_output
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=600.0, help="seconds per case before it is stopped")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--skip-sjd", action="store_true", help="only the adapter comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    for label, build in external_decoders().items():
        print(f"external SJD (window 3) on hash, {label}", file=sys.stderr)
        rows.append(
            {
                "case": "external-sjd V=3 2x3 window 3",
                "adapter": label,
                **timed(build(), hash_problem(3, 2, 3), args.limit),
            }
        )
    if not args.skip_sjd:
        for vocab, height, width, window in SJD_CASES:
            print(f"sjd V={vocab} {height}x{width} window {window}", file=sys.stderr)
            row = timed(sjd(window), hash_problem(vocab, height, width), args.limit)
            rows.append(
                {
                    "case": f"sjd V={vocab} {height}x{width} window {window}",
                    "sequences": vocab ** (height * width),
                    **row,
                }
            )
    record = {
        "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, torch {torch.__version__}, one thread",
        "load": os.getloadavg(),
        "command": "python benchmarks/exact_engine.py " + " ".join(sys.argv[1:]),
        "limit_s": args.limit,
        "rows": rows,
    }
    text = json.dumps(record, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
