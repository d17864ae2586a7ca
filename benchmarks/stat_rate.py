"""The statistical engine's sampling rate: samples decoded and counted per second on one worker.

    python benchmarks/stat_rate.py --samples 32000 --json out.json

Each row is `count_samples` (oracle/statistical/counts.py) as a check runs it: decoding, the
token tables, the teacher-forced calibration and, for the speculative decoders, the verifier
records; one thread. Rows: accelerated sjd (window 3) and AR, and the reference sjd, on the toy
models. To compare two versions of the package side by side, run this file under each with
`PYTHONPATH=<the other checkout>` in one sitting (the JSON records which package was imported).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone

import torch

import jacobi_oracle
from jacobi_oracle.accelerated import build_accelerated
from jacobi_oracle.models.registry import build_model
from jacobi_oracle.oracle.statistical.counts import count_samples
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Strategy

MODELS = ("hash", "markov", "transformer-16")


def rows(samples: int, reference_samples: int) -> list[tuple[str, str, Strategy, int]]:
    out: list[tuple[str, str, Strategy, int]] = []
    for model in MODELS:
        out.append((model, "accelerated sjd, window 3", build_accelerated("sjd", window=3), samples))
        out.append((model, "accelerated ar", build_accelerated("ar"), samples))
        out.append((model, "reference sjd, window 3", build_preset("sjd", window=3), reference_samples))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32000, help="samples per accelerated row")
    parser.add_argument("--reference-samples", type=int, default=4000, help="samples per reference row")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for model, label, strategy, n in rows(args.samples, args.reference_samples):
        case = build_model(model)
        problem = Problem(case.model, case.condition, case.layout, Sampling())
        started = time.perf_counter()
        count_samples(strategy, problem, range(n))
        seconds = time.perf_counter() - started
        results.append({"model": model, "decoder": label, "samples": n, "seconds": round(seconds, 2)})
        results[-1]["samples_per_second"] = round(n / seconds)
        print(f"{model:15s} {label:28s} {n / seconds:9.0f} samples/s", file=sys.stderr, flush=True)
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, torch {torch.__version__}, one thread",
        "load": os.getloadavg(),
        "package": os.path.dirname(jacobi_oracle.__file__),
        "command": "python benchmarks/stat_rate.py " + " ".join(sys.argv[1:]),
        "rows": results,
    }
    text = json.dumps(record, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
