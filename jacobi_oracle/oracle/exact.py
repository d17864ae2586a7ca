"""The exact engine: a strategy's output law by enumerating every random outcome.

A step of a stepped strategy is re-executed once per *choice path*: a `BranchingRandomness`
replays a prefix of choices and, at each new random event, takes the first outcome with
positive probability and records the others as paths still to run (depth first). Identical
states after a step are merged (`state_key`), so the work grows with the number of distinct
states, not of paths. Unless a strategy overrides `state_key` / `plan_key`, states and plans
are keyed by `merge_key`: the same value as the generic `freeze`, built faster from the
values' own `exact_key` (JacobiState, Draft). Model calls are memoised: re-executions cost no forward pass.
Plain (non-stepped) strategies are enumerated as whole runs, without merging.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import product
from typing import Any, TypeVar, cast

import torch

from ..reference.keys import causal_query
from ..spec.errors import JacobiOracleError, UnsupportedStrategyError
from ..spec.model import CausalBatchModel, Model, Problem, offers_causal_batches
from ..spec.randomness import EventKey, check_distribution, check_distribution_values, check_probability
from ..spec.strategy import PhasedDecoder, SteppedDecoder, Strategy, VerifyRefreshDecoder, freeze

LAWS_KEPT = 64  # checked laws an enumeration keeps: a step's paths re-read a window's p and q
LOSSLESS_TOLERANCE = 1e-12  # total variation below which two exact laws are called equal

Law = dict[tuple[int, ...], float]
T = TypeVar("T")


class NoiseReuseError(JacobiOracleError):
    """A second read of a noise vector whose conditional law the exact engine cannot derive."""


class _UntrackedReuse(Exception):  # control flow, not an error
    """A key is read again on some path, but its purpose's memory was not kept: restart tracking it."""

    def __init__(self, purpose: str) -> None:
        super().__init__(purpose)
        self.purpose = purpose


NoiseRef = tuple[str, EventKey]  # ("u", key): the uniform u(key); ("g", key): the vector G(key)
Observation = tuple[tuple[float, ...], int]  # a read of G(key): (probs, its argmax)
UniformRecord = tuple[float, float]  # u(key) lies in [lo, hi)
VectorRecord = tuple[tuple[Observation, ...], float]  # every read of G(key) and their joint probability
Memory = dict[NoiseRef, Any]


@dataclass
class NoiseTracking:
    """What one enumeration remembers about randomness across steps.

    `tracked`: purposes whose keys' records (an interval of u, the reads of G) are kept in the
    state and its merge key. Keys of other purposes are forgotten after each step; `bits` gives
    each key a bit of the `seen` masks that states carry (the union over the paths merged into a
    state of the keys they read), so a later read of a forgotten key is detected and the
    enumeration restarts with that purpose tracked (`_UntrackedReuse`). `reused`: keys read a
    second time on some path."""

    tracked: frozenset[str] = frozenset()
    bits: dict[NoiseRef, int] = field(default_factory=dict)
    reused: set[NoiseRef] = field(default_factory=set)

    def bit(self, ref: NoiseRef) -> int:
        index = self.bits.get(ref)
        if index is None:
            index = self.bits[ref] = len(self.bits)
        return 1 << index

    def kept(self, memory: Memory) -> Memory:
        return {ref: record for ref, record in memory.items() if ref[1].purpose in self.tracked}


def frozen_memory(memory: Memory) -> Hashable:
    return tuple(sorted(memory.items()))


class CheckedLaw:
    """A probability tensor a path read, its values checked once (spec/randomness.py) and the
    categorical split of [0, 1) they define, for the other paths of the enumeration that read it."""

    __slots__ = ("_bounds", "_outcomes", "probs", "values", "version")

    def __init__(self, probs: torch.Tensor, version: int, values: list[float]) -> None:
        self.probs = probs  # held, so that its id (the cache key) is not reused
        self.version = version  # an in-place change makes a new version: read anew
        self.values = values
        self._bounds: list[float] | None = None
        self._outcomes: list[tuple[int, float, UniformRecord]] | None = None

    def bounds(self) -> list[float]:
        """u in [bounds[t], bounds[t + 1]) -> token t."""
        if self._bounds is None:
            total = math.fsum(self.values)
            self._bounds = [0.0, *(c / total for c in itertools.accumulate(self.values))]
        return self._bounds

    def categorical_outcomes(self) -> list[tuple[int, float, UniformRecord]]:
        """A first read's outcomes: (token, its probability, the interval of u it takes)."""
        if self._outcomes is None:
            total, bounds = math.fsum(self.values), self.bounds()
            self._outcomes = []
            for t, w in enumerate(self.values):
                a, b = max(0.0, bounds[t]), min(1.0, bounds[t + 1])
                if w > 0.0 and b > a:
                    self._outcomes.append((t, w / total, (a, b)))
        return self._outcomes


class BranchingRandomness:
    """Replays `choices`, then takes outcome 0 of every new event and remembers the rest.

    Every read is conditioned on the path's earlier reads of the same key (spec/randomness.md):
    u(key) is kept as the interval [lo, hi) its decisions so far allow, and a new decision on
    it splits that interval; G(key) is kept as its reads so far, and a new read branches with
    the conditional law of the Gumbel argmax (`gumbel_joint_probability`)."""

    def __init__(
        self,
        choices: tuple[int, ...],
        memory: Memory | None = None,
        tracking: NoiseTracking | None = None,
        seen: int = 0,
        laws: dict[int, CheckedLaw] | None = None,
        probability: float = 1.0,
    ) -> None:
        self.choices = choices
        # the checked values of each probability tensor read, shared by the paths of one
        # enumeration (they re-read the same tensors): by id, with the tensor held (so the id is
        # not reused) and its version (an in-place change reads it anew)
        self.laws = laws if laws is not None else {}
        self.taken: list[int] = []
        self.branch_widths: list[int] = []  # outcomes of each event at depth >= len(choices)
        self.probability = probability  # of the path so far (an earlier phase's, continued)
        self.memory: Memory = dict(memory or {})
        self.tracking = tracking if tracking is not None else NoiseTracking()
        self.seen = seen  # keys some path merged into the start state read (forgotten ones included)
        self.read = 0  # bits of the keys this run read

    def _choose(self, outcomes: list[tuple[T, float, Any]], ref: NoiseRef) -> T:
        depth = len(self.taken)
        index = self.choices[depth] if depth < len(self.choices) else 0
        if depth >= len(self.choices):
            self.branch_widths.append(len(outcomes))
        value, prob, record = outcomes[index]
        self.taken.append(index)
        self.probability *= prob
        self.memory[ref] = record
        return value

    def _recall(self, ref: NoiseRef) -> Any:
        """The record of an earlier read of `ref` on this path, or None for a first read."""
        bit = self.tracking.bit(ref)
        self.read |= bit
        record = self.memory.get(ref)
        if record is not None:
            self.tracking.reused.add(ref)
            return record
        if self.seen & bit and ref[1].purpose not in self.tracking.tracked:
            raise _UntrackedReuse(ref[1].purpose)
        return None

    def bernoulli(self, p: float, key: EventKey) -> bool:
        p = check_probability(p, key)
        ref: NoiseRef = ("u", key)
        lo, hi = self._recall(ref) or (0.0, 1.0)
        if (lo, hi) == (0.0, 1.0):
            parts = [(True, p, (0.0, p)), (False, 1.0 - p, (p, 1.0))]
        else:
            cut = min(max(p, lo), hi)
            parts = [(True, (cut - lo) / (hi - lo), (lo, cut)), (False, (hi - cut) / (hi - lo), (cut, hi))]
        return self._choose([part for part in parts if part[1] > 0.0], ref)

    def categorical(self, probs: torch.Tensor, key: EventKey) -> int:
        law = self._law(probs, key)
        ref: NoiseRef = ("u", key)
        interval = self._recall(ref)
        if interval is None or interval == (0.0, 1.0):
            return self._choose(law.categorical_outcomes(), ref)
        lo, hi = interval
        bounds = law.bounds()
        outcomes = []
        for t, w in enumerate(law.values):
            a, b = max(lo, bounds[t]), min(hi, bounds[t + 1])
            if w > 0.0 and b > a:
                outcomes.append((t, (b - a) / (hi - lo), (a, b)))
        return self._choose(outcomes, ref)

    def gumbel_argmax(self, probs: torch.Tensor, key: EventKey) -> int:
        values = self._values(probs, key)
        ref: NoiseRef = ("g", key)
        total = math.fsum(values)
        normalised = tuple(v / total for v in values)
        record: VectorRecord | None = self._recall(ref)
        if record is None:
            first: list[tuple[int, float, VectorRecord]] = [
                (t, w, (((normalised, t),), w)) for t, w in enumerate(normalised) if w > 0.0
            ]
            return self._choose(first, ref)
        observations, joint = record
        for seen_probs, token in observations:  # the same law as an earlier read: the same argmax
            if seen_probs == normalised:
                return self._choose([(token, 1.0, record)], ref)
        outcomes: list[tuple[int, float, VectorRecord]] = []
        covered = 0.0
        for t, w in enumerate(normalised):
            if w <= 0.0:
                continue
            extended = (*observations, (normalised, t))
            both = gumbel_joint_probability(extended)
            if both is None:
                continue
            covered += both / joint
            if both > 0.0:
                outcomes.append((t, both / joint, (extended, both)))
        if abs(covered - 1.0) > 1e-9:
            raise NoiseReuseError(
                f"noise vector {key} is read with a third distinct argmax: its conditional law "
                f"is not derived (covered mass {covered!r}); judge this decoder with the pathwise "
                "or the statistical engine"
            )
        return self._choose([(t, prob / covered, rec) for t, prob, rec in outcomes], ref)

    def _values(self, probs: torch.Tensor, key: EventKey) -> list[float]:
        return self._law(probs, key).values

    def _law(self, probs: torch.Tensor, key: EventKey) -> CheckedLaw:
        known = self.laws.get(id(probs))
        if known is not None and known.probs is probs and known.version == probs._version:
            return known
        if probs.dim() != 1:
            check_distribution(probs, key)  # raises the shape error
        values: list[float] = probs.tolist()
        check_distribution_values(values, key)
        if len(self.laws) >= LAWS_KEPT:  # a whole run makes new tensors on every path: keep few
            self.laws.clear()
        law = self.laws[id(probs)] = CheckedLaw(probs, probs._version, values)
        return law

    def siblings(self) -> Iterator[tuple[int, ...]]:
        """Choice prefixes of the paths that branch off this one at its new events."""
        start = len(self.choices)
        for offset, width in enumerate(self.branch_widths):
            depth = start + offset
            for alt in range(1, width):
                yield (*tuple(self.taken[:depth]), alt)


def gumbel_joint_probability(observations: tuple[Observation, ...]) -> float | None:
    """P(argmax_t log p^l_t + G_t = t_l for every read l) for one Gumbel vector G, or None when
    the reads have more than two distinct argmaxes (spec/randomness.md, "Reading a key twice").

    With E_t = exp(-G_t) ~ Exp(1) iid, argmax(log p + G) = argmin E_t / p_t. One argmax i:
    E_v >= E_i a_v with a_v = max_l p^l_v / p^l_i, so P = 1 / (1 + sum_v a_v). Two, i (reads I)
    and j (reads J): with r = E_j / E_i, P = integral over lo <= r <= hi of dr / c(r)^2,
    c(r) = 1 + r + sum_{v != i, j} max(a_v, r b_v), lo = max_I p_j / p_i, hi = min_J p_j / p_i;
    c is piecewise linear, and on a piece [r1, r2] the integral is (r2 - r1) / (c(r1) c(r2))."""
    groups: dict[int, list[tuple[float, ...]]] = defaultdict(list)
    for probs, token in observations:
        groups[token].append(probs)
    if len(groups) > 2:
        return None
    vocab = len(observations[0][0])

    def ratios(token: int) -> list[float]:  # max over the token's reads of p_v / p_token
        return [max(p[v] / p[token] for p in groups[token]) for v in range(vocab)]

    if len(groups) == 1:
        (i,) = groups
        a = ratios(i)
        return 1.0 / (1.0 + math.fsum(a[v] for v in range(vocab) if v != i))
    i, j = groups
    a, b = ratios(i), ratios(j)
    lo = a[j]
    hi = min((p[j] / p[i] if p[i] > 0 else math.inf) for p in groups[j])
    if lo >= hi:
        return 0.0
    others = [v for v in range(vocab) if v not in (i, j)]

    def c(r: float) -> float:
        return 1.0 + r + math.fsum(max(a[v], r * b[v]) for v in others)

    cuts = sorted({a[v] / b[v] for v in others if b[v] > 0 and lo < a[v] / b[v] < hi})
    points = [lo, *cuts, hi]
    total = 0.0
    for r1, r2 in itertools.pairwise(points):
        if math.isinf(r2):  # c(r) = c(r1) + slope (r - r1) on the last piece
            slope = 1.0 + math.fsum(b[v] for v in others if r1 * b[v] >= a[v] and b[v] > 0)
            total += 1.0 / (slope * c(r1))
        else:
            total += (r2 - r1) / (c(r1) * c(r2))
    return total


def enumerate_outcomes(
    run: Callable[[BranchingRandomness], T],
    memory: Memory | None = None,
    tracking: NoiseTracking | None = None,
    seen: int = 0,
) -> Iterator[tuple[float, T]]:
    """Every outcome of `run` with its probability (probabilities sum to 1)."""
    for prob, value, _ in enumerate_runs(run, memory, tracking, seen):
        yield prob, value


def enumerate_runs(
    run: Callable[[BranchingRandomness], T],
    memory: Memory | None = None,
    tracking: NoiseTracking | None = None,
    seen: int = 0,
    probability: float = 1.0,
) -> Iterator[tuple[float, T, BranchingRandomness]]:
    """`enumerate_outcomes`, with each path's randomness (its memory and the keys it read).
    `probability`: of the path that led here (the outcomes' probabilities continue its product)."""
    tracking = tracking if tracking is not None else NoiseTracking()
    stack: list[tuple[int, ...]] = [()]
    laws: dict[int, CheckedLaw] = {}
    while stack:
        randomness = BranchingRandomness(stack.pop(), memory, tracking, seen, laws, probability)
        value = run(randomness)
        yield randomness.probability, value, randomness
        stack.extend(randomness.siblings())


class MemoModel:
    """Wraps a model; identical calls are answered from a cache. Its answers are the model's
    own, so a model with batched causal queries keeps them (passed through, not memoised:
    a batch is one call over tensors, and its queries rarely repeat)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.vocab_size = model.vocab_size
        self.num_classes = model.num_classes
        self.num_positions = model.num_positions
        self.token_embeddings = getattr(model, "token_embeddings", None)  # relaxed verifiers read it
        self.accepts_query_keys = getattr(model, "accepts_query_keys", False)  # LPD position queries
        self.answers_causal_batches = offers_causal_batches(model)  # spec.model.CausalBatchModel, passed through
        self.cache: dict[Hashable, torch.Tensor] = {}
        self.calls = 0

    def causal_logits(
        self,
        classes: torch.Tensor,
        tokens: torch.Tensor,
        queries: torch.Tensor,
        cache: dict[str, torch.Tensor] | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if not self.answers_causal_batches:
            raise UnsupportedStrategyError(f"{type(self.model).__name__} does not answer batched causal queries")
        return cast(CausalBatchModel, self.model).causal_logits(classes, tokens, queries, cache, start)

    def logits(
        self,
        condition: int | None,
        key_tokens: torch.Tensor,
        key_positions: torch.Tensor,
        query_positions: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        key = (
            condition,
            tuple(key_tokens.tolist()),
            tuple(key_positions.tolist()),
            tuple(query_positions.tolist()),
            visible.numpy().tobytes(),
            tuple(visible.shape),
        )
        if key not in self.cache:
            self.calls += 1
            self.cache[key] = self.model.logits(condition, key_tokens, key_positions, query_positions, visible)
        return self.cache[key]


@dataclass
class ExactLaw:
    law: Law  # sequence -> probability
    mean_forward_passes: float
    states_explored: int
    model_calls: int
    seconds: float
    pass_distribution: dict[int, float] = field(default_factory=dict)
    reused_keys: tuple[str, ...] = ()  # keys read a second time on some path ("u:" / "g:" + key)


def _memoised(problem: Problem) -> tuple[Problem, MemoModel]:
    memo = MemoModel(problem.model)
    return Problem(memo, problem.condition, problem.layout, problem.sampling), memo


@contextmanager
def single_threaded() -> Iterator[None]:
    """Enumeration makes millions of tiny tensor ops: intra-op threads only add overhead
    (30x slower softmax on a busy 2-core machine), so run them on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def exact_output_law(
    strategy: Strategy, problem: Problem, progress: Callable[[int, int], None] | None = None
) -> ExactLaw:
    """The exact law of `strategy`'s output on `problem` (float64; rounding <= 1e-12)."""
    with single_threaded():
        return _exact_output_law(strategy, problem, progress)


def describe_ref(ref: NoiseRef) -> str:
    kind, key = ref
    return f"{kind}:{key.purpose}/{key.iteration}/{key.cell}"


def _exact_output_law(strategy: Strategy, problem: Problem, progress: Callable[[int, int], None] | None) -> ExactLaw:
    started = time.perf_counter()
    problem, memo = _memoised(problem)
    tracked: frozenset[str] = frozenset()
    while True:  # restarts only when a decoder reads a key again that was forgotten: its purpose is then kept
        tracking = NoiseTracking(tracked)
        try:
            if isinstance(strategy, SteppedDecoder):
                law, passes, states = _stepped_law(strategy, problem, tracking, progress)
            elif isinstance(strategy, Strategy):
                law, passes, states = _whole_run_law(strategy, problem, tracking)
            else:
                raise UnsupportedStrategyError(f"{strategy!r} is neither a Strategy nor a SteppedDecoder")
            break
        except _UntrackedReuse as reuse:
            tracked |= {reuse.purpose}
    total = sum(law.values())
    if abs(total - 1.0) > LOSSLESS_TOLERANCE:
        raise JacobiOracleError(f"enumerated law sums to {total!r}: the strategy's randomness is not closed")
    mean = sum(n * w for n, w in passes.items())
    reused = tuple(sorted(describe_ref(ref) for ref in tracking.reused))
    return ExactLaw(dict(law), mean, states, memo.calls, time.perf_counter() - started, dict(passes), reused)


_PLAIN = frozenset({int, bool, float, str, type(None)})  # freeze(v) is v itself


def merge_key(value: object) -> Hashable:
    """`freeze(value)` (the same value), faster: a value with an `exact_key` method
    (JacobiState, Draft) builds it itself; tuples and dataclasses around such values recurse."""
    if type(value) in _PLAIN:
        return value
    exact_key = getattr(value, "exact_key", None)
    if exact_key is not None:
        return exact_key()  # type: ignore[no-any-return]
    if type(value) is tuple:
        if all(type(v) in _PLAIN for v in value):
            return value
        return tuple(merge_key(v) for v in value)
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return (type(value).__name__, *(merge_key(getattr(value, f)) for f in fields))
    return freeze(value)


def _state_key_of(strategy: SteppedDecoder[Any]) -> Callable[[Any], Hashable]:
    """The strategy's own `state_key` if it defines one, else `merge_key` (= the generic key)."""
    return merge_key if type(strategy).state_key is SteppedDecoder.state_key else strategy.state_key


def _plan_key_of(strategy: PhasedDecoder[Any, Any, Any]) -> Callable[[Any], Hashable]:
    return merge_key if type(strategy).plan_key is PhasedDecoder.plan_key else strategy.plan_key


@dataclass
class _Node:
    """A merged state (or plan): the value, the kept noise memory, its probability and the
    union of the keys read on the paths merged into it."""

    value: Any
    memory: Memory
    weight: float
    seen: int


def _merge_into(
    nodes: dict[Hashable, _Node], key: Hashable, value: Any, memory: Memory, weight: float, seen: int
) -> None:
    held = nodes.get(key)
    if held is None:
        nodes[key] = _Node(value, memory, weight, seen)
    else:
        held.weight += weight
        held.seen |= seen


def _stepped_law(
    strategy: SteppedDecoder[Any],
    problem: Problem,
    tracking: NoiseTracking,
    progress: Callable[[int, int], None] | None,
) -> tuple[Law, dict[int, float], int]:
    law: Law = defaultdict(float)
    passes: dict[int, float] = defaultdict(float)
    state_key = _state_key_of(strategy)
    start = strategy.start(problem)
    frontier: dict[Hashable, _Node] = {(state_key(start), ()): _Node(start, {}, 1.0, 0)}
    depth = explored = 0
    limit = problem.layout.num_cells
    while frontier:
        following: dict[Hashable, _Node] = {}
        for node in frontier.values():
            explored += 1
            if strategy.finished(problem, node.value):
                law[strategy.result(problem, node.value)] += node.weight
                passes[depth] += node.weight
                continue
            for prob, after in _step_outcomes(strategy, problem, node, tracking):
                key = (state_key(after.value), frozen_memory(after.memory))
                _merge_into(following, key, after.value, after.memory, prob * node.weight, after.seen)
        frontier = following
        depth += 1
        if progress is not None:
            progress(depth, len(frontier))
        if depth > limit and frontier:
            raise JacobiOracleError(f"{strategy.name} still running after {limit} passes on {limit} cells")
    return law, passes, explored


def _runs(
    run: Callable[[BranchingRandomness], Any],
    node: _Node,
    tracking: NoiseTracking,
    mid_step: bool = False,
    probability: float = 1.0,
) -> Iterator[tuple[float, _Node]]:
    """The outcomes of one phase run from `node`, as nodes (kept memory, keys read so far).
    `mid_step`: another phase of the same step follows, so the whole memory is handed on (what
    a step forgets, it forgets at its end). `probability`: of the path so far in this step."""
    for prob, value, randomness in enumerate_runs(run, node.memory, tracking, node.seen, probability):
        memory = randomness.memory if mid_step else tracking.kept(randomness.memory)
        yield prob, _Node(value, memory, prob, node.seen | randomness.read)


def _step_outcomes(
    strategy: SteppedDecoder[Any], problem: Problem, node: _Node, tracking: NoiseTracking
) -> Iterator[tuple[float, _Node]]:
    """The law of the state after one step. Phased decoders: one forward pass per proposal;
    verify-refresh decoders: the refresh enumerated from each verification outcome."""
    state = node.value
    # a subclass that overrides `step` is not described by its phases any more
    if not isinstance(strategy, PhasedDecoder) or type(strategy).step is not PhasedDecoder.step:
        yield from _runs(lambda r: strategy.step(problem, state, r)[0], node, tracking)
        return
    plans: dict[Hashable, _Node] = {}
    plan_key = _plan_key_of(strategy)
    for prob, plan in _runs(lambda r: strategy.propose(problem, state, r), node, tracking):
        _merge_into(plans, (plan_key(plan.value), frozen_memory(plan.memory)), plan.value, plan.memory, prob, plan.seen)
    # a subclass that overrides `conclude` is not described by its verify and refresh phases any more
    split = isinstance(strategy, VerifyRefreshDecoder) and type(strategy).conclude is VerifyRefreshDecoder.conclude
    for plan in plans.values():
        output = strategy.forward(problem, plan.value)
        if not split:

            def conclude(r: BranchingRandomness, plan: Any = plan.value, output: Any = output) -> Any:
                return strategy.conclude(problem, plan, output, r)[0]

            for prob, after in _runs(conclude, plan, tracking):
                yield plan.weight * prob, after
            continue
        assert isinstance(strategy, VerifyRefreshDecoder)

        def verify(r: BranchingRandomness, plan: Any = plan.value, output: Any = output) -> Any:
            return strategy.verify(problem, plan, output, r)

        for verified_prob, verified in _runs(verify, plan, tracking, mid_step=True):

            def refresh(r: BranchingRandomness, verified: Any = verified.value) -> Any:
                return strategy.refresh(problem, verified, r)[0]

            # the refresh continues the verification path's product: the same rounding as one run
            for prob, after in _runs(refresh, verified, tracking, probability=verified_prob):
                yield plan.weight * prob, after


def _whole_run_law(strategy: Strategy, problem: Problem, tracking: NoiseTracking) -> tuple[Law, dict[int, float], int]:
    law: Law = defaultdict(float)
    passes: dict[int, float] = defaultdict(float)
    runs = 0
    for prob, decoded in enumerate_outcomes(
        lambda r: strategy.decode(problem.model, problem.condition, problem.layout, problem.sampling, r),
        tracking=tracking,
    ):
        law[decoded.tokens] += prob
        passes[decoded.forward_passes] += prob
        runs += 1
    return law, passes, runs


def exact_ar_law(problem: Problem) -> Law:
    """The AR law p(x) = prod_t p(x_t | x_<t), by walking the prefix tree."""
    problem, _ = _memoised(problem)
    law: Law = {}
    with single_threaded():
        _walk_prefixes(problem, (), 1.0, law)
    return law


def _walk_prefixes(problem: Problem, prefix: tuple[int, ...], weight: float, law: Law) -> None:
    if len(prefix) == problem.layout.num_cells:
        law[prefix] = weight
        return
    for token, p in enumerate(causal_query(problem, prefix).tolist()):
        if p > 0.0:
            _walk_prefixes(problem, (*prefix, token), weight * p, law)


@dataclass(frozen=True)
class Comparison:
    total_variation: float
    max_position_deviation: float
    worst_position: int
    lossless: bool


def compare_laws(law: Law, reference: Law, num_cells: int, vocab_size: int) -> Comparison:
    """Total variation and the largest per-position marginal deviation between two laws."""
    support = set(law) | set(reference)
    tv = 0.5 * sum(abs(law.get(x, 0.0) - reference.get(x, 0.0)) for x in support)
    marginal = torch.zeros(num_cells, vocab_size, dtype=torch.float64)
    for x in support:
        diff = law.get(x, 0.0) - reference.get(x, 0.0)
        for t, token in enumerate(x):
            marginal[t, token] += diff
    per_position = marginal.abs().amax(dim=1)
    worst = int(per_position.argmax()) if num_cells else 0
    return Comparison(tv, float(per_position.max()), worst, tv <= LOSSLESS_TOLERANCE)


def all_sequences(num_cells: int, vocab_size: int) -> Iterator[tuple[int, ...]]:
    return product(range(vocab_size), repeat=num_cells)


@dataclass(frozen=True)
class ExactVerdict:
    strategy: str
    model: str
    engine: str
    total_variation: float
    max_position_deviation: float
    worst_position: int
    lossless: bool
    mean_forward_passes: float
    ar_forward_passes: int
    states_explored: int
    seconds: float
    reused_keys: tuple[str, ...] = ()  # keys read a second time on some path: coupling, or a bug

    @property
    def step_compression(self) -> float:
        return self.ar_forward_passes / self.mean_forward_passes

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.__dict__)
        out["step_compression"] = self.step_compression
        return out


def check_exact(
    strategy: Strategy,
    problem: Problem,
    model_name: str = "custom",
    progress: Callable[[int, int], None] | None = None,
) -> ExactVerdict:
    """Compare `strategy`'s exact output law with the exact AR law of `problem`."""
    result = exact_output_law(strategy, problem, progress)
    comparison = compare_laws(result.law, exact_ar_law(problem), problem.layout.num_cells, problem.model.vocab_size)
    return ExactVerdict(
        strategy=getattr(strategy, "name", type(strategy).__name__),
        model=model_name,
        engine="exact",
        total_variation=comparison.total_variation,
        max_position_deviation=comparison.max_position_deviation,
        worst_position=comparison.worst_position,
        lossless=comparison.lossless,
        mean_forward_passes=result.mean_forward_passes,
        ar_forward_passes=problem.layout.num_cells,
        states_explored=result.states_explored,
        seconds=result.seconds,
        reused_keys=result.reused_keys,
    )
