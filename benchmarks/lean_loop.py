"""Accelerated AR against a lean static-cache loop on the same weights, and against HF `generate`.

    python benchmarks/lean_loop.py --lean-dir ../shared/bench --grid 16 --images 8 --json out.json

The lean loop (`lean_ar.py`, a measuring stick outside this project: pass its folder) is a
minimal gpt-fast-style sampler over a jacobi_oracle LlamaGen's weights; it does not follow the
keyed-noise contract, so only its time is compared. Every implementation decodes the same number
of images, interleaved (image i of each before image i + 1 of any), one CPU thread, so load
changes hit all rows alike; the table reports the median ms per step and its ratio to the lean
loop's, and the median over rounds of each row's time over the AR step of the same round
(steadier where the machine's speed drifts). Rows: the lean loop; accelerated AR
(`decode_batch`, batch 1); transformers' Llama `generate` of the same size
(jacobi_oracle/experiments/bench.py: `hf_peer_model`, batch 2 for the CFG cost); one window-16
pass of accelerated SJD and of gumbel-jacobi (ms per pass, their ratio to an AR step).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from jacobi_oracle.accelerated import build_accelerated
from jacobi_oracle.experiments.bench import hf_generate, hf_peer_model
from jacobi_oracle.models.trained import load_trained
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.randomness import KeyedRandomness
from jacobi_oracle.spec.sampling import Sampling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lean-dir", type=Path, required=True, help="folder holding lean_ar.py")
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(args.lean_dir))
    from lean_ar import LeanAR  # the measuring stick

    torch.set_num_threads(1)
    grid, cells = args.grid, args.grid * args.grid
    model = load_trained().for_grid(grid).eval().requires_grad_(False)
    layout, sampling = Layout(grid, grid), Sampling(cfg_scale=args.cfg)
    lean = LeanAR(model, cfg_scale=args.cfg)
    peer = hf_peer_model(model)
    prompt = torch.zeros(2, 1, dtype=torch.long)

    def decoder(name: str, window: int | None) -> Callable[[int], int]:
        built = build_accelerated(name) if window is None else build_accelerated(name, window=window)
        return lambda i: (
            built.decode(model, i % model.num_classes, layout, sampling, KeyedRandomness(0, i)).forward_passes
        )

    def lean_image(i: int) -> int:
        lean.generate(i % model.num_classes)
        return cells

    def hf_image(i: int) -> int:
        hf_generate(peer, prompt, cells)
        return cells

    rows: dict[str, Callable[[int], int]] = {
        "lean eager loop (same weights)": lean_image,
        "accelerated ar": decoder("ar", None),
        "hf generate (same size)": hf_image,
        "accelerated sjd, window-16 pass": decoder("sjd", 16),
        "accelerated gumbel-jacobi, window-16 pass": decoder("gumbel-jacobi", 16),
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for run in rows.values():  # warm-up
        run(10_000)
    for i in range(args.images):
        for name, run in rows.items():
            start = time.perf_counter()
            passes = run(i)
            times[name].append((time.perf_counter() - start) / passes)
    step = {name: statistics.median(values) for name, values in times.items()}
    lean_step, ar_step = step["lean eager loop (same weights)"], step["accelerated ar"]
    # this machine's speed drifts within seconds: a row's time over the AR step of the same round
    # (measured next to it) is steadier than the ratio of the two medians
    paired = {
        name: statistics.median(t / a for t, a in zip(values, times["accelerated ar"], strict=True))
        for name, values in times.items()
    }
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": f"cpu ({platform.machine()}, 1 thread)",
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "command": "python benchmarks/lean_loop.py " + " ".join(sys.argv[1:]),
        "rows": [
            {
                "implementation": n,
                "ms_per_step": 1e3 * s,
                "over_lean": s / lean_step,
                "over_ar_step": s / ar_step,
                "over_ar_step_paired": paired[n],
            }
            for n, s in step.items()
        ],
    }
    header = "| implementation | ms / step (pass) | / lean loop | / accelerated AR step | same round |"
    print(header + "\n|---|---|---|---|---|")
    for row in report["rows"]:
        cells_text = (
            f"{row['ms_per_step']:.3f} | {row['over_lean']:.2f} | {row['over_ar_step']:.2f} "
            f"| {row['over_ar_step_paired']:.2f}"
        )
        print(f"| {row['implementation']} | {cells_text} |")
    print(f"\n{report['date']}, {report['device']}, load {report['load_average']}, `{report['command']}`")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
