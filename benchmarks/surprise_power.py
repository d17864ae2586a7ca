"""Is the printed `power_surprise` right on a model too large to enumerate? Planted surprise
shifts of known size on transformer-16 (benchmarks/STATISTICAL_ORACLE.md, "power_surprise
against planted shifts"):

    python benchmarks/surprise_power.py --samples 4000 --runs 40 --out benchmarks/surprise-power-transformer-16.json

The planted decoder is AR sampling at temperature T (accelerated AR, a batch per call) judged as
a decoder of the temperature-1 problem. Its surprise shift, the mean over cells of
E_q[-log p_t(x_t)] - H(p_t) with q = the tempered conditional, is computed exactly per cell along
`--exact-sequences` tempered sequences (the tower rule: an unbiased mean with a small standard
error). For each side (T < 1: tokens likelier than AR draws them; T > 1: less likely), T is set by
bisection so that the shift equals the `power_surprise` the verdict itself prints at `--samples`
samples (the smallest shift it claims to detect w.p. >= 0.99); then `--runs` fixed checks with
fresh seeds count how often the surprise sub-test rejects. Controls: T = 1 (lossless: rejects
w.p. <= its alpha) and half the claimed shift (far below 0.99: the claim is not loose by 2x).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch
from scipy import stats

from jacobi_oracle.accelerated.jacobi import accelerated_ar
from jacobi_oracle.models.registry import build_model
from jacobi_oracle.oracle.statistical import statistical_check
from jacobi_oracle.oracle.statistical.counts import teacher_forced_probs_batch
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Model, Problem
from jacobi_oracle.spec.randomness import KeyedRandomness, Randomness
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Decoded

ALPHA = 1e-6


@dataclass(frozen=True)
class TemperedAR:
    """AR at `temperature` whatever the problem's sampling says: a planted surprise shift."""

    temperature: float
    name: str = "ar-tempered"

    def decode_batch(
        self,
        model: Model,
        conditions: list[int | None],
        layout: Layout,
        sampling: Sampling,
        randomness: list[Randomness],
    ) -> list[Decoded]:
        tempered = Sampling(self.temperature, sampling.top_k, sampling.top_p, sampling.cfg_scale)
        return accelerated_ar().decode_batch(model, conditions, layout, tempered, randomness)

    def decode(
        self, model: Model, condition: int | None, layout: Layout, sampling: Sampling, randomness: Randomness
    ) -> Decoded:
        return self.decode_batch(model, [condition], layout, sampling, [randomness])[0]


def exact_shift(problem: Problem, temperature: float, sequences: int) -> tuple[float, float]:
    """(mean, standard error) of the per-token surprise shift of AR at `temperature`."""
    noises: list[Randomness] = [KeyedRandomness(1 << 50, i) for i in range(sequences)]
    decoded = TemperedAR(temperature).decode_batch(
        problem.model, [problem.condition] * sequences, problem.layout, problem.sampling, noises
    )
    samples = [tuple(d.tokens) for d in decoded]
    tempered = Problem(problem.model, problem.condition, problem.layout, Sampling(temperature))
    p, q = teacher_forced_probs_batch(problem, samples), teacher_forced_probs_batch(tempered, samples)
    assert p is not None and q is not None
    log_p = torch.log(p)
    entropy = -(p * log_p).sum(dim=-1)
    per_sequence = ((q * -log_p).sum(dim=-1) - entropy).mean(dim=-1)  # [B]
    return float(per_sequence.mean()), float(per_sequence.std() / math.sqrt(sequences))


def surprise_result(problem: Problem, temperature: float, samples: int, seed: int) -> tuple[bool, float, float]:
    """One fixed check: (the surprise sub-test rejected, the printed power_surprise, its p-value)."""
    verdict = statistical_check(TemperedAR(temperature), problem, samples, ALPHA, seed)
    surprise = next(t for t in verdict.tests if t.name == "surprise")
    return not surprise.passed, verdict.power_surprise, surprise.p_value


def matched_temperature(problem: Problem, samples: int, side: float, sequences: int) -> dict[str, float]:
    """The temperature on `side` (-1: below 1, +1: above) whose exact shift equals the printed power."""
    low, high = (0.5, 1.0) if side < 0 else (1.0, 2.0)
    for _ in range(9):
        mid = (low + high) / 2
        shift, _ = exact_shift(problem, mid, sequences)
        _, claim, _ = surprise_result(problem, mid, samples, seed=10_000)
        farther = abs(shift) < claim  # too small a shift: move away from 1
        if side < 0:
            low, high = (low, mid) if farther else (mid, high)
        else:
            low, high = (mid, high) if farther else (low, mid)
    temperature = (low + high) / 2
    shift, error = exact_shift(problem, temperature, sequences)
    return {"temperature": temperature, "shift": shift, "shift_se": error}


def detection(problem: Problem, temperature: float, samples: int, runs: int) -> dict[str, Any]:
    rejected, claims = 0, []
    for seed in range(1, runs + 1):
        hit, claim, _ = surprise_result(problem, temperature, samples, seed)
        rejected += hit
        claims.append(claim)
    lower = float(stats.beta.ppf(0.05, rejected, runs - rejected + 1)) if rejected else 0.0
    upper = float(stats.beta.ppf(0.95, rejected + 1, runs - rejected)) if rejected < runs else 1.0
    return {
        "temperature": temperature,
        "runs": runs,
        "rejected": rejected,
        "rate": rejected / runs,
        "rate_90ci": [lower, upper],
        "printed_power_surprise_median": sorted(claims)[runs // 2],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--exact-sequences", type=int, default=20_000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    case = build_model("transformer-16")
    problem = Problem(case.model, case.condition, case.layout, Sampling())
    started = time.perf_counter()
    rows = []
    for side, name in ((-1.0, "sharper (T < 1)"), (1.0, "flatter (T > 1)")):
        matched = matched_temperature(problem, args.samples, side, args.exact_sequences)
        row = {"side": name, **matched, **detection(problem, matched["temperature"], args.samples, args.runs)}
        half = 1.0 + (matched["temperature"] - 1.0) / 2  # about half the shift (shift ~ linear in T - 1)
        half_shift, _ = exact_shift(problem, half, args.exact_sequences)
        row["half"] = {"shift": half_shift, **detection(problem, half, args.samples, args.runs // 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    null = detection(problem, 1.0, args.samples, args.runs // 4)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": f"cpu ({platform.machine()}, 1 thread)",
        "load_average": os.getloadavg(),
        "command": "python benchmarks/surprise_power.py " + " ".join(sys.argv[1:]),
        "samples": args.samples,
        "alpha": ALPHA,
        "rows": rows,
        "null_t1": null,
        "seconds": time.perf_counter() - started,
    }
    print(json.dumps(null))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
