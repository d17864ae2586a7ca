"""Train the demo model: patch k-means tokenizer + a small class-conditional LlamaGen.

    python -m jacobi_oracle.train --out jacobi_oracle/assets/photos-llamagen.safetensors

Recipe (every draw seeded from --seed):
1. tokenizer: k-means codebook (--codebook entries of 4x4 RGB patches) fitted on
   --tokenizer-crops training crops of 64 px.
2. data: --crops-16 training crops of 64 px -> 16 x 16 grids and --crops-24 of 96 px -> 24 x 24
   grids (uniform positions in the training region of each photo, random horizontal flips;
   classes cycle), tokenized once.
3. model: LlamaGen (official architecture) of the given width / depth, trained by teacher
   forcing with CFG dropout (--cfg-dropout); steps alternate 16 x 16 and 24 x 24 batches of
   about the same token count; AdamW, linear warm-up then cosine decay.
4. report: held-out NLL per token (nats) on crops from the held-out columns.
Needs the `train` extra (scikit-image, scikit-learn ship the photos).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import Progress

from .data.photos import CLASS_NAMES, Split, sample_crops
from .models.llamagen import LlamaGen, llamagen_config
from .models.tokenizer import PatchTokenizer
from .models.trained import DEFAULT_CHECKPOINT, TrainedModel, regrid, save_trained

PATCH = 4


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jacobi_oracle.train", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--codebook", type=int, default=256, help="tokenizer codebook size = model vocabulary")
    p.add_argument("--tokenizer-crops", type=int, default=1200)
    p.add_argument("--crops-16", type=int, default=4000)
    p.add_argument("--crops-24", type=int, default=1500)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=240)
    p.add_argument("--batch-16", type=int, default=16, help="16x16 grids per step; 24x24 steps use 4/9 of it")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--cfg-dropout", type=float, default=0.1)
    p.add_argument("--heldout-crops", type=int, default=120)
    return p


def tokenized(
    tokenizer: PatchTokenizer, split: Split, size: int, count: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, L] token sequences (raster order) and [n] labels of `count` crops."""
    crops = sample_crops(split, size, count, seed)
    tokens = tokenizer.encode(torch.from_numpy(crops.images))
    return tokens.flatten(1), torch.from_numpy(crops.labels)


def learning_rate(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup:
        return float(args.lr * (step + 1) / args.warmup)
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return float(args.lr * 0.5 * (1 + math.cos(math.pi * progress)))


def nll_per_token(model: LlamaGen, tokens: torch.Tensor, labels: torch.Tensor, chunk: int = 32) -> float:
    """Mean teacher-forced NLL (nats per token) of [n, L] sequences."""
    total = 0.0
    with torch.no_grad():
        for i in range(0, tokens.shape[0], chunk):
            logits = model(tokens[i : i + chunk], labels[i : i + chunk])
            total += float(F.cross_entropy(logits.flatten(0, 1), tokens[i : i + chunk].flatten(), reduction="sum"))
    return total / tokens.numel()


def train(args: argparse.Namespace, command: str) -> TrainedModel:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.time()
    fit_crops = sample_crops("train", 64, args.tokenizer_crops, args.seed + 1)
    tokenizer = PatchTokenizer.fit(torch.from_numpy(fit_crops.images), args.codebook, args.seed, PATCH)
    data = {
        16: tokenized(tokenizer, "train", 64, args.crops_16, args.seed + 2),
        24: tokenized(tokenizer, "train", 96, args.crops_24, args.seed + 3),
    }
    config = llamagen_config(
        "small",
        dim=args.dim,
        n_layer=args.layers,
        n_head=args.heads,
        vocab_size=args.codebook,
        num_classes=len(CLASS_NAMES),
        grid_size=16,
        multiple_of=32,
    )
    models = {16: LlamaGen(config)}
    models[24] = regrid(models[16], 24)
    for p16, p24 in zip(models[16].parameters(), models[24].parameters(), strict=True):
        p24.data = p16.data  # one set of weights, two position tables
        p24.grad = None
    params = list(models[16].parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    generator = torch.Generator().manual_seed(args.seed + 4)
    batch = {16: args.batch_16, 24: max(1, args.batch_16 * 4 // 9)}
    log: list[float] = []
    with Progress(transient=False) as progress:
        bar = progress.add_task("training", total=args.steps)
        for step in range(args.steps):
            grid = 16 if step % 2 == 0 else 24
            tokens, labels = data[grid]
            pick = torch.randint(tokens.shape[0], (batch[grid],), generator=generator)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, args)
            logits = models[grid](tokens[pick], labels[pick], args.cfg_dropout, generator)
            loss = F.cross_entropy(logits.flatten(0, 1), tokens[pick].flatten())
            loss.backward()  # type: ignore[no-untyped-call]
            for p16, p24 in zip(models[16].parameters(), models[24].parameters(), strict=True):
                if p24.grad is not None:
                    p16.grad = p24.grad if p16.grad is None else p16.grad + p24.grad
                    p24.grad = None
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            log.append(loss.item())
            recent = sum(log[-20:]) / len(log[-20:])
            progress.update(bar, advance=1, description=f"training (loss {recent:.3f})")
            if not progress.console.is_terminal and step % 20 == 0:
                progress.console.print(f"step {step} loss {recent:.3f} {time.time() - started:.0f}s")
    model = models[16].eval().requires_grad_(False)
    heldout = {g: tokenized(tokenizer, "heldout", 4 * g, args.heldout_crops, args.seed + 5) for g in (16, 24)}
    nll = {g: nll_per_token(regrid(model, g), *heldout[g]) for g in (16, 24)}
    recipe = {k: v for k, v in vars(args).items() if k not in ("out", "threads")}
    metadata = {
        "command": command,
        "recipe": json.dumps(recipe),
        "heldout_nll": json.dumps({str(g): round(v, 4) for g, v in nll.items()}),
        "train_loss_last20": f"{sum(log[-20:]) / len(log[-20:]):.4f}",
        "train_seconds": f"{time.time() - started:.0f}",
    }
    return TrainedModel(model, tokenizer, CLASS_NAMES, metadata)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = shlex.join(["python", "-m", "jacobi_oracle.train", *argv])
    trained = train(args, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_trained(trained, args.out)
    print(json.dumps({"out": str(args.out), **trained.metadata}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
