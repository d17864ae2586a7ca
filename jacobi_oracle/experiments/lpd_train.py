"""Train a small LPD-architecture model (TinyTransformer, queries="lpd") on photo crops, and measure it.

Training (spec/lpd.md section 1): every example is one image, one random order (a uniform
permutation), one random group-size schedule (cosine sizes for S passes, S log-uniform in
MIN_STEPS..N) and one random group G_i of it; the context is the cells of G_<i (a set, read
bidirectionally, as at decoding time), the queries are G_i, the loss is the cross-entropy of the
true tokens at the queries. The class is replaced by the null class with probability
CFG_DROPOUT, so CFG works.

    python -m jacobi_oracle.experiments.lpd_train --out lpd-small.safetensors [--tokenizer tok.safetensors]

Without --tokenizer a patch k-means codebook is fitted with TOKENIZER_RECIPE (the real-models
tokenizer class; pass that issue's committed tokenizer to share its ids).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F

from jacobi_oracle.models.tokenizer import PatchTokenizer
from jacobi_oracle.models.transformer import TinyTransformer, compute_padded_slot_attention, pad_rows
from jacobi_oracle.spec.lpd_order import compute_group_sizes

CFG_DROPOUT = 0.1  # share of examples trained with the null class
MIN_STEPS = 4  # fewest passes a training schedule has
TOKENIZER_RECIPE = {"k": 256, "seed": 0, "patch": 4, "crops": 1200}  # = jacobi_oracle/experiments/train.py defaults
MLP_RATIO = 4  # hidden width / dim of the LPD model's MLPs


@dataclass(frozen=True)
class TrainConfig:
    grid: int = 16
    crop: int = 64
    dim: int = 64
    layers: int = 2
    heads: int = 4
    batch: int = 16
    steps: int = 700
    lr: float = 3e-3
    train_crops: int = 4096
    seed: int = 0
    max_cpu_seconds: float = 560.0  # process CPU time, tokenizer fit included: under the 10 min budget


def load_grids(
    split: str, count: int, seed: int, crop: int, tokenizer: PatchTokenizer
) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, grid*grid] token ids and [n] class ids of `count` crops of one split."""
    from jacobi_oracle.data.photos import sample_crops

    crops = sample_crops("train" if split == "train" else "heldout", crop, count, seed)
    tokens = tokenizer.encode(torch.from_numpy(crops.images))
    return tokens.reshape(count, -1), torch.from_numpy(crops.labels)


def fit_tokenizer(crop: int) -> PatchTokenizer:
    from jacobi_oracle.data.photos import sample_crops

    r = TOKENIZER_RECIPE
    crops = sample_crops("train", crop, r["crops"], r["seed"] + 1)
    return PatchTokenizer.fit(torch.from_numpy(crops.images), r["k"], r["seed"], r["patch"])


@cache
def cumulative_sizes(num_cells: int, steps: int) -> tuple[int, ...]:
    sizes = compute_group_sizes(num_cells, steps)
    return tuple(sum(sizes[:i]) for i in range(steps + 1))


def sample_batch(
    tokens: torch.Tensor, labels: torch.Tensor, num_classes: int, batch: int, gen: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """A training batch: random image, order, schedule and group per row (module docstring)."""
    n, cells = tokens.shape
    rows, queries, targets, images = [], [], [], []
    for _ in range(batch):
        image = int(torch.randint(n, (1,), generator=gen))
        images.append(image)
        order = torch.randperm(cells, generator=gen)
        steps = round(math.exp(float(torch.empty(1).uniform_(math.log(MIN_STEPS), math.log(cells), generator=gen))))
        bounds = cumulative_sizes(cells, min(cells, max(1, steps)))
        i = int(torch.randint(len(bounds) - 1, (1,), generator=gen))
        context, group = order[: bounds[i]], order[bounds[i] : bounds[i + 1]]
        rows.append((tokens[image, context], context))
        queries.append(tuple(group.tolist()))
        targets.append(tokens[image, group])
    dropped = torch.rand(batch, generator=gen) < CFG_DROPOUT
    cls = torch.where(dropped, num_classes, labels[torch.tensor(images)])
    context_tokens, context_positions, query_positions, context_valid, query_valid = pad_rows(rows, queries)
    target = torch.full(query_positions.shape, -100, dtype=torch.long)
    for r, t in enumerate(targets):
        target[r, : len(t)] = t
    return cls, context_tokens, context_positions, query_positions, context_valid, query_valid, target


def build_lpd_model(config: TrainConfig, vocab_size: int, num_classes: int) -> TinyTransformer:
    """The LPD architecture of `config`, float32, with random weights from `config.seed`."""
    return TinyTransformer(
        vocab_size,
        config.grid * config.grid,
        num_classes,
        config.dim,
        config.layers,
        config.heads,
        logit_scale=1.0,
        seed=config.seed,
        queries="lpd",
        mlp_ratio=MLP_RATIO,
        dtype=torch.float32,
    )


def train(config: TrainConfig, tokenizer: PatchTokenizer, num_classes: int, log: bool = True) -> TinyTransformer:
    torch.manual_seed(config.seed)
    tokens, labels = load_grids("train", config.train_crops, config.seed, config.crop, tokenizer)
    model = build_lpd_model(config, tokenizer.vocab_size, num_classes)
    model.requires_grad_(True)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(config.seed)
    for step in range(config.steps):
        lr = config.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group in optimiser.param_groups:
            group["lr"] = lr
        cls, ct, cp, qp, cv, qv, target = sample_batch(tokens, labels, num_classes, config.batch, gen)
        logits = model.forward_slots(cls, ct, cp, qp, compute_padded_slot_attention(cv, qv))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        cpu = time.process_time()
        if log and step % 50 == 0:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} cpu {cpu:.0f}s", flush=True)
        if cpu > config.max_cpu_seconds:
            print(f"stopping at step {step}: {cpu:.0f} CPU seconds", flush=True)
            break
    model.requires_grad_(False)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--max-cpu-seconds", type=float, default=TrainConfig.max_cpu_seconds)
    args = parser.parse_args()
    from safetensors.torch import load_file, save_file

    from jacobi_oracle.data.photos import PHOTOS

    torch.set_num_threads(1)  # small matrices: a second thread only contends on a loaded runner
    tokenizer = PatchTokenizer.from_tensors(load_file(args.tokenizer)) if args.tokenizer else fit_tokenizer(64)
    config = TrainConfig(steps=args.steps, max_cpu_seconds=args.max_cpu_seconds)
    model = train(config, tokenizer, len(PHOTOS))
    tensors = {f"lpd.{k}": v.contiguous() for k, v in model.state_dict().items()} | tokenizer.tensors()
    save_file(tensors, str(args.out), metadata={"config": json.dumps(asdict(config)), "num_classes": str(len(PHOTOS))})


if __name__ == "__main__":
    main()
