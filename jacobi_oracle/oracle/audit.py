"""The audit: every registered preset judged by the exact engine on one toy model.

Per preset: its exact total variation from the AR law, the spec's lossless claim, the mean
number of forward passes and the step compression (AR passes / preset passes). Presets
registered later show up automatically (the audit iterates PRESETS). `greedy_only` presets
(Jacobi) are judged under greedy sampling, where their claim applies. A preset the exact engine
cannot finish within `time_limit` seconds is reported as timed out, never waited on.

A preset that reads a cell's noise vector again and again (`reuses_noise`, e.g. fixed-noise
Jacobi) past what the exact engine's joint Gumbel law covers (`NoiseReuseError`) is judged by
the pathwise engine instead (oracle/pathwise.py): token for token against Gumbel AR on
`map_runs` (or DEFAULT_MAP_RUNS) noise draws; its row says `engine: pathwise`, with no TV.

Acceptance maps: for each preset, the mean (over sampled runs with KeyedRandomness) of the
pass in which each grid cell was committed (`Decoded.commit_pass`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..models.registry import ModelCase
from ..reference.presets import PRESETS, Preset
from ..spec.errors import JacobiOracleError
from ..spec.model import Model, ModelWrapper, Problem
from ..spec.randomness import KeyedRandomness
from ..spec.sampling import Sampling
from ..spec.strategy import SteppedDecoder
from .exact import Law, NoiseReuseError, compare_laws, exact_ar_law, exact_output_law, single_threaded
from .pathwise import check_pathwise

DEFAULT_TIME_LIMIT = 120.0  # seconds of exact enumeration per preset before it is reported as timed out
DEFAULT_MAP_RUNS = 32  # sampled runs per acceptance map


class AuditTimeout(JacobiOracleError):
    """The exact engine ran past the audit's per-preset time limit."""


class DeadlineModel(ModelWrapper):
    """Wraps a model; a call after `deadline` (time.perf_counter) raises AuditTimeout."""

    def __init__(self, model: Model, deadline: float, limit: float, work: str = "exact enumeration") -> None:
        super().__init__(model)
        self.deadline = deadline
        self.limit = limit
        self.work = work

    def check_deadline(self) -> None:
        if time.perf_counter() > self.deadline:
            raise AuditTimeout(f"{self.work} exceeded the time limit of {self.limit:g} s")

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        self.check_deadline()
        return self.model.logits(condition, key_tokens, key_positions, query_positions, visible)


@dataclass(frozen=True)
class AuditRow:
    strategy: str
    status: str  # "ok", "timeout" or "error"
    lossless: bool  # the spec's claim (PRESETS)
    greedy_only: bool
    sampling: str  # the sampling the preset was judged under
    total_variation: float | None
    measured_lossless: bool | None  # exact TV <= 1e-12
    mean_forward_passes: float | None
    step_compression: float | None  # AR passes / mean passes
    seconds: float
    detail: str = ""
    acceptance_map: tuple[tuple[float, ...], ...] | None = None  # [H][W] mean commit pass
    sampled_step_compression: float | None = None  # AR passes / mean passes of the sampled runs
    reused_keys: tuple[str, ...] = ()  # random keys read a second time on some path (exact engine)
    engine: str = "exact"  # "exact", or "pathwise" (token for token vs Gumbel AR on sampled noise)

    @property
    def claim_violated(self) -> bool:
        """A preset claimed lossless whose exact law is not the AR law."""
        return self.lossless and self.measured_lossless is False

    def to_json(self) -> dict[str, object]:
        out = dict(self.__dict__)
        out["acceptance_map"] = None if self.acceptance_map is None else [list(r) for r in self.acceptance_map]
        return out


def describe_sampling(sampling: Sampling) -> str:
    if sampling.greedy:
        return "greedy"
    parts = [f"T={sampling.temperature:g}"]
    parts += [f"top-k={sampling.top_k}"] if sampling.top_k is not None else []
    parts += [f"top-p={sampling.top_p:g}"] if sampling.top_p is not None else []
    parts += [f"cfg={sampling.cfg_scale:g}"] if sampling.uses_cfg else []
    return " ".join(parts)


def build_with(preset: Preset, params: dict[str, Any]) -> SteppedDecoder[Any]:
    """The preset with those of `params` its builder accepts (e.g. window, not for every preset)."""
    accepted = inspect.signature(preset.build).parameters
    return preset.build(**{k: v for k, v in params.items() if k in accepted})


def compute_acceptance_map(
    strategy: SteppedDecoder[Any], problem: Problem, runs: int, seed: int
) -> tuple[tuple[tuple[float, ...], ...], float]:
    """Per grid cell, the mean 1-based pass that committed it over `runs` keyed runs; and the
    sampled step compression (AR passes / mean passes)."""
    layout = problem.layout
    total = torch.zeros(layout.num_cells, dtype=torch.float64)
    passes = 0
    for sample in range(runs):
        decoded = strategy.decode_problem(problem, KeyedRandomness(seed, sample))
        total += torch.tensor(decoded.commit_pass(layout.num_cells), dtype=torch.float64)
        passes += decoded.forward_passes
    grid = (total / runs).reshape(layout.height, layout.width)
    return tuple(tuple(float(v) for v in row) for row in grid), layout.num_cells * runs / passes


class Auditor:
    """Audits presets on one model case; the AR law is computed once per sampling rule."""

    def __init__(self, case: ModelCase, sampling: Sampling, time_limit: float = DEFAULT_TIME_LIMIT) -> None:
        # Verify the time limit is positive
        if not time_limit > 0:
            raise JacobiOracleError(f"time_limit must be > 0 seconds, got {time_limit!r}")
        self.case = case
        self.sampling = sampling
        self.time_limit = time_limit
        self.ar_laws: dict[Sampling, Law | None] = {}  # None: it ran past the time limit

    def problem_for(self, preset: Preset, model: Model | None = None) -> Problem:
        sampling = replace(self.sampling, greedy=True) if preset.greedy_only else self.sampling
        return Problem(self.case.model if model is None else model, self.case.condition, self.case.layout, sampling)

    def ar_law(self, problem: Problem) -> Law:
        """The exact AR law under the problem's sampling, itself within the time limit."""
        if problem.sampling not in self.ar_laws:
            watched = DeadlineModel(problem.model, time.perf_counter() + self.time_limit, self.time_limit)
            try:
                law: Law | None = exact_ar_law(replace(problem, model=watched))
            except AuditTimeout:
                law = None
            self.ar_laws[problem.sampling] = law
        law = self.ar_laws[problem.sampling]
        if law is None:
            raise AuditTimeout(f"the exact AR law itself exceeded the time limit of {self.time_limit:g} s")
        return law

    def audit(
        self,
        preset: Preset,
        params: dict[str, Any],
        map_runs: int = 0,
        seed: int = 0,
        on_pass: Callable[[], None] | None = None,
    ) -> AuditRow:
        """One preset's row; `map_runs` > 0 also samples its acceptance map. When the exact
        engine times out, the step compression is still sampled (`map_runs` or DEFAULT_MAP_RUNS
        keyed runs, within another time limit)."""
        started = time.perf_counter()
        problem = self.problem_for(preset)
        base = AuditRow(
            preset.name,
            "ok",
            preset.lossless,
            preset.greedy_only,
            describe_sampling(problem.sampling),
            None,
            None,
            None,
            None,
            0.0,
        )
        try:
            strategy = build_with(preset, params)
            try:
                row = self.exact_row(base, strategy, problem, started, on_pass)
            except AuditTimeout as error:
                row = replace(base, status="timeout", detail=str(error))
                map_runs = map_runs or DEFAULT_MAP_RUNS
            except NoiseReuseError as error:
                if not preset.reuses_noise:  # an accidental reuse is a finding, not a fallback
                    raise
                row = self.pathwise_row(
                    base, strategy, problem, map_runs or DEFAULT_MAP_RUNS, seed, type(error).__name__
                )
            if map_runs > 0:
                row = self.sampled_row(row, strategy, problem, map_runs, seed)
        except Exception as error:  # a broken or unsupported preset must not stop the audit
            row = replace(base, status="error", detail=f"{type(error).__name__}: {error}")
        return replace(row, seconds=time.perf_counter() - started)

    def pathwise_row(
        self, base: AuditRow, strategy: SteppedDecoder[Any], problem: Problem, runs: int, seed: int, why: str
    ) -> AuditRow:
        """`base` judged by the pathwise engine: `runs` keyed noise draws against Gumbel AR."""
        watched = DeadlineModel(problem.model, time.perf_counter() + self.time_limit, self.time_limit, "pathwise runs")
        try:
            verdict = check_pathwise(strategy, replace(problem, model=watched), samples=runs, seed=seed)
        except AuditTimeout as error:
            return replace(base, status="timeout", engine="pathwise", detail=str(error))
        equal = runs - verdict.mismatches
        detail = f"pathwise: {equal}/{runs} noise draws equal to ar-gumbel (the exact engine refused: {why})"
        if verdict.counterexample is not None:
            example = verdict.counterexample
            detail += f"; first mismatch KeyedRandomness({example.seed}, {example.sample}) cell {example.cell}"
        return replace(
            base,
            engine="pathwise",
            measured_lossless=verdict.equal,
            mean_forward_passes=verdict.mean_forward_passes,
            step_compression=verdict.step_compression,
            detail=detail,
        )

    def sampled_row(
        self, row: AuditRow, strategy: SteppedDecoder[Any], problem: Problem, runs: int, seed: int
    ) -> AuditRow:
        """`row` with the acceptance map and sampled step compression of `runs` keyed runs."""
        watched = DeadlineModel(problem.model, time.perf_counter() + self.time_limit, self.time_limit, "sampled runs")
        try:
            with single_threaded():
                grid, compression = compute_acceptance_map(strategy, replace(problem, model=watched), runs, seed)
        except AuditTimeout as error:
            return replace(row, detail=f"{row.detail}; {error}".lstrip("; "))
        detail = row.detail + (f"; step compression sampled over {runs} runs" if row.status == "timeout" else "")
        return replace(row, acceptance_map=grid, sampled_step_compression=compression, detail=detail)

    def exact_row(
        self,
        base: AuditRow,
        strategy: SteppedDecoder[Any],
        problem: Problem,
        started: float,
        on_pass: Callable[[], None] | None,
    ) -> AuditRow:
        watched = DeadlineModel(problem.model, started + self.time_limit, self.time_limit)
        timed = Problem(watched, problem.condition, problem.layout, problem.sampling)

        def progress(depth: int, frontier: int) -> None:
            watched.check_deadline()
            if on_pass is not None:
                on_pass()

        reference = self.ar_law(problem)
        result = exact_output_law(strategy, timed, progress)
        comparison = compare_laws(result.law, reference, problem.layout.num_cells, problem.model.vocab_size)
        return replace(
            base,
            total_variation=comparison.total_variation,
            measured_lossless=comparison.lossless,
            mean_forward_passes=result.mean_forward_passes,
            step_compression=problem.layout.num_cells / result.mean_forward_passes,
            reused_keys=result.reused_keys,
        )


def select_presets(names: Iterable[str] | None) -> list[Preset]:
    """The registered presets (all, in registration order, when `names` is None)."""
    if names is None:
        return list(PRESETS.values())
    chosen = []
    for name in names:
        # Verify each name is a registered preset
        if name not in PRESETS:
            raise JacobiOracleError(f"unknown strategy {name!r}; built-in presets: {', '.join(PRESETS)}")
        chosen.append(PRESETS[name])
    return chosen


def plot_file_name(strategy: str) -> str:
    """acceptance_<strategy>.png with the name made file-safe."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in strategy)
    return f"acceptance_{safe}.png"


def write_plots(rows: list[AuditRow], directory: str, title: str) -> list[str]:
    """PNG of total variation against step compression, and one acceptance map per preset
    that has one. Returns the paths written."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    written = [os.path.join(directory, "tv_vs_step_compression.png")]
    judged = [
        (r.strategy, r.step_compression, r.total_variation, bool(r.measured_lossless))
        for r in rows
        if r.total_variation is not None and r.step_compression is not None
    ]
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (name, compression, tv, lossless) in enumerate(judged):
        ax.scatter(compression, tv, color="tab:green" if lossless else "tab:red")
        ax.annotate(
            name,
            (compression, tv),
            fontsize=8,
            xytext=(3, 3 + 9 * (i % 5)),  # staggered: presets often share a point
            textcoords="offset points",
        )
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_xlabel("step compression (AR passes / mean passes)")
    ax.set_ylabel("exact total variation from AR")
    ax.set_title(f"{title}: lossiness vs speed (green: TV <= 1e-12)")
    fig.tight_layout()
    fig.savefig(written[0], dpi=100)
    plt.close(fig)
    for row in rows:
        if row.acceptance_map is None:
            continue
        grid = torch.tensor(row.acceptance_map)
        fig, ax = plt.subplots(figsize=(1.2 + 0.6 * grid.shape[1], 1.0 + 0.6 * grid.shape[0]))
        image = ax.imshow(grid.numpy(), cmap="viridis")
        for (r, c), value in zip(
            ((r, c) for r in range(grid.shape[0]) for c in range(grid.shape[1])), grid.flatten().tolist(), strict=True
        ):
            ax.text(c, r, f"{value:.1f}", ha="center", va="center", color="white", fontsize=7)
        fig.colorbar(image, ax=ax, label="mean pass of commit")
        ax.set_title(f"{row.strategy}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        path = os.path.join(directory, plot_file_name(row.strategy))
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
