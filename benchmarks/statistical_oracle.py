"""The mutant table of benchmarks/STATISTICAL_ORACLE.md: every catalogued mutant judged by both
engines on one hash-model case: its exact TV from the AR law (exact engine), and the stat
engine's sequential verdict within a time budget (samples and seconds it used).

    python benchmarks/statistical_oracle.py --seconds 300 --case 3x2x2 --out benchmarks/stat-mutants-3x2x2.json

Prints a markdown table; `--out` also keeps the JSON. A mutant of exact TV >= 0.005 that the
stat engine does not reject within the budget is reported as MISSED (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date

from jacobi_oracle.cli.mutants import parse_case
from jacobi_oracle.mutants import MUTANTS, get_mutant
from jacobi_oracle.mutants.runner import judge_strategy

TV_GOAL = 0.005  # issue 13: every departure of exact TV >= this is caught within the budget


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="stat engine time budget per mutant")
    parser.add_argument("--case", type=parse_case, default=(3, 2, 2), help="hash model VxHxW")
    parser.add_argument("--alpha", type=float, default=1e-6)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="mutant names (default: all)")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    mutants = [get_mutant(n) for n in args.only] if args.only else list(MUTANTS.values())
    rows = []
    print("| mutant | setting | exact TV | exact s | stat verdict | sub-test | p-value | samples | stat s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mutant in mutants:
        strategy, problem = mutant.build(), mutant.problem(*args.case)
        exact = judge_strategy(mutant.name, "mutant", strategy, problem, "exact")
        stat = judge_strategy(
            mutant.name, "mutant", strategy, problem, "stat", None, args.alpha, 0, args.seconds, args.workers
        )
        verdict = "caught" if stat.flagged else ("MISSED" if exact.effect >= TV_GOAL else "not caught")
        rows.append({"mutant": mutant.name, "exact": exact.to_json(), "stat": stat.to_json(), "verdict": verdict})
        print(
            f"| {mutant.name} | {stat.setting} | {exact.effect:.3g} | {exact.seconds:.1f} | {verdict} | "
            f"{stat.evidence} | {stat.p_value:.2g} | {stat.samples} | {stat.seconds:.1f} |",
            flush=True,
        )
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": os.getloadavg()[0],
        "case": list(args.case),
        "seconds_budget": args.seconds,
        "alpha": args.alpha,
        "finished": time.strftime("%H:%M:%S"),
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    missed = [r["mutant"] for r in rows if r["verdict"] == "MISSED"]
    print(f"{sum(r['verdict'] == 'caught' for r in rows)}/{len(rows)} caught; missed (TV >= {TV_GOAL}): {missed}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
