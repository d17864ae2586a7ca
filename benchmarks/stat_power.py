"""Detection of planted departures of exact TV on the toy cases (benchmarks/STATISTICAL_ORACLE.md,
"Planted departures"): how many samples, and so how many seconds, the sequential stat engine
needs to reject a law at total variation 0.005 / 0.01 / 0.02 from AR with probability >= 0.99.

    python benchmarks/stat_power.py --case 3x2x2 --runs 200 --out benchmarks/stat-power-3x2x2.json

Per direction (the worst-case `tilt`, and `towards` a mutant's exact law: a departure shaped like
a real bug) and TV: the looks of the sequential check (spec/statistical_oracle.md) are simulated on
multinomial sequence counts (`measure.simulate_detection`, the one-sample `sequence` and
`conditional[t]` tests at the family's per-test level of an SJD check: a lower bound on the whole
family's rate). Reported: the first look whose measured detection rate is >= 0.99, with its
95% Clopper-Pearson lower bound, and the seconds that look costs at the decoder sampling rate
measured here (SJD, `--workers`). `--decoder-runs K` also runs K real sequential checks of the
planted SJD decoder at the smallest TV whose predicted samples fit in `--seconds` (or at
`--decoder-tv`). `--accelerated`
takes SJD's accelerated twin as the base (sampled through decode_batch; no verifier tests, so a
smaller family):

    python benchmarks/stat_power.py --case 3x2x2 --accelerated --workers 2 --decoder-runs 3 \\
        --out benchmarks/stat-power-3x2x2-accelerated.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date

import numpy as np

from jacobi_oracle.accelerated import build_accelerated
from jacobi_oracle.cli.mutants import parse_case
from jacobi_oracle.mutants import get_mutant, mutant_problem
from jacobi_oracle.oracle.exact import exact_ar_law, exact_output_law
from jacobi_oracle.oracle.statistical import statistical_check
from jacobi_oracle.oracle.statistical.counts import sequence_index
from jacobi_oracle.oracle.statistical.measure import simulate_detection
from jacobi_oracle.oracle.statistical.planted import compute_tilt, compute_towards, plant, planted_law
from jacobi_oracle.oracle.statistical.sequential import compute_look_sizes, sequential_check
from jacobi_oracle.reference.presets import sjd
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.strategy import Strategy

TVS = (0.005, 0.01, 0.02)
TOWARDS = ("stale-q-after-reuse", "coupled-old-q")
RATE_SAMPLES = 2000
MOST_SAMPLES = 250 * 2**14  # the longest simulated check (4.1M samples)


def law_vector(law: dict[tuple[int, ...], float], vocab: int, cells: int) -> np.ndarray:
    out = np.zeros(vocab**cells)
    for sequence, weight in law.items():
        out[sequence_index(sequence, vocab)] += weight
    return out


def sampling_rate(base: Strategy, problem: Problem, workers: int, samples: int = RATE_SAMPLES) -> tuple[float, int]:
    """`base`'s samples per second on `problem` (a sequential check's whole cost per sample), and
    the size of its check's test family."""
    verdict = sequential_check(base, problem, 1e-6, samples, None, 7, workers, first=samples)
    family = len(statistical_check(base, problem, 250, 1e-6, 8).tests) - 1  # minus the support test
    return samples / verdict.seconds, family


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=parse_case, default=(3, 2, 2), help="hash model VxHxW")
    parser.add_argument("--runs", type=int, default=200, help="simulated checks per row")
    parser.add_argument("--alpha", type=float, default=1e-6)
    parser.add_argument("--seconds", type=float, default=300.0, help="the time budget the rows are judged by")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--decoder-runs", type=int, default=0, help="real sequential checks of a planted SJD")
    parser.add_argument(
        "--decoder-tv", type=float, default=None, help="their TV (default: the smallest whose predicted samples fit)"
    )
    parser.add_argument(
        "--rate-samples",
        type=int,
        default=None,
        help=f"samples the rate is measured on (default {RATE_SAMPLES}, x10 accelerated); with workers, "
        "enough that their start-up is a small part",
    )
    parser.add_argument(
        "--accelerated", action="store_true", help="SJD's accelerated twin (sampled in batches) as the base decoder"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    vocab, height, width = args.case
    cells = height * width
    problem = mutant_problem(vocab_size=vocab, height=height, width=width)
    law = law_vector(exact_ar_law(problem), vocab, cells)
    base: Strategy = build_accelerated("sjd", window=3) if args.accelerated else sjd(3)
    kind = "accelerated SJD" if args.accelerated else "SJD"
    # the rate and family of what is checked: the planted wrapper (at TV 0 it is the base decoder's
    # output law), which has no verifier trace, so only the token and calibration tests judge it
    unplanted = plant(base, law, compute_tilt(law, seed=0), 0.0, vocab, cells)
    rate_samples = args.rate_samples or (10 * RATE_SAMPLES if args.accelerated else RATE_SAMPLES)
    rate, family = sampling_rate(unplanted, problem, args.workers, rate_samples)
    print(f"case {vocab}x{height}x{width}: {kind} {rate:.0f} samples/s ({args.workers} workers), family {family}")
    directions = {"tilt": compute_tilt(law, seed=0)}
    for name in TOWARDS:
        mutant = get_mutant(name)
        mutant_law = exact_output_law(mutant.build(), mutant_problem(vocab_size=vocab, height=height, width=width)).law
        directions[f"towards {name}"] = compute_towards(law, law_vector(mutant_law, vocab, cells))
    looks = compute_look_sizes(MOST_SAMPLES)
    rows: list[dict[str, object]] = []
    print(
        "| direction | TV | samples (rate >= 0.99) | measured rate | 95% lower bound | seconds at SJD rate"
        " | in budget |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, direction in directions.items():
        for tv in TVS:
            started = time.perf_counter()
            alternative = planted_law(law, direction, tv)
            detection = simulate_detection(law, alternative, vocab, cells, looks, args.alpha, family, args.runs, seed=1)
            first = next((k for k in range(len(looks)) if detection.rate(k) >= 0.99), None)
            samples = looks[first] if first is not None else None
            seconds = samples / rate if samples is not None else None
            row = {
                "direction": label,
                "tv": tv,
                "samples": samples,
                "rate": detection.rate(first) if first is not None else detection.rate(),
                "lower95": detection.clopper_pearson_lower(first) if first is not None else None,
                "seconds": seconds,
                "in_budget": seconds is not None and seconds <= args.seconds,
                "simulation_seconds": time.perf_counter() - started,
            }
            rows.append(row)
            lower = f"{row['lower95']:.3f}" if row["lower95"] is not None else "-"
            print(
                f"| {label} | {tv} | {samples} | {row['rate']:.3f} | {lower} | "
                f"{'-' if seconds is None else f'{seconds:.0f}'} | {'yes' if row['in_budget'] else 'no'} |",
                flush=True,
            )
    decoder = []
    if args.decoder_runs:
        fitting = [
            tv for tv, r in zip(TVS * len(directions), rows, strict=True) if r["direction"] == "tilt" and r["in_budget"]
        ]
        tv = args.decoder_tv if args.decoder_tv is not None else min(fitting) if fitting else max(TVS)
        planted = plant(base, law, directions["tilt"], tv, vocab, cells)
        for seed in range(args.decoder_runs):
            verdict = sequential_check(planted, problem, args.alpha, None, args.seconds, 100 + seed, args.workers)
            last = verdict.looks[-1]
            decoder.append(
                {
                    "tv": tv,
                    "seed": 100 + seed,
                    "caught": not verdict.passed,
                    "samples": last.samples,
                    "seconds": verdict.seconds,
                    "test": last.worst_test,
                }
            )
            print(
                f"planted tilt TV {tv}, seed {100 + seed}: caught={not verdict.passed} after {last.samples} samples, "
                f"{verdict.seconds:.0f} s ({last.worst_test})",
                flush=True,
            )
    if args.out:
        meta = {
            "date": date.today().isoformat(),
            "cores": os.cpu_count(),
            "load": os.getloadavg()[0],
            "case": list(args.case),
            "alpha": args.alpha,
            "runs": args.runs,
            "samples_per_second": rate,
            "family": family,
            "workers": args.workers,
            "base": kind,
            "command": "python benchmarks/stat_power.py " + " ".join(sys.argv[1:]),
        }
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows, "decoder": decoder}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
