"""Measure a trained LPD model: LPD in 20 passes against AR in 256 on the same model.

Quality proxy: the NLL (nats per token) of the produced tokens under a judge's raster AR law.
Judge: the AR model of the real-models issue (--judge, a models/trained.py file with the same
tokenizer), else the LPD model itself queried in raster order (one plain query per cell). With the
self-judge, AR samples are drawn from the judge's own law, so their NLL is the judge's entropy
rate; held-out real crops are reported beside them as a second reference point.

    python -m jacobi_oracle.experiments.lpd_eval [--checkpoint FILE] --images 12 --png grid.png --json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from jacobi_oracle.models.tokenizer import PatchTokenizer
from jacobi_oracle.models.transformer import TinyTransformer, pad_rows
from jacobi_oracle.reference.ar import AutoRegressive
from jacobi_oracle.reference.lpd import LPDDecoder, lpd
from jacobi_oracle.spec.errors import ShapeMismatchError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Model, Problem, forward_pass
from jacobi_oracle.spec.randomness import KeyedRandomness
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import SteppedDecoder

from .lpd_train import TrainConfig, build_lpd_model, load_grids

DEFAULT_LPD_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "lpd-photos.safetensors"


def load_lpd(path: Path) -> tuple[TinyTransformer, PatchTokenizer, TrainConfig]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    config = TrainConfig(**json.loads(meta["config"]))
    tokenizer = PatchTokenizer.from_tensors(tensors)
    model = build_lpd_model(config, tokenizer.vocab_size, int(meta["num_classes"]))
    model.load_state_dict({k.removeprefix("lpd."): v for k, v in tensors.items() if k.startswith("lpd.")})
    model.requires_grad_(False)
    return model, tokenizer, config


def order_nll(model: TinyTransformer, tokens: torch.Tensor, label: int, groups: list[list[int]]) -> float:
    """Teacher-forced NLL (nats / token) of one image under a group factorisation, one batch."""
    rows = []
    for i, group in enumerate(groups):
        context = torch.tensor([c for g in groups[:i] for c in g], dtype=torch.long)
        rows.append(((tokens[context], context), tuple(group)))
    batch = pad_rows([r[0] for r in rows], [r[1] for r in rows])
    with torch.no_grad():
        logits = model.forward_slots(torch.full((len(rows),), label), *batch.slot_inputs())  # [R, G, V]
    total = 0.0
    for r, (_, queries) in enumerate(rows):
        total += float(F.cross_entropy(logits[r, : len(queries)], tokens[list(queries)], reduction="sum"))
    return total / tokens.numel()


def judge_nll(judge: Model, tokens: torch.Tensor, label: int, grid: int) -> float:
    """NLL (nats / token) of one image under `judge`'s raster AR law: one forward pass whose
    query t sees the keys before t."""
    n = tokens.numel()
    positions = torch.arange(n)
    visible = positions[None, :] < positions[:, None]  # [Q, N]
    problem = Problem(judge, label, Layout(grid, grid), Sampling())
    with torch.no_grad():
        target_probs = forward_pass(problem, tokens, positions, positions, visible)  # [N, V]
    return float(-target_probs[positions, tokens].log().mean())


def decode_images(
    model: TinyTransformer, strategy: SteppedDecoder[Any], labels: list[int], grid: int, seed: int
) -> tuple[torch.Tensor, float, float]:
    """[n, grid*grid] tokens, mean forward passes, seconds per image."""
    out, passes = [], 0
    started = time.perf_counter()
    for i, label in enumerate(labels):
        problem = Problem(model, label, Layout(grid, grid), Sampling())
        decoded = strategy.decode_problem(problem, KeyedRandomness(seed, sample=i))
        out.append(torch.tensor(decoded.tokens))
        passes += decoded.forward_passes
    return torch.stack(out), passes / len(labels), (time.perf_counter() - started) / len(labels)


def evaluate(path: Path, images: int, seed: int, png: Path | None, judge_path: Path | None) -> dict[str, Any]:
    model, tokenizer, config = load_lpd(path)
    grid = config.grid
    judge: Model = model
    judge_name = "the LPD model itself in raster order"
    if judge_path is not None:
        from jacobi_oracle.models.trained import load_trained

        trained = load_trained(judge_path)
        judge, judge_name = trained.for_grid(grid), f"the AR model {judge_path}"
        if not torch.equal(trained.tokenizer.codebook, tokenizer.codebook):
            raise ShapeMismatchError(f"{judge_path} and {path} use different tokenizers: their NLLs do not compare")
    labels = [i % model.num_classes for i in range(images)]
    strategies: dict[str, SteppedDecoder[Any]] = {
        "ar (raster, 256 passes)": AutoRegressive(),
        "lpd (locality order, 20 passes)": lpd(steps=20),
        "lpd (random order, 20 passes)": lpd(steps=20, order="random"),
    }
    report: dict[str, Any] = {"checkpoint": str(path), "images": images, "judge": judge_name}
    decoded = {}
    for name, strategy in strategies.items():
        tokens, passes, seconds = decode_images(model, strategy, labels, grid, seed)
        nll = [judge_nll(judge, t, label, grid) for t, label in zip(tokens, labels, strict=True)]
        decoded[name] = tokens
        report[name] = {"forward_passes": passes, "seconds_per_image": seconds, "judge_nll": sum(nll) / len(nll)}
    heldout, heldout_labels = load_grids("heldout", images, seed, config.crop, tokenizer)
    locality = LPDDecoder(steps=20).compute_groups(Layout(grid, grid))
    report["heldout real crops"] = {
        "judge_nll": _mean(judge_nll(judge, t, int(c), grid) for t, c in zip(heldout, heldout_labels, strict=True)),
        "lpd_model_raster_nll": _mean(
            order_nll(model, t, int(c), [[x] for x in range(t.numel())])
            for t, c in zip(heldout, heldout_labels, strict=True)
        ),
        "lpd_20_factorisation_nll": _mean(
            order_nll(model, t, int(c), [list(g) for g in locality])
            for t, c in zip(heldout, heldout_labels, strict=True)
        ),
    }
    if png is not None:
        save_grid(png, tokenizer, [heldout[: len(labels)], *decoded.values()], grid)
    return report


def _mean(values: Any) -> float:
    items: list[float] = list(values)
    return sum(items) / len(items)


def save_grid(path: Path, tokenizer: PatchTokenizer, rows: list[torch.Tensor], grid: int) -> None:
    """One row of images per token batch (held-out, then each strategy), 2 px gaps."""
    from PIL import Image

    pixels = [tokenizer.decode(r.reshape(-1, grid, grid)) for r in rows]  # [n, H, W, 3]
    n, h, w, _ = pixels[0].shape
    canvas = torch.ones(len(rows) * (h + 2), n * (w + 2), 3)
    for r, batch in enumerate(pixels):
        for i in range(n):
            canvas[r * (h + 2) : r * (h + 2) + h, i * (w + 2) : i * (w + 2) + w] = batch[i]
    Image.fromarray((canvas.clamp(0, 1) * 255).round().to(torch.uint8).numpy()).resize(
        (canvas.shape[1] * 2, canvas.shape[0] * 2), Image.Resampling.NEAREST
    ).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_LPD_CHECKPOINT)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--judge", type=Path, default=None, help="a trained AR model file (models/trained.py)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = evaluate(args.checkpoint, args.images, args.seed, args.png, args.judge)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name, row in report.items():
        print(f"{name}: {row}")


if __name__ == "__main__":
    main()
