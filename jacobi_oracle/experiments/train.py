"""Train a demo model: a small class-conditional LlamaGen on the photographs or the digits.

    python -m jacobi_oracle.experiments.train                 # photos -> assets/photos-llamagen.safetensors
    python -m jacobi_oracle.experiments.train --data digits   # digits -> assets/digits-llamagen.safetensors

Recipe (every draw seeded from --seed; the defaults of the model / optimiser options depend on
--data, see DATA_DEFAULTS):
1. tokenizer and data (one corpus function per --data):
   * photos: k-means codebook (--codebook entries of 4x4 RGB patches) fitted on
     --tokenizer-crops training crops of 64 px; --crops-16 training crops of 64 px -> 16 x 16
     grids and --crops-24 of 96 px -> 24 x 24 grids (uniform positions in the training region of
     each photo, random horizontal flips; classes cycle); held-out: --heldout-crops crops per
     grid from the held-out columns.
   * digits: --codebook grey levels, one token per pixel; every training digit rendered at
     16 x 16 and at 24 x 24 (--copies per image, copies after the first translated by up to
     --max-shift cells); held-out: the 270 held-out digits at both grids (data/digits.py).
2. model: LlamaGen (official architecture) of the given width / depth, trained by teacher
   forcing with CFG dropout (--cfg-dropout); steps alternate 16 x 16 and 24 x 24 batches of
   about the same token count; AdamW, linear warm-up then cosine decay over --steps.
3. held-out NLL per token (nats): every --eval-every steps (0: only at the end), mean over the
   two grids; training stops early after --patience evaluations without an improvement of
   MIN_IMPROVEMENT, or after --max-minutes of CPU time (time.process_time: all threads of
   this process, so a busy machine does not shorten the run), and the best evaluated weights
   are kept. The curve (step, seconds, training loss, held-out NLL per grid) goes into the
   file's metadata.
Needs the `train` extra (scikit-image, scikit-learn ship the photos and the digits).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import Progress

from jacobi_oracle.data import digits, photos
from jacobi_oracle.models.llamagen import LlamaGen, llamagen_config
from jacobi_oracle.models.tokenizer import PatchTokenizer, grey_tokenizer
from jacobi_oracle.models.trained import (
    DEFAULT_CHECKPOINT,
    DIGITS_CHECKPOINT,
    TrainedModel,
    load_trained,
    regrid,
    save_trained,
)
from jacobi_oracle.spec.errors import InvalidParameterError

PATCH = 4
GRIDS = (16, 24)
MIN_IMPROVEMENT = 1e-3  # nats/token: a smaller held-out gain counts as no improvement
DATA_DEFAULTS: dict[str, dict[str, Any]] = {
    "photos": {
        "out": DEFAULT_CHECKPOINT,
        "codebook": 256,
        "dim": 64,
        "layers": 3,
        "heads": 4,
        "steps": 240,
        "lr": 3e-3,
        "warmup": 20,
        "eval_every": 0,
    },
    "digits": {
        "out": DIGITS_CHECKPOINT,
        "codebook": 16,
        "dim": 128,
        "layers": 4,
        "heads": 4,
        "steps": 1800,
        "lr": 2e-3,
        "warmup": 60,
        "eval_every": 150,
    },
}

NOT_RECIPE = frozenset({"out", "threads", "init"})  # options that do not change the weights
OTHER_DATA_OPTIONS = {  # options of the other corpus, left out of a file's recipe
    "photos": frozenset({"copies", "max_shift"}),
    "digits": frozenset({"tokenizer_crops", "crops_16", "crops_24", "heldout_crops"}),
}

Sequences = tuple[torch.Tensor, torch.Tensor]  # [n, L] token ids (raster order), [n] labels


@dataclass(frozen=True)
class Corpus:
    tokenizer: PatchTokenizer
    class_names: tuple[str, ...]
    train: dict[int, Sequences]  # grid side -> training sequences
    heldout: dict[int, Sequences]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jacobi_oracle.experiments.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(DATA_DEFAULTS), default="photos")
    p.add_argument("--out", type=Path, default=None, help="default: the committed file of --data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--codebook", type=int, default=None, help="vocabulary: k-means codes (photos) or grey levels")
    p.add_argument("--tokenizer-crops", type=int, default=1200, help="photos only")
    p.add_argument("--crops-16", type=int, default=4000, help="photos only")
    p.add_argument("--crops-24", type=int, default=1500, help="photos only")
    p.add_argument("--heldout-crops", type=int, default=120, help="photos only")
    p.add_argument("--copies", type=int, default=1, help="digits only: renderings per training digit")
    p.add_argument("--max-shift", type=int, default=0, help="digits only: translation of copies 2.., cells")
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-16", type=int, default=16, help="16x16 grids per step; 24x24 steps use 4/9 of it")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--cfg-dropout", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=None, help="steps between held-out evaluations (0: at the end)")
    p.add_argument("--patience", type=int, default=4, help="evaluations without improvement before stopping")
    p.add_argument("--init", type=Path, default=None, help="start from the weights of this trained-model file")
    p.add_argument(
        "--max-minutes", type=float, default=0.0, help="stop after this much CPU time of the process (0: no limit)"
    )
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for key, value in DATA_DEFAULTS[args.data].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def tokenized(tokenizer: PatchTokenizer, split: photos.Split, size: int, count: int, seed: int) -> Sequences:
    """[n, L] token sequences (raster order) and [n] labels of `count` photo crops."""
    crops = photos.sample_crops(split, size, count, seed)
    tokens = tokenizer.encode(torch.from_numpy(crops.images))
    return tokens.flatten(1), torch.from_numpy(crops.labels)


def photo_corpus(args: argparse.Namespace) -> Corpus:
    fit_crops = photos.sample_crops("train", 64, args.tokenizer_crops, args.seed + 1)
    tokenizer = PatchTokenizer.fit(torch.from_numpy(fit_crops.images), args.codebook, args.seed, PATCH)
    train = {
        16: tokenized(tokenizer, "train", 64, args.crops_16, args.seed + 2),
        24: tokenized(tokenizer, "train", 96, args.crops_24, args.seed + 3),
    }
    heldout = {g: tokenized(tokenizer, "heldout", PATCH * g, args.heldout_crops, args.seed + 5) for g in GRIDS}
    return Corpus(tokenizer, photos.CLASS_NAMES, train, heldout)


def digit_sequences(tokenizer: PatchTokenizer, split: photos.Split, grid: int, **augment: int) -> Sequences:
    """[n, grid * grid] token sequences and [n] labels of the digits of one split."""
    images = digits.digit_images(split, grid, **augment)
    return tokenizer.encode(torch.from_numpy(images.images)).flatten(1), torch.from_numpy(images.labels)


def digit_corpus(args: argparse.Namespace) -> Corpus:
    tokenizer = grey_tokenizer(args.codebook)
    augment = {"copies": args.copies, "max_shift": args.max_shift, "seed": args.seed + 2}
    train = {g: digit_sequences(tokenizer, "train", g, **augment) for g in GRIDS}
    heldout = {g: digit_sequences(tokenizer, "heldout", g) for g in GRIDS}
    return Corpus(tokenizer, digits.CLASS_NAMES, train, heldout)


CORPORA: dict[str, Callable[[argparse.Namespace], Corpus]] = {"photos": photo_corpus, "digits": digit_corpus}


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


def heldout_nll(models: dict[int, LlamaGen], corpus: Corpus) -> dict[int, float]:
    """Held-out NLL per grid, models in eval mode while measured."""
    for model in models.values():
        model.eval()
    nll = {g: nll_per_token(models[g], *corpus.heldout[g]) for g in GRIDS}
    for model in models.values():
        model.train()
    return nll


@dataclass
class EarlyStopping:
    """The held-out curve, the best weights so far, and whether `patience` evaluations have
    passed without an improvement of MIN_IMPROVEMENT in the mean held-out NLL."""

    patience: int
    curve: list[dict[str, float]] = field(default_factory=list)
    best_score: float = math.inf
    best_step: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    best_nll: dict[int, float] = field(default_factory=dict)
    since_best: int = 0
    stopped: str = "steps"  # why training ended: steps, patience or time

    @property
    def exhausted(self) -> bool:
        return self.since_best >= self.patience

    def record(
        self, step: int, seconds: float, train_loss: float, models: dict[int, LlamaGen], corpus: Corpus
    ) -> dict[str, float]:
        nll = heldout_nll(models, corpus)
        point = {"step": step, "seconds": round(seconds), "train_loss": round(train_loss, 4)}
        point.update({f"heldout_{g}": round(v, 4) for g, v in nll.items()})
        self.curve.append(point)
        score = sum(nll.values()) / len(nll)
        if score < self.best_score - MIN_IMPROVEMENT:
            self.best_score, self.best_step, self.since_best, self.best_nll = score, step, 0, nll
            self.best_weights = copy.deepcopy(models[16].state_dict())
        else:
            self.since_best += 1
        return point


def shared_models(args: argparse.Namespace, corpus: Corpus) -> dict[int, LlamaGen]:
    """One LlamaGen per grid, all with the same parameter tensors (only the RoPE tables differ)."""
    config = llamagen_config(
        "small",
        dim=args.dim,
        n_layer=args.layers,
        n_head=args.heads,
        vocab_size=corpus.tokenizer.vocab_size,
        num_classes=len(corpus.class_names),
        grid_size=16,
        multiple_of=32,
    )
    models = {16: LlamaGen(config)}
    models[24] = regrid(models[16], 24)
    for p16, p24 in zip(models[16].parameters(), models[24].parameters(), strict=True):
        p24.data = p16.data  # one set of weights, two position tables
        p24.grad = None
    return models


def warm_start(model: LlamaGen, corpus: Corpus, path: Path) -> dict[str, str]:
    """Load the weights of a file written for the same architecture and tokenizer into `model`;
    what the file says about its own training (kept in the new file's `init` metadata)."""
    start = load_trained(path)
    # Verify the file fits this run: same architecture, tokenizer and classes
    if start.model.config != model.config:
        raise InvalidParameterError(f"--init {str(path)!r} has config {start.model.config}, this run {model.config}")
    if not torch.equal(start.tokenizer.codebook, corpus.tokenizer.codebook) or start.class_names != corpus.class_names:
        raise InvalidParameterError(f"--init {str(path)!r} has another tokenizer or other classes than --data")
    model.load_state_dict(start.model.state_dict())
    keys = ("command", "heldout_nll", "steps_run", "train_cpu_seconds", "curve")
    return {k: start.metadata[k] for k in keys if k in start.metadata}


def train(args: argparse.Namespace, command: str) -> TrainedModel:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    started, cpu_started = time.time(), time.process_time()
    corpus = CORPORA[args.data](args)
    models = shared_models(args, corpus)
    init = None if args.init is None else warm_start(models[16], corpus, args.init)
    params = list(models[16].parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    generator = torch.Generator().manual_seed(args.seed + 4)
    batch = {16: args.batch_16, 24: max(1, args.batch_16 * 4 // 9)}
    log: list[float] = []
    stopping = EarlyStopping(args.patience)
    with Progress(transient=False) as progress:
        bar = progress.add_task("training", total=args.steps)
        for step in range(args.steps):
            grid = 16 if step % 2 == 0 else 24
            tokens, labels = corpus.train[grid]
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
            out_of_time = args.max_minutes > 0 and time.process_time() - cpu_started > 60 * args.max_minutes
            if args.eval_every > 0 and ((step + 1) % args.eval_every == 0 or step == args.steps - 1 or out_of_time):
                window = log[-args.eval_every :]
                point = stopping.record(step + 1, time.time() - started, sum(window) / len(window), models, corpus)
                progress.console.print(f"eval {json.dumps(point)}")
                if stopping.exhausted:
                    stopping.stopped = "patience"
                    break
            if out_of_time:
                stopping.stopped = "time"
                break
    if stopping.best_weights is not None:
        models[16].load_state_dict(stopping.best_weights)
    model = models[16].eval().requires_grad_(False)
    nll = stopping.best_nll or heldout_nll({g: regrid(model, g) for g in GRIDS}, corpus)
    unused = NOT_RECIPE | OTHER_DATA_OPTIONS[args.data]
    recipe = {k: v for k, v in vars(args).items() if k not in unused}
    metadata = {
        "command": command,
        "recipe": json.dumps(recipe),
        "heldout_nll": json.dumps({str(g): round(v, 4) for g, v in nll.items()}),
        "train_loss_last20": f"{sum(log[-20:]) / len(log[-20:]):.4f}",
        "train_seconds": f"{time.time() - started:.0f}",
        "train_cpu_seconds": f"{time.process_time() - cpu_started:.0f}",
        "steps_run": str(len(log)),
        "stopped": stopping.stopped,
    }
    if init is not None:
        metadata["init"] = json.dumps(init)
    if stopping.curve:
        metadata["best_step"] = str(stopping.best_step)
        metadata["curve"] = json.dumps(stopping.curve)
    return TrainedModel(model, corpus.tokenizer, corpus.class_names, metadata)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "jacobi_oracle.experiments.train", *argv])
    trained = train(args, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_trained(trained, args.out)
    print(json.dumps({"out": str(args.out), **trained.metadata}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
