"""Mergeable count tables: everything the statistical engine needs from samples.

`count_samples(strategy, problem, samples)` decodes one run per sample index i with
`KeyedRandomness(seed, sample=i)` and reduces it to integer arrays (spec/statistical_oracle.md,
"Count tables"). Tables from disjoint sample sets add exactly (`a + b`), whatever the order,
so a sharded audit merges to the single-process tables bit for bit. Real-valued sums (the
surprise martingale, acceptance probabilities) are kept in fixed point: each term is rounded
to a multiple of 2^-24 before it is added, so they are integers too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ...accelerated.jacobi import AcceleratedWindowDecoder, VerifiedPass
from ...accelerated.noise import keyed_uniforms, sample_streams
from ...accelerated.prefix_cache import PrefixCachedDecoder, with_prefix_cache
from ...reference.composed import ComposedStrategy
from ...reference.keys import committed_keys, run_queries
from ...reference.state import JacobiState, Window
from ...reference.verifiers import FixedNoiseVerifier, NoVerifier, Verifier, WindowOutcome
from ...spec.acceptance import RESIDUAL_MASS_FLOOR, compute_residual, compute_residual_mass
from ...spec.errors import InvalidParameterError
from ...spec.layout import Layout
from ...spec.model import Model, Problem, causal_batch_model
from ...spec.randomness import KeyedRandomness, Randomness
from ...spec.sampling import Sampling
from ...spec.strategy import BatchStrategy, Decoded, SteppedDecoder, Strategy
from ..exact import MemoModel, single_threaded

FIXED_POINT = 1 << 24  # real-valued terms are summed as integers in units of 2^-24
PIT_BINS = 1024  # fine histogram of PIT values (KS at its edges; chi-square on merged bins)
MAX_POSITION_BUCKETS = 256  # per-position tables coarsen larger vocabularies into this many buckets
MAX_PAIR_BUCKETS = 16  # adjacent-pair tables coarsen into this many buckets per token
AUX_PURPOSE = "oracle-pit"  # event purpose of the oracle's own uniforms (never used by decoders)
ENUMERATION_LIMIT = 4096  # V^L up to this: the AR law is computed exactly, whole sequences are counted
BATCH = 2000  # samples per decode_batch call of a BatchStrategy (accelerated decoders)

IntArray = npt.NDArray[np.int64]


def to_fixed(value: float) -> int:
    return round(value * FIXED_POINT)


def from_fixed(value: int | np.int64) -> float:
    return float(value) / FIXED_POINT


def is_enumerable(problem: Problem) -> bool:
    return bool(problem.model.vocab_size**problem.layout.num_cells <= ENUMERATION_LIMIT)  # exact ints: no overflow


def sequence_index(tokens: tuple[int, ...], vocab_size: int) -> int:
    """The rank of `tokens` in `itertools.product(range(V), repeat=L)` order (base-V digits)."""
    return int(sequence_ranks(np.array([tokens], dtype=np.int64), vocab_size)[0])


def sequence_ranks(tokens: IntArray, vocab_size: int) -> IntArray:
    """[B, L] sequences -> [B] `sequence_index` of each (exact while V^L fits int64)."""
    weights: IntArray = vocab_size ** np.arange(tokens.shape[1] - 1, -1, -1, dtype=np.int64)
    ranks: IntArray = tokens @ weights
    return ranks


def empty_counts(*shape: int) -> IntArray:
    return np.zeros(shape, np.int64)


def bucket_count(vocab_size: int, limit: int) -> int:
    return min(vocab_size, limit)


def bucket_of(token: int, vocab_size: int, buckets: int) -> int:
    """Token id -> bucket: contiguous id ranges of (nearly) equal size."""
    return int(buckets_of(np.array(token), vocab_size, buckets))


def buckets_of(tokens: IntArray, vocab_size: int, buckets: int) -> IntArray:
    """`bucket_of` of every token id."""
    return tokens * buckets // vocab_size


def adjacent_pairs(problem: Problem) -> tuple[tuple[int, int], ...]:
    """(cell, cell) pairs whose joint law is tested: raster neighbours, then vertical ones."""
    return layout_pairs(problem.layout)


def layout_pairs(layout: Layout) -> tuple[tuple[int, int], ...]:
    """`adjacent_pairs` of a grid."""
    across = [(c, c + 1) for c in range(layout.num_cells - 1) if (c + 1) % layout.width]
    down = [(c, c + layout.width) for c in range(layout.num_cells - layout.width)]
    return tuple(across + down)


@dataclass(frozen=True)
class CountTables:
    """Integer count tables of a set of samples; `+` merges disjoint sets exactly.

    Shapes (L cells, Bp position buckets, P pairs, Bq pair buckets, D = L acceptance depths):
    """

    samples: IntArray  # [1] number of samples
    position: IntArray  # [L, Bp] token (bucket) counts per cell
    pairs: IntArray  # [P, Bq, Bq] joint (bucket) counts per adjacent pair
    pit: IntArray  # [PIT_BINS] randomised PIT of every token under the AR conditional
    surprise: IntArray  # [4] tokens, impossible tokens, fixed sum(-log p - H), fixed sum Var
    hazard: IntArray  # [D, 4] per draft depth: trials, accepts, fixed sum alpha, fixed sum alpha(1-alpha)
    residual_pit: IntArray  # [PIT_BINS] randomised PIT of residual tokens under norm(max(0, p - q))
    bonus_pit: IntArray  # [PIT_BINS] randomised PIT of bonus tokens under p
    draft_pit: IntArray  # [PIT_BINS] randomised PIT of every verified draft under its stored q
    # [V^L] count of every whole sequence (rank `sequence_index`); [0] when V^L > ENUMERATION_LIMIT
    sequences: IntArray = field(default_factory=lambda: empty_counts(0))

    @staticmethod
    def empty(problem: Problem) -> CountTables:
        cells = problem.layout.num_cells
        vocab = problem.model.vocab_size
        bp = bucket_count(vocab, MAX_POSITION_BUCKETS)
        bq = bucket_count(vocab, MAX_PAIR_BUCKETS)
        pairs = len(adjacent_pairs(problem))
        return CountTables(
            samples=np.zeros(1, np.int64),
            position=np.zeros((cells, bp), np.int64),
            pairs=np.zeros((pairs, bq, bq), np.int64),
            pit=np.zeros(PIT_BINS, np.int64),
            surprise=np.zeros(4, np.int64),
            hazard=np.zeros((cells, 4), np.int64),
            residual_pit=np.zeros(PIT_BINS, np.int64),
            bonus_pit=np.zeros(PIT_BINS, np.int64),
            draft_pit=np.zeros(PIT_BINS, np.int64),
            sequences=np.zeros(vocab**cells if is_enumerable(problem) else 0, np.int64),
        )

    def arrays(self) -> dict[str, IntArray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __add__(self, other: CountTables) -> CountTables:
        mine, theirs = self.arrays(), other.arrays()
        for name, array in mine.items():
            if array.shape != theirs[name].shape:
                raise InvalidParameterError(
                    f"cannot merge count tables: {name} has shape {array.shape} here, {theirs[name].shape} there"
                )
        return CountTables(**{name: array + theirs[name] for name, array in mine.items()})

    @property
    def num_samples(self) -> int:
        return int(self.samples[0])

    def to_json(self) -> dict[str, Any]:
        return {name: array.tolist() for name, array in self.arrays().items()}

    @staticmethod
    def from_json(obj: dict[str, Any]) -> CountTables:
        """Tables written before whole sequences were counted load with `sequences` = [0]."""
        return CountTables(**{f.name: np.asarray(obj.get(f.name, []), dtype=np.int64) for f in fields(CountTables)})


# --- the verifier's own law: a recorder wrapped around a ComposedStrategy's verifier ---


@dataclass
class VerifierRecord:
    """Per-sample accumulators of the verifier law (filled by `RecordingVerifier`). The reference
    path's windows wait in `pending` until `flush_windows` records them, many at a time."""

    hazard: IntArray
    residual_pit: IntArray
    bonus_pit: IntArray
    draft_pit: IntArray
    aux: KeyedRandomness
    pending: list[PendingWindow] = field(default_factory=list)


@dataclass(frozen=True)
class PendingWindow:
    """One reference window's slots for `record_verified` (see `record_window`), not yet recorded."""

    aux: KeyedRandomness  # the sample's oracle noise (its PIT uniforms)
    iteration: int
    cells: list[int]
    kinds: list[int]
    drafts: list[int]
    committed: list[int]
    p: list[torch.Tensor]  # [V] each
    q: list[torch.Tensor]


@dataclass(frozen=True)
class RecordingVerifier:
    """Runs `inner` unchanged and records what the law of speculative verification predicts:
    the acceptance probability alpha = sum min(p, q) of each verified draft (marginal over
    d ~ q), and the PIT of the draft under q, of residual and bonus tokens under
    norm(max(0, p - q)) and p."""

    inner: Verifier
    record: VerifierRecord

    def verify(
        self,
        problem: Problem,
        state: JacobiState,
        window: Window,
        target_probs: dict[int, torch.Tensor],
        randomness: Randomness,
    ) -> WindowOutcome:
        outcome = self.inner.verify(problem, state, window, target_probs, randomness)
        record_window(self.record, state, window, target_probs, outcome)
        return outcome


def record_window(
    record: VerifierRecord,
    state: JacobiState,
    window: Window,
    target_probs: dict[int, torch.Tensor],
    outcome: WindowOutcome,
) -> None:
    """One reference window's records (`record_verified` with one sample, deferred to
    `flush_windows`): the proposed drafts in order (depth = their index), the first rejected one
    if its correction was committed, and the bonus cell when every draft stood and its fresh
    token was committed."""
    accepted = set(outcome.accepted)
    roles: list[tuple[int, int, int, torch.Tensor, torch.Tensor]] = []  # (cell, role, token, p, q)
    for cell in outcome.proposed:
        draft = state.drafts[cell]
        assert draft is not None, "a verified cell carries a draft"
        role = ACCEPTED if cell in accepted else REJECTED if cell in outcome.committed else REFUSED
        roles.append((cell, role, draft.token, target_probs[cell], draft.draft_probs))
        if role == REJECTED:  # its correction was committed: the window ends there
            break
    else:
        last = window.cells[-1]
        if window.bonus and state.drafts[last] is None and last in outcome.committed:
            roles.append((last, BONUS, -1, target_probs[last], target_probs[last]))
    if not roles:
        return
    record.pending.append(
        PendingWindow(
            record.aux,
            state.iteration,
            [r[0] for r in roles],
            [r[1] for r in roles],
            [max(r[2], 0) for r in roles],
            [outcome.committed.get(r[0], 0) for r in roles],
            [r[3] for r in roles],
            [r[4] for r in roles],
        )
    )
    if len(record.pending) >= PENDING_WINDOWS:
        flush_windows(record)


PENDING_WINDOWS = 4096  # reference windows recorded together (a few MiB of [V] rows at most)


def flush_windows(record: VerifierRecord) -> None:
    """`record_verified` of every pending reference window at once: one row per window, its
    slots padded with NONE (whose p and q, uniform, nothing reads), each row its own iteration."""
    windows, record.pending = record.pending, []
    if not windows:
        return
    width = max(len(w.cells) for w in windows)
    vocab = windows[0].p[0].numel()
    uniform = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)

    def rows(values: Callable[[PendingWindow], list[int]], pad: int) -> torch.Tensor:
        return torch.tensor([values(w) + [pad] * (width - len(w.cells)) for w in windows])

    def laws(values: Callable[[PendingWindow], list[torch.Tensor]]) -> torch.Tensor:
        padded = [row.to(torch.float64) for w in windows for row in values(w) + [uniform] * (width - len(w.cells))]
        return torch.stack(padded).view(len(windows), width, vocab)

    cells, kinds = rows(lambda w: w.cells, 0), rows(lambda w: w.kinds, NONE)
    drafts, committed = rows(lambda w: w.drafts, 0), rows(lambda w: w.committed, 0)
    depth = torch.arange(width).expand(len(windows), width)
    streams = sample_streams([w.aux for w in windows], torch.device("cpu"))
    iterations = torch.tensor([[w.iteration] for w in windows])  # [B, 1]: one per row
    record_verified(
        record, streams, iterations, cells, kinds, depth, drafts, committed, laws(lambda w: w.p), laws(lambda w: w.q)
    )


# a cell's role in `record_verified`: a draft that stood; one rejected whose correction was not
# committed (the walk goes on); the first rejected one whose correction was committed (it ends
# there); the bonus cell, committed; nothing
ACCEPTED, REFUSED, REJECTED, BONUS, NONE = 0, 1, 2, 3, 4


def record_verified(
    record: VerifierRecord,
    streams: torch.Tensor,
    iteration: int | torch.Tensor,
    cells: torch.Tensor,
    kinds: torch.Tensor,
    depth: torch.Tensor,
    drafts: torch.Tensor,
    committed: torch.Tensor,
    p: torch.Tensor,
    q: torch.Tensor,
) -> None:
    """The verifier law's records of B verified windows, [B, S] per slot: `kinds` ACCEPTED,
    REFUSED, REJECTED, BONUS or NONE (the roles above); `iteration` one for all, or [B, 1] one
    per row; `depth` its
    index among its window's drafts; p and q [B, S, V] (q: the draft's recorded law). Per draft:
    alpha = sum min(p, q) and the draft's randomised PIT under q; per rejection the committed
    token's PIT under norm(max(0, p - q)) (unless the residual mass is <= the floor, where it is
    never drawn); per bonus its PIT under p. The PITs' uniforms are the oracle's own keyed events
    (AUX_PURPOSE-draft / -residual / -bonus, iteration, cell) of each sample's `aux` noise."""
    drafted = (kinds == ACCEPTED) | (kinds == REFUSED) | (kinds == REJECTED)
    alpha = torch.minimum(p, q).sum(dim=-1)  # [B, S]
    pit = _randomised_pits(q, drafts, keyed_uniforms(streams, AUX_PURPOSE + "-draft", iteration, cells))
    np.add.at(record.draft_pit, _pit_bins(pit[drafted]), 1)
    d = depth[drafted].numpy()
    np.add.at(record.hazard[:, 0], d, 1)
    np.add.at(record.hazard[:, 1], d, (kinds[drafted] == ACCEPTED).numpy().astype(np.int64))
    a = alpha[drafted]
    np.add.at(record.hazard[:, 2], d, _fixed(a))
    np.add.at(record.hazard[:, 3], d, _fixed(a * (1.0 - a)))
    rejected = (kinds == REJECTED) & (compute_residual_mass(p, q) > RESIDUAL_MASS_FLOOR)  # else never drawn
    if bool(rejected.any()):
        u = keyed_uniforms(streams, AUX_PURPOSE + "-residual", iteration, cells)
        residual = _randomised_pits(compute_residual(p, q), committed, u)
        np.add.at(record.residual_pit, _pit_bins(residual[rejected]), 1)
    bonus = kinds == BONUS
    if bool(bonus.any()):
        u = keyed_uniforms(streams, AUX_PURPOSE + "-bonus", iteration, cells)
        np.add.at(record.bonus_pit, _pit_bins(_randomised_pits(p, committed, u)[bonus]), 1)


def mass_below(probs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """[..., V] laws, [...] tokens -> [...] F(token - 1), the mass of the tokens before each."""
    return torch.where(torch.arange(probs.shape[-1]) < tokens[..., None], probs, 0.0).sum(dim=-1)


def _randomised_pits(probs: torch.Tensor, tokens: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """[..., V] laws, [...] tokens and uniforms -> [...] F(token - 1) + u p(token), clamped to [0, 1]:
    Uniform(0, 1) when token ~ probs and u ~ U(0, 1) independent."""
    return (mass_below(probs, tokens) + u * probs.gather(-1, tokens[..., None])[..., 0]).clamp(0.0, 1.0)


def _pit_bins(pits: torch.Tensor) -> npt.NDArray[np.int64]:
    return (pits * PIT_BINS).floor().clamp(max=PIT_BINS - 1).long().numpy()


def _fixed(values: torch.Tensor) -> npt.NDArray[np.int64]:
    """`to_fixed` of every entry (round half to even, as Python's round)."""
    return torch.round(values * FIXED_POINT).long().numpy()


# Verifiers whose decisions are not speculative sampling's (accept d ~ q with min(1, p/q), else
# draw the residual): their law is not the one the verifier tests hold them to. FixedNoiseVerifier
# commits argmax(log p + G(cell)) with the same noise vector G(cell) that made the draft, so the
# acceptance of a draft is not Bernoulli(sum min(p, q)) given the past (measured: accept-hazard
# p = 9e-45 and residual-pit p = 3e-116 on the lossless gumbel-jacobi at 16 000 samples); its
# claim is pathwise (spec/gumbel_jacobi.md). NoVerifier verifies nothing.
NOT_SPECULATIVE: tuple[type, ...] = (FixedNoiseVerifier, NoVerifier)


def is_speculative(strategy: Strategy) -> bool:
    """A ComposedStrategy whose verifier claims the law of speculative sampling."""
    return isinstance(strategy, ComposedStrategy) and not isinstance(strategy.verifier, NOT_SPECULATIVE)


def instrumented(strategy: Strategy, record: VerifierRecord) -> Strategy:
    """The strategy with its verifier recorded, when it has a speculative one (`is_speculative`).
    A prefix-cached accelerated decoder runs a reference strategy: that one is recorded (and the
    samples then decode one by one, each with its own noise in `record.aux`)."""
    if isinstance(strategy, ComposedStrategy) and is_speculative(strategy):
        return replace(strategy, verifier=RecordingVerifier(strategy.verifier, record))
    if isinstance(strategy, PrefixCachedDecoder) and is_speculative(strategy.strategy):
        return PrefixCachedRecording(instrumented(strategy.strategy, record), strategy.name)
    return strategy


@dataclass(frozen=True)
class PrefixCachedRecording:
    """A prefix-cached decoder whose reference strategy is recorded (one sample per `decode`)."""

    strategy: Strategy
    name: str

    def decode(
        self, model: Model, condition: int | None, layout: Layout, sampling: Sampling, randomness: Randomness
    ) -> Decoded:
        return self.strategy.decode(with_prefix_cache(model), condition, layout, sampling, randomness)


def pass_recorder(
    record: VerifierRecord, noises: list[KeyedRandomness], num_cells: int
) -> Callable[[VerifiedPass], None]:
    """An observer of an accelerated decoder's passes that records every sample's window with
    `record_verified`, the recorder of the reference path (`record_window`), a pass at a time:
    the drafted cells up to the first rejection at depth = window position, the rejection when
    its correction was committed, the bonus cell when every draft stood and it was committed."""
    streams = sample_streams(list(noises), torch.device("cpu"))

    def observe(verified: VerifiedPass) -> None:
        position = torch.arange(verified.cells.shape[1])[None, :]
        k, n = verified.k[:, None], verified.valid.sum(dim=1, keepdim=True)
        reached = verified.drafted & (position <= k)  # proposed: drafts up to the first rejection
        rejected = reached & (position == k)  # committed: the correction at position k (< n)
        last = position == n - 1
        bonus = last & ~verified.drafted & (k == n - 1) & verified.valid
        kinds = torch.full(verified.cells.shape, NONE)
        kinds[reached] = ACCEPTED
        kinds[rejected] = REJECTED
        kinds[bonus] = BONUS
        depth = position.expand_as(kinds)
        p, q = verified.target.to(torch.float64), verified.draft_probs.to(torch.float64)
        q = torch.where(bonus[:, :, None], p, q)  # a bonus slot has no draft law
        cells = verified.cells.clamp(max=num_cells - 1)
        tokens = (verified.drafts, verified.committed)
        record_verified(record, streams, verified.iteration, cells, kinds, depth, *tokens, p, q)

    return observe


# --- teacher forcing: one causal forward pass per sample ---


def teacher_forced_probs(problem: Problem, tokens: tuple[int, ...]) -> torch.Tensor:
    """[L, V] p(x_t | x_<t) for every cell of a finished sample, in ONE causal forward pass."""
    layout = problem.layout
    keys = committed_keys(problem, dict(enumerate(tokens)))
    cells = list(range(layout.num_cells))
    visible = [[k.position < layout.position(c) for k in keys] for c in cells]
    return run_queries(problem, keys, cells, visible)


def teacher_forced_probs_batch(problem: Problem, samples: list[tuple[int, ...]]) -> torch.Tensor | None:
    """[B, L, V] `teacher_forced_probs` of many samples in one call of a model with batched causal
    queries (spec/model.md; the same conditionals up to rounding), or None without that path."""
    model = causal_batch_model(problem.model, problem.layout)
    if model is None or not samples:
        return None
    b, cells = len(samples), problem.layout.num_cells
    tokens = torch.tensor(samples, dtype=torch.long).reshape(b, cells)
    queries = torch.arange(cells).expand(b, cells)
    null = model.num_classes
    classes = torch.full((b,), null if problem.condition is None else problem.condition)
    cond = model.causal_logits(classes, tokens, queries).flatten(0, 1)
    uncond = (
        model.causal_logits(torch.full((b,), null), tokens, queries).flatten(0, 1)
        if problem.sampling.uses_cfg
        else None
    )
    probs = problem.sampling.target_probs(cond, uncond)
    return probs.view(b, cells, -1)


@dataclass(frozen=True)
class Calibration:
    """What teacher forcing says about one finished sample, per cell t: F_t(x_t - 1), p_t(x_t),
    the surprise term -log p_t(x_t) - H_t and Var_t in fixed point (None: p_t(x_t) = 0)."""

    below: tuple[float, ...]
    p_token: tuple[float, ...]
    surprise: tuple[int | None, ...]
    variance: tuple[int, ...]


def compute_calibration(problem: Problem, tokens: tuple[int, ...]) -> Calibration:
    """The calibration of one finished sample (`compute_calibrations` of its teacher forcing)."""
    return compute_calibrations(teacher_forced_probs(problem, tokens)[None], [tokens])[0]


def compute_calibrations(probs: torch.Tensor, samples: list[tuple[int, ...]]) -> list[Calibration]:
    """[B, L, V] teacher-forced probs of B finished samples -> their calibrations (tensor ops
    over the batch): F_t(x_t - 1), p_t(x_t), -log p_t(x_t) - H_t and Var_t of -log p_t(X)."""
    tokens = torch.tensor(samples, dtype=torch.long).reshape(probs.shape[:2])  # [B, L]
    live = probs > 0
    log_probs = torch.log(probs)
    entropy = -torch.where(live, probs * log_probs, 0.0).sum(dim=-1)  # H_t: [B, L]
    second = torch.where(live, probs * log_probs**2, 0.0).sum(dim=-1)
    variance = torch.clamp(second - entropy**2, min=0.0).tolist()
    p_token = probs.gather(-1, tokens[..., None])[..., 0]
    below = mass_below(probs, tokens).tolist()
    surprise = (-torch.log(p_token) - entropy).tolist()
    out = []
    for b, p_row in enumerate(p_token.tolist()):
        fixed = tuple(to_fixed(s) if p > 0.0 else None for p, s in zip(p_row, surprise[b], strict=True))
        out.append(Calibration(tuple(below[b]), tuple(p_row), fixed, tuple(to_fixed(v) for v in variance[b])))
    return out


def sample_calibrations(
    problem: Problem, samples: list[tuple[int, ...]], cache: dict[tuple[int, ...], Calibration] | None = None
) -> list[Calibration]:
    """The calibration of every finished sample: from `cache` (sequence -> Calibration, filled
    here; worth it where sequences repeat, i.e. an enumerable problem), else from one batched
    teacher-forced call where the model answers batched causal queries, else one pass each."""
    if cache is None:
        probs = teacher_forced_probs_batch(problem, samples)
        if probs is not None:
            return compute_calibrations(probs, samples)
        return [compute_calibration(problem, tokens) for tokens in samples]
    for tokens in samples:
        if tokens not in cache:
            cache[tokens] = compute_calibration(problem, tokens)
    return [cache[tokens] for tokens in samples]


def pit_uniforms(noises: list[KeyedRandomness], num_cells: int) -> npt.NDArray[np.float64]:
    """[B, L] the teacher-forced PIT's uniforms: each sample's keyed (AUX_PURPOSE, 0, cell) events."""
    cells = torch.arange(num_cells).expand(len(noises), -1)
    return keyed_uniforms(sample_streams(list(noises), cells.device), AUX_PURPOSE, 0, cells).numpy()


def record_calibrations(
    tables: CountTables, calibrations: list[Calibration], uniforms: npt.NDArray[np.float64]
) -> None:
    """Teacher-forced PIT and surprise of B samples ([B, L] `uniforms`: their PITs' keyed
    uniforms): per cell the randomised PIT F(x - 1) + u p(x) into its bin, the fixed-point
    surprise and variance into their sums; a token impossible under AR (p(x) = 0) is counted
    apart, a certain failure kept out of the sums."""
    below = np.array([c.below for c in calibrations], dtype=np.float64).reshape(uniforms.shape)
    p_token = np.array([c.p_token for c in calibrations], dtype=np.float64).reshape(uniforms.shape)
    possible = np.array([[s is not None for s in c.surprise] for c in calibrations], dtype=bool).reshape(uniforms.shape)
    surprise = np.array([[0 if s is None else s for s in c.surprise] for c in calibrations], dtype=np.int64)
    variance = np.array([c.variance for c in calibrations], dtype=np.int64).reshape(uniforms.shape)
    pit = torch.from_numpy(below + uniforms * p_token).clamp(0.0, 1.0)[torch.from_numpy(possible)]
    tables.pit[...] += np.bincount(_pit_bins(pit), minlength=PIT_BINS)
    tables.surprise[0] += possible.size
    tables.surprise[1] += int((~possible).sum())
    tables.surprise[2] += int(surprise.reshape(uniforms.shape)[possible].sum())
    tables.surprise[3] += int(variance[possible].sum())


def record_calibration(
    tables: CountTables,
    problem: Problem,
    tokens: tuple[int, ...],
    aux: KeyedRandomness,
    cache: dict[tuple[int, ...], Calibration] | None = None,
) -> None:
    """`record_calibrations` of one sample, its PIT uniforms from its `aux` noise. `cache`
    (sequence -> Calibration) saves the forward pass for sequences seen before."""
    calibration = sample_calibrations(problem, [tokens], cache)
    record_calibrations(tables, calibration, pit_uniforms([aux], problem.layout.num_cells))


def record_tokens(tables: CountTables, problem: Problem, samples: list[tuple[int, ...]]) -> None:
    """The token tables of B samples of L cells: per-cell (bucket) counts, adjacent-pair joint
    (bucket) counts and, where V^L is small, whole-sequence counts."""
    vocab, cells = problem.model.vocab_size, problem.layout.num_cells
    bp, bq = tables.position.shape[1], tables.pairs.shape[1]
    tokens = np.array(samples, dtype=np.int64).reshape(len(samples), cells)
    tables.samples[0] += len(samples)
    flat = np.arange(cells) * bp + buckets_of(tokens, vocab, bp)  # [B, L]: (cell, bucket)
    tables.position[...] += np.bincount(flat.ravel(), minlength=cells * bp).reshape(cells, bp)
    pairs = adjacent_pairs(problem)
    if pairs:
        first, second = (np.array(side, dtype=np.int64) for side in zip(*pairs, strict=True))
        joint = (np.arange(len(pairs)) * bq + buckets_of(tokens[:, first], vocab, bq)) * bq  # [B, P]: (pair, bucket, .)
        joint += buckets_of(tokens[:, second], vocab, bq)
        tables.pairs[...] += np.bincount(joint.ravel(), minlength=tables.pairs.size).reshape(tables.pairs.shape)
    if tables.sequences.size:
        tables.sequences[...] += np.bincount(sequence_ranks(tokens, vocab), minlength=tables.sequences.size)


def memoised(problem: Problem) -> Problem:
    """`problem` with its model's calls answered from a cache (a no-op when already cached)."""
    if isinstance(problem.model, MemoModel):
        return problem
    return Problem(MemoModel(problem.model), problem.condition, problem.layout, problem.sampling)


def decode_sample(strategy: Strategy, problem: Problem, randomness: Randomness) -> tuple[int, ...]:
    if isinstance(strategy, SteppedDecoder):
        return tuple(strategy.decode_problem(problem, randomness).tokens)
    decoded = strategy.decode(problem.model, problem.condition, problem.layout, problem.sampling, randomness)
    return tuple(decoded.tokens)


def decode_samples(
    strategy: Strategy, problem: Problem, noises: list[KeyedRandomness], record: VerifierRecord | None = None
) -> list[tuple[int, ...]]:
    """One sample per noise: through `decode_batch` (one batched run) for a `BatchStrategy`,
    else one `decode` each. The two give the same tokens (BatchStrategy's contract). With
    `record`, an accelerated window decoder's passes are recorded (`pass_recorder`)."""
    if isinstance(strategy, BatchStrategy):
        randomness: list[Randomness] = list(noises)
        conditions = [problem.condition] * len(noises)
        args = (problem.model, conditions, problem.layout, problem.sampling, randomness)
        if record is not None and isinstance(
            strategy, AcceleratedWindowDecoder
        ):  # it hands over its speculative passes
            decoded = strategy.decode_batch_observed(*args, pass_recorder(record, noises, problem.layout.num_cells))
        else:
            decoded = strategy.decode_batch(*args)
        return [tuple(d.tokens) for d in decoded]
    return [decode_sample(strategy, problem, noise) for noise in noises]


def count_samples(
    strategy: Strategy,
    problem: Problem,
    seeds: Iterable[int],
    seed: int = 0,
    calibration: bool = True,
    progress: Callable[[int], None] | None = None,
    cache: dict[tuple[int, ...], Calibration] | None = None,
) -> CountTables:
    """Decode one sample per index in `seeds` (noise KeyedRandomness(seed, sample=index)) and
    count it. Disjoint index sets give tables that add up to the tables of their union.
    On an enumerable problem the model's calls and the teacher-forced calibration are memoised
    (the model is a deterministic function of its inputs: the law is unchanged, bit for bit);
    pass `cache` (and a `memoised` problem) to keep them across calls."""
    tables = CountTables.empty(problem)
    if is_enumerable(problem):
        problem = memoised(problem)
        cache = {} if cache is None else cache
    else:
        cache = None  # sequences rarely repeat: a cache would only grow
    record = VerifierRecord(
        tables.hazard, tables.residual_pit, tables.bonus_pit, tables.draft_pit, KeyedRandomness(seed)
    )
    recorded = instrumented(strategy, record)
    batched = isinstance(recorded, BatchStrategy)  # decoded BATCH samples at a time; else one by one
    indices = list(seeds)
    decoded: list[tuple[int, ...]] = []  # counted a batch at a time, however they were decoded
    noises: list[KeyedRandomness] = []
    with single_threaded():
        size = BATCH if batched else 1
        for start in range(0, len(indices), size):
            part = [KeyedRandomness(seed, sample=index) for index in indices[start : start + size]]
            record.aux = part[0]  # the verifier records of a one-by-one sample read its noise
            samples = decode_samples(recorded, problem, part, record)
            check_lengths(strategy, problem, samples)
            decoded += samples
            noises += part
            if len(decoded) >= BATCH or start + size >= len(indices):
                flush_windows(record)
                record_tokens(tables, problem, decoded)
                if calibration:
                    calibrations = sample_calibrations(problem, decoded, cache)
                    record_calibrations(tables, calibrations, pit_uniforms(noises, problem.layout.num_cells))
                decoded, noises = [], []
            if progress is not None:
                progress(start + len(part))
    return tables


def check_lengths(strategy: Strategy, problem: Problem, samples: list[tuple[int, ...]]) -> None:
    """Verify every decoded sample has one token per cell."""
    for tokens in samples:
        if len(tokens) != problem.layout.num_cells:
            raise InvalidParameterError(
                f"{getattr(strategy, 'name', strategy)!r} returned {len(tokens)} tokens "
                f"for {problem.layout.num_cells} cells"
            )
