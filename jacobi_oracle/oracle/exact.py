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

import math
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import product
from typing import Any, TypeVar

import torch

from ..reference.keys import causal_query
from ..spec.errors import JacobiOracleError, UnsupportedStrategyError
from ..spec.model import Model, Problem
from ..spec.randomness import EventKey, check_distribution, check_distribution_values, check_probability
from ..spec.strategy import PhasedDecoder, SteppedDecoder, Strategy, freeze

LOSSLESS_TOLERANCE = 1e-12  # total variation below which two exact laws are called equal

Law = dict[tuple[int, ...], float]
T = TypeVar("T")


class BranchingRandomness:
    """Replays `choices`, then takes outcome 0 of every new event and remembers the rest."""

    def __init__(self, choices: tuple[int, ...]) -> None:
        self.choices = choices
        self.taken: list[int] = []
        self.branch_widths: list[int] = []  # outcomes of each event at depth >= len(choices)
        self.probability = 1.0

    def _choose(self, outcomes: list[tuple[T, float]]) -> T:
        depth = len(self.taken)
        index = self.choices[depth] if depth < len(self.choices) else 0
        if depth >= len(self.choices):
            self.branch_widths.append(len(outcomes))
        value, prob = outcomes[index]
        self.taken.append(index)
        self.probability *= prob
        return value

    def bernoulli(self, p: float, key: EventKey) -> bool:
        p = check_probability(p, key)
        outcomes = [(v, w) for v, w in ((True, p), (False, 1.0 - p)) if w > 0.0]
        return self._choose(outcomes)

    def categorical(self, probs: torch.Tensor, key: EventKey) -> int:
        if probs.dim() != 1:
            check_distribution(probs, key)  # raises the shape error
        values = probs.tolist()
        check_distribution_values(values, key)
        total = math.fsum(values)
        outcomes = [(i, w / total) for i, w in enumerate(values) if w > 0.0]
        return self._choose(outcomes)

    def siblings(self) -> Iterator[tuple[int, ...]]:
        """Choice prefixes of the paths that branch off this one at its new events."""
        start = len(self.choices)
        for offset, width in enumerate(self.branch_widths):
            depth = start + offset
            for alt in range(1, width):
                yield (*tuple(self.taken[:depth]), alt)


def enumerate_outcomes(run: Callable[[BranchingRandomness], T]) -> Iterator[tuple[float, T]]:
    """Every outcome of `run` with its probability (probabilities sum to 1)."""
    stack: list[tuple[int, ...]] = [()]
    while stack:
        randomness = BranchingRandomness(stack.pop())
        value = run(randomness)
        yield randomness.probability, value
        stack.extend(randomness.siblings())


class MemoModel:
    """Wraps a model; identical calls are answered from a cache."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.vocab_size = model.vocab_size
        self.num_classes = model.num_classes
        self.num_positions = model.num_positions
        self.token_embeddings = getattr(model, "token_embeddings", None)  # relaxed verifiers read it
        self.accepts_query_keys = getattr(model, "accepts_query_keys", False)  # LPD position queries
        self.cache: dict[Hashable, torch.Tensor] = {}
        self.calls = 0

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


def _exact_output_law(strategy: Strategy, problem: Problem, progress: Callable[[int, int], None] | None) -> ExactLaw:
    started = time.perf_counter()
    problem, memo = _memoised(problem)
    if isinstance(strategy, SteppedDecoder):
        law, passes, states = _stepped_law(strategy, problem, progress)
    elif isinstance(strategy, Strategy):
        law, passes, states = _whole_run_law(strategy, problem)
    else:
        raise UnsupportedStrategyError(f"{strategy!r} is neither a Strategy nor a SteppedDecoder")
    total = sum(law.values())
    if abs(total - 1.0) > LOSSLESS_TOLERANCE:
        raise JacobiOracleError(f"enumerated law sums to {total!r}: the strategy's randomness is not closed")
    mean = sum(n * w for n, w in passes.items())
    return ExactLaw(dict(law), mean, states, memo.calls, time.perf_counter() - started, dict(passes))


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


def _stepped_law(
    strategy: SteppedDecoder[Any], problem: Problem, progress: Callable[[int, int], None] | None
) -> tuple[Law, dict[int, float], int]:
    law: Law = defaultdict(float)
    passes: dict[int, float] = defaultdict(float)
    frontier: dict[Hashable, tuple[Any, float]] = {}
    state_key = _state_key_of(strategy)
    start = strategy.start(problem)
    frontier[state_key(start)] = (start, 1.0)
    depth = explored = 0
    limit = problem.layout.num_cells
    while frontier:
        following: dict[Hashable, tuple[Any, float]] = {}
        for state, weight in frontier.values():
            explored += 1
            if strategy.finished(problem, state):
                law[strategy.result(problem, state)] += weight
                passes[depth] += weight
                continue

            for prob, after in _step_outcomes(strategy, problem, state):
                key = state_key(after)
                held = following.get(key)
                following[key] = (after, prob * weight + (held[1] if held else 0.0))
        frontier = following
        depth += 1
        if progress is not None:
            progress(depth, len(frontier))
        if depth > limit and frontier:
            raise JacobiOracleError(f"{strategy.name} still running after {limit} passes on {limit} cells")
    return law, passes, explored


def _step_outcomes(strategy: SteppedDecoder[Any], problem: Problem, state: Any) -> Iterator[tuple[float, Any]]:
    """The law of the state after one step. Phased decoders: one forward pass per proposal."""
    # a subclass that overrides `step` is not described by its phases any more
    if not isinstance(strategy, PhasedDecoder) or type(strategy).step is not PhasedDecoder.step:
        yield from enumerate_outcomes(lambda r: strategy.step(problem, state, r)[0])
        return
    plans: dict[Hashable, tuple[Any, float]] = {}
    plan_key = _plan_key_of(strategy)
    for prob, plan in enumerate_outcomes(lambda r: strategy.propose(problem, state, r)):
        key = plan_key(plan)
        held = plans.get(key)
        plans[key] = (plan, prob + (held[1] if held else 0.0))
    for plan, plan_prob in plans.values():
        output = strategy.forward(problem, plan)

        def conclude(r: BranchingRandomness, plan: Any = plan, output: Any = output) -> Any:
            return strategy.conclude(problem, plan, output, r)[0]

        for prob, after in enumerate_outcomes(conclude):
            yield plan_prob * prob, after


def _whole_run_law(strategy: Strategy, problem: Problem) -> tuple[Law, dict[int, float], int]:
    law: Law = defaultdict(float)
    passes: dict[int, float] = defaultdict(float)
    runs = 0
    for prob, decoded in enumerate_outcomes(
        lambda r: strategy.decode(problem.model, problem.condition, problem.layout, problem.sampling, r)
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
    )
