"""Sharded statistical audits over torch.distributed (spec/statistical_oracle.md, "Count tables").

Launched by `torchrun` (gloo on CPU, nccl on GPU), or single-process when no process group is
set up. The sample indices 0 .. budget-1 (and the AR reference's indices, in two-sample mode)
are split into contiguous disjoint blocks, one per rank; each rank decodes its block under
KeyedRandomness(seed, sample=index), so the union of the ranks' noise is exactly the
single-process noise. Count tables are integers: one all_reduce(SUM) of the flattened int64
tables merges them exactly, and every rank judges the merged tables with the same `judge`, so
the verdict equals the single-process verdict on the same noise, bit for bit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.distributed as dist

from ..spec.errors import InvalidParameterError
from ..spec.model import Problem
from ..spec.strategy import Strategy
from .statistical.check import (
    REFERENCE_OFFSET,
    ReferenceLaw,
    StatisticalVerdict,
    compute_exact_marginals,
    is_enumerable,
    judge,
    reference_sampler,
)
from .statistical.counts import CountTables, count_samples
from .statistical.power import check_budget


@dataclass(frozen=True)
class Shard:
    rank: int
    world_size: int

    def indices(self, total: int, offset: int = 0) -> range:
        """This rank's contiguous block of offset .. offset+total-1 (blocks differ by <= 1)."""
        start = offset + total * self.rank // self.world_size
        stop = offset + total * (self.rank + 1) // self.world_size
        return range(start, stop)


def current_shard() -> Shard:
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return Shard(0, 1)


def is_launched() -> bool:
    """True under torchrun (or any launcher that sets the env:// rendezvous variables)."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def init_from_environment() -> Shard:
    """Join the process group torchrun describes (nccl with CUDA, else gloo); no-op otherwise."""
    if not is_launched() or (dist.is_available() and dist.is_initialized()):
        return current_shard()
    # Verify this torch build can communicate
    if not dist.is_available():
        raise InvalidParameterError("torch.distributed is not available in this torch build; run without torchrun")
    backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return current_shard()


def reduction_device() -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def flatten_tables(tables: CountTables) -> torch.Tensor:
    """Every table, flattened and concatenated into one int64 vector (field order)."""
    return torch.from_numpy(np.concatenate([a.reshape(-1) for a in tables.arrays().values()]).astype(np.int64))


def unflatten_tables(flat: torch.Tensor, like: CountTables) -> CountTables:
    values = flat.cpu().numpy().astype(np.int64)
    arrays, start = {}, 0
    for f in fields(CountTables):
        template = getattr(like, f.name)
        arrays[f.name] = values[start : start + template.size].reshape(template.shape)
        start += template.size
    assert start == values.size
    return CountTables(**arrays)


def all_reduce_tables(tables: CountTables) -> CountTables:
    """The sum of every rank's tables (exact: int64 addition)."""
    if not (dist.is_available() and dist.is_initialized()):
        return tables
    flat = flatten_tables(tables).to(reduction_device())
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    return unflatten_tables(flat, tables)


def sharded_counts(
    strategy: Strategy,
    problem: Problem,
    total: int,
    seed: int,
    shard: Shard,
    offset: int = 0,
    calibration: bool = True,
    progress: Callable[[int], None] | None = None,
) -> CountTables:
    mine = count_samples(strategy, problem, shard.indices(total, offset), seed, calibration, progress)
    return all_reduce_tables(mine)


def distributed_check(
    strategy: Strategy,
    problem: Problem,
    budget: int,
    alpha: float = 1e-6,
    seed: int = 0,
    model_name: str = "custom",
    progress: Callable[[int, int], None] | None = None,
) -> StatisticalVerdict:
    """`statistical_check` with the samples sharded over the process group's ranks; every rank
    returns the same verdict. `progress(done, total)` counts this rank's samples."""
    check_budget(budget, alpha)
    started = time.perf_counter()
    shard = current_shard()
    two_sample = not is_enumerable(problem)
    mine = len(shard.indices(budget)) * (2 if two_sample else 1)

    def report(offset: int) -> Callable[[int], None] | None:
        if progress is None:
            return None
        callback = progress
        return lambda done: callback(offset + done, mine)

    tables = sharded_counts(strategy, problem, budget, seed, shard, progress=report(0))
    if two_sample:
        ar = reference_sampler(problem)
        reference = sharded_counts(ar, problem, budget, seed, shard, REFERENCE_OFFSET, False, report(mine // 2))
        law = ReferenceLaw(None, None, reference)
    else:
        law = compute_exact_marginals(problem, tables)
    name = getattr(strategy, "name", type(strategy).__name__)
    return judge(name, model_name, problem, tables, law, alpha, time.perf_counter() - started)
