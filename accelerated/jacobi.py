"""Accelerated raster-window decoders (AR, SJD): static shapes, device-side verification.

    state   = allocate_state(...)                   tensors, no model call
    while not all samples finished:                 the ONE host sync per iteration
        fill_drafts(state)                          init drafts (keyed "init"), on device
        logits = backend.window_logits(state)       ONE forward pass, all samples, CFG batch-doubled
        p      = target_probs(logits)               spec Sampling math, on device
        verify_and_refresh(state, p)                accept / residual / bonus / refresh, vectorised

Every random decision uses the event key the reference uses (accelerated/noise.py), so on
float64 the tokens equal reference/'s token for token. Batch > 1 is per-sample exact: each
sample has its own frontier and commits its own accepted count (no minimum over the batch).

Backends: `CachedLlamaGen` keeps a static KV cache (slot 0 = class, 1 + p = position p, then
W scratch slots where padded inputs write); rollback is by pointer: slots at or after a
sample's frontier are masked out, so rejected drafts cost nothing to undo. `QueryBackend`
answers through the spec Model contract (any model, no cache; for the toy models).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import torch

from jacobi_oracle.models.llamagen import KVCache, LlamaGen
from jacobi_oracle.reference.drafters import compute_keep_mask, compute_reuse_law
from jacobi_oracle.spec.acceptance import compute_acceptance_probabilities, compute_residual
from jacobi_oracle.spec.errors import (
    InvalidParameterError,
    UnsupportedStrategyError,
    check_count,
    check_reuse_threshold,
)
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import CausalBatchModel, Model, Problem, causal_batch_model
from jacobi_oracle.spec.randomness import CELL_NOISE_PURPOSE, Randomness, cell_noise_key, gumbel_max
from jacobi_oracle.spec.sampling import Sampling
from jacobi_oracle.spec.strategy import Decoded, IterationTrace

from .noise import EventNoise, inverse_cdf, sample_streams, search_cumulative

PURPOSES = ("init", "accept", "residual", "fresh")  # the events of every raster-window decoder (+ its bonus's)
COUPLING_PURPOSES = ("couple", "couple-residual")  # MaximalCouplingRefresher's events


@dataclass
class WindowState:
    tokens: torch.Tensor  # [B, L + W] long: committed token or current draft per cell (W scratch cells)
    has_draft: torch.Tensor  # [B, L + W] bool
    draft_probs: torch.Tensor  # [B, L + W, V] q of each current draft
    last_target: torch.Tensor  # [B, L + W, V] p of the pass that refreshed the draft (SJD++ reuse)
    has_last: torch.Tensor  # [B, L + W] bool
    frontier: torch.Tensor  # [B] long: first uncommitted cell (L when finished)
    cells: torch.Tensor  # [B, W] long: this iteration's window cells (frontier + offsets)
    offsets: torch.Tensor  # [W] long: 0 .. W - 1, the window positions
    uniform: torch.Tensor  # [B, W, V] float64: the uniform law 1 / V, RandomDrafter's
    uniform_cdf: torch.Tensor  # [B, W, V] its cumulative sums (inverse_cdf's), computed once
    point_masses: torch.Tensor  # [V, V] float64 identity: row t is the one-hot law of token t
    cell_noise: torch.Tensor | None = None  # [B, L + W, V] G(cell_noise_key(cell)), fixed-noise parts only
    latest_target: torch.Tensor | None = None  # [B, L + W, V] each cell's latest p, spatial drafts only
    has_latest: torch.Tensor | None = None  # [B, L + W] bool
    iteration: int = 0
    keys: int = 1  # host int: cache slots this pass reads (0 .. max frontier + W - 1, at most L)
    aligned: bool = True  # host bool: every sample has the same frontier (always, for AR)
    first: int = 0  # host int: the smallest frontier


class Backend(Protocol):
    def window_logits(self, state: WindowState, drafted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[B, W, V] conditional (and unconditional, with CFG) logits at the window cells."""
        ...


# -- backends --------------------------------------------------------------------------------
class CachedLlamaGen:
    """LlamaGen over a static KV cache. Eager (default, the tested path): attention over the
    filled prefix, slice writes where the window is contiguous. `compiled`: one torch.compile'd
    graph per window width, every shape static (gpt-fast style): scatter writes at tensor slots and
    attention over every cache slot under a mask built from them; the same math, so the logits
    differ from eager by rounding only (benchmarks/RESULTS.md measures how often a token moves).
    The compiled step's KV caches are one static set per (model, rows, window) that every compiled
    decode reuses (`_static_caches`; one such decode at a time per model): on CUDA the step is
    also captured as a CUDA graph (mode "reduce-overhead"), whose addresses then hold from one image
    to the next. A slot is read only after this decode wrote it, so what an earlier image left in
    the caches is never seen (tests/test_accelerated_equivalence.py decodes twice to check it)."""

    def __init__(
        self, model: LlamaGen, class_ids: torch.Tensor, cfg: bool, num_cells: int, window: int, compiled: bool = False
    ):
        self.model = model
        self.num_cells = num_cells
        self.class_ids = torch.cat([class_ids, torch.full_like(class_ids, model.num_classes)]) if cfg else class_ids
        self.cuda_graphs = compiled and class_ids.device.type == "cuda"
        rows = self.class_ids.numel()  # k, v: [B2, H, 1 + L + W, D]
        self.caches = _static_caches(model, rows, window) if compiled else model.new_caches(rows, scratch=window)
        self.scratch = 1 + model.num_positions + torch.arange(window, device=class_ids.device)  # [W]
        self.key_slots = torch.arange(1 + model.num_positions + window, device=class_ids.device)  # [K]
        # a contiguous window (slots f .. f + W - 1 over keys 0 .. f + W - 1) sees key j from input w
        # iff j <= f + w: lower-right causal, so its mask is the last f + W columns of this one
        slots = len(self.key_slots)
        self.window_mask = self.key_slots - slots <= torch.arange(window, device=class_ids.device)[:, None] - window
        self.weights = model.block_weights()  # gathered once per decode, not per step
        mode = "reduce-overhead" if self.cuda_graphs else None  # reduce-overhead: CUDA graphs
        self.static = torch.compile(self._static_logits, dynamic=False, mode=mode) if compiled else None

    def _static_logits(self, inputs: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """[B2, W] inputs at [B2, W] slots -> [B2, W, V] logits; fixed shapes, so one graph."""
        mask = (self.key_slots <= slots[:, :, None])[:, None]  # [B2, 1, W, K]: causal over the cache
        x = self.model.embed(inputs, slots, self.class_ids)
        return self.model.head(self.model.run(x, slots, mask, self.caches, slots, None, self.weights))

    def window_logits(self, state: WindowState, drafted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        # input i feeds the token at position cells[:, i] - 1 (the class at slot 0) and answers cells[:, i]
        cells = state.cells  # [B, W]
        inputs = state.tokens.gather(1, (cells - 1).clamp(min=0))  # [B, W]
        # one frontier and no padding: every row writes slots first .. first + W - 1 (a slice)
        contiguous = state.aligned and state.first + cells.shape[1] <= self.num_cells
        slots = cells if contiguous else torch.where(cells < self.num_cells, cells, self.scratch)  # padding: scratch
        reps = self.class_ids.numel() // cells.shape[0]  # 2 with CFG: [cond; uncond]
        inputs = _cfg_rows(inputs, reps)
        if self.static is not None:
            if self.cuda_graphs:  # the last replay's outputs are dead: the graph may overwrite them
                torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
            logits = self.static(inputs, _cfg_rows(slots, reps))
            if reps == 1:
                return logits, None
            cond, uncond = logits.chunk(2)
            return cond, uncond
        # the slots only pick RoPE entries (and cache rows when not contiguous); one sample's
        # broadcast over its CFG rows
        slots = slots if contiguous and cells.shape[0] == 1 else _cfg_rows(slots, reps)
        # attention over the filled prefix, slots 0 .. keys - 1; within it, causal over the cache.
        # One cell per pass and one frontier (AR): every slot of the prefix is visible, no mask.
        mask = None
        if contiguous and cells.shape[1] > 1:  # [1, 1, W, K], built once, broadcast over every row
            mask = self.window_mask[None, None, :, self.window_mask.shape[1] - state.keys :]
        elif cells.shape[1] > 1 or not state.aligned:
            visible = self.key_slots[: state.keys] <= slots[: cells.shape[0], :, None]  # [B, W, K]
            mask = (visible if cells.shape[0] == 1 else _cfg_rows(visible, reps))[:, None]  # B = 1 broadcasts
        x = self.model.embed(inputs, slots, self.class_ids, with_class=state.iteration == 0)  # [B2, W, dim]
        write = state.first if contiguous else None
        logits = self.model.head(self.model.run(x, slots, mask, self.caches, write, state.keys, self.weights))
        if reps == 1:
            return logits, None
        cond, uncond = logits.chunk(2)
        return cond, uncond


_STATIC_CACHES: weakref.WeakKeyDictionary[LlamaGen, dict[tuple[object, ...], list[KVCache]]] = (
    weakref.WeakKeyDictionary()
)


def _static_caches(model: LlamaGen, rows: int, window: int) -> list[KVCache]:
    """The KV caches every compiled decode of `model` with `rows` rows and this window reuses
    (one decode at a time per model), their addresses marked static for a CUDA graph; new ones
    when the model's dtype or device changed since."""
    weight = model.output.weight
    held = _STATIC_CACHES.setdefault(model, {})
    key = (rows, window, weight.dtype, weight.device)
    if key not in held:
        caches = held[key] = model.new_caches(rows, scratch=window)
        for cache in caches:
            torch._dynamo.mark_static_address(cache.k)
            torch._dynamo.mark_static_address(cache.v)
    return held[key]


def _cfg_rows(rows: torch.Tensor, reps: int) -> torch.Tensor:
    """[B, ...] -> [reps * B, ...]: the rows once per CFG branch, [cond; uncond] (cat: `repeat`
    costs ~5 us a call on CPU, a tenth of a small model's sampling step)."""
    return rows if reps == 1 else torch.cat([rows] * reps)


class CausalBatchBackend:
    """A spec CausalBatchModel (spec/model.md, "Batched causal queries"; plain layouts), one call
    per class column for the whole batch, over a cache of the committed prefix: a query at cell
    c reads cells < c only, so the keys are the committed cells and the window's drafts.

    Which cached cells are still good (spec/model.md's rule: cache the committed prefix only):
    the last call computed every cell below its queries, from the tokens of that pass; since
    then the frontier f moved past the accepted drafts (the tokens of that pass) and one
    correction or bonus at f - 1 (a token the pass did not see). So cells < min(f - 1, the last
    call's highest query) hold keys of their committed tokens, and the call recomputes from
    there. Padded cells ask about the last cell, finished samples too; nothing reads them."""

    def __init__(self, model: CausalBatchModel, problems: list[Problem]):
        self.model = model
        self.num_cells = problems[0].layout.num_cells
        self.classes = torch.tensor([model.num_classes if p.condition is None else p.condition for p in problems])
        self.columns = [self.classes]  # with CFG, then the null class (its own cache)
        if problems[0].sampling.uses_cfg:
            self.columns.append(torch.full_like(self.classes, model.num_classes))
        self.caches: list[dict[str, torch.Tensor]] = [{} for _ in self.columns]
        self.computed = torch.zeros(len(problems), dtype=torch.long)  # cells < this computed last call

    def window_logits(self, state: WindowState, drafted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        queries = state.cells.clamp(max=self.num_cells - 1)
        start = torch.minimum(state.frontier - 1, self.computed).clamp(min=0)
        tokens = state.tokens[:, : self.num_cells]
        columns = zip(self.columns, self.caches, strict=True)
        out = [self.model.causal_logits(c, tokens, queries, cache, start) for c, cache in columns]
        self.computed = queries.max(dim=1).values
        return out[0], out[1] if len(out) > 1 else None


class QueryBackend:
    """Any spec Model through its query contract, no cache: keys = committed cells, the
    window's drafts and the layout's end-of-row tokens; causal visibility."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems

    def window_logits(self, state: WindowState, drafted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        cond, uncond = [], []
        vocab = state.draft_probs.shape[-1]
        for b, problem in enumerate(self.problems):
            layout = problem.layout
            frontier = int(state.frontier[b])
            if frontier >= layout.num_cells:  # finished: nothing to ask
                cond.append(torch.zeros(state.cells.shape[1], vocab, dtype=torch.float64))
                uncond.append(cond[-1])
                continue
            key_cells = list(range(frontier)) + state.cells[b][drafted[b]].tolist()
            fixed = layout.fixed_keys()
            positions = torch.tensor([p for p, _ in fixed] + [layout.position(c) for c in key_cells], dtype=torch.long)
            tokens = torch.tensor([t for _, t in fixed] + state.tokens[b, key_cells].tolist(), dtype=torch.long)
            cells = state.cells[b].clamp(max=layout.num_cells - 1)
            queries = torch.tensor([layout.position(int(c)) for c in cells], dtype=torch.long)
            visible = positions[None, :] < queries[:, None]  # [W, N]
            model = problem.model
            cond.append(model.logits(problem.condition, tokens, positions, queries, visible).to(torch.float64))
            if problem.sampling.uses_cfg:
                uncond.append(model.logits(None, tokens, positions, queries, visible).to(torch.float64))
        return torch.stack(cond), torch.stack(uncond) if self.problems[0].sampling.uses_cfg else None


# -- stages -----------------------------------------------------------------------------------
def allocate_state(
    num_samples: int,
    num_cells: int,
    window: int,
    vocab: int,
    device: torch.device,
    cell_noise: torch.Tensor | None = None,
    spatial: bool = False,
) -> WindowState:
    """Preallocate the decoding state (a class-conditional prefix needs no model call here:
    the class slot is the first input of the first window pass). `cell_noise`: [B, L + W, V]
    fixed noise vectors (`cell_noise_vectors`); `spatial`: keep every cell's latest p."""
    width = num_cells + window
    frontier = torch.zeros(num_samples, dtype=torch.long, device=device)
    offsets = torch.arange(window, device=device)
    latest = torch.zeros(num_samples, width, vocab, dtype=torch.float64, device=device) if spatial else None
    uniform = torch.full((num_samples, window, vocab), 1.0 / vocab, dtype=torch.float64, device=device)
    return WindowState(
        tokens=torch.zeros(num_samples, width, dtype=torch.long, device=device),
        has_draft=torch.zeros(num_samples, width, dtype=torch.bool, device=device),
        draft_probs=torch.zeros(num_samples, width, vocab, dtype=torch.float64, device=device),
        last_target=torch.zeros(num_samples, width, vocab, dtype=torch.float64, device=device),
        has_last=torch.zeros(num_samples, width, dtype=torch.bool, device=device),
        frontier=frontier,
        cells=frontier[:, None] + offsets,
        offsets=offsets,
        uniform=uniform,
        uniform_cdf=torch.cumsum(uniform, dim=-1),
        point_masses=torch.eye(vocab, dtype=torch.float64, device=device),
        cell_noise=cell_noise,
        latest_target=latest,
        has_latest=torch.zeros(num_samples, width, dtype=torch.bool, device=device) if spatial else None,
    )


def cell_noise_vectors(noise: EventNoise, num_cells: int, vocab: int) -> torch.Tensor:
    """[B, num_cells, V] every cell's fixed noise vector G(cell_noise_key(cell)), hashed once
    for the whole decode (`noise` holds the CELL_NOISE_PURPOSE prefix)."""
    b = noise.prefix.shape[1]
    cells = torch.arange(num_cells, device=noise.prefix.device).expand(b, num_cells)
    return noise.gumbels(cell_noise_key(0).iteration, cells, vocab)[CELL_NOISE_PURPOSE]


def _at_cells(table: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """[B, W, ...] rows of a [B, L + W, ...] table at the window cells."""
    if table.dim() == 2:
        return table.gather(1, cells)
    return table.gather(1, cells[:, :, None].expand(-1, -1, table.shape[-1]))


class WindowRoles(NamedTuple):
    """What each window cell is in this pass ([B, W] bool masks) and [B] the window's cells."""

    valid: torch.Tensor  # in the grid
    drafted: torch.Tensor  # drafted before the pass: all but the window's last; the last too when
    # it carries a draft (refreshed; then there is no bonus)
    need: torch.Tensor  # drafted, but without a draft yet: step 2 draws one
    size: torch.Tensor  # [B] cells in the grid


def window_roles(state: WindowState, num_cells: int) -> WindowRoles:
    valid = state.cells < num_cells
    size = valid.sum(dim=1)
    has = state.has_draft.gather(1, state.cells)
    drafted = valid & ((state.offsets < (size - 1)[:, None]) | has)  # size - 1: the bonus cell's index
    return WindowRoles(valid, drafted, drafted & ~has, size)


class WindowDrafts(NamedTuple):
    """The drafts at the window cells as this pass verifies them (gathered once per pass):
    [B, W] tokens and [B, W, V] their q. Undrafted cells hold whatever their columns held."""

    tokens: torch.Tensor
    probs: torch.Tensor


def fill_drafts(
    state: WindowState, need: torch.Tensor, any_need: bool, u: dict[str, torch.Tensor], parts: Parts, width: int
) -> WindowDrafts:
    """Step 2: a first draft for every drafted cell without one. RandomDrafter ("one-hot",
    "uniform"): a uniformly random token (keyed "init"); SpatialDrafter("above", "sample")
    ("sample-above"): drawn (keyed "init") from the latest p of the cell `width` cells above,
    q = that p, else RandomDrafter's one-hot draft; CellNoiseDrafter ("cell-noise",
    "cell-noise-above"): argmax(log q + G(cell)) with q uniform, or the cell above's latest p.

    Returns the window's drafts. Only their tokens are written back here (the backends read
    them); step 5 overwrites every window cell's draft and q, so the window's q and draft flags
    live in the returned tensors until then. `need` ([B, W], WindowRoles): the cells to draw;
    `any_need`: whether there is one (host bool; none after a pass that accepted no draft)."""
    rule, cells = parts.draft, state.cells
    tokens, probs = state.tokens.gather(1, cells), _at_cells(state.draft_probs, cells)
    if not any_need:
        return WindowDrafts(tokens, probs)
    uniform = state.uniform
    law, known = uniform, None
    if rule.endswith("above"):  # the cell above's latest p, where there is one
        assert state.latest_target is not None and state.has_latest is not None
        above = (cells - width).clamp(min=0)
        known = (cells >= width) & state.has_latest.gather(1, above)
        law = torch.where(known[:, :, None], _at_cells(state.latest_target, above), uniform)
    if rule.startswith("cell-noise"):
        assert state.cell_noise is not None
        token, q = gumbel_max(law, _at_cells(state.cell_noise, cells)), law
    else:  # the uniform law's cumulative sums are computed once per decode
        token = search_cumulative(state.uniform_cdf, u["init"]) if known is None else inverse_cdf(law, u["init"])
        q = uniform if rule == "uniform" else state.point_masses[token]
        if known is not None:
            q = torch.where(known[:, :, None], law, q)
    tokens = torch.where(need, token, tokens)
    state.tokens.scatter_(1, cells, tokens)
    if parts.reuses_last:  # a new draft has no remembered p (SJD++'s refresh reads the flag)
        state.has_last.scatter_(1, cells, ~need & state.has_last.gather(1, cells))
    return WindowDrafts(tokens, torch.where(need[:, :, None], q, probs))


def target_probs(sampling: Sampling, cond: torch.Tensor, uncond: torch.Tensor | None) -> torch.Tensor:
    """Step 3: [B, W, V] logits -> [B, W, V] float64 target probs (spec Sampling, on device)."""
    flat = sampling.compute_target_probs(
        cond.flatten(0, 1).to(torch.float64), None if uncond is None else uncond.flatten(0, 1).to(torch.float64)
    )
    return flat.view(cond.shape)


@dataclass(frozen=True)
class Parts:
    """The parts of a raster-window preset (reference/drafters.py, verifiers.py)."""

    # RandomDrafter(recorded_law="one-hot" / "uniform"); SpatialDrafter("above", "sample"); CellNoiseDrafter(above)
    draft: Literal["one-hot", "uniform", "sample-above", "cell-noise", "cell-noise-above"] = "one-hot"
    verify: Literal["exact", "greedy", "fixed-noise"] = "exact"  # ExactRule / GreedyRule / FixedNoiseVerifier
    # FreshSample, Argmax, Reuse(stale / mixture), MaximalCoupling(official), GumbelCoupling Refresher
    refresh: Literal["fresh", "argmax", "reuse-stale", "reuse-mixture", "couple", "couple-official", "gumbel"] = "fresh"
    reuse_threshold: float = 1.0
    bonus_purpose: str = "fresh"  # AR draws its token on the "sample" events

    @property
    def reuses_last(self) -> bool:
        """Whether the refresh reads the previous pass's p (SJD++'s reuse)."""
        return self.refresh.startswith("reuse")

    @property
    def fixed_noise(self) -> bool:
        """Whether some part reads the cells' fixed noise vectors."""
        return self.draft.startswith("cell-noise") or self.verify == "fixed-noise" or self.refresh == "gumbel"

    @property
    def purposes(self) -> tuple[str, ...]:
        """The keyed uniforms an iteration draws."""
        bonus = () if self.bonus_purpose in PURPOSES else (self.bonus_purpose,)
        return PURPOSES + bonus + (COUPLING_PURPOSES if self.refresh.startswith("couple") else ())


@dataclass
class PassLaws:
    """What a speculative pass computes once for every window cell and both steps 4 and 5 read:
    min(1, p(d) / q(d)) of each draft, the residual norm(max(0, p - q)), and y ~ p on the "fresh"
    events (the bonus token and SJD's refresh draw alike)."""

    accept_prob: torch.Tensor | None = None  # [B, W]
    residual: torch.Tensor | None = None  # [B, W, V]
    fresh: torch.Tensor | None = None  # [B, W]


def verify(
    state: WindowState,
    target: torch.Tensor,
    drafted: torch.Tensor,
    drafts: WindowDrafts,
    u: dict[str, torch.Tensor],
    parts: Parts,
    laws: PassLaws,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 4, all samples and window cells at once: [B] k, the window index of the correction /
    bonus (cells frontier .. frontier + k are committed), and [B, W] the committed tokens."""
    cells, draft = state.cells, drafts.tokens  # [B, W]
    if parts.verify in ("greedy", "fixed-noise"):  # a draft stands iff it is the decision; else the decision
        if parts.verify == "greedy":  # argmax p
            decision = target.argmax(dim=-1)  # [B, W]
        else:  # argmax(log p + G(cell))
            assert state.cell_noise is not None
            decision = gumbel_max(target, _at_cells(state.cell_noise, cells))
        accepted, corrected = (draft == decision) & drafted, decision
    else:  # speculative: accept with min(1, p(d) / q(d)), else residual; bonus y ~ p
        q = drafts.probs  # [B, W, V]
        laws.accept_prob = compute_acceptance_probabilities(target, q, draft, drafted)
        accepted = u["accept"] < laws.accept_prob  # [B, W]; u >= 0, and accept_prob = 0 where undrafted
        laws.residual = compute_residual(target, q)
        residual_token = inverse_cdf(laws.residual, u["residual"])
        fresh = parts.bonus_purpose == "fresh"  # the bonus draws on the events the refresh draws on
        bonus_token = fresh_draw(target, u, laws) if fresh else inverse_cdf(target, u[parts.bonus_purpose])
        corrected = torch.where(drafted, residual_token, bonus_token)
    k = accepted.long().cumprod(dim=1).sum(dim=1)  # [B]: leading accepted drafts
    return k, torch.where(state.offsets < k[:, None], draft, corrected)


def fresh_draw(target: torch.Tensor, u: dict[str, torch.Tensor], laws: PassLaws) -> torch.Tensor:
    """[B, W] y ~ p on the "fresh" events, drawn once per pass."""
    if laws.fresh is None:
        laws.fresh = inverse_cdf(target, u["fresh"])
    return laws.fresh


def refresh(
    state: WindowState,
    target: torch.Tensor,
    drafted: torch.Tensor,
    drafts: WindowDrafts,
    u: dict[str, torch.Tensor],
    parts: Parts,
    laws: PassLaws,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 5: [B, W] next drafts and [B, W, V] their q for the cells after the rejection."""
    if parts.refresh == "argmax":  # Jacobi: argmax p, q = point mass
        best = target.argmax(dim=-1)
        return best, state.point_masses[best]
    if parts.refresh == "gumbel":  # Gumbel coupling: argmax(log p + G(cell)), q = p
        assert state.cell_noise is not None
        return gumbel_max(target, _at_cells(state.cell_noise, state.cells)), target
    fresh = fresh_draw(target, u, laws)  # y ~ p, q = p
    if parts.refresh == "fresh":
        return fresh, target
    if parts.refresh.startswith("couple"):  # maximal coupling to the old draft (spec/coupling.md)
        old, old_q = drafts
        # the old draft and its q are what step 4 verified: its min(1, p / q) and residual
        accept_prob = laws.accept_prob
        if accept_prob is None:
            accept_prob = compute_acceptance_probabilities(target, old_q, old, drafted)
        residual = compute_residual(target, old_q) if laws.residual is None else laws.residual
        kept = (u["couple"] < accept_prob) & drafted  # the bonus cell: fresh
        redrawn = inverse_cdf(residual, u["couple-residual"])
        token = torch.where(drafted, torch.where(kept, old, redrawn), fresh)
        if parts.refresh == "couple-official":  # a kept draft keeps its old q
            return token, torch.where(kept[:, :, None], old_q, target)
        return token, target
    # SJD++ reuse (reference ReuseRefresher): keep(y) = p_t(y) > threshold * p_{t-1}(y)
    draft, old_q = drafts
    previous = _at_cells(state.last_target, state.cells)
    keep = (
        compute_keep_mask(previous, target, parts.reuse_threshold) & state.has_last.gather(1, state.cells)[:, :, None]
    )
    kept = keep.gather(2, draft[:, :, None])[..., 0] & drafted  # the bonus cell had no draft to keep
    token = torch.where(kept, draft, fresh)
    if parts.refresh == "reuse-stale":
        return token, torch.where(kept[:, :, None], old_q, target)
    return token, torch.where(drafted[:, :, None], compute_reuse_law(old_q, keep, target), target)


def verify_and_refresh(
    state: WindowState,
    target: torch.Tensor,
    valid: torch.Tensor,
    drafted: torch.Tensor,
    drafts: WindowDrafts,
    u: dict[str, torch.Tensor],
    parts: Parts,
) -> torch.Tensor:
    """Steps 4-5 with this iteration's uniforms u; returns [B] k (see `verify`)."""
    laws = PassLaws()
    k, committed_token = verify(state, target, drafted, drafts, u, parts, laws)
    next_draft, next_q = refresh(state, target, drafted, drafts, u, parts, laws)
    # one write per field at every window cell: cells frontier .. frontier + k are committed
    # (q = p), the rest carry their next draft. Padded cells (>= L) have their own scratch
    # columns, which nothing reads, so validity needs no mask here.
    commit = state.offsets <= k[:, None]  # [B, W]
    cells, index = state.cells, state.cells[:, :, None].expand_as(target)
    state.tokens.scatter_(1, cells, torch.where(commit, committed_token, next_draft))
    state.has_draft.scatter_(1, cells, ~commit)
    state.draft_probs.scatter_(1, index, torch.where(commit[:, :, None], target, next_q))
    if parts.reuses_last:  # only SJD++'s refresh reads the previous pass's p
        state.has_last.scatter_(1, cells, ~commit)
        state.last_target.scatter_(1, index, target)  # read only where has_last
    if state.latest_target is not None and state.has_latest is not None:  # every queried cell's latest p
        state.latest_target.scatter_(1, index, target)
        state.has_latest.scatter_(1, cells, valid)
    return k


# -- the strategy -----------------------------------------------------------------------------
def check_batch(conditions: list[int | None], randomness: list[Randomness]) -> None:
    """Verify a batch has one noise stream per sample (a shared stream would couple samples)."""
    if len(conditions) != len(randomness) or not conditions:
        raise InvalidParameterError(f"need one randomness per condition, got {len(conditions)} and {len(randomness)}")


@dataclass(frozen=True)
class VerifiedPass:
    """What one speculative pass verified, for every sample ([B, W] at the window cells)."""

    iteration: int
    cells: torch.Tensor  # the window cells (>= L: padding)
    valid: torch.Tensor  # cells in the grid
    drafted: torch.Tensor  # cells that carried a draft (a prefix of the window)
    drafts: torch.Tensor  # the draft tokens
    draft_probs: torch.Tensor  # [B, W, V] the q each draft carried
    target: torch.Tensor  # [B, W, V] p at the window cells
    k: torch.Tensor  # [B] leading accepted drafts
    committed: torch.Tensor  # the tokens after the pass: at window positions 0 .. k, the committed ones


@dataclass(frozen=True)
class AcceleratedWindowDecoder:
    """AR (window 1, keyed "sample") or SJD (window W, random drafts, exact verification)."""

    name: str
    window: int
    parts: Parts = Parts()
    use_cache: bool = True
    compiled: bool = False  # LlamaGen only: a torch.compile'd static-shape step (CachedLlamaGen); eager is tested

    def __post_init__(self) -> None:
        check_count("window", self.window)  # at least the bonus cell

    def decode(
        self, model: Model, condition: int | None, layout: Layout, sampling: Sampling, randomness: Randomness
    ) -> Decoded:
        return self.decode_batch(model, [condition], layout, sampling, [randomness])[0]

    def decode_batch(
        self,
        model: Model,
        conditions: list[int | None],
        layout: Layout,
        sampling: Sampling,
        randomness: list[Randomness],
    ) -> list[Decoded]:
        """One image per (condition, randomness) pair, decoded together."""
        return self.decode_batch_observed(model, conditions, layout, sampling, randomness, None)

    @torch.inference_mode()
    def decode_batch_observed(
        self,
        model: Model,
        conditions: list[int | None],
        layout: Layout,
        sampling: Sampling,
        randomness: list[Randomness],
        observer: Callable[[VerifiedPass], None] | None,
    ) -> list[Decoded]:
        """`decode_batch`, handing `observer` what every pass verified where the reference's verifier
        is recorded (exact and greedy verification, SJD at window 1 included; not AR, not fixed
        noise): the statistical engine's verifier tests, oracle/statistical/counts.py."""
        check_batch(conditions, randomness)
        by_condition = {c: Problem(model, c, layout, sampling) for c in set(conditions)}  # checked once each
        problems = [by_condition[c] for c in conditions]
        backend, device = self._backend(model, problems)
        streams = sample_streams(randomness, device)
        ar = self.window == 1 and self.parts.verify == "exact"  # no cell is ever drafted: the plain AR step
        num_cells, vocab = layout.num_cells, model.vocab_size
        # AR hashes its image's events at once; a window decoder's prefixes for its passes (every
        # pass commits a cell of each unfinished sample: at most num_cells of them)
        purposes, passes = ((self.parts.bonus_purpose,), 0) if ar else (self.parts.purposes, num_cells)
        noise = EventNoise(streams, purposes, passes)
        fixed = None
        if self.parts.fixed_noise:
            fixed = cell_noise_vectors(EventNoise(streams, (CELL_NOISE_PURPOSE,)), num_cells + self.window, vocab)
        spatial = self.parts.draft.endswith("above")  # the drafter reads the cell above's latest p
        state = allocate_state(len(problems), num_cells, self.window, vocab, device, fixed, spatial)
        if ar:  # AR itself (its tokens on the "sample" events) verifies nothing; SJD at window 1 does
            watch = None if self.parts.bonus_purpose == "sample" else observer
            return self._decode_ar(backend, state, sampling, noise, num_cells, watch)
        records: list[torch.Tensor] = []  # per iteration [4, B]: frontier, k, window cells, drafted cells
        while True:
            valid, drafted, need, size = window_roles(state, num_cells)
            low, high, needed = torch.stack([*state.frontier.aminmax(), need.sum()]).tolist()  # the one host sync
            if low >= num_cells:
                break
            state.keys, state.aligned, state.first = min(high + self.window, num_cells), low == high, low
            u = noise.uniforms(state.iteration, state.cells)  # {purpose: [B, W]}
            drafts = fill_drafts(state, need, needed > 0, u, self.parts, layout.width)
            cond, uncond = backend.window_logits(state, drafted)
            target = target_probs(sampling, cond, uncond)
            # the passes its reference's verifier is recorded for (counts.is_speculative): exact and
            # greedy (Jacobi: RuleVerifier(GreedyRule)), not fixed-noise (gumbel-jacobi)
            watch = observer if self.parts.verify in ("exact", "greedy") else None
            k = verify_and_refresh(state, target, valid, drafted, drafts, u, self.parts)
            if watch is not None:
                after = state.tokens.gather(1, state.cells)
                verified = VerifiedPass(state.iteration, state.cells, valid, drafted, *drafts, target, k, after)
                watch(verified)
            records.append(torch.stack([state.frontier, k, size, drafted.sum(dim=1)]))
            state.frontier += torch.minimum(k + 1, size)
            state.cells = state.frontier[:, None] + state.offsets
            state.iteration += 1
        return self._results(state, records, num_cells)

    def _decode_ar(
        self,
        backend: Backend,
        state: WindowState,
        sampling: Sampling,
        noise: EventNoise,
        num_cells: int,
        observer: Callable[[VerifiedPass], None] | None = None,
    ) -> list[Decoded]:
        """Window 1, no drafts: pass i commits cell i of every sample with y ~ p, drawn on the
        events (bonus purpose, i, i), whose uniforms are hashed for the whole image up front.
        The frontier is the pass number, so the loop needs no host sync. `observer` gets each
        pass as a verified window of one bonus cell (no drafts)."""
        b = state.tokens.shape[0]
        steps = torch.arange(num_cells, device=state.tokens.device)
        u = noise.uniforms(steps, steps.expand(b, num_cells))[self.parts.bonus_purpose]  # [B, L]
        undrafted = torch.zeros(b, 1, dtype=torch.bool, device=steps.device)
        for i in range(num_cells):
            state.iteration, state.keys, state.first = i, i + 1, i
            state.frontier, state.cells = steps[i].expand(b), steps[i : i + 1].expand(b, 1)
            cond, uncond = backend.window_logits(state, undrafted)
            target = target_probs(sampling, cond, uncond)
            state.tokens[:, i : i + 1] = inverse_cdf(target, u[:, i : i + 1])
            if observer is not None:
                committed, k = state.tokens[:, i : i + 1], torch.zeros(b, dtype=torch.long, device=steps.device)
                none = torch.zeros_like(target)
                observer(VerifiedPass(i, state.cells, ~undrafted, undrafted, committed, none, target, k, committed))
        trace = tuple(IterationTrace((), (), (i,)) for i in range(num_cells))
        return [Decoded(tuple(row), num_cells, trace) for row in state.tokens[:, :num_cells].tolist()]

    def _backend(self, model: Model, problems: list[Problem]) -> tuple[Backend, torch.device]:
        layout = problems[0].layout
        if self.use_cache and isinstance(model, LlamaGen):
            # Verify the cache can hold the grid (positions = cells: no end-of-row tokens)
            if layout.end_of_row_token is not None:
                raise UnsupportedStrategyError("the LlamaGen cache path has no end-of-row tokens; use a plain layout")
            device = model.output.weight.device
            classes = torch.tensor([model.class_index(p.condition) for p in problems], device=device)
            cfg = problems[0].sampling.uses_cfg
            return CachedLlamaGen(model, classes, cfg, layout.num_cells, self.window, self.compiled), device
        batched = causal_batch_model(model, layout)
        if batched is not None:
            return CausalBatchBackend(batched, problems), torch.device("cpu")
        return QueryBackend(problems), torch.device("cpu")

    @staticmethod
    def _results(state: WindowState, records: list[torch.Tensor], num_cells: int) -> list[Decoded]:
        tokens = state.tokens[:, :num_cells].tolist()
        history = torch.stack(records).tolist()  # [T, 4, B]: one transfer at the end
        made: dict[tuple[int, int, int, int], IterationTrace] = {}  # frozen: samples share them
        out = []
        for b, row in enumerate(tokens):
            traces = []
            for frontier, k, n, num_drafted in history:
                key = f, kb, nb, db = frontier[b], k[b], n[b], num_drafted[b]
                if f >= num_cells:
                    break
                trace = made.get(key)
                if trace is None:  # proposed, accepted, committed cells
                    cells = tuple(range(f, f + max(min(kb + 1, db), min(kb + 1, nb))))
                    trace = made[key] = IterationTrace(cells[: min(kb + 1, db)], cells[:kb], cells[: min(kb + 1, nb)])
                traces.append(trace)
            out.append(Decoded(tuple(row), len(traces), tuple(traces)))
        return out


def accelerated_ar(use_cache: bool = True) -> AcceleratedWindowDecoder:
    return AcceleratedWindowDecoder("ar", 1, Parts(bonus_purpose="sample"), use_cache=use_cache)


def accelerated_sjd(
    window: int = 3, recorded_law: Literal["one-hot", "uniform"] = "one-hot", use_cache: bool = True
) -> AcceleratedWindowDecoder:
    name = "sjd" if recorded_law == "one-hot" else "sjd-uniform"
    return AcceleratedWindowDecoder(name, window, Parts(draft=recorded_law), use_cache)


def accelerated_jacobi(window: int = 3, use_cache: bool = True) -> AcceleratedWindowDecoder:
    return AcceleratedWindowDecoder("jacobi", window, Parts(verify="greedy", refresh="argmax"), use_cache)


def accelerated_sjdpp(
    window: int = 3, threshold: float = 1.0, exact: bool = False, use_cache: bool = True
) -> AcceleratedWindowDecoder:
    check_reuse_threshold(threshold)  # as reference ReuseRefresher
    parts = Parts(refresh="reuse-mixture" if exact else "reuse-stale", reuse_threshold=threshold)
    return AcceleratedWindowDecoder("sjdpp-exact" if exact else "sjdpp", window, parts, use_cache)


def accelerated_mc_sjd(
    window: int = 3, official: bool = False, above: bool = False, use_cache: bool = True
) -> AcceleratedWindowDecoder:
    parts = Parts(draft="sample-above" if above else "one-hot", refresh="couple-official" if official else "couple")
    name = ("mc-sjd-official" if official else "mc-sjd") + ("-above" if above else "")
    return AcceleratedWindowDecoder(name, window, parts, use_cache)


def accelerated_sjd_sample_above(window: int = 3, use_cache: bool = True) -> AcceleratedWindowDecoder:
    return AcceleratedWindowDecoder("sjd-sample-above", window, Parts(draft="sample-above"), use_cache)


def accelerated_scd_gumbel(window: int = 3, use_cache: bool = True) -> AcceleratedWindowDecoder:
    return AcceleratedWindowDecoder("scd-gumbel", window, Parts(refresh="gumbel"), use_cache)


def accelerated_gumbel_jacobi(window: int = 3, above: bool = False, use_cache: bool = True) -> AcceleratedWindowDecoder:
    parts = Parts(draft="cell-noise-above" if above else "cell-noise", verify="fixed-noise", refresh="gumbel")
    return AcceleratedWindowDecoder("gumbel-jacobi-above" if above else "gumbel-jacobi", window, parts, use_cache)
