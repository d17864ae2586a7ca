"""Sharded audits (jacobi_oracle/oracle/distributed.py): two gloo ranks on localhost reach the
single-process verdict on the same keyed noise, with count tables equal bit for bit.
The equalities are exact. The one statistical assertion (sjd passes, judged at the default
alpha = 1e-6, so it fails a lossless decoder with probability <= 1e-6 over seeds) has its
negative control beside it: the always-accept mutant, which the sharded audit must reject."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch.distributed as dist
from hypothesis import given
from hypothesis import strategies as st

from jacobi_oracle.models.toy import HashModel
from jacobi_oracle.mutants import get_mutant
from jacobi_oracle.oracle.distributed import Shard, distributed_check, flatten_tables, unflatten_tables
from jacobi_oracle.oracle.statistical import CountTables, statistical_check
from jacobi_oracle.reference.presets import build_preset
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Strategy

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is unavailable"
)
TWO_SAMPLE_BUDGET = 60


@given(total=st.integers(0, 500), world=st.integers(1, 9), offset=st.integers(0, 1 << 41))
def test_shards_are_disjoint_and_cover_every_sample(total: int, world: int, offset: int) -> None:
    blocks = [Shard(rank, world).indices(total, offset) for rank in range(world)]
    flat = [i for block in blocks for i in block]
    assert flat == list(range(offset, offset + total))
    assert max(len(b) for b in blocks) - min(len(b) for b in blocks) <= 1


def two_sample_problem() -> Problem:
    # V=3 on 2x4 cells: 3^8 sequences > the enumeration limit, so the AR reference is sampled too
    return Problem(HashModel(vocab_size=3, num_positions=8, row_stride=4), 0, Layout(2, 4), Sampling())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def audited() -> dict[str, Strategy]:
    """A lossless preset, and a negative control the sharded audit must reject as well."""
    return {"sjd": build_preset("sjd"), "always-accept": get_mutant("always-accept").build()}


def rank_worker(rank: int, port: int, out: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        result = {}
        for name, strategy in audited().items():
            verdict = distributed_check(strategy, two_sample_problem(), TWO_SAMPLE_BUDGET, seed=7)
            assert verdict.counts is not None
            result[name] = {"verdict": verdict.to_json(), "counts": verdict.counts.to_json()}
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def without_timing(verdict: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in verdict.items() if k not in ("seconds", "world_size", "counts")}


@needs_gloo
def test_two_gloo_ranks_reach_the_single_process_verdict_in_two_sample_mode(tmp_path: Path) -> None:
    context, port = multiprocessing.get_context("spawn"), free_port()
    ranks_run = [context.Process(target=rank_worker, args=(r, port, str(tmp_path))) for r in range(2)]
    for process in ranks_run:
        process.start()
    for process in ranks_run:
        process.join(timeout=120)
    assert [p.exitcode for p in ranks_run] == [0, 0]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for name, strategy in audited().items():
        single = statistical_check(strategy, two_sample_problem(), TWO_SAMPLE_BUDGET, seed=7)
        assert single.counts is not None and single.reference == "two-sample"
        assert single.passed == (name == "sjd")  # always-accept: p-values ~0 at this budget
        for result in ranks:
            merged = CountTables.from_json(result[name]["counts"])
            for table, array in single.counts.arrays().items():
                assert np.array_equal(merged.arrays()[table], array), (name, table)
            assert without_timing(result[name]["verdict"]) == without_timing(single.to_json())


@needs_gloo
def test_torchrun_shard_audit_prints_the_single_process_verdict() -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "jacobi_oracle.cli", "shard-audit", "--strategy", "sjd", "--model", "hash-tiny"]
    command += ["--budget", "100", "--seed", "3", "--json", "--counts"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout)
    assert printed["world_size"] == 2
    from jacobi_oracle.testing.assertions import resolve_problem

    single = statistical_check(
        build_preset("sjd"), resolve_problem("hash-tiny", None, None, None), 100, seed=3, model_name="hash-tiny"
    )
    assert without_timing(printed) == without_timing(single.to_json())


def test_flattened_tables_round_trip_exactly() -> None:
    single = statistical_check(build_preset("sjd"), two_sample_problem(), 20, seed=1)
    assert single.counts is not None
    back = unflatten_tables(flatten_tables(single.counts), single.counts)
    assert all(np.array_equal(a, back.arrays()[k]) for k, a in single.counts.arrays().items())


def test_shard_audit_rejects_bad_input_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    from jacobi_oracle.cli import main

    assert main(["shard-audit", "--strategy", "sjd", "--model", "hash-tiny", "--budget", "0"]) == 2
    assert "budget" in capsys.readouterr().err
    assert main(["shard-audit", "--strategy", "nope", "--model", "hash-tiny"]) == 2
    assert "nope" in capsys.readouterr().err
